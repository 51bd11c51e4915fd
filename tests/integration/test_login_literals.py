"""Passwords that are not ASCII, against the real Dovecot: IMAP LOGIN sends them as literals
(RFC 3501 §4.3), non-synchronizing when the server offers LITERAL+ (Dovecot does), else waiting
for the server's "+"; POP3 PASS sends their UTF-8 bytes as they are. A small scripted server
plays a server that refuses the literal."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from tests.support.dovecot import Dovecot

from mailgate.context import Context
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.mail.connection import Connection
from mailgate.mail.imap import AuthenticationFailed, ImapClient, LoginNotSendable
from mailgate.mail.pop3 import AuthenticationFailed as Pop3AuthenticationFailed
from mailgate.mail.pop3 import Pop3Client
from mailgate.runtime.probe import probe
from mailgate.tracker.service import add_project

USER = "jurgen@example.test"  # Dovecot's auth_username_chars keeps usernames ASCII
PASSWORD = 'pässwörd€"\\'
SIZE = len(PASSWORD.encode())  # 16 bytes: ä ö and € are 2, 2 and 3


class RecordingImap(ImapClient):
    """The client as it is, with what it sends kept."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.sent: list[bytes] = []

    async def _send(self, data: bytes) -> None:
        self.sent.append(data)
        await super()._send(data)


@pytest.fixture
def dovecot_user(dovecot: Dovecot) -> Dovecot:
    dovecot.add_users({USER: PASSWORD})
    return dovecot


@pytest.mark.parametrize("literal_plus", [True, False], ids=["LITERAL+", "synchronizing"])
async def test_imap_login_with_a_password_that_is_not_ascii(
    dovecot_user: Dovecot, literal_plus: bool
) -> None:
    async with RecordingImap.connect(
        "127.0.0.1", dovecot_user.imaps_port, security="ssl", tls=dovecot_user.ssl_context()
    ) as imap:
        assert "LITERAL+" in imap.capabilities
        if not literal_plus:
            imap.capabilities.discard("LITERAL+")  # as a server without RFC 7888
        assert await imap.login(USER, PASSWORD) == "Logged in"
        assert (await imap.select("INBOX")).uidvalidity
        marker = f"{{{SIZE}+}}" if literal_plus else f"{{{SIZE}}}"
        assert f'LOGIN "{USER}" {marker}\r\n'.encode() in b"".join(imap.sent)
        assert PASSWORD.encode() in imap.sent  # the literal: its bytes alone, as they are


async def test_a_password_that_differs_by_one_character_is_refused(dovecot_user: Dovecot) -> None:
    async with ImapClient.connect(
        "127.0.0.1", dovecot_user.imaps_port, security="ssl", tls=dovecot_user.ssl_context()
    ) as imap:
        with pytest.raises(AuthenticationFailed, match="AUTHENTICATIONFAILED"):
            await imap.login(USER, PASSWORD.replace("€", "e"))


async def test_mailbox_test_signs_in_with_it(ctx: Context, dovecot_user: Dovecot) -> None:
    await add_project(ctx, "HELP", "Help desk")
    options = MailboxOptions(
        protocol="imap",
        host="127.0.0.1",
        port=dovecot_user.imaps_port,
        username=USER,
        password=PASSWORD,
        ca_file=str(dovecot_user.ca_file),
        project="HELP",
    )
    await add_mailbox(ctx, "support", options)
    result = await probe(ctx, "support")
    assert result.ok, result.as_json()
    authenticate = next(s for s in result.steps if s.step == "authenticate")
    assert authenticate.detail == f"password login as {USER}: Logged in"


async def test_pop3_sends_the_password_as_utf8(dovecot_user: Dovecot) -> None:
    async with Pop3Client.connect(
        "127.0.0.1", dovecot_user.pop3s_port, security="ssl", tls=dovecot_user.ssl_context()
    ) as pop3:
        assert (await pop3.login(USER, PASSWORD)).startswith("+OK")
        assert await pop3.stat() == (0, 0)
    async with Pop3Client.connect(
        "127.0.0.1", dovecot_user.pop3s_port, security="ssl", tls=dovecot_user.ssl_context()
    ) as pop3:
        with pytest.raises(Pop3AuthenticationFailed):
            await pop3.login(USER, PASSWORD.replace("€", "e"))


async def test_a_line_break_is_refused_before_anything_is_sent(dovecot_user: Dovecot) -> None:
    async with RecordingImap.connect(
        "127.0.0.1", dovecot_user.imaps_port, security="ssl", tls=dovecot_user.ssl_context()
    ) as imap:
        imap.sent.clear()  # what connecting sent
        with pytest.raises(LoginNotSendable, match="the password holds a line break"):
            await imap.login(USER, "pässwörd\r\nA2 LOGOUT")
        assert imap.sent == []
    async with Pop3Client.connect(
        "127.0.0.1", dovecot_user.pop3s_port, security="ssl", tls=dovecot_user.ssl_context()
    ) as pop3:
        with pytest.raises(Pop3AuthenticationFailed, match="the password holds a line break"):
            await pop3.login(USER, "secret\r\nDELE 1")


class NoLiteralsServer:
    """Greets without LITERAL+ and answers a LOGIN with a literal by a tagged NO instead of the
    go-ahead, as a server may (RFC 3501 §7.5); keeps what it received."""

    def __init__(self) -> None:
        self.received = b""
        self.port = 0

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        while line := await reader.readline():
            self.received += line
            tag = line.split(b" ")[0]
            if re.search(rb"\{\d+\}\r\n$", line):
                writer.write(tag + b" NO [CANNOT] No literals here\r\n")
            elif b" CAPABILITY" in line:
                writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
            elif b" LOGOUT" in line:
                writer.write(b"* BYE bye\r\n" + tag + b" OK LOGOUT completed\r\n")
            else:
                writer.write(tag + b" BAD unknown command\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def no_literals() -> AsyncIterator[NoLiteralsServer]:
    server = NoLiteralsServer()
    listening = await asyncio.start_server(server.session, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield server


async def test_a_server_that_refuses_the_literal_never_gets_the_password(
    no_literals: NoLiteralsServer,
) -> None:
    imap = await ImapClient.open("127.0.0.1", no_literals.port)
    try:
        await imap.greet()
        with pytest.raises(AuthenticationFailed, match=r"NO \[CANNOT\] No literals here"):
            await imap.login(USER, PASSWORD)
        await imap.logout()
    finally:
        await imap.close()
    assert f'LOGIN "{USER}" {{{SIZE}}}\r\n'.encode() in no_literals.received
    assert "pässwörd".encode() not in no_literals.received
