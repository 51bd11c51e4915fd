"""The Dovecot test support works: a real Dovecot checks the emulator's bearer tokens.

These prove tests/support/dovecot.py with the standard library's clients (imaplib, poplib,
smtplib's LMTP, and raw lines where the exact wire text matters), so that mailgate's tests can
lean on what Dovecot does: TLS both ways, passwords, XOAUTH2 and OAUTHBEARER with tokens the
emulator issued, the failure challenge, delivery, IDLE, restarts and UIDVALIDITY changes.
"""

from __future__ import annotations

import base64
import imaplib
import json
import poplib
import smtplib
import socket
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import TYPE_CHECKING

import httpx2
import pytest

if TYPE_CHECKING:
    from tests.support.dovecot import Dovecot
    from tests.support.emulator import RunningEmulator
    from tests.support.oidc import OidcProvider

pytestmark = pytest.mark.servers

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
MS_SCOPES = ["offline_access", "https://outlook.office.com/IMAP.AccessAsUser.All"]
ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "alice-password"  # DEFAULT_USERS

# What Dovecot challenges a refused token with, before its final NO / -ERR.
XOAUTH2_ERROR = {"status": "401", "schemes": "bearer", "scope": "mail"}
OAUTHBEARER_ERROR = {"status": "invalid_token"}  # RFC 7628 §3.2.2


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str) -> bytes:
    # RFC 7628 §3.1: gs2-header "n,a=user," then key=value pairs, each ended by ^A.
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode()


MECHANISMS: dict[str, Callable[[str, str], bytes]] = {
    "XOAUTH2": xoauth2,
    "OAUTHBEARER": oauthbearer,
}


def answer(data: bytes) -> Callable[[bytes], bytes]:
    """An imaplib authenticate() callback: imaplib calls it with the server's (empty) "+ "."""
    return lambda _challenge: data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def message(subject: str) -> bytes:
    mail = EmailMessage(policy=SMTP)  # CRLF line ends, as IMAP and POP3 hand them back
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail.set_content("Hello.\n")
    return mail.as_bytes()


@pytest.fixture
def issue_token(emulator: RunningEmulator) -> Callable[[str], str]:
    """``issue(address)``: an access token from the emulator's Microsoft app for a mailbox."""
    emulator.state.register_client("microsoft", CLIENT_ID, "client-secret")

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


def pop3s(dovecot: Dovecot) -> poplib.POP3_SSL:
    return poplib.POP3_SSL(
        dovecot.host, dovecot.pop3s_port, context=dovecot.ssl_context(), timeout=5
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
        """Send a line; the server's next line."""
        self._sock.sendall(line.encode() + b"\r\n")
        return self.read()

    def close(self) -> None:
        self._file.close()
        self._sock.close()


@pytest.fixture
def lines() -> Iterator[Callable[[Dovecot, int], Lines]]:
    """``connect(dovecot, port)``: a :class:`Lines` conversation, closed after the test."""
    opened: list[Lines] = []

    def connect(dovecot: Dovecot, port: int) -> Lines:
        conversation = Lines(dovecot, port)
        opened.append(conversation)
        return conversation

    yield connect
    for conversation in opened:
        conversation.close()


# --- TLS and passwords ----------------------------------------------------------------------


def test_imap_over_implicit_tls_and_starttls_with_a_password(dovecot: Dovecot) -> None:
    with imaps(dovecot) as client:
        assert {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} <= set(client.capabilities)
        assert client.login(ALICE, PASSWORD)[0] == "OK"

    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=5) as client:
        assert "STARTTLS" in client.capabilities
        client.starttls(ssl_context=dovecot.ssl_context())
        with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
            client.login(ALICE, "wrong")
        assert client.login(ALICE, PASSWORD)[0] == "OK"


def test_pop3_over_implicit_tls_and_stls_with_a_password(dovecot: Dovecot) -> None:
    secure = pop3s(dovecot)
    secure.user(ALICE)
    assert secure.pass_(PASSWORD).startswith(b"+OK")
    secure.quit()

    plain = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=5)
    assert "STLS" in plain.capa()
    plain.stls(context=dovecot.ssl_context())
    assert {"XOAUTH2", "OAUTHBEARER"} <= set(plain.capa()["SASL"])
    plain.user(ALICE)
    assert plain.pass_(PASSWORD).startswith(b"+OK")
    plain.quit()


