"""The Dovecot test support works: a real Dovecot checks the emulator's bearer tokens.

These prove tests/support/dovecot.py with the standard library's own clients (imaplib, poplib,
smtplib's LMTP, raw lines where the exact wire text matters), so that mailgate's mail tests can
lean on what Dovecot answers: TLS both ways, passwords, XOAUTH2 and OAUTHBEARER with tokens the
emulator issued, the failure challenge, delivery, restarts and UIDVALIDITY changes.
"""

from __future__ import annotations

import base64
import imaplib
import json
import poplib
import re
import smtplib
import socket
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import TYPE_CHECKING

import httpx2
import pytest

if TYPE_CHECKING:
    from tests.support.dovecot import Dovecot
    from tests.support.emulator import RunningEmulator
    from tests.support.oidc import OidcProvider

# The fixtures dovecot and dovecot_factory; tests/conftest.py doesn't list the plugin (yet).
pytest_plugins = ["tests.support.dovecot"]

pytestmark = pytest.mark.servers

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "client-secret"
MS_SCOPES = ["offline_access", "https://outlook.office.com/IMAP.AccessAsUser.All"]
ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "alice-password"  # DEFAULT_USERS

# RFC 7628 §3.2.2 / Google's and Microsoft's XOAUTH2: what Dovecot sends back before failing.
OAUTHBEARER_ERROR = {"status": "invalid_token"}
XOAUTH2_ERROR = {"status": "401", "schemes": "bearer", "scope": "mail"}


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str) -> bytes:
    # RFC 7628 §3.1: gs2-header "n,a=user," then key/value pairs separated by ^A.
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode()


MECHANISMS: dict[str, Callable[[str, str], bytes]] = {
    "XOAUTH2": xoauth2,
    "OAUTHBEARER": oauthbearer,
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def issue_token(emulator: RunningEmulator) -> Callable[[str], str]:
    """An access token from the emulator's Microsoft app for a mailbox (consent done)."""
    emulator.state.register_client("microsoft", CLIENT_ID, SECRET)

    def issue(address: str) -> str:
        grant = emulator.state.create_grant(
            "microsoft", CLIENT_ID, address, MS_SCOPES, with_access_token=True
        )
        assert grant.access_token is not None
        return grant.access_token

    return issue


def imaps(dovecot: Dovecot) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=dovecot.ssl_context(), timeout=5
    )


class Lines:
    """A raw CRLF-line conversation over implicit TLS, to see exactly what the server says."""

    def __init__(self, dovecot: Dovecot, port: int) -> None:
        raw = socket.create_connection((dovecot.host, port), timeout=5)
        self._sock = dovecot.ssl_context().wrap_socket(raw, server_hostname="localhost")
        self._file = self._sock.makefile("rb")

    def read(self) -> str:
        return self._file.readline().decode().rstrip("\r\n")

    def send(self, line: str) -> str:
        self._sock.sendall(line.encode() + b"\r\n")
        return self.read()

    def close(self) -> None:
        self._file.close()
        self._sock.close()


@pytest.fixture
def lines() -> Iterator[Callable[[Dovecot, int], Lines]]:
    opened: list[Lines] = []

    def connect(dovecot: Dovecot, port: int) -> Lines:
        conversation = Lines(dovecot, port)
        opened.append(conversation)
        return conversation

    yield connect
    for conversation in opened:
        conversation.close()


def message(subject: str, body: str = "Hello.\n") -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{subject.replace(' ', '-')}@example.net>"
    mail.set_content(body)
    return mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))


# --- TLS and passwords ----------------------------------------------------------------------


def test_imap_over_implicit_tls_and_starttls_with_a_password(dovecot: Dovecot) -> None:
    with imaps(dovecot) as client:
        assert {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} <= set(client.capabilities)
        assert client.login(ALICE, PASSWORD)[0] == "OK"

    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=5) as client:
        assert "STARTTLS" in client.capabilities
        client.starttls(ssl_context=dovecot.ssl_context())
        assert client.login(ALICE, PASSWORD)[0] == "OK"
        with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
            imaps(dovecot).login(BOB, "wrong")


