"""A small asyncio IMAP4rev1 client: what a mailbox loop needs, and no more.

Connect (implicit TLS or STARTTLS), CAPABILITY, AUTHENTICATE with XOAUTH2/OAUTHBEARER (answering
the server's error challenge, RFC 7628 §3.2.3) or LOGIN, SELECT, UID SEARCH, UID FETCH
BODY.PEEK[] (never sets \\Seen), UID STORE, UID MOVE (or COPY + \\Deleted + UID EXPUNGE), IDLE
(RFC 2177) and LOGOUT. Every read and write has a timeout; a BYE, EOF or timeout closes the
connection and raises `ConnectionLost` — the caller reconnects.

The parsing of server lines is pure (`parse_*` functions) and tested without a server.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from mailgate.mail import sasl

DEFAULT_TIMEOUT = 30.0
# RFC 2177: servers may log out clients idle for 30 minutes; re-issue IDLE before that.
IDLE_RENEW_SECONDS = 28 * 60


class ImapError(Exception):
    """The server answered NO or BAD."""

    def __init__(
        self, status: str, text: str, challenge: sasl.ErrorChallenge | None = None
    ) -> None:
        super().__init__(f"{status} {text}".strip())
        self.status = status
        self.text = text
        self.challenge = challenge


class AuthenticationFailed(ImapError):
    """The server refused the login (NO to AUTHENTICATE / LOGIN)."""


class ConnectionLost(Exception):
    """BYE, EOF or a timeout: the connection is gone; reconnect."""


@dataclass
class Response:
    """One server response line with its literals, e.g. `* 3 FETCH (UID 7 BODY[] {n}` + data."""

    tag: str  # "*", "+", or the command tag
    text: str  # the line, literals replaced by their placeholders
    literals: list[bytes] = field(default_factory=list)


@dataclass
class Selected:
    exists: int
    uidvalidity: int | None
    uidnext: int | None


_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


def parse_capabilities(text: str) -> set[str]:
    """`CAPABILITY IMAP4rev1 AUTH=XOAUTH2 IDLE` (or a `[CAPABILITY …]` code) → names."""
    match = re.search(r"CAPABILITY ([^\]]*)", text, re.IGNORECASE)
    return {c.upper() for c in match.group(1).split()} if match else set()


def parse_search(responses: list[Response]) -> list[int]:
    uids: list[int] = []
    for response in responses:
        match = re.match(r"SEARCH\b(.*)", response.text, re.IGNORECASE)
        if response.tag == "*" and match:
            uids += [int(n) for n in match.group(1).split() if n.isdigit()]
    return sorted(set(uids))


def parse_selected(responses: list[Response]) -> Selected:
    exists, uidvalidity, uidnext = 0, None, None
    for response in responses:
        if match := re.match(r"(\d+) EXISTS", response.text, re.IGNORECASE):
            exists = int(match.group(1))
        if match := re.search(r"\[UIDVALIDITY (\d+)\]", response.text, re.IGNORECASE):
            uidvalidity = int(match.group(1))
        if match := re.search(r"\[UIDNEXT (\d+)\]", response.text, re.IGNORECASE):
            uidnext = int(match.group(1))
    return Selected(exists, uidvalidity, uidnext)


def parse_fetch(responses: list[Response]) -> dict[int, dict[str, object]]:
    """UID → {"size": int, "body": bytes, "flags": str} from FETCH responses."""
    found: dict[int, dict[str, object]] = {}
    for response in responses:
        if response.tag != "*" or not re.match(r"\d+ FETCH", response.text, re.IGNORECASE):
            continue
        uid = re.search(r"UID (\d+)", response.text, re.IGNORECASE)
        if not uid:
            continue
        item: dict[str, object] = found.setdefault(int(uid.group(1)), {})
        if size := re.search(r"RFC822\.SIZE (\d+)", response.text, re.IGNORECASE):
            item["size"] = int(size.group(1))
        if flags := re.search(r"FLAGS \(([^)]*)\)", response.text, re.IGNORECASE):
            item["flags"] = flags.group(1)
        if response.literals and re.search(r"BODY\[\]", response.text, re.IGNORECASE):
            item["body"] = response.literals[0]
    return found


def quote(value: str) -> str:
    """An IMAP quoted string (folder names with spaces, brackets, quotes)."""
    if re.fullmatch(r"[A-Za-z0-9_.\-/]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapClient:
    """One IMAP connection. Use `connect()` as an async context manager."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        host: str,
        port: int,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.port = port
        self.timeout = timeout
        self.capabilities: set[str] = set()
        self.greeting = ""
        self.news = False  # the server announced new mail (EXISTS) outside IDLE
        self._tag = 0

    # -- connecting ------------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        security: str,
        tls: ssl.SSLContext,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> AsyncIterator[ImapClient]:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=tls if security == "ssl" else None,
                    server_hostname=host.strip("[]") if security == "ssl" else None,
                    limit=2**20,
                )
        except TimeoutError:
            raise ConnectionLost(f"no answer from {host}:{port} within {timeout:.0f} s") from None
        except OSError as exc:
            raise ConnectionLost(f"{host}:{port}: {exc.strerror or exc}") from None
        client = cls(reader, writer, host=host, port=port, timeout=timeout)
        try:
            await client._read_greeting()
            if security == "starttls":
                await client._starttls(tls)
            await client.refresh_capabilities()
            yield client
        finally:
            await client.close()

    async def _read_greeting(self) -> None:
        greeting = await self._read_response()
        if greeting.tag != "*" or not re.match(r"(OK|PREAUTH)\b", greeting.text, re.IGNORECASE):
            raise ConnectionLost(f"unexpected greeting: {greeting.text[:200]}")
        self.greeting = greeting.text
        self.capabilities = parse_capabilities(greeting.text)

    async def _starttls(self, tls: ssl.SSLContext) -> None:
        if not self.capabilities:
            await self.refresh_capabilities()
        if "STARTTLS" not in self.capabilities:
            raise ImapError("NO", "the server does not offer STARTTLS")
        await self.command("STARTTLS")
        if getattr(self.reader, "_buffer", b""):  # the stream has no public way to ask
            # Plaintext after STARTTLS's OK would be read as if it came over TLS (an injection).
            raise ConnectionLost(f"{self.host} sent data right after STARTTLS: refusing it")
        async with asyncio.timeout(self.timeout):
            await self.writer.start_tls(tls, server_hostname=self.host.strip("[]"))
        self.capabilities = set()  # RFC 3501 §6.2.1: forget what was said before TLS

    async def refresh_capabilities(self) -> set[str]:
        responses = await self.command("CAPABILITY")
        for response in responses:
            if response.tag == "*" and response.text.upper().startswith("CAPABILITY"):
                self.capabilities = parse_capabilities(response.text)
        return self.capabilities

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            pass

    # -- reading and writing ---------------------------------------------------------------------

    async def _readline(self) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                line = await self.reader.readuntil(b"\r\n")
        except TimeoutError:
            raise ConnectionLost(
                f"no answer from {self.host} within {self.timeout:.0f} s"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLost(
                f"{self.host} closed the connection ({type(exc).__name__})"
            ) from None
        return line

    async def _read_response(self) -> Response:
        line = await self._readline()
        parts: list[bytes] = []
        literals: list[bytes] = []
        while match := _LITERAL.search(line):
            size = int(match.group(1))
            parts.append(line[: match.start()] + b"{" + str(size).encode() + b"}")
            try:
                async with asyncio.timeout(self.timeout + size / 100_000):
                    literals.append(await self.reader.readexactly(size))
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                raise ConnectionLost(
                    f"{self.host} stopped in the middle of a message ({type(exc).__name__})"
                ) from None
            line = await self._readline()
        parts.append(line.rstrip(b"\r\n"))
        text = b"".join(parts).decode("utf-8", "replace")
        tag, _, rest = text.partition(" ")
        response = Response(tag=tag, text=rest, literals=literals)
        if tag == "*" and rest.upper().startswith("BYE"):
            raise ConnectionLost(f"the server said {rest}")
        return response

    async def _send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLost(f"cannot write to {self.host} ({type(exc).__name__})") from None

    def _next_tag(self) -> str:
        self._tag += 1
        return f"M{self._tag:04d}"

    async def command(self, line: str) -> list[Response]:
        """Send one command; the untagged responses, or ImapError on NO/BAD."""
        tag = self._next_tag()
        await self._send(f"{tag} {line}\r\n".encode())
        untagged: list[Response] = []
        while True:
            response = await self._read_response()
            if response.tag == tag:
                status, _, text = response.text.partition(" ")
                if status.upper() != "OK":
                    raise ImapError(status.upper(), text)
                untagged.append(response)  # the completion may carry response codes
                return untagged
            if response.tag == "*" and re.match(r"\d+ EXISTS", response.text, re.I):
                # New mail told in passing (RFC 3501 §7.3.1): the server won't repeat it in IDLE.
                self.news = True
            untagged.append(response)

    # -- authentication --------------------------------------------------------------------------

    async def authenticate(self, mechanism: str, user: str, token: str) -> str:
        initial = sasl.b64(sasl.initial_response(mechanism, user, token, self.host, self.port))
        tag = self._next_tag()
        if "SASL-IR" in self.capabilities:
            await self._send(f"{tag} AUTHENTICATE {mechanism} {initial}\r\n".encode())
        else:
            await self._send(f"{tag} AUTHENTICATE {mechanism}\r\n".encode())
            first = await self._read_response()
            if first.tag != "+":
                raise AuthenticationFailed("NO", first.text)
            await self._send(initial.encode() + b"\r\n")
        challenge: sasl.ErrorChallenge | None = None
        while True:
            response = await self._read_response()
            if response.tag == "+":
                # The error challenge: answer it, then the server sends the final NO.
                challenge = sasl.parse_error_challenge(response.text)
                await self._send(sasl.b64(sasl.error_reply(mechanism)).encode() + b"\r\n")
                continue
            if response.tag != tag:
                if response.text.upper().startswith("CAPABILITY"):
                    self.capabilities = parse_capabilities(response.text)
                continue
            status, _, text = response.text.partition(" ")
            if status.upper() != "OK":
                raise AuthenticationFailed(status.upper(), text, challenge)
            if "[CAPABILITY" in text.upper():
                self.capabilities = parse_capabilities(text)
            else:
                await self.refresh_capabilities()
            return text

    async def login(self, user: str, password: str) -> str:
        def literal(value: str) -> str:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

        try:
            responses = await self.command(f"LOGIN {literal(user)} {literal(password)}")
        except ImapError as exc:
            raise AuthenticationFailed(exc.status, exc.text) from None
        await self.refresh_capabilities()
        return responses[-1].text

    # -- the mailbox -------------------------------------------------------------------------------

    async def select(self, folder: str, *, readonly: bool = False) -> Selected:
        verb = "EXAMINE" if readonly else "SELECT"
        return parse_selected(await self.command(f"{verb} {quote(folder)}"))

    async def uid_search(self, criteria: str) -> list[int]:
        return parse_search(await self.command(f"UID SEARCH {criteria}"))

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        ordered = sorted(uids)
        for start in range(0, len(ordered), 500):  # servers limit a command line's length
            chunk = ordered[start : start + 500]
            found = parse_fetch(await self.command(f"UID FETCH {_set(chunk)} (UID RFC822.SIZE)"))
            sizes.update({uid: int(str(item.get("size", 0))) for uid, item in found.items()})
        return sizes

    async def fetch(self, uid: int) -> bytes | None:
        """The message, without setting \\Seen (BODY.PEEK); None when it is gone."""
        return (await self.fetch_many([uid])).get(uid)

    async def fetch_many(self, uids: list[int]) -> dict[int, bytes]:
        """The messages by UID, in one command, without setting \\Seen; a message gone meanwhile
        is absent."""
        if not uids:
            return {}
        found = parse_fetch(await self.command(f"UID FETCH {_set(uids)} (UID BODY.PEEK[])"))
        asked = set(uids)
        return {
            uid: body
            for uid, item in found.items()
            if uid in asked and isinstance(body := item.get("body"), bytes)
        }

    async def mark_seen(self, uids: int | list[int]) -> None:
        await self.command(f"UID STORE {_set(uids)} +FLAGS.SILENT (\\Seen)")

    async def delete(self, uids: int | list[int]) -> None:
        await self.command(f"UID STORE {_set(uids)} +FLAGS.SILENT (\\Deleted)")
        await self._expunge(uids)

    async def move(self, uids: int | list[int], folder: str) -> None:
        if "MOVE" in self.capabilities:
            await self.command(f"UID MOVE {_set(uids)} {quote(folder)}")
            return
        await self.command(f"UID COPY {_set(uids)} {quote(folder)}")
        await self.delete(uids)

    async def _expunge(self, uids: int | list[int]) -> None:
        # UID EXPUNGE (UIDPLUS) removes only these messages. Plain EXPUNGE would also remove
        # messages someone else marked \Deleted, so without UIDPLUS they stay flagged
        # \Deleted for the server or the next client to expunge.
        if "UIDPLUS" in self.capabilities:
            await self.command(f"UID EXPUNGE {_set(uids)}")

    async def idle(self, wait: float) -> bool:
        """IDLE until the server reports new mail or `wait` seconds pass; True on new mail."""
        tag = self._next_tag()
        await self._send(f"{tag} IDLE\r\n".encode())
        first = await self._read_response()
        if first.tag != "+":
            raise ImapError("NO", f"IDLE refused: {first.text}")
        news = False
        saved = self.timeout
        deadline = asyncio.get_running_loop().time() + wait
        try:
            while True:
                # One deadline for the whole IDLE, however many other lines arrive meanwhile.
                self.timeout = max(0.001, deadline - asyncio.get_running_loop().time())
                response = await self._read_response()
                if response.tag == "*" and re.match(r"\d+ (EXISTS|RECENT)", response.text, re.I):
                    news = True
                    break
        except ConnectionLost as lost:
            if "no answer" not in str(lost):  # a timeout is the end of this IDLE, not an error
                raise
        finally:
            self.timeout = saved
        await self._send(b"DONE\r\n")
        while True:
            response = await self._read_response()
            if response.tag == tag:
                return news
            if response.tag == "*" and re.match(r"\d+ EXISTS", response.text, re.I):
                news = True

    async def logout(self) -> None:
        with suppress(ConnectionLost):
            await self.command("LOGOUT")


def _set(uids: int | list[int]) -> str:
    return str(uids) if isinstance(uids, int) else ",".join(str(u) for u in sorted(uids))
