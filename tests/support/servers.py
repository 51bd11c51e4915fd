"""What the fixtures that start real servers share: where system binaries live, and the skip
rule — a server that is missing or won't start fails the test in CI or as root; only a developer
machine without root may skip, saying why."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# System daemons live in /usr/sbin, which is not on every PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])


def unavailable(what: str, reason: str) -> NoReturn:
    """Apply the project's skip rule for `what` (a server or tool the test needs)."""
    if os.environ.get("CI") or os.geteuid() == 0:
        pytest.fail(
            f"{what} unavailable ({reason}); a skip is only allowed on a developer machine "
            "without root and without $CI",
            pytrace=False,
        )
    pytest.skip(f"{what} unavailable: {reason}")