def test_pop3_over_implicit_tls_and_stls_with_a_password(dovecot: Dovecot) -> None:
    client = poplib.POP3_SSL(
        dovecot.host, dovecot.pop3s_port, context=dovecot.ssl_context(), timeout=5
    )
    client.user(ALICE)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()

    client = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=5)
    assert "STLS" in client.capa()
    client.stls(context=dovecot.ssl_context())
    assert "XOAUTH2 OAUTHBEARER" in " ".join(client.capa()["SASL"])
    client.user(ALICE)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    client.quit()


# --- bearer tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_imap_logs_in_with_an_emulator_access_token(
    dovecot: Dovecot, issue_token: Callable[[str], str], mechanism: str
) -> None:
    token = issue_token(ALICE)
    with imaps(dovecot) as client:
        status, _ = client.authenticate(mechanism, lambda _: MECHANISMS[mechanism](ALICE, token))
        assert status == "OK"
        assert client.select("INBOX")[0] == "OK"


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_pop3_logs_in_with_an_emulator_access_token(
    dovecot: Dovecot, issue_token: Callable[[str], str], mechanism: str, lines: Callable[..., Lines]
) -> None:
    token = issue_token(ALICE)
    pop3 = lines(dovecot, dovecot.pop3s_port)
    assert pop3.read().startswith("+OK")
    # RFC 5034 with an initial response.
    assert pop3.send(f"AUTH {mechanism} {b64(MECHANISMS[mechanism](ALICE, token))}") == (
        "+OK Logged in."
    )
    assert pop3.send("STAT") == "+OK 0 0"


def test_a_token_only_logs_in_the_account_it_was_issued_for(
    dovecot: Dovecot, issue_token: Callable[[str], str]
) -> None:
    token = issue_token(ALICE)
    with imaps(dovecot) as client, pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate(
            "XOAUTH2", lambda challenge: xoauth2(BOB, token) if not challenge else b""
        )


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_dead_token_gets_the_error_challenge_then_a_failure(
    dovecot: Dovecot,
    emulator: RunningEmulator,
    issue_token: Callable[[str], str],
    lines: Callable[..., Lines],
    mechanism: str,
    how: str,
) -> None:
    token = issue_token(ALICE)
    if how == "revoked":
        emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    else:
        emulator.state.advance(emulator.state.lifetimes.access_token + 1)
    expected = XOAUTH2_ERROR if mechanism == "XOAUTH2" else OAUTHBEARER_ERROR
    initial = b64(MECHANISMS[mechanism](ALICE, token))

    imap = lines(dovecot, dovecot.imaps_port)
    assert imap.read().startswith("* OK")
    challenge = imap.send(f"a1 AUTHENTICATE {mechanism} {initial}")
    assert challenge.startswith("+ eyJ")
    assert json.loads(base64.b64decode(challenge[2:])) == expected
    # RFC 7628 §3.2.3: the client answers the error with a dummy response ("\x01"; Dovecot takes
    # an empty one too), then reads the final status.
    answer = b64(b"\x01") if mechanism == "OAUTHBEARER" else ""
    assert imap.send(answer) == "a1 NO [AUTHENTICATIONFAILED] Authentication failed."

    pop3 = lines(dovecot, dovecot.pop3s_port)
    assert pop3.read().startswith("+OK")
    challenge = pop3.send(f"AUTH {mechanism} {initial}")
    assert json.loads(base64.b64decode(challenge.removeprefix("+ "))) == expected
    assert pop3.send("") == "-ERR [AUTH] Authentication failed."


