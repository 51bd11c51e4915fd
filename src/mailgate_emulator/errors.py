"""What an emulated endpoint answers when it refuses a request.

    EmulatedError            an RFC 6749 §5.2 error answer: `error`, `error_description`, HTTP status
    ├── MicrosoftError       …with an AADSTS code (rendered with trace and correlation ids)
    └── GoogleError          …in Google's plain two-field shape

The token logic raises these; `responses.py` renders them. They describe the *client's* mistake or
the grant's state as the real provider would, never a bug in the emulator.
"""

from __future__ import annotations


class EmulatedError(Exception):
    """An error answer of an emulated token endpoint (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class MicrosoftError(EmulatedError):
    """A Microsoft identity platform error: `description` starts `AADSTS<code>: `."""

    def __init__(self, code: int, error: str, text: str, status: int) -> None:
        super().__init__(error, f"AADSTS{code}: {text}", status)
        self.code = code


class GoogleError(EmulatedError):
    """A Google OAuth error."""
