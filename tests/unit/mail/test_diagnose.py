"""The diagnosis catalog, for what only Microsoft's and Google's servers say (Dovecot-produced
failures are covered against the real server in tests/integration/test_mailbox_test.py)."""

import pytest

from mailgate.mail.diagnose import Failure, diagnose, provider_of
from mailgate.mail.sasl import parse_error_challenge


def failure(**overrides: object) -> Failure:
    fields: dict[str, object] = {
        "step": "authenticate",
        "protocol": "imap",
        "host": "outlook.office365.com",
        "port": 993,
        "text": "AUTHENTICATE failed.",
        "account": "support@contoso.com",
        "username": "support@contoso.com",
    }
    fields.update(overrides)
    return Failure(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("outlook.office365.com", "microsoft"),
        ("OUTLOOK.OFFICE365.US", "microsoft"),
        ("imap.gmail.com", "google"),
        ("mail.example.com", "other"),
        ("office365.com.evil", "other"),
    ],
)
def test_provider_of(host: str, provider: str) -> None:
    assert provider_of(host) == provider


def test_microsoft_authenticate_failed_names_the_four_causes_in_order() -> None:
    text = diagnose(failure())
    causes = [
        "Set-CASMailbox -Identity support@contoso.com -ImapEnabled $true",
        "FullAccess",
        "IMAP.AccessAsUser.All",
        "New-ServicePrincipal",
    ]
    positions = [text.index(c) for c in causes]
    assert positions == sorted(positions)
    assert "testconnectivity.microsoft.com" in text


def test_microsoft_pop_names_pop_settings() -> None:
    text = diagnose(failure(protocol="pop3", text="-ERR Authentication failure"))
    assert "-PopEnabled $true" in text and "POP.AccessAsUser.All" in text


def test_token_of_another_user_than_the_login() -> None:
    text = diagnose(failure(account="agent@contoso.com", username="support@contoso.com"))
    assert "shared mailbox" in text and "--username agent@contoso.com" in text


def test_google_invalid_credentials_mentions_testing_status() -> None:
    text = diagnose(failure(host="imap.gmail.com", text="[ALERT] Invalid credentials (Failure)"))
    assert "https://mail.google.com/" in text and "7 days" in text


def test_password_at_microsoft_points_to_oauth() -> None:
    text = diagnose(failure(auth="password", text="LOGIN failed."))
    assert "basic" in text and "OAuth 2.0" in text


def test_access_token_expired_bye() -> None:
    text = diagnose(failure(text="* BYE Session invalidated - AccessTokenExpired"))
    assert "refreshes the token and reconnects" in text


def test_temporary_failure_is_not_blamed_on_the_token() -> None:
    text = diagnose(
        failure(host="mail.example.com", text="[UNAVAILABLE] Temporary authentication failure.")
    )
    assert "temporary" in text


def test_generic_refusal_quotes_the_challenge() -> None:
    challenge = parse_error_challenge(
        "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0="
    )
    text = diagnose(
        failure(
            host="mail.example.com",
            challenge=challenge,
            text="[AUTHENTICATIONFAILED] Authentication failed.",
        )
    )
    assert "status 401, scope mail" in text


@pytest.mark.parametrize(
    ("step", "kind", "words"),
    [
        ("resolve", "", "does not resolve"),
        ("connect", "timeout", "firewall"),
        ("connect", "refused", "refused the connection"),
        ("tls", "certificate", "--ca-file"),
        ("tls", "hostname", "not valid for"),
        ("tls", "starttls", "--security ssl"),
        ("select", "", "--folder"),
    ],
)
def test_network_and_folder_failures(step: str, kind: str, words: str) -> None:
    assert words in diagnose(failure(step=step, kind=kind, text="x"))
