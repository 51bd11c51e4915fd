"""The one rule for a temporary failure: the connection, an SMTP 4yz, or an IMAP / POP3 response
code that says to try later — read from the code, never from the words around it."""

from __future__ import annotations

import pytest

from mailgate.errors import OperationFailed, Transient
from mailgate.mail.connection import ConnectionLost
from mailgate.mail.errors import (
    MailError,
    TokenRefused,
    enhanced_status,
    response_code,
    says_try_later,
)
from mailgate.mail.sasl import NoOAuthMechanism
from mailgate.mail.smtp import SmtpFailure, SmtpTokenRefused


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ("[UNAVAILABLE] Temporary authentication failure.", "UNAVAILABLE"),
        ("NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)", "AUTHENTICATIONFAILED"),
        ("a1 NO [UNAVAILABLE] Temporary authentication failure.", "UNAVAILABLE"),
        ("-ERR [SYS/TEMP] Temporary authentication failure.", "SYS/TEMP"),
        ("-ERR [IN-USE] Mailbox locked", "IN-USE"),
        ("* OK [CAPABILITY IMAP4rev1 IDLE] Logged in", "CAPABILITY"),
        ("AUTHENTICATE failed.", None),
        # Brackets later in the text are no response code (Exchange Online's server names).
        ("NO AUTHENTICATE failed. [AM0PR01CA0001]", None),
    ],
)
def test_response_code(reply: str, code: str | None) -> None:
    assert response_code(reply) == code


def test_what_says_try_later() -> None:
    assert says_try_later("NO [UNAVAILABLE] Temporary authentication failure.")
    assert says_try_later("-ERR [SYS/TEMP] Temporary authentication failure.")
    assert says_try_later("-ERR [LOGIN-DELAY] wait 900 seconds")
    assert not says_try_later("NO [AUTHENTICATIONFAILED] Invalid credentials")
    assert not says_try_later("-ERR [AUTH] Authentication failed.")
    # Words are not a code: only the server's code decides.
    assert not says_try_later("NO Temporary authentication failure.")
    assert says_try_later(smtp_code=454) and says_try_later(smtp_code=421)
    assert not says_try_later(smtp_code=535) and not says_try_later(smtp_code=None)


def test_protocol_errors_are_in_the_error_tree() -> None:
    assert issubclass(MailError, OperationFailed)
    assert issubclass(ConnectionLost, Transient)  # lost, refused, silent: try again later
    assert MailError("-ERR [SYS/TEMP] Temporary authentication failure.").temporary
    assert not MailError("-ERR [AUTH] Authentication failed.").temporary
    assert not TokenRefused("NO [UNAVAILABLE] ...").temporary
    assert isinstance(NoOAuthMechanism("The server offers neither ..."), MailError)
    refused = SmtpTokenRefused("authenticate", "5.7.3 Authentication unsuccessful", 535)
    assert isinstance(refused, SmtpFailure) and isinstance(refused, TokenRefused)
    assert str(refused) == "authenticate: 535 5.7.3 Authentication unsuccessful"
    assert not refused.temporary and refused.waits_for_admin


def test_smtp_temporary_failures() -> None:
    assert SmtpFailure("authenticate", "4.7.0 Temporary authentication failure", 454).temporary
    assert SmtpFailure("send", "Connection lost", kind="connection").temporary
    assert not SmtpFailure("send", "5.1.1 no such user", 550).temporary


def test_enhanced_status() -> None:
    assert enhanced_status("5.7.139 Authentication unsuccessful") == "5.7.139"
    assert enhanced_status("Authentication unsuccessful 5.7.139") is None
    # A code is compared whole: 5.7.601 is not 5.7.60.
    assert not SmtpFailure("send", "5.7.601 something else", 550).waits_for_admin
    assert SmtpFailure("send", "5.7.60 SMTP; Client does not have permissions", 550).waits_for_admin
