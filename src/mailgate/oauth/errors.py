"""What a provider's token-endpoint error means, and what the admin does about it.

A token endpoint answers errors as RFC 6749 §5.2 JSON (`error`, `error_description`); Microsoft
puts an AADSTS code at the start of the description and in `error_codes`. `ProviderError` carries
what the provider said; `explain` turns it into one sentence with the fix; `disposition` says how
the token keeper reacts. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from mailgate.errors import (
    ClientRejected,
    MailgateError,
    NeedsAdmin,
    NeedsReauthorization,
    Transient,
)


class Disposition(Enum):
    """How the token keeper reacts to a failed token request."""

    REAUTHORIZE = "reauthorize"  # the grant is gone: status needs-reauthorization
    CLIENT = "client"  # the client was refused: flag the integration
    RETRY = "retry"  # transient: back off and retry
    CONFIGURATION = "configuration"  # needs an admin's fix, then retrying works


@dataclass(frozen=True)
class ProviderError:
    """A token endpoint's error answer (never carries a token)."""

    error: str
    description: str
    http_status: int
    endpoint: str

    @property
    def aadsts(self) -> int | None:
        """Microsoft's AADSTS code, if the description starts with one."""
        match = re.match(r"\s*AADSTS(\d+)", self.description)
        return int(match.group(1)) if match else None

    @property
    def summary(self) -> str:
        """The provider's text, first line only (Microsoft appends trace and correlation ids)."""
        first = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return f"{self.error}: {first}" if first else self.error


# Microsoft AADSTS codes (docs/providers/microsoft.md; learn.microsoft.com/entra/identity-platform/reference-error-codes).
_AADSTS: dict[int, tuple[Disposition, str]] = {
    700082: (
        Disposition.REAUTHORIZE,
        "the refresh token expired after 90 days without use: authorize the account again "
        "(mailgate refreshes idle credentials so this should not recur)",
    ),
    50173: (
        Disposition.REAUTHORIZE,
        "the grant was revoked (password changed or sessions revoked): authorize the account again",
    ),
    70000: (
        Disposition.REAUTHORIZE,
        "the grant is invalid or expired: authorize the account again",
    ),
    70008: (Disposition.REAUTHORIZE, "the grant has expired: authorize the account again"),
    9002313: (Disposition.REAUTHORIZE, "the grant is not valid: authorize the account again"),
    50076: (
        Disposition.REAUTHORIZE,
        "multi-factor authentication is required: authorize the account again interactively",
    ),
    50079: (
        Disposition.REAUTHORIZE,
        "the account must register for multi-factor authentication: sign in interactively, "
        "then authorize again",
    ),
    53003: (
        Disposition.REAUTHORIZE,
        "a Conditional Access policy blocked the sign-in: check the policy for this app in "
        "Entra ID, then authorize again",
    ),
    65001: (
        Disposition.REAUTHORIZE,
        "consent for the requested permissions is missing: grant admin consent for the app in "
        "Entra ID (API permissions), then authorize again",
    ),
    7000222: (
        Disposition.CLIENT,
        "the client secret has expired: create a new secret in Entra ID (Certificates & "
        "secrets) and give it to mailgate with `mailgate integration set NAME "
        "--client-secret-file FILE`",
    ),
    7000215: (
        Disposition.CLIENT,
        "the client secret is wrong (often the secret's ID was pasted instead of its Value): "
        "copy the secret's Value from Entra ID and run `mailgate integration set NAME "
        "--client-secret-file FILE`",
    ),
    7000218: (
        Disposition.CLIENT,
        "the app needs a client secret: add one with `mailgate integration set NAME "
        "--client-secret-file FILE`, or allow public client flows in the app registration",
    ),
    700016: (
        Disposition.CLIENT,
        "the application (client) ID is not known in this tenant: check the client ID and the "
        "tenant, and that the app is registered for this account type",
    ),
    90002: (
        Disposition.CONFIGURATION,
        "the tenant does not exist: check the tenant ID or domain of the integration",
    ),
    900144: (
        Disposition.CONFIGURATION,
        "the request had no scope: check the integration's scopes",
    ),
    900382: (
        Disposition.CONFIGURATION,
        "the app is registered in another Microsoft cloud: set the integration's --cloud to the "
        "one the app lives in (global, usgov or china)",
    ),
    1002012: (
        Disposition.CONFIGURATION,
        "client credentials need a scope ending in /.default: check the integration's app scopes",
    ),
    65004: (
        Disposition.REAUTHORIZE,
        "the user declined consent: authorize again and accept the permissions (or ask an "
        "admin to grant consent for the organization)",
    ),
    50011: (
        Disposition.CONFIGURATION,
        "the redirect URL does not match the app registration: register exactly the redirect URL "
        "mailgate shows",
    ),
}

