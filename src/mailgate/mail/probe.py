"""`mailbox test`: connect, authenticate and look at the mailbox, step by step.

Steps, in order (INTERFACE.md): resolve, connect, tls, greeting, token, authenticate, select
(stat for POP3), count. The steps after a failed one are not run. Every failure gets a diagnosis
from `diagnose`. The blocking stdlib clients run in a thread; the token comes from the keeper.
A token the keeper considered valid that the server refuses is refreshed once and tried once
more — never more.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import re
import socket
import ssl
import time
from typing import Any

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.mail import sasl
from mailgate.mail.diagnose import Failure, diagnose
from mailgate.mail.imap import quote
from mailgate.mail.mailboxes import get_mailbox
from mailgate.oauth.tokens import TokenKeeper
from mailgate.steps import Step, StepReport
from mailgate.store.models import Mailbox

TIMEOUT = 15.0


ProbeResult = StepReport


class StepFailed(Exception):
    def __init__(
        self, detail: str, kind: str = "", challenge: sasl.ErrorChallenge | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.challenge = challenge


class _Imap(imaplib.IMAP4):
    """imaplib over a socket we connected (and maybe wrapped) ourselves, step by step."""

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self._premade = sock
        # The host is kept for STARTTLS's certificate check (server_hostname).
        super().__init__(host, port, timeout=TIMEOUT)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return self._premade


class _Pop(poplib.POP3):
    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self._premade = sock
        super().__init__(host, port, timeout=TIMEOUT)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return self._premade

    def command(self, line: str) -> str:
        """One POP3 command; the reply line ('+OK …' or a SASL '+ …' challenge)."""
        reply: bytes = self._shortcmd(line)  # type: ignore[attr-defined]
        return reply.decode("utf-8", "replace")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value)
    return str(value)


class Session:
    """One connection attempt, driven one step at a time (blocking: run in a thread)."""

    def __init__(self, mailbox: Mailbox, tls: ssl.SSLContext) -> None:
        self.mailbox = mailbox
        self.context = tls
        self.sock: socket.socket | None = None
        self.imap: _Imap | None = None
        self.pop: _Pop | None = None
        self.capabilities: set[str] = set()

    # -- network steps -----------------------------------------------------------------------

    def resolve(self) -> str:
        try:
            infos = socket.getaddrinfo(
                self.mailbox.host, self.mailbox.port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise StepFailed(f"{self.mailbox.host} does not resolve ({exc.strerror})") from None
        addresses = sorted({str(info[4][0]) for info in infos})
        return f"{self.mailbox.host} is {', '.join(addresses)}"

    def connect(self) -> str:
        started = time.monotonic()
        try:
            self.sock = socket.create_connection((self.mailbox.host, self.mailbox.port), TIMEOUT)
        except TimeoutError:
            raise StepFailed(
                f"no answer from {self.mailbox.host}:{self.mailbox.port} within {TIMEOUT:.0f} s",
                "timeout",
            ) from None
        except OSError as exc:
            raise StepFailed(
                f"{self.mailbox.host}:{self.mailbox.port}: {exc.strerror or exc}", "refused"
            ) from None
        peer = self.sock.getpeername()
        return f"connected to {peer[0]}:{peer[1]} in {(time.monotonic() - started) * 1000:.0f} ms"

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        try:
            return self.context.wrap_socket(sock, server_hostname=self.mailbox.host.strip("[]"))
        except ssl.SSLCertVerificationError as exc:
            kind = (
                "hostname"
                if "match" in str(exc.verify_message or "") or "Hostname" in str(exc)
                else "certificate"
            )
            raise StepFailed(str(exc.verify_message or exc), kind) from None
        except (ssl.SSLError, OSError) as exc:
            raise StepFailed(f"TLS handshake failed: {exc}", "handshake") from None

    def tls(self) -> str:
        assert self.sock is not None
        security = self.mailbox.security
        if security == "none":
            return "no TLS (--security none, loopback only)"
        if security == "ssl":
            self.sock = self._wrap(self.sock)
        else:
            self._open_plain_then_starttls()
        wrapped = self._tls_socket()
        cert = wrapped.getpeercert() or {}
        subject = dict(x[0] for x in cert.get("subject", ()))  # type: ignore[misc]
        issuer = dict(x[0] for x in cert.get("issuer", ()))  # type: ignore[misc]
        return (
            f"{wrapped.version()}, certificate for {subject.get('commonName', '?')} issued by "
            f"{issuer.get('organizationName') or issuer.get('commonName', '?')}, valid until "
            f"{cert.get('notAfter', '?')}"
        )

    def _tls_socket(self) -> ssl.SSLSocket:
        sock: socket.socket | None = self.sock
        if self.imap is not None:
            sock = self.imap.sock
        elif self.pop is not None:
            sock = self.pop.sock
        assert isinstance(sock, ssl.SSLSocket)
        return sock

    def _open_plain_then_starttls(self) -> None:
        assert self.sock is not None
        self._open_protocol()
        try:
            if self.imap is not None:
                if "STARTTLS" not in self.imap.capabilities:
                    raise StepFailed("the server does not offer STARTTLS", "starttls")
                self.imap.starttls(self.context)
            else:
                assert self.pop is not None
                self.pop.stls(self.context)
        except ssl.SSLCertVerificationError as exc:
            kind = (
                "hostname"
                if "Hostname" in str(exc) or "match" in str(exc.verify_message or "")
                else "certificate"
            )
            raise StepFailed(str(exc.verify_message or exc), kind) from None
        except (imaplib.IMAP4.error, poplib.error_proto) as exc:
            raise StepFailed(f"STARTTLS refused: {_text(exc.args)}", "starttls") from None

    def _open_protocol(self) -> str:
        assert self.sock is not None
        try:
            if self.mailbox.protocol == "imap":
                self.imap = _Imap(self.sock, self.mailbox.host.strip("[]"), self.mailbox.port)
                return _text(self.imap.welcome)
            self.pop = _Pop(self.sock, self.mailbox.host.strip("[]"), self.mailbox.port)
            return _text(self.pop.getwelcome())
        except (imaplib.IMAP4.error, poplib.error_proto, OSError, EOFError) as exc:
            raise StepFailed(
                f"no {self.mailbox.protocol.upper()} greeting: {_text(getattr(exc, 'args', exc))}"
            ) from None

    def greeting(self) -> str:
        welcome = ""
        if self.imap is None and self.pop is None:
            welcome = self._open_protocol()
        if self.imap is not None:
            _typ, data = self.imap.capability()
            self.capabilities = set(_text(data).upper().split())
            welcome = welcome or _text(self.imap.welcome)
            auth = sorted(c[5:] for c in self.capabilities if c.startswith("AUTH="))
            idle = " IDLE" if "IDLE" in self.capabilities else ""
            return f"{welcome.strip()}; SASL {', '.join(auth) or 'none'};{idle or ' no IDLE'}"
        assert self.pop is not None
        try:
            caps = self.pop.capa()
        except poplib.error_proto:
            caps = {}
        sasl_line = caps.get("SASL", [])
        self.capabilities = {f"AUTH={m.upper()}" for m in sasl_line}
        return f"{(welcome or _text(self.pop.getwelcome())).strip()}; SASL {', '.join(sasl_line) or 'none'}"

    # -- authentication --------------------------------------------------------------------------

    def offered_mechanisms(self) -> set[str]:
        return {c[5:] for c in self.capabilities if c.startswith("AUTH=")}

    def authenticate_oauth(self, mechanism: str, user: str, token: str) -> str:
        initial = sasl.initial_response(
            mechanism, user, token, self.mailbox.host, self.mailbox.port
        )
        if self.imap is not None:
            seen: list[sasl.ErrorChallenge | None] = []

            def answer(challenge: bytes) -> bytes:
                if not seen and not challenge:
                    seen.append(None)
                    return initial
                seen.append(sasl.error_challenge_from_json(challenge.decode("utf-8", "replace")))
                return sasl.error_reply(mechanism)

            try:
                _typ, data = self.imap.authenticate(mechanism, answer)
            except imaplib.IMAP4.error as exc:
                raise StepFailed(
                    _text(exc.args), "refused", seen[-1] if len(seen) > 1 else None
                ) from None
            return f"{mechanism} as {user}: {_text(data)}"
        assert self.pop is not None
        try:
            self.pop.command(f"AUTH {mechanism}")
            reply = self.pop.command(sasl.b64(initial))
            if reply.startswith("+ ") or reply == "+":
                challenge = sasl.parse_error_challenge(reply[1:].strip())
                try:
                    self.pop.command(sasl.b64(sasl.error_reply(mechanism)))
                except poplib.error_proto as exc:
                    raise StepFailed(_text(exc.args), "refused", challenge) from None
                raise StepFailed(reply, "refused", challenge)
        except poplib.error_proto as exc:
            raise StepFailed(_text(exc.args), "refused") from None
        return f"{mechanism} as {user}: {reply}"

    def authenticate_password(self, user: str, password: str) -> str:
        try:
            if self.imap is not None:
                _typ, data = self.imap.login(user, password)
                return f"password login as {user}: {_text(data)}"
            assert self.pop is not None
            self.pop.user(user)
            return f"password login as {user}: {_text(self.pop.pass_(password))}"
        except (imaplib.IMAP4.error, poplib.error_proto) as exc:
            raise StepFailed(_text(exc.args), "refused") from None

    # -- the mailbox -------------------------------------------------------------------------------

    def select(self) -> str:
        if self.imap is not None:
            typ, data = self.imap.select(quote(self.mailbox.folder), readonly=True)
            if typ != "OK":
                raise StepFailed(_text(data))
            uidvalidity = self.imap.response("UIDVALIDITY")[1]
            return (
                f"{self.mailbox.folder}: {_text(data)} message(s), UIDVALIDITY {_text(uidvalidity)}"
            )
        assert self.pop is not None
        try:
            count, size = self.pop.stat()
        except poplib.error_proto as exc:
            raise StepFailed(_text(exc.args)) from None
        return f"{count} message(s), {size} bytes"

    def count(self) -> str:
        if self.imap is not None:
            _typ, all_uids = self.imap.uid("SEARCH", "ALL")
            _typ2, unseen = self.imap.uid("SEARCH", "UNSEEN")
            total = len(_text(all_uids).split())
            return f"{total} message(s), {len(_text(unseen).split())} unseen"
        assert self.pop is not None
        try:
            listing = self.pop.uidl()
        except poplib.error_proto as exc:
            raise StepFailed(f"the server has no UIDL: {_text(exc.args)}") from None
        return f"{len(listing[1])} message(s) with unique ids (UIDL)"

    def close(self) -> None:
        try:
            if self.imap is not None:
                self.imap.logout()
            elif self.pop is not None:
                self.pop.quit()
        except (imaplib.IMAP4.error, poplib.error_proto, OSError, EOFError):
            pass
        finally:
            if self.sock is not None:
                self.sock.close()


def tls_context_for(mailbox: Mailbox) -> ssl.SSLContext:
    """Verification always on; a private CA is added, never a switch to turn checks off."""
    context = ssl.create_default_context()
    if mailbox.ca_file:
        context.load_verify_locations(cafile=mailbox.ca_file)
    return context


async def probe(ctx: Context, name: str, keeper: TokenKeeper | None = None) -> ProbeResult:
    """Run the test-connection steps for mailbox `name`."""
    async with ctx.db.session() as session:
        mailbox = await get_mailbox(session, name)
    keeper = keeper or TokenKeeper(ctx)
    result = ProbeResult()
    session_ = Session(mailbox, tls_context_for(mailbox))
    account: str | None = None

    def failed(step: str, exc: StepFailed | MailgateError, **extra: Any) -> ProbeResult:
        detail = exc.detail if isinstance(exc, StepFailed) else str(exc)
        result.steps.append(Step(step, False, detail))
        result.diagnosis = diagnose(
            Failure(
                step=step,
                protocol=mailbox.protocol,
                host=mailbox.host,
                port=mailbox.port,
                text=detail,
                auth="oauth2" if mailbox.credential_id else "password",
                challenge=getattr(exc, "challenge", None),
                account=account,
                username=mailbox.username,
                kind=getattr(exc, "kind", ""),
            )
        )
        return result

    try:
        for step, action in (
            ("resolve", session_.resolve),
            ("connect", session_.connect),
            ("tls", session_.tls),
            ("greeting", session_.greeting),
        ):
            try:
                result.steps.append(Step(step, True, await asyncio.to_thread(action)))
            except StepFailed as exc:
                return failed(step, exc)

        token = None
        if mailbox.credential_id is not None:
            try:
                token = await keeper.access_token(mailbox.credential_id)
            except MailgateError as exc:
                return failed("token", exc)
            account = token.account
            result.steps.append(
                Step(
                    "token",
                    True,
                    f"access token of {token.account}, valid until {token.expires_at:%Y-%m-%d %H:%M} UTC",
                )
            )
        else:
            result.steps.append(Step("token", True, "password authentication (no token)"))

        try:
            if token is not None:
                mechanism = sasl.choose_mechanism(
                    session_.offered_mechanisms(), mailbox.sasl_mechanism
                )
                try:
                    detail = await asyncio.to_thread(
                        session_.authenticate_oauth, mechanism, mailbox.username, token.value
                    )
                except StepFailed as first:
                    if first.kind != "refused" or re.search(
                        r"UNAVAILABLE|SYS/TEMP|Temporary", first.detail
                    ):
                        raise
                    # A token the keeper thought valid was refused: refresh once, retry once.
                    keeper.invalidate(token.credential_id)
                    try:
                        token = await keeper.refresh(token.credential_id)
                    except MailgateError as exc:
                        return failed("token", exc)
                    await asyncio.to_thread(session_.close)
                    session_ = Session(mailbox, session_.context)
                    for action in (session_.connect, session_.tls, session_.greeting):
                        await asyncio.to_thread(action)
                    detail = await asyncio.to_thread(
                        session_.authenticate_oauth, mechanism, mailbox.username, token.value
                    )
                    detail += " (after one refresh of the token)"
            else:
                from mailgate.mail.endpoints import password_of

                detail = await asyncio.to_thread(
                    session_.authenticate_password, mailbox.username, password_of(ctx, mailbox)
                )
        except sasl.NoOAuthMechanism as exc:
            return failed("authenticate", StepFailed(str(exc), "mechanism"))
        except StepFailed as exc:
            return failed("authenticate", exc)
        result.steps.append(Step("authenticate", True, detail))

        select_step = "select" if mailbox.protocol == "imap" else "stat"
        for step, action in ((select_step, session_.select), ("count", session_.count)):
            try:
                result.steps.append(Step(step, True, await asyncio.to_thread(action)))
            except StepFailed as exc:
                return failed(step, exc)
        return result
    finally:
        await asyncio.to_thread(session_.close)