# --- bearer tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_imap_logs_in_with_an_emulator_access_token(
    dovecot: Dovecot, issue_token: Callable[[str], str], mechanism: str
) -> None:
    response = MECHANISMS[mechanism](ALICE, issue_token(ALICE))
    with imaps(dovecot) as client:
        assert client.authenticate(mechanism, answer(response))[0] == "OK"
        assert client.select("INBOX")[0] == "OK"


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_pop3_logs_in_with_an_emulator_access_token(
    dovecot: Dovecot,
    issue_token: Callable[[str], str],
    lines: Callable[[Dovecot, int], Lines],
    mechanism: str,
) -> None:
    response = MECHANISMS[mechanism](ALICE, issue_token(ALICE))
    pop3 = lines(dovecot, dovecot.pop3s_port)
    assert pop3.read().startswith("+OK")
    # RFC 5034: AUTH with an initial response.
    assert pop3.send(f"AUTH {mechanism} {b64(response)}") == "+OK Logged in."
    assert pop3.send("STAT") == "+OK 0 0"


def test_a_token_logs_in_only_the_account_it_was_issued_for(
    dovecot: Dovecot, issue_token: Callable[[str], str], lines: Callable[[Dovecot, int], Lines]
) -> None:
    token = issue_token(ALICE)
    imap = lines(dovecot, dovecot.imaps_port)
    imap.read()
    assert imap.send(f"a1 AUTHENTICATE XOAUTH2 {b64(xoauth2(BOB, token))}").startswith("+ ")
    assert imap.send("") == "a1 NO [AUTHENTICATIONFAILED] Authentication failed."