def test_an_unreachable_introspection_endpoint_is_a_temporary_failure(
    dovecot_factory: Callable[..., Dovecot], lines: Callable[..., Lines]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    dovecot = dovecot_factory(
        introspection_urls=[f"http://rs:pw@127.0.0.1:{port}/introspect"], users={ALICE: None}
    )
    imap = lines(dovecot, dovecot.imaps_port)
    imap.read()
    # No challenge: Dovecot couldn't tell whether the token is good. The text ends with
    # " [HOSTNAME:TIMESTAMP]" for the administrator to find the log line.
    answer = imap.send(f"a1 AUTHENTICATE XOAUTH2 {b64(xoauth2(ALICE, 'token'))}")
    assert answer.startswith("a1 NO [UNAVAILABLE] Temporary authentication failure.")
    assert "Introspection failed" in dovecot.log_text()


async def test_oidc_provider_tokens_work_beside_the_emulator(
    dovecot_factory: Callable[..., Dovecot],
    emulator: RunningEmulator,
    issue_token: Callable[[str], str],
    oidc_provider: OidcProvider,
) -> None:
    from tests.support.dovecot import RESOURCE_SERVER, emulator_introspection_url

    emulator.state.register_resource_server(*RESOURCE_SERVER)
    service = oidc_provider.client_credentials_username
    assert service is not None
    dovecot = dovecot_factory(
        introspection_urls=[
            emulator_introspection_url(emulator),
            oidc_provider.introspection_url_with_credentials(),
        ],
        users={ALICE: None, service: None},
    )
    client = oidc_provider.basic_client
    assert client.client_secret is not None
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(
            oidc_provider.token_endpoint,
            data={"grant_type": "client_credentials", "scope": "mail"},
            auth=httpx2.BasicAuth(client.client_id, client.client_secret),
        )
    oidc_token = response.json()["access_token"]

    for user, token in [(service, oidc_token), (ALICE, issue_token(ALICE))]:
        with imaps(dovecot) as imap:
            assert (
                imap.authenticate("OAUTHBEARER", lambda _, u=user, t=token: oauthbearer(u, t))[0]
                == "OK"
            )


# --- mail -----------------------------------------------------------------------------------


def test_a_delivered_message_is_fetched_over_imap_and_pop3(dovecot: Dovecot) -> None:
    raw = message("Printer on fire")
    dovecot.deliver(ALICE, raw)
    assert dovecot.mailbox_status(ALICE)["messages"] == 1

    with imaps(dovecot) as client:
        client.login(ALICE, PASSWORD)
        client.select("INBOX", readonly=True)
        status, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert status == "OK"
        assert data[0][1] == raw  # type: ignore[index]

    client = poplib.POP3_SSL(
        dovecot.host, dovecot.pop3s_port, context=dovecot.ssl_context(), timeout=5
    )
    client.user(ALICE)
    client.pass_(PASSWORD)
    _, retrieved, _ = client.retr(1)
    assert b"\r\n".join(retrieved) + b"\r\n" == raw
    client.quit()


def test_lmtp_delivers_into_the_mailbox(dovecot: Dovecot) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=5) as lmtp:
        refused = lmtp.sendmail("customer@example.net", [BOB], message("Via LMTP"))
    assert refused == {}
    assert dovecot.mailbox_status(BOB)["messages"] == 1


def test_restart_drops_sessions_and_keeps_mail_and_ports(dovecot: Dovecot) -> None:
    dovecot.deliver(ALICE, message("Before restart"))
    ports = dovecot.ports
    idle = imaps(dovecot)
    idle.login(ALICE, PASSWORD)
    idle.select("INBOX")

    dovecot.restart()

    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        idle.noop()
    assert dovecot.ports == ports
    with imaps(dovecot) as client:
        client.login(ALICE, PASSWORD)
        assert client.select("INBOX") == ("OK", [b"1"])

    dovecot.restart(crash=True)
    assert dovecot.mailbox_status(ALICE)["messages"] == 1


def test_a_uidvalidity_change_is_seen_at_select(dovecot: Dovecot) -> None:
    dovecot.deliver(ALICE, message("Numbered"))
    before = dovecot.mailbox_status(ALICE)["uidvalidity"]

    after = dovecot.change_uidvalidity(ALICE)

    assert after != before
    with imaps(dovecot) as client:
        client.login(ALICE, PASSWORD)
        client.select("INBOX")
        _, data = client.response("UIDVALIDITY")
        assert data == [str(after).encode()]


def test_users_can_be_added_while_running(dovecot: Dovecot) -> None:
    dovecot.add_users({"carol@example.test": "carol-password"})
    with imaps(dovecot) as client:
        assert client.login("carol@example.test", "carol-password")[0] == "OK"
    assert re.search(r"Login: user=<carol@example\.test>", dovecot.log_text())
