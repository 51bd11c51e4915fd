"""The Postfix test support works: a real Postfix takes mail from clients that log in with the
emulator's bearer tokens (checked by Dovecot) and delivers it into Dovecot.

These prove tests/support/postfix.py with aiosmtplib, the SMTP client mailgate uses, and raw
commands where the exact wire text matters: XOAUTH2 after STARTTLS, OAUTHBEARER over implicit
TLS, what a dead token gets, that AUTH waits for TLS, delivery to agents and customers, bounces,
the queue while Dovecot is down, and a stop and start on the same ports.
"""

from __future__ import annotations

import base64
import imaplib
import json
import time
from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from typing import TYPE_CHECKING

import aiosmtplib
import pytest
from tests.support.postfix import Postfix, PostfixStartError

if TYPE_CHECKING:
    from tests.support.dovecot import Dovecot
    from tests.support.emulator import RunningEmulator

pytestmark = pytest.mark.servers

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
MS_SCOPES = ["offline_access", "https://outlook.office.com/SMTP.Send"]
ALICE = "alice@example.test"
BOB = "bob@example.test"  # DEFAULT_USERS
CUSTOMER = "customer@example.net"  # CUSTOMERS
CUSTOMER_PASSWORD = "customer-password"

AUTHENTICATED = (235, "2.7.0 Authentication successful")
TLS_FIRST = (530, "5.7.0 Must issue a STARTTLS command first")
# Postfix gets no reason from Dovecot, and says so.
AUTH_FAILED = (535, "5.7.8 Error: authentication failed: (reason unavailable)")
# What Dovecot challenges a refused token with, which Postfix passes on as 334.
XOAUTH2_ERROR = {"status": "401", "schemes": "bearer", "scope": "mail"}
OAUTHBEARER_ERROR = {"status": "invalid_token"}  # RFC 7628 §3.2.2


def xoauth2(user: str, token: str) -> bytes:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


def oauthbearer(user: str, token: str) -> bytes:
    # RFC 7628 §3.1: gs2-header "n,a=user," then key=value pairs, each ended by ^A.
    return base64.b64encode(f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode())


MECHANISMS: dict[str, Callable[[str, str], bytes]] = {
    "XOAUTH2": xoauth2,
    "OAUTHBEARER": oauthbearer,
}


def mail(subject: str, to: list[str], sender: str = ALICE) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.test>"
    message.set_content(f"About {subject}.\n")
    return message


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def submission(postfix: Postfix, *, start_tls: bool = True) -> aiosmtplib.SMTP:
    """A client for the STARTTLS port (STARTTLS right after connecting unless told not to)."""
    return aiosmtplib.SMTP(
        hostname=postfix.host,
        port=postfix.submission_port,
        start_tls=start_tls,
        tls_context=postfix.ssl_context(),
        timeout=5,
    )


def smtps(postfix: Postfix) -> aiosmtplib.SMTP:
    """A client for the implicit-TLS port."""
    return aiosmtplib.SMTP(
        hostname=postfix.host,
        port=postfix.smtps_port,
        use_tls=True,
        tls_context=postfix.ssl_context(),
        timeout=5,
    )


def reply(response: aiosmtplib.SMTPResponse) -> tuple[int, str]:
    return response.code, response.message


def wait_for_log(postfix: Postfix, text: str, timeout: float = 5) -> str:
    """Postfix's log once it holds ``text`` (lines arrive through postlogd, a little late)."""
    deadline = time.monotonic() + timeout
    while text not in (log := postfix.log_text()):
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{postfix.log_tail()}"
        time.sleep(0.02)
    return log


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


# --- bearer tokens --------------------------------------------------------------------------


