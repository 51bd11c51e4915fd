"""Microsoft's `{tenant}` path segment: a directory's id or domain, or a multi-tenant alias."""

from __future__ import annotations

import re

from mailgate_emulator import messages as msg
from mailgate_emulator.model import Tenant
from mailgate_emulator.state import EmulatorState

# "common" (work/school and personal accounts), "organizations", "consumers": not directories.
MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations", "consumers"})
# The directory personal Microsoft accounts live in.
CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", re.IGNORECASE)


def resolve_tenant(state: EmulatorState, segment: str) -> Tenant | None:
    """The directory a `{tenant}` path segment names; None for common/organizations/consumers."""
    if segment.lower() in MULTI_TENANT_SEGMENTS:
        return None
    if not (_GUID.match(segment) or _DOMAIN.match(segment)):
        raise msg.TENANT_MALFORMED(tenant=segment)
    tenant = state.find_tenant(segment)
    if tenant is None:
        raise msg.TENANT_NOT_FOUND(tenant=segment)
    return tenant
