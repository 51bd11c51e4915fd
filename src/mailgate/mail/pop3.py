"""A small asyncio POP3 client (RFC 1939): what a mailbox loop and `mailbox test` need.

Connect (implicit TLS or STLS, RFC 2595 §4; `mail/connection.py`), CAPA (RFC 2449), AUTH with
XOAUTH2 / OAUTHBEARER (RFC 5034, answering the server's error challenge, RFC 7628 §3.2.3) or
USER/PASS, STAT, UIDL, LIST, RETR, DELE and QUIT. Every read and write has a timeout; a message's
line may be of any length, the message as a whole is bounded by the caller's limit.

A refusal is a `Pop3Error` carrying the extended response code (RFC 2449 §8, RFC 3206) when the
server gave one: "-ERR [SYS/TEMP] …" is the server's trouble (try later), "-ERR [AUTH] …" the
credentials'.
"""

from __future__ import annotations

from contextlib import suppress

from mailgate.mail import sasl
from mailgate.mail.connection import Connection, ConnectionLost, MailClient
from mailgate.mail.errors import MailError, TokenRefused, response_code

# RFC 5034 §4: an AUTH command line with its initial response must fit in 255 octets; when it
# would not, the response goes after the server's empty challenge instead.
_COMMAND_LIMIT = 255


def unstuff(line: bytes) -> bytes:
    """A line of a multi-line response without its byte-stuffing (RFC 1939 §3)."""
    return line[1:] if line.startswith(b"..") else line


