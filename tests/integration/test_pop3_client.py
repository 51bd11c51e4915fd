"""The asyncio POP3 client against the real Dovecot."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import access_token_for

from mailgate.mail.connection import LINE_LIMIT
from mailgate.mail.errors import TokenRefused
from mailgate.mail.pop3 import AuthenticationFailed, Pop3Client
from mailgate.mail.sasl import OAUTHBEARER, XOAUTH2

ALICE = "alice@example.test"


def message(subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail.set_content(f"body of {subject}\n.a line that starts with a dot\n")
    return bytes(mail)


def token_for(emulator: RunningEmulator, account: str = ALICE) -> str:
    return access_token_for(emulator, account, scope="POP.AccessAsUser.All")


@pytest.mark.parametrize(("security", "mechanism"), [("ssl", OAUTHBEARER), ("starttls", XOAUTH2)])
async def test_retrieve_and_delete_take_effect_at_quit(
    dovecot: Dovecot, emulator: RunningEmulator, security: str, mechanism: str
) -> None:
    for subject in ("one", "two"):
        dovecot.deliver(ALICE, message(subject))
    port = dovecot.pop3s_port if security == "ssl" else dovecot.pop3_port
    async with Pop3Client.connect(
        "127.0.0.1", port, security=security, tls=dovecot.ssl_context()
    ) as pop:
        assert {OAUTHBEARER, XOAUTH2} <= pop.sasl_mechanisms
        assert (await pop.authenticate(mechanism, ALICE, token_for(emulator))).startswith("+OK")
        count, size = await pop.stat()
        sizes = await pop.sizes()
        assert count == 2 and sum(sizes.values()) == size
        uidls = await pop.uidl()
        assert sorted(uidls) == sorted(sizes) == [1, 2] and len(set(uidls.values())) == 2
        first = await pop.retrieve(1, limit=10_000)
        assert first is not None and b"\r\n.a line that starts with a dot\r\n" in first
        assert await pop.retrieve(2, limit=10) is None  # over the limit: not kept
        await pop.dele(1)
        await pop.quit()
    assert dovecot.mailbox_status(ALICE)["messages"] == 1


async def test_a_line_longer_than_any_read_bound_is_retrieved_whole(
    dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    long_line = b"x" * (2 * LINE_LIMIT + 10)
    dovecot.deliver(
        ALICE, b"From: customer@example.net\r\nSubject: long\r\n\r\n" + long_line + b"\r\n"
    )
    async with Pop3Client.connect(
        "127.0.0.1", dovecot.pop3s_port, security="ssl", tls=dovecot.ssl_context()
    ) as pop:
        await pop.authenticate(XOAUTH2, ALICE, token_for(emulator))
        raw = await pop.retrieve(1, limit=4 * LINE_LIMIT)
        assert raw is not None and long_line in raw
        assert (await pop.stat())[0] == 1  # the connection reads on as before


async def test_refused_token_carries_the_servers_challenge(
    dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    token = token_for(emulator, account="bob@example.test")
    async with Pop3Client.connect(
        "127.0.0.1", dovecot.pop3s_port, security="ssl", tls=dovecot.ssl_context()
    ) as pop:
        with pytest.raises(AuthenticationFailed) as refused:
            await pop.authenticate(OAUTHBEARER, ALICE, token)
    assert refused.value.reply.startswith("-ERR")
    assert refused.value.challenge is not None and refused.value.challenge.status
    assert isinstance(refused.value, TokenRefused)  # a fresh token may cure it: refresh once


async def test_password_refusal_is_no_token_refusal(dovecot: Dovecot) -> None:
    async with Pop3Client.connect(
        "127.0.0.1", dovecot.pop3s_port, security="ssl", tls=dovecot.ssl_context()
    ) as pop:
        with pytest.raises(AuthenticationFailed) as refused:
            await pop.login(ALICE, "not-it")
        assert not isinstance(refused.value, TokenRefused)
        assert (await pop.login(ALICE, "alice-password")).startswith("+OK")
