"""Microsoft ends IMAP sessions with `* BYE Session invalidated - AccessTokenExpired` when the
token the session began with expires. Dovecot never says that, so a small scripted server on
loopback plays Exchange Online's part here; the token comes from the emulator."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential

from mailgate.backoff import Backoff
from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.runtime.imap_mailbox import load, run_mailbox
from mailgate.tracker.service import add_project

pytestmark = pytest.mark.stores("sqlite", "postgresql")

ALICE = "alice@contoso.example"


@pytest.fixture(autouse=True)
async def help_project(ctx: Context) -> None:
    """The project the mailboxes here feed (a mailbox's project must exist)."""
    await add_project(ctx, "HELP", "Help desk")


class ExchangeLikeServer:
    """Greets, authenticates XOAUTH2, SELECTs, and on the first IDLE ends the session the way
    Exchange Online does when the access token expires."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ExchangeLikeServer:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caps = "IMAP4rev1 AUTH=XOAUTH2 IDLE"
        writer.write(f"* OK [CAPABILITY {caps}] ready\r\n".encode())
        try:
            while line := (await reader.readline()).decode():
                tag, _, command = line.strip().partition(" ")
                verb = command.split(" ")[0].upper()
                if verb == "CAPABILITY":
                    writer.write(f"* CAPABILITY {caps}\r\n{tag} OK done\r\n".encode())
                elif verb == "AUTHENTICATE":
                    writer.write(b"+ \r\n")
                    answer = base64.b64decode((await reader.readline()).strip()).decode()
                    self.tokens.append(answer.split("auth=Bearer ")[1].split("\x01")[0])
                    writer.write(f"{tag} OK AUTHENTICATE completed.\r\n".encode())
                elif verb == "SELECT":
                    writer.write(
                        f"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n"
                        f"{tag} OK [READ-WRITE] SELECT completed.\r\n".encode()
                    )
                elif verb == "UID":
                    writer.write(f"* SEARCH\r\n{tag} OK SEARCH completed.\r\n".encode())
                elif verb == "IDLE":
                    writer.write(b"+ IDLE accepted, awaiting DONE command.\r\n")
                    await writer.drain()
                    if len(self.tokens) == 1:
                        writer.write(b"* BYE Session invalidated - AccessTokenExpired\r\n")
                        await writer.drain()
                        writer.close()
                        return
                    await reader.readline()  # DONE
                    writer.write(f"{tag} OK IDLE completed.\r\n".encode())
                elif verb == "LOGOUT":
                    writer.write(f"* BYE bye\r\n{tag} OK LOGOUT completed.\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass


@pytest.fixture
async def exchange() -> AsyncIterator[ExchangeLikeServer]:
    async with ExchangeLikeServer() as server:
        yield server


async def test_access_token_expired_bye_refreshes_and_reconnects_at_once(
    ctx: Context, emulator: RunningEmulator, exchange: ExchangeLikeServer
) -> None:
    setup = await microsoft_credential(ctx, emulator, account=ALICE)
    await add_mailbox(
        ctx,
        "m365",
        MailboxOptions(
            protocol="imap",
            host="127.0.0.1",
            port=exchange.port,
            security="none",
            username=ALICE,
            credential_id=setup.credential.id,
            project="HELP",
        ),
    )
    ctx.sleep = asyncio.sleep
    stop = asyncio.Event()
    # A reconnect that waited for the backoff would take at least an hour here.
    loop = asyncio.create_task(
        run_mailbox(ctx, "m365", stop, idle_renew=30, backoff=Backoff(base=3600, cap=3600))
    )
    try:
        for _ in range(200):
            if len(exchange.tokens) >= 2 and (await load(ctx, "m365")).status == "idle":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert len(exchange.tokens) == 2
    assert exchange.tokens[0] == setup.grant.access_token
    assert exchange.tokens[1] != exchange.tokens[0]  # refreshed before reconnecting
    assert emulator.state.count_requests(endpoint="token", grant_type="refresh_token") == 1