async def test_xoauth2_after_starttls_sends_to_a_colleague_and_a_customer(
    postfix: Postfix, dovecot: Dovecot, issue_token: Callable[[str], str]
) -> None:
    async with submission(postfix) as client:
        assert client.get_transport_info("sslcontext") is not None
        await client.ehlo()
        assert client.server_auth_methods == ["xoauth2", "oauthbearer", "plain", "login"]
        assert reply(await client.auth_xoauth2(ALICE, issue_token(ALICE))) == AUTHENTICATED
        errors, _ = await client.send_message(mail("Printer on fire", to=[BOB, CUSTOMER]))
        assert errors == {}

    for user in (BOB, CUSTOMER):
        [raw] = postfix.wait_for_delivery(user)
        delivered = parsed(raw)
        assert delivered["Subject"] == "Printer on fire"
        assert delivered["Return-Path"] == f"<{ALICE}>"
        assert delivered.get_content().rstrip() == "About Printer on fire."

    # The helper reads what a mail client reads: the same bytes over IMAPS with a password.
    with imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=postfix.ssl_context(), timeout=5
    ) as imap:
        imap.login(CUSTOMER, CUSTOMER_PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("FETCH", "1", "(BODY.PEEK[])")
        assert isinstance(data[0], tuple)
        assert data[0][1] == postfix.messages(CUSTOMER)[0]


async def test_oauthbearer_over_implicit_tls_sends_to_a_customer(
    postfix: Postfix, issue_token: Callable[[str], str]
) -> None:
    async with smtps(postfix) as client:
        await client.ehlo()
        assert "oauthbearer" in client.server_auth_methods
        answer = await client.execute_command(
            b"AUTH", b"OAUTHBEARER", oauthbearer(ALICE, issue_token(ALICE))
        )
        assert reply(answer) == AUTHENTICATED
        message = mail("Invoice 42", to=[CUSTOMER])
        await client.sendmail(ALICE, [CUSTOMER], message.as_bytes())

    [raw] = postfix.wait_for_delivery(CUSTOMER)
    delivered = parsed(raw)
    assert delivered["Message-ID"] == "<Invoice-42@example.test>"
    assert delivered["Delivered-To"] == CUSTOMER  # the only recipient
    assert postfix.queue() == []


@pytest.mark.parametrize("how", ["revoked", "unknown"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_a_dead_token_gets_the_error_challenge_then_535_and_sends_nothing(
    postfix: Postfix,
    dovecot: Dovecot,
    emulator: RunningEmulator,
    issue_token: Callable[[str], str],
    mechanism: str,
    how: str,
) -> None:
    token = issue_token(ALICE)
    if how == "revoked":
        emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    else:
        token = "not-a-token-the-emulator-issued"
    expected = XOAUTH2_ERROR if mechanism == "XOAUTH2" else OAUTHBEARER_ERROR
    # RFC 7628 §3.2.3: the client answers the error with "\x01"; XOAUTH2 clients send "".
    dummy = base64.b64encode(b"\x01") if mechanism == "OAUTHBEARER" else b""

    async with submission(postfix) as client:
        await client.ehlo()
        challenge = await client.execute_command(
            b"AUTH", mechanism.encode(), MECHANISMS[mechanism](ALICE, token)
        )
        assert challenge.code == 334
        assert json.loads(base64.b64decode(challenge.message)) == expected
        assert reply(await client.execute_command(dummy)) == AUTH_FAILED

        # Still not logged in: the recipient is refused, so nothing is queued.
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await client.sendmail(ALICE, [BOB], mail("Sneaky", to=[BOB]).as_bytes())
        [recipient] = refused.value.recipients
        assert (recipient.code, recipient.message) == (
            554,
            f"5.7.1 <{BOB}>: Recipient address rejected: Access denied",
        )

    assert postfix.queue() == []
    assert dovecot.mailbox_status(BOB)["messages"] == 0
    assert postfix.messages(BOB) == []
    log = wait_for_log(postfix, f"SASL {mechanism} authentication failed")
    assert f"sasl_username={ALICE}" in log


async def test_aiosmtplib_reports_a_refused_token_as_an_authentication_error(
    postfix: Postfix,
) -> None:
    async with submission(postfix) as client:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
            await client.auth_xoauth2(ALICE, "not-a-token-the-emulator-issued")
    assert (failed.value.code, failed.value.message) == AUTH_FAILED


async def test_auth_and_mail_wait_for_starttls(
    postfix: Postfix, issue_token: Callable[[str], str]
) -> None:
    token = issue_token(ALICE)
    async with submission(postfix, start_tls=False) as client:
        await client.ehlo()
        assert client.supports_extension("starttls")
        assert not client.supports_extension("auth")  # smtpd_tls_auth_only
        assert reply(await client.execute_command(b"AUTH", b"XOAUTH2", xoauth2(ALICE, token))) == (
            TLS_FIRST
        )
        assert reply(await client.execute_command(b"MAIL", b"FROM:<" + ALICE.encode() + b">")) == (
            TLS_FIRST
        )

        await client.starttls()
        await client.ehlo()
        assert "xoauth2" in client.server_auth_methods
        assert reply(await client.auth_xoauth2(ALICE, token)) == AUTHENTICATED


async def test_auth_follows_dovecot_down_and_back(
    postfix: Postfix, dovecot: Dovecot, issue_token: Callable[[str], str]
) -> None:
    token = issue_token(ALICE)

    async def log_in() -> tuple[int, str]:
        async with submission(postfix) as client:
            await client.ehlo()
            return reply(await client.execute_command(b"AUTH", b"XOAUTH2", xoauth2(ALICE, token)))

    assert await log_in() == AUTHENTICATED
    dovecot.stop()
    # smtpd asks Dovecot for the mechanisms to announce after STARTTLS, and gives up.
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await log_in()
    wait_for_log(postfix, "fatal: no SASL authentication mechanisms")

    dovecot.start()
    # Every session gets a fresh smtpd process, so none holds a connection from before.
    for _ in range(3):
        assert await log_in() == AUTHENTICATED


# --- delivery -------------------------------------------------------------------------------


async def test_unknown_mailboxes_bounce_and_other_domains_are_refused(
    postfix: Postfix, issue_token: Callable[[str], str]
) -> None:
    nobody, outside = "nobody@example.net", "someone@elsewhere.example"
    async with submission(postfix) as client:
        await client.auth_xoauth2(ALICE, issue_token(ALICE))
        errors, _ = await client.sendmail(
            ALICE, [nobody, outside], mail("Hello?", to=[nobody, outside]).as_bytes()
        )

    # Only the test domains are delivered: anything else is refused at RCPT.
    assert errors[outside].code == 550
    assert "the test Postfix delivers only to example.test, example.net" in errors[outside].message
    # Dovecot refuses a user it doesn't know over LMTP, and the sender gets the bounce.
    [bounce] = postfix.wait_for_delivery(ALICE)
    assert parsed(bounce)["Subject"] == "Undelivered Mail Returned to Sender"
    assert f"<{nobody}>: host 127.0.0.1[127.0.0.1] said: 550 5.1.1" in bounce.decode()
    postfix.wait_for_empty_queue()


async def test_mail_waits_in_the_queue_while_dovecot_is_down(
    postfix: Postfix, dovecot: Dovecot, issue_token: Callable[[str], str]
) -> None:
    async with submission(postfix) as client:
        await client.auth_xoauth2(ALICE, issue_token(ALICE))
        dovecot.stop()
        await client.send_message(mail("While Dovecot sleeps", to=[BOB]))

    deadline = time.monotonic() + 5
    while not (queue := postfix.queue()) or "delay_reason" not in queue[0]["recipients"][0]:
        assert time.monotonic() < deadline, f"not deferred: {queue}"
        time.sleep(0.05)
    assert "Connection refused" in queue[0]["recipients"][0]["delay_reason"]

    dovecot.start()
    postfix.flush()
    [raw] = postfix.wait_for_delivery(BOB)
    assert parsed(raw)["Subject"] == "While Dovecot sleeps"
    postfix.wait_for_empty_queue()


# --- lifecycle ------------------------------------------------------------------------------


async def test_stop_refuses_connections_and_start_serves_again_on_the_same_ports(
    postfix: Postfix, issue_token: Callable[[str], str]
) -> None:
    ports = postfix.ports
    postfix.stop()

    assert not postfix.running and postfix.pid is None
    for port in ports.listening():
        with pytest.raises(aiosmtplib.SMTPConnectError):
            await aiosmtplib.SMTP(hostname=postfix.host, port=port, timeout=2).connect()

    postfix.start()

    assert postfix.ports == ports and postfix.running
    async with smtps(postfix) as client:
        assert reply(await client.auth_xoauth2(ALICE, issue_token(ALICE))) == AUTHENTICATED
        await client.send_message(mail("After the restart", to=[BOB]))
    [raw] = postfix.wait_for_delivery(BOB)
    assert parsed(raw)["Subject"] == "After the restart"


def test_a_bad_setting_fails_the_start_with_postfixs_own_words(postfix: Postfix) -> None:
    broken = Postfix(postfix.dovecot, settings={"inet_protocols": "ipv9"})
    try:
        with pytest.raises(PostfixStartError, match='unknown inet_protocols value "ipv9"'):
            broken.start()
        assert not broken.running
    finally:
        broken.close()
