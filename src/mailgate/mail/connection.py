"""One TCP connection to a mail server, for the line protocols (IMAP, POP3), and the steps every
such client takes to open it: connect, TLS (at once, or after the protocol's STARTTLS), the
greeting and the capabilities.

Reads and writes have a timeout; a line is bounded (`LINE_LIMIT`), except where a protocol reads
a long line in pieces (`read_piece`, for POP3's RETR). Every failure of the connection is a
`ConnectionLost` — the caller reconnects, with backoff — and its subclasses say what happened
where a caller acts on it: `NoAnswer` (a timeout), `NotConnected` (no TCP connection) and
`TlsFailed` (the handshake or STARTTLS, with its `kind`).

`mailbox test` takes the steps one at a time (`MailClient.open`, `.secure`, `.greet`) to report
each; the mailbox loops take them together (`MailClient.connect`).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import ClassVar, Self

from mailgate.errors import Transient
from mailgate.mail.errors import MailError
from mailgate.mail.tls import tls_failure_kind

DEFAULT_TIMEOUT = 30.0
# A line past this is a broken or hostile server (IMAP literals and POP3 message lines are read
# otherwise): the connection is dropped rather than the memory grown.
LINE_LIMIT = 2**20

# asyncio gives every TLS connection a receive buffer of `SSLProtocol.max_size` (256 KiB), made
# and zeroed when TLS starts and kept for the connection's life: 250 MB for a thousand IDLE
# mailboxes that hear a line now and then. A TLS record carries at most 16 KiB (RFC 8446 §5.1):
# room for two reads a large message as fast (~70 KB a connection in all, measured with
# bench/idle_scale.py). asyncio has no setting per connection; this lowers it for the process.
TLS_READ_BUFFER = 32 * 1024
if asyncio.sslproto.SSLProtocol.max_size > TLS_READ_BUFFER:
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


class ConnectionLost(Transient):
    """BYE, EOF, a refusal or a timeout: there is no connection (any more); reconnect."""


class NoAnswer(ConnectionLost):
    """Nothing came from the server within the timeout."""


class NotConnected(ConnectionLost):
    """No TCP connection: refused, unreachable, reset."""


class TlsFailed(ConnectionLost):
    """The TLS handshake failed, or the server would not start TLS.

    `kind`: "certificate" (not trusted), "hostname" (issued for another name), "handshake"
    (anything else in the handshake) or "starttls" (not offered, or refused). `detail` is the
    reason alone, without the server's address."""

    def __init__(self, host: str, port: int, detail: str, kind: str) -> None:
        super().__init__(f"{host}:{port}: {detail}")
        self.detail = detail
        self.kind = kind


def _tls_failed(host: str, port: int, exc: BaseException) -> TlsFailed:
    kind = tls_failure_kind(exc) or "handshake"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsFailed(host, port, str(exc.verify_message or exc), kind)
    return TlsFailed(host, port, f"TLS handshake failed: {exc}", kind)


class Connection:
    """The byte stream under one client: bounded reads, writes and TLS, each with a timeout."""

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

    @classmethod
    async def open(cls, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> Connection:
        """A TCP connection (no TLS yet: `start_tls`)."""
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=LINE_LIMIT)
        except TimeoutError:
            raise NoAnswer(f"no answer from {host}:{port} within {timeout:.0f} s") from None
        except OSError as exc:
            raise NotConnected(f"{host}:{port}: {exc.strerror or exc}") from None
        return cls(reader, writer, host=host, port=port, timeout=timeout)

    @property
    def server_hostname(self) -> str:
        return self.host.strip("[]")  # an IPv6 literal, as written in a URL

    @property
    def peer(self) -> str:
        address = self.writer.get_extra_info("peername") or ("?", 0)
        return f"{address[0]}:{address[1]}"

    async def start_tls(self, tls: ssl.SSLContext, *, after_starttls: bool = False) -> None:
        """The TLS handshake, the server's certificate verified for `host`."""
        if after_starttls and getattr(self.reader, "_buffer", None):  # no public way to ask
            # Plaintext after STARTTLS's OK would be read as if it came over TLS (an injection).
            raise TlsFailed(
                self.host, self.port, "the server sent data right after STARTTLS", "starttls"
            )
        try:
            async with asyncio.timeout(self.timeout):
                await self.writer.start_tls(tls, server_hostname=self.server_hostname)
        except TimeoutError:
            raise TlsFailed(self.host, self.port, "TLS handshake timed out", "handshake") from None
        except (ssl.SSLError, OSError) as exc:
            raise _tls_failed(self.host, self.port, exc) from None

    def tls_summary(self) -> str:
        """The protocol version and the server's certificate: subject, issuer, end of validity."""
        tls = self.writer.get_extra_info("ssl_object")
        if tls is None:
            return "no TLS"
        cert = tls.getpeercert() or {}
        subject = dict(x[0] for x in cert.get("subject", ()))
        issuer = dict(x[0] for x in cert.get("issuer", ()))
        return (
            f"{tls.version()}, certificate for {subject.get('commonName', '?')} issued by "
            f"{issuer.get('organizationName') or issuer.get('commonName', '?')}, valid until "
            f"{cert.get('notAfter', '?')}"
        )

    async def readline(self, separator: bytes = b"\r\n", *, timeout: float | None = None) -> bytes:
        """One line with its end; `NoAnswer` after `timeout` (default: the connection's)."""
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                return await self.reader.readuntil(separator)
        except TimeoutError:
            raise NoAnswer(
                f"no answer from {self.host} within {self.timeout if timeout is None else timeout:.0f} s"
            ) from None
        except asyncio.LimitOverrunError:
            raise ConnectionLost(
                f"{self.host} sent a line longer than {LINE_LIMIT} bytes: closing"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLost(
                f"{self.host} closed the connection ({type(exc).__name__})"
            ) from None

    async def read_piece(self) -> bytes:
        """The next line (LF-terminated), or the next `LINE_LIMIT` bytes of a longer one."""
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    return await self.reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as over:
                    return await self.reader.readexactly(over.consumed)
        except TimeoutError:
            raise NoAnswer(f"no answer from {self.host} within {self.timeout:.0f} s") from None
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLost(
                f"{self.host} stopped in the middle of a message ({type(exc).__name__})"
            ) from None

    async def readexactly(self, size: int) -> bytes:
        """`size` bytes (an IMAP literal); the timeout grows with the size."""
        try:
            async with asyncio.timeout(self.timeout + size / 100_000):
                return await self.reader.readexactly(size)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLost(
                f"{self.host} stopped in the middle of a message ({type(exc).__name__})"
            ) from None

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError) as exc:
            raise ConnectionLost(f"cannot write to {self.host} ({type(exc).__name__})") from None

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (TimeoutError, OSError, ssl.SSLError):
            pass


