"""The SMTP part of the diagnosis catalog: Exchange Online's and Gmail's refusals, word for word
as their servers send them, each with its fix."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mailgate.mail.diagnose import diagnose_smtp
from mailgate.mail.smtp import SmtpFailure


@dataclass
class Server:
    name: str = "out"
    host: str = "smtp.office365.com"
    port: int = 587
    username: str = "support@contoso.com"
    from_address: str = "support@contoso.com"
    credential_id: int | None = 1


def refused(text: str, code: int = 535, step: str = "authenticate") -> SmtpFailure:
    return SmtpFailure(step, text, code)


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        (
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
            "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
            "Set-TransportConfig -SmtpClientAuthenticationDisabled $false",
        ),
        (
            "5.7.139 Authentication unsuccessful, user is locked by your organization's security "
            "defaults policy. Contact your administrator.",
            "security defaults",
        ),
        (
            "5.7.139 Authentication unsuccessful, the request did not meet the criteria to be "
            "authenticated successfully. Contact your administrator.",
            "Set-CASMailbox -Identity support@contoso.com -SmtpClientAuthenticationDisabled $false",
        ),
    ],
)
def test_exchange_online_smtp_auth_switched_off(text: str, fix: str) -> None:
    assert fix in diagnose_smtp(refused(text), Server())


def test_exchange_online_refusing_the_token_names_the_causes_in_order() -> None:
    text = diagnose_smtp(refused("5.7.3 Authentication unsuccessful [AM0PR01CA0001]"), Server())
    order = [
        text.index(part) for part in ("(1)", "(2) ", "SMTP.Send", "(3)", "(4)", "SMTP.SendAsApp")
    ]
    assert order == sorted(order)


def test_tls_required_before_sign_in() -> None:
    failure = SmtpFailure(
        "send", "5.7.57 Client not authenticated to send mail. [DM6PR03CA0001.namprd03]", 530
    )
    assert "--security starttls" in diagnose_smtp(failure, Server())


def test_gmail_app_password_and_refused_token() -> None:
    gmail = Server(host="smtp.gmail.com", username="help@example.com")
    app_password = refused(
        "5.7.9 Application-specific password required. Learn more at "
        "https://support.google.com/mail/?p=InvalidSecondFactor",
        534,
    )
    assert "use OAuth 2.0" in diagnose_smtp(app_password, gmail)
    token = refused(
        "5.7.8 Username and Password not accepted. Learn more at https://support.google.com/mail/?p=BadCredentials"
    )
    assert "https://mail.google.com/ scope" in diagnose_smtp(token, gmail)


def test_sender_not_allowed() -> None:
    failure = SmtpFailure(
        "send",
        "5.2.252 SendAsDenied; support@contoso.com not allowed to send as boss@contoso.com",
        554,
    )
    text = diagnose_smtp(failure, Server(from_address="boss@contoso.com"))
    assert "Send As" in text and "boss@contoso.com" in text
    # Only the admin can fix it: the message waits instead of being dead-lettered.
    assert failure.waits_for_admin and not failure.permanent


def test_what_waits_what_retries_what_dies() -> None:
    assert refused("5.7.3 Authentication unsuccessful").waits_for_admin
    assert not refused("4.7.0 Temporary authentication failure", 454).waits_for_admin
    assert SmtpFailure("token", "needs re-authorization").waits_for_admin
    deferred = SmtpFailure("send", "4.3.2 try later", 451)
    assert not deferred.permanent and not deferred.waits_for_admin
    assert SmtpFailure("send", "5.1.1 no such user", 550).permanent
    lost = SmtpFailure("authenticate", "Connection lost", kind="connection")
    assert not lost.waits_for_admin  # a dropped connection is retried, not blamed on the admin


def test_no_starttls_offered() -> None:
    failure = SmtpFailure("tls", "the server does not offer STARTTLS", kind="starttls")
    assert "--security ssl" in diagnose_smtp(failure, Server(host="mail.example.com"))
