"""The mail layer's place in the error tree, and the one rule for a temporary failure.

    mailgate.errors.OperationFailed
    └── MailError              a mail server refused, or the exchange with it failed;
        │                      `.temporary`: the server said to try later
        └── TokenRefused       the server refused an OAuth 2.0 access token the way a fresh token
                               may cure (`mailgate.oauth.access` refreshes once, tries once more)

Each protocol's refusals derive from MailError (`smtp.SmtpFailure`, `sasl.NoOAuthMechanism`,
...); a protocol's token refusal derives from its own error and from TokenRefused, so that code
catching the protocol's error still sees it (`smtp.SmtpTokenRefused`). A connection that could not
be made, broke or went silent is `mailgate.errors.Transient`.

A failure is temporary when the connection was lost, refused or timed out (`Transient`), or when
the server said to try later (`MailError.temporary`, `says_try_later`): an SMTP 4yz reply (RFC 5321 §4.2.1), or an IMAP or POP3 reply
whose response code is one of `TRY_LATER_CODES` — the code decides, never the words beside it.
"""

from __future__ import annotations

import re

from mailgate.errors import OperationFailed

# IMAP (RFC 5530 §3): UNAVAILABLE "a subsystem is down ... the client should retry later", INUSE
# "a mailbox or a part of it is in use". POP3 (RFC 3206 §4): SYS/TEMP, IN-USE; (RFC 2449 §8.1.1)
# LOGIN-DELAY. Dovecot answers a token it could not check with `NO [UNAVAILABLE]` / `-ERR
# [SYS/TEMP]`, and a refused one with `NO [AUTHENTICATIONFAILED]` / `-ERR [AUTH]`.
TRY_LATER_CODES = frozenset({"UNAVAILABLE", "INUSE", "SYS/TEMP", "IN-USE", "LOGIN-DELAY"})

# "[UNAVAILABLE] Temporary …", "a1 NO [UNAVAILABLE] …", "-ERR [SYS/TEMP] …" (RFC 3501 §7.1,
# RFC 2449 §8): the code comes first in the text, after the tag and the status if they are given.
_RESPONSE_CODE = re.compile(
    r"\s*(?:(?:[A-Za-z0-9*]+\s+)?(?:OK|NO|BAD|BYE|PREAUTH|\+OK|-ERR)\s+)?"
    r"\[([A-Za-z][A-Za-z0-9-]*(?:/[A-Za-z0-9-]+)*)[\]\s]",
    re.IGNORECASE,
)


def response_code(reply: str) -> str | None:
    """The response code of an IMAP or POP3 reply, upper-cased; None when it has none."""
    match = _RESPONSE_CODE.match(reply)
    return match.group(1).upper() if match else None


# RFC 3463 §2: class.subject.detail, at the start of an SMTP reply's text (RFC 2034).
_ENHANCED_STATUS = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")


def enhanced_status(text: str) -> str | None:
    """The enhanced status code an SMTP reply's text starts with: "5.7.139 …" → "5.7.139"."""
    match = _ENHANCED_STATUS.match(text)
    return match.group(1) if match else None


def says_try_later(reply: str = "", *, smtp_code: int | None = None) -> bool:
    """Whether a server's refusal means "try again later": an SMTP 4yz reply code, or an IMAP or
    POP3 reply whose response code is one of `TRY_LATER_CODES`."""
    if smtp_code is not None and 400 <= smtp_code < 500:
        return True
    return response_code(reply) in TRY_LATER_CODES


class MailError(OperationFailed):
    """A mail server refused, or the exchange with it failed. Its message is the server's reply
    (or says what went wrong)."""

    @property
    def temporary(self) -> bool:
        """The server said to try later: by default, what the reply's response code says."""
        return says_try_later(str(self))


class TokenRefused(MailError):
    """The server refused an OAuth 2.0 access token, and said so the way a fresh token may cure
    (the token expired early or was revoked): refresh it once, and try once more."""

    @property
    def temporary(self) -> bool:
        return False