class MailClient(ABC):
    """What IMAP and POP3 clients share: opening the connection step by step, and signing in."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.greeting = ""  # the server's first line, as it sent it

    @property
    def host(self) -> str:
        return self.connection.host

    @property
    def port(self) -> int:
        return self.connection.port

    # -- the steps, in order -------------------------------------------------------------------

    @classmethod
    async def open(cls, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> Self:
        """Connected over TCP; nothing read yet."""
        return cls(await Connection.open(host, port, timeout=timeout))

    async def secure(self, security: str, tls: ssl.SSLContext) -> None:
        """TLS as the mailbox says: at once ("ssl"), after the greeting by the protocol's
        STARTTLS ("starttls"), or not at all ("none", loopback only)."""
        if security == "ssl":
            await self.connection.start_tls(tls)
        elif security == "starttls":
            await self.read_greeting()
            await self.starttls(tls)

    async def greet(self) -> None:
        """The greeting (unless STARTTLS read it already) and the capabilities."""
        if not self.greeting:
            await self.read_greeting()
        await self.refresh_capabilities()

    @classmethod
    async def open_connected(
        cls,
        host: str,
        port: int,
        *,
        security: str,
        tls: ssl.SSLContext,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Self:
        """Connected, secured and greeted: ready to sign in. The caller closes it."""
        client = await cls.open(host, port, timeout=timeout)
        try:
            await client.secure(security, tls)
            await client.greet()
        except BaseException:
            await client.close()
            raise
        return client

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
    ) -> AsyncIterator[Self]:
        """`open_connected`, closed on the way out."""
        client = await cls.open_connected(host, port, security=security, tls=tls, timeout=timeout)
        try:
            yield client
        finally:
            await client.close()

    async def close(self) -> None:
        await self.connection.close()

    # -- what each protocol says its own way ---------------------------------------------------

    @abstractmethod
    async def read_greeting(self) -> None:
        """Read the server's greeting; `ConnectionLost` when it is not this protocol's."""

    async def starttls(self, tls: ssl.SSLContext) -> None:
        """Upgrade to TLS by the protocol's command; `TlsFailed` "starttls" when the server
        does not offer it or refuses it."""
        if not await self.offers_starttls():
            raise TlsFailed(self.host, self.port, "the server does not offer STARTTLS", "starttls")
        try:
            await self.command(self.STARTTLS)
        except MailError as refused:
            raise TlsFailed(
                self.host, self.port, f"STARTTLS refused: {refused}", "starttls"
            ) from None
        await self.connection.start_tls(tls, after_starttls=True)
        # RFC 3501 §6.2.1, RFC 2595 §4: what the server said before TLS may have been forged.
        self.forget_capabilities()

    STARTTLS: ClassVar[str]  # the command: STARTTLS (IMAP, RFC 3501), STLS (POP3, RFC 2595)

    @abstractmethod
    async def offers_starttls(self) -> bool:
        """Whether the server offers `STARTTLS` (asking it, if it has not said yet)."""

    @abstractmethod
    async def command(self, line: str) -> object:
        """Send one command; what the server answered (`MailError` for a refusal)."""

    @abstractmethod
    def forget_capabilities(self) -> None:
        """Drop the capabilities heard so far."""

    @abstractmethod
    async def refresh_capabilities(self) -> None:
        """Ask what the server offers (after TLS: RFC 3501 §6.2.1, RFC 2595 §4)."""

    @property
    @abstractmethod
    def sasl_mechanisms(self) -> set[str]:
        """The SASL mechanisms the server offers, in upper case."""

    @abstractmethod
    async def authenticate(self, mechanism: str, user: str, token: str) -> str:
        """Sign in with an OAuth 2.0 token (XOAUTH2 / OAUTHBEARER); what the server said."""

    @abstractmethod
    async def login(self, user: str, password: str) -> str:
        """Sign in with a password; what the server said."""

    @abstractmethod
    async def logout(self) -> None:
        """End the session politely (LOGOUT, QUIT); a connection already gone is no error."""