_BY_ERROR: dict[str, tuple[Disposition, str]] = {
    "access_denied": (
        Disposition.REAUTHORIZE,
        "the user cancelled the sign-in or declined consent: authorize again and accept the "
        "permissions",
    ),
    "invalid_grant": (
        Disposition.REAUTHORIZE,
        "the provider refused the grant: authorize the account again",
    ),
    "interaction_required": (
        Disposition.REAUTHORIZE,
        "the provider needs the user to sign in interactively: authorize the account again",
    ),
    "consent_required": (
        Disposition.REAUTHORIZE,
        "consent is missing: grant consent, then authorize the account again",
    ),
    "invalid_client": (
        Disposition.CLIENT,
        "the provider refused the client ID or secret: check them and run `mailgate integration "
        "set NAME --client-secret-file FILE`",
    ),
    "unauthorized_client": (
        Disposition.CONFIGURATION,
        "the client is not allowed to use this grant type: enable it in the app registration",
    ),
    "invalid_scope": (
        Disposition.CONFIGURATION,
        "the provider refused the requested scopes: check the integration's scopes against the "
        "app's permissions",
    ),
    "unsupported_grant_type": (
        Disposition.CONFIGURATION,
        "the provider does not support this grant type for this client",
    ),
    "invalid_request": (
        Disposition.CONFIGURATION,
        "the provider refused the request as malformed: check the integration's settings",
    ),
    "temporarily_unavailable": (Disposition.RETRY, "the provider is temporarily unavailable"),
    "server_error": (Disposition.RETRY, "the provider had an internal error"),
}

_GOOGLE_TESTING_HINT = (
    "; if the app's OAuth consent screen is in Testing status with an external audience, Google "
    "expires refresh tokens after 7 days: publish the app (or make it Internal) and authorize again"
)


def disposition(error: ProviderError) -> Disposition:
    code = error.aadsts
    if code in _AADSTS:
        return _AADSTS[code][0]
    if error.http_status >= 500:
        return Disposition.RETRY
    return _BY_ERROR.get(error.error, (Disposition.CONFIGURATION, ""))[0]


def explain(
    error: ProviderError, *, provider: str = "generic", grant_age_days: float | None = None
) -> str:
    """One sentence: what the provider said, what it means, what to do."""
    code = error.aadsts
    if code in _AADSTS:
        meaning = _AADSTS[code][1]
    elif error.error in _BY_ERROR:
        meaning = _BY_ERROR[error.error][1]
    else:
        meaning = "the provider refused the request: check the integration's settings"
    if (
        provider == "google"
        and error.error == "invalid_grant"
        and grant_age_days is not None
        and 6 <= grant_age_days <= 8
    ):
        meaning += _GOOGLE_TESTING_HINT
    return f"The token endpoint answered {error.summary!r}: {meaning}."


def as_exception(error: ProviderError, message: str) -> MailgateError:
    """The mailgate error a failed token request raises."""
    kind = disposition(error)
    if kind is Disposition.REAUTHORIZE:
        return NeedsReauthorization(message)
    if kind is Disposition.CLIENT:
        return ClientRejected(message)
    if kind is Disposition.RETRY:
        return Transient(message)
    return NeedsAdmin(message)
