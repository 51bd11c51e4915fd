"""The asyncio IMAP client against the real Dovecot."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import access_token_for

from mailgate.mail.connection import ConnectionLost
from mailgate.mail.errors import TokenRefused
from mailgate.mail.imap import AuthenticationFailed, ImapClient
from mailgate.mail.sasl import OAUTHBEARER, XOAUTH2

ALICE = "alice@example.test"


def message(subject: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "customer@example.net"
    mail["To"] = ALICE
    mail["Subject"] = subject
    mail.set_content("body of " + subject)
    return bytes(mail)


def token_for(emulator: RunningEmulator, account: str = ALICE) -> str:
    return access_token_for(emulator, account)


@pytest.mark.parametrize(("security", "mechanism"), [("ssl", XOAUTH2), ("starttls", OAUTHBEARER)])
async def test_fetch_does_not_set_seen_and_post_actions_work(
    dovecot: Dovecot, emulator: RunningEmulator, security: str, mechanism: str
) -> None:
    for subject in ("one", "two", "three"):
        dovecot.deliver(ALICE, message(subject))
    dovecot.create_folder(ALICE, "Done")
    port = dovecot.imaps_port if security == "ssl" else dovecot.imap_port
    async with ImapClient.connect(
        "127.0.0.1", port, security=security, tls=dovecot.ssl_context()
    ) as imap:
        assert "IDLE" in imap.capabilities
        await imap.authenticate(mechanism, ALICE, token_for(emulator))
        selected = await imap.select("INBOX")
        assert selected.exists == 3 and selected.uidvalidity
        uids = await imap.uid_search("ALL")
        assert len(uids) == 3
        assert b"body of one" in (await imap.fetch(uids[0]) or b"")
        assert await imap.uid_search("UNSEEN") == uids  # BODY.PEEK left them unread
        sizes = await imap.sizes(uids)
        assert all(size > 100 for size in sizes.values())
        await imap.mark_seen(uids[0])
        await imap.move(uids[1], "Done")
        await imap.delete(uids[2])
        assert await imap.uid_search("ALL") == [uids[0]]
        assert await imap.uid_search("UNSEEN") == []
        done = await imap.select("Done")
        assert done.exists == 1


async def test_refused_token_carries_the_servers_challenge(
    dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    token = token_for(emulator, account="bob@example.test")
    async with ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    ) as imap:
        with pytest.raises(AuthenticationFailed) as refused:
            await imap.authenticate(XOAUTH2, ALICE, token)
    assert refused.value.status == "NO" and "AUTHENTICATIONFAILED" in refused.value.text
    assert refused.value.challenge is not None and refused.value.challenge.status == "401"
    assert isinstance(refused.value, TokenRefused)  # a fresh token may cure it: refresh once


async def test_idle_reports_new_mail_and_times_out_quietly(
    dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    async with ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    ) as imap:
        await imap.authenticate(XOAUTH2, ALICE, token_for(emulator))
        await imap.select("INBOX")
        assert await imap.idle(0.3) is False
        waiting = asyncio.create_task(imap.idle(10))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(dovecot.deliver, ALICE, message("pushed"))
        assert await asyncio.wait_for(waiting, 10) is True
        assert len(await imap.uid_search("ALL")) == 1


async def test_server_going_away_is_connection_lost(
    dovecot: Dovecot, emulator: RunningEmulator
) -> None:
    async with ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    ) as imap:
        await imap.authenticate(XOAUTH2, ALICE, token_for(emulator))
        await imap.select("INBOX")
        waiting = asyncio.create_task(imap.idle(30))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(dovecot.kick, ALICE)
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(waiting, 10)