@pytest.mark.parametrize("how", ["revoked", "expired"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_dead_token_gets_the_error_challenge_then_a_failure(
    dovecot: Dovecot,
    emulator: RunningEmulator,
    issue_token: Callable[[str], str],
    lines: Callable[[Dovecot, int], Lines],
    mechanism: str,
    how: str,
) -> None:
    initial = b64(MECHANISMS[mechanism](ALICE, issue_token(ALICE)))
    if how == "revoked":
        emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    else:
        emulator.state.advance(emulator.state.lifetimes.access_token + 1)
    expected = XOAUTH2_ERROR if mechanism == "XOAUTH2" else OAUTHBEARER_ERROR
    # RFC 7628 §3.2.3: the client answers the error with "\x01"; Dovecot takes an empty line
    # too (all XOAUTH2 clients send that).
    dummy = b64(b"\x01") if mechanism == "OAUTHBEARER" else ""

    imap = lines(dovecot, dovecot.imaps_port)
    imap.read()
    challenge = imap.send(f"a1 AUTHENTICATE {mechanism} {initial}")
    assert challenge.startswith("+ eyJ")
    assert json.loads(base64.b64decode(challenge.removeprefix("+ "))) == expected
    assert imap.send(dummy) == "a1 NO [AUTHENTICATIONFAILED] Authentication failed."

    pop3 = lines(dovecot, dovecot.pop3s_port)
    pop3.read()
    challenge = pop3.send(f"AUTH {mechanism} {initial}")
    assert json.loads(base64.b64decode(challenge.removeprefix("+ "))) == expected
    assert pop3.send(dummy) == "-ERR [AUTH] Authentication failed."


def test_an_unreachable_introspection_endpoint_is_a_temporary_failure(
    dovecot_factory: Callable[..., Dovecot], lines: Callable[[Dovecot, int], Lines]
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    dovecot = dovecot_factory(
        introspection_urls=[f"http://rs:pw@127.0.0.1:{port}/introspect"], users={ALICE: None}
    )
    imap = lines(dovecot, dovecot.imaps_port)
    imap.read()
    # No challenge: Dovecot can't tell whether the token is good. The text ends in
    # " [HOSTNAME:TIMESTAMP]", for the administrator to find the log line.
    answer = imap.send(f"a1 AUTHENTICATE XOAUTH2 {b64(xoauth2(ALICE, 'token'))}")
    assert answer.startswith("a1 NO [UNAVAILABLE] Temporary authentication failure.")
    assert "Introspection failed" in dovecot.log_text()


async def test_oidc_provider_and_emulator_tokens_work_side_by_side(
    dovecot_factory: Callable[..., Dovecot],
    emulator: RunningEmulator,
    issue_token: Callable[[str], str],
    oidc_provider: OidcProvider,
) -> None:
    from tests.support.dovecot import RESOURCE_SERVER, emulator_introspection_url

    service = oidc_provider.client_credentials_username
    client = oidc_provider.basic_client
    assert service is not None and client.client_secret is not None
    emulator.state.register_resource_server(*RESOURCE_SERVER)
    dovecot = dovecot_factory(
        introspection_urls=[
            emulator_introspection_url(emulator),
            oidc_provider.introspection_url_with_credentials(),
        ],
        users={ALICE: None, service: None},
    )
    async with httpx2.AsyncClient(trust_env=False) as http:
        response = await http.post(
            oidc_provider.token_endpoint,
            data={"grant_type": "client_credentials", "scope": "mail"},
            auth=httpx2.BasicAuth(client.client_id, client.client_secret),
        )
    oidc_token = response.json()["access_token"]

    for user, token in [(service, oidc_token), (ALICE, issue_token(ALICE))]:
        with imaps(dovecot) as imap:
            assert imap.authenticate("OAUTHBEARER", answer(oauthbearer(user, token)))[0] == "OK"


# --- mail -----------------------------------------------------------------------------------


def test_a_delivered_message_is_fetched_over_imap_and_pop3(dovecot: Dovecot) -> None:
    raw = message("Printer on fire")
    dovecot.deliver(ALICE, raw)
    assert dovecot.mailbox_status(ALICE)["messages"] == 1

    with imaps(dovecot) as imap:
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("FETCH", "1", "(BODY.PEEK[])")
        assert isinstance(data[0], tuple)
        assert data[0][1] == raw

    pop3 = pop3s(dovecot)
    pop3.user(ALICE)
    pop3.pass_(PASSWORD)
    _, retrieved, _ = pop3.retr(1)
    assert b"\r\n".join(retrieved) + b"\r\n" == raw
    pop3.quit()


def test_lmtp_delivers_into_the_mailbox(dovecot: Dovecot) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=5) as lmtp:
        assert lmtp.sendmail("customer@example.net", [BOB], message("Via LMTP")) == {}
    assert dovecot.mailbox_status(BOB)["messages"] == 1


def test_an_idle_session_hears_of_delivered_mail(dovecot: Dovecot) -> None:
    with imaps(dovecot) as imap:
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        imap.send(b"i1 IDLE\r\n")
        assert imap.readline() == b"+ idling\r\n"

        dovecot.deliver(ALICE, message("While idling"))

        # Dovecot waits 0.5 s for more changes before it tells.
        assert imap.readline() == b"* 1 EXISTS\r\n"
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(b"i1 OK"):
            pass


def test_restart_says_goodbye_and_keeps_mail_and_ports(dovecot: Dovecot) -> None:
    dovecot.deliver(ALICE, message("Before restart"))
    ports = dovecot.ports
    idling = imaps(dovecot)
    idling.login(ALICE, PASSWORD)
    idling.select("INBOX")
    idling.send(b"i1 IDLE\r\n")
    assert idling.readline() == b"+ idling\r\n"

    dovecot.restart()

    assert idling.readline() == b"* BYE Server shutting down.\r\n"
    assert dovecot.ports == ports
    with imaps(dovecot) as imap:
        imap.login(ALICE, PASSWORD)
        assert imap.select("INBOX") == ("OK", [b"1"])


def test_a_crash_drops_connections_without_goodbye(dovecot: Dovecot) -> None:
    dovecot.deliver(ALICE, message("Before crash"))
    connected = imaps(dovecot)
    connected.login(ALICE, PASSWORD)

    dovecot.restart(crash=True)

    assert connected.readline() == b""  # EOF
    assert dovecot.mailbox_status(ALICE)["messages"] == 1


def test_a_new_uidvalidity_is_seen_at_select(dovecot: Dovecot) -> None:
    dovecot.deliver(ALICE, message("Numbered"))
    before = dovecot.mailbox_status(ALICE)["uidvalidity"]

    after = dovecot.change_uidvalidity(ALICE)

    assert after != before
    with imaps(dovecot) as imap:
        imap.login(ALICE, PASSWORD)
        imap.select("INBOX")
        assert imap.response("UIDVALIDITY") == ("UIDVALIDITY", [str(after).encode()])


def test_users_added_while_running_can_log_in(dovecot: Dovecot) -> None:
    dovecot.add_users({"carol@example.test": "carol-password"})
    with imaps(dovecot) as imap:
        assert imap.login("carol@example.test", "carol-password")[0] == "OK"