class Pop3Error(MailError):
    """The server answered -ERR (or not like a POP3 server). `reply` is its line, as sent;
    `code` its extended response code, if any; whether it means "try later" is `temporary`
    (`mail/errors.py`)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply
        self.code = response_code(reply)


class AuthenticationFailed(Pop3Error):
    """The server refused the login (-ERR to AUTH or to USER/PASS)."""

    def __init__(self, reply: str, challenge: sasl.ErrorChallenge | None = None) -> None:
        super().__init__(reply)
        self.challenge = challenge


class Pop3TokenRefused(AuthenticationFailed, TokenRefused):
    """The server refused the access token, not saying to try later: a fresh token may cure it."""


class Pop3Client(MailClient):
    """One POP3 connection: `Pop3Client.connect(...)` as an async context manager, or its steps
    one at a time (`MailClient`)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        # CAPA: tag → arguments, e.g. "SASL" → ["XOAUTH2", "OAUTHBEARER"]
        self.capabilities: dict[str, list[str]] = {}

    # -- connecting ------------------------------------------------------------------------------

    async def read_greeting(self) -> None:
        greeting = await self._line()
        if not greeting.startswith("+OK"):
            raise ConnectionLost(f"unexpected greeting: {greeting[:200]}")
        self.greeting = greeting

    STARTTLS = "STLS"

    async def offers_starttls(self) -> bool:
        if not self.capabilities:
            await self.refresh_capabilities()
        return "STLS" in self.capabilities

    def forget_capabilities(self) -> None:
        self.capabilities = {}

    async def refresh_capabilities(self) -> None:
        """CAPA; a server without it (a plain RFC 1939 one) offers nothing more."""
        try:
            lines = await self._multiline("CAPA")
        except Pop3Error:
            lines = []
        self.capabilities = {}
        for line in lines:
            tag, *arguments = line.decode("utf-8", "replace").split()
            self.capabilities[tag.upper()] = arguments

    @property
    def sasl_mechanisms(self) -> set[str]:
        return {m.upper() for m in self.capabilities.get("SASL", [])}

    # -- reading and writing ---------------------------------------------------------------------

    async def _line(self) -> str:
        line = await self.connection.readline(b"\n")
        return line.rstrip(b"\r\n").decode("utf-8", "replace")

    async def _reply(self) -> str:
        """The server's reply: "+OK …" or a SASL challenge "+ …"; `Pop3Error` on anything else."""
        reply = await self._line()
        if not reply.startswith("+"):
            raise Pop3Error(reply)
        return reply

    async def command(self, line: str) -> str:
        """Send one command; the reply line."""
        await self.connection.send(line.encode() + b"\r\n")
        return await self._reply()

    async def _multiline(self, line: str) -> list[bytes]:
        """A command whose +OK is followed by lines up to "." (bounded, each), unstuffed."""
        await self.command(line)
        lines: list[bytes] = []
        while (received := await self.connection.readline(b"\n")).rstrip(b"\r\n") != b".":
            lines.append(unstuff(received.rstrip(b"\r\n")))
        return lines

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self, mechanism: str, user: str, token: str) -> str:
        initial = sasl.b64(sasl.initial_response(mechanism, user, token, self.host, self.port))
        challenge: sasl.ErrorChallenge | None = None
        try:
            if len(f"AUTH {mechanism} {initial}\r\n") <= _COMMAND_LIMIT:
                reply = await self.command(f"AUTH {mechanism} {initial}")
            else:
                await self.command(f"AUTH {mechanism}")  # the empty challenge "+ "
                reply = await self.command(initial)
            if reply.startswith("+OK"):
                return reply
            # The error challenge: answer it, then the server sends the final -ERR.
            challenge = sasl.parse_error_challenge(reply[1:].strip())
            reply = await self.command(sasl.b64(sasl.error_reply(mechanism)))
        except Pop3Error as refused:
            reply = refused.reply
        # (A reply to the answer to an error challenge is a refusal, whatever it says.)
        if AuthenticationFailed(reply).temporary:
            raise AuthenticationFailed(reply, challenge)
        raise Pop3TokenRefused(reply, challenge)

    async def login(self, user: str, password: str) -> str:
        """USER and PASS (RFC 1939 §7). RFC 1939 says nothing of a character set: a username or
        password that is not ASCII is sent as its UTF-8 bytes, as it is (what Dovecot and most
        servers compare); one holding CR, LF or NUL would end the command early, so it is
        refused before anything is sent."""
        for what, value in (("username", user), ("password", password)):
            if any(character in value for character in "\r\n\0"):
                raise AuthenticationFailed(
                    f"the {what} holds a line break or a NUL character, which POP3 USER/PASS "
                    f"cannot send: give the {what} without it"
                )
        try:
            await self.command(f"USER {user}")
            return await self.command(f"PASS {password}")
        except Pop3Error as refused:
            raise AuthenticationFailed(refused.reply) from None

    # -- the mailbox -------------------------------------------------------------------------------

    async def stat(self) -> tuple[int, int]:
        """The number of messages and their size in bytes."""
        reply = await self.command("STAT")
        count, size = reply.split()[1:3]
        return int(count), int(size)

    async def uidl(self) -> dict[int, str]:
        """Each message's number → its unique id (RFC 1939 §7)."""
        listing: dict[int, str] = {}
        for line in await self._multiline("UIDL"):
            number, _, uidl = line.decode("ascii", "replace").partition(" ")
            listing[int(number)] = uidl.strip()
        return listing

    async def sizes(self) -> dict[int, int]:
        """Each message's number → its size in bytes, as the server lists it (LIST)."""
        listing: dict[int, int] = {}
        for line in await self._multiline("LIST"):
            number, _, size = line.decode("ascii", "replace").partition(" ")
            listing[int(number)] = int(size.split()[0])
        return listing

    async def retrieve(self, number: int, limit: int) -> bytes | None:
        """Message `number` (RETR), or None when it is longer than `limit` bytes.

        A line may be of any length: RFC 5322 §2.1.1's 998 is a rule that senders and servers
        break, and one such message would otherwise fail every poll, and the mail after it would
        never be taken. The message as a whole is held up to `limit` bytes; the rest of a longer
        one is read away, so the next command is understood."""
        await self.command(f"RETR {number}")
        parts: list[bytes] = []
        held = 0
        line_start = True
        while True:
            piece = await self.connection.read_piece()  # a long line comes in pieces
            if line_start:
                if piece in (b".\r\n", b".\n"):  # RFC 1939 §3: the end of a multi-line response
                    break
                piece = unstuff(piece)
            line_start = piece.endswith(b"\n")
            held += len(piece)
            if held <= limit:
                parts.append(piece)
        return b"".join(parts) if held <= limit else None

    async def dele(self, number: int) -> None:
        """Mark message `number` deleted; the server deletes it at QUIT (RFC 1939 §6)."""
        await self.command(f"DELE {number}")

    async def quit(self) -> None:
        """QUIT: the deletions take effect (RFC 1939 §6)."""
        await self.command("QUIT")

    async def logout(self) -> None:
        with suppress(ConnectionLost, Pop3Error):
            await self.quit()
