"""Sending over SMTP: implicit TLS or STARTTLS (verified always), SASL XOAUTH2 / OAUTHBEARER
with an OAuth 2.0 credential (or a password), then one mail transaction.

A refused token that the keeper considered valid is refreshed once and tried once more (the
provider may have revoked it, or it expired early); a second refusal is the admin's to fix.
Failures carry the step they happened at, the server's code and text, so the outbox can tell a
temporary failure (retry) from a permanent one (dead-letter) from one that waits for the admin.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosmtplib

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.mail import sasl
from mailgate.mail.endpoints import password_of
from mailgate.oauth.tokens import TokenKeeper
from mailgate.store.models import SmtpServer

TIMEOUT = 30.0
DATA_TIMEOUT = 600.0  # RFC 5321 §4.5.3.2.6: the reply to the end of DATA may take 10 minutes
# Refusals in the mail transaction that only the admin can fix (sender not allowed, TLS and
# sign-in required, SMTP AUTH switched off): the message waits instead of dying.
_ADMIN_FIXABLE = ("5.7.60", "5.2.252", "SendAsDenied", "5.7.57", "5.7.139", "5.7.708")


@dataclass
class SmtpFailure(Exception):
    """What failed, where: `step` is one of connect, tls, greeting, token, authenticate, send."""

    step: str
    text: str
    code: int | None = None
    kind: str = ""  # timeout, refused, certificate, hostname, starttls, recipients …
    challenge: sasl.ErrorChallenge | None = None

    def __str__(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{self.step}: {code}{self.text}"

    @property
    def waits_for_admin(self) -> bool:
        """Retrying won't help until someone changes something (sign-in, settings, server)."""
        if self.kind == "connection":
            return False
        if self.step in ("token", "tls"):
            return True
        if self.step == "authenticate":
            return not (self.code == 454 or (self.code or 0) // 100 == 4)
        if self.step == "send" and (self.code or 0) // 100 == 5:
            return any(mark in self.text for mark in _ADMIN_FIXABLE)
        return False

    @property
    def permanent(self) -> bool:
        """The server refused this message for good (a 5xx in the mail transaction)."""
        return self.step == "send" and (self.code or 0) // 100 == 5 and not self.waits_for_admin


def tls_context_for(server: SmtpServer) -> ssl.SSLContext:
    """Verification always on; a private CA is added, never a switch to turn checks off."""
    context = ssl.create_default_context()
    if server.ca_file:
        try:
            context.load_verify_locations(cafile=server.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SmtpFailure(
                "tls", f"the CA file {server.ca_file} cannot be used ({exc})", kind="certificate"
            ) from None
    return context


def _tls_failure(exc: BaseException) -> SmtpFailure | None:
    text = f"{exc} {exc.__cause__ or ''} {exc.__context__ or ''}"
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        kind = "hostname" if "match" in text.lower() else "certificate"
        return SmtpFailure("tls", " ".join(text.split()), kind=kind)
    if isinstance(exc, ssl.SSLError) or "SSL" in text:
        return SmtpFailure("tls", " ".join(text.split()))
    return None


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@asynccontextmanager
async def connected(server: SmtpServer) -> AsyncIterator[aiosmtplib.SMTP]:
    """An SMTP connection, greeted, with TLS in place (implicit or by STARTTLS)."""
    tls = tls_context_for(server)
    client = aiosmtplib.SMTP(
        hostname=server.host,
        port=server.port,
        use_tls=server.security == "ssl",
        start_tls=False,
        tls_context=tls,
        timeout=TIMEOUT,
    )
    try:
        await client.connect()
    except aiosmtplib.SMTPConnectResponseError as exc:
        raise SmtpFailure("greeting", exc.message, exc.code) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        failure = _tls_failure(exc)
        if failure is not None:
            raise failure from None
        kind = "timeout" if isinstance(exc, TimeoutError) else "refused"
        raise SmtpFailure("connect", " ".join(str(exc).split()), kind=kind) from None
    try:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPResponseException as exc:
            raise SmtpFailure("greeting", exc.message, exc.code) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SmtpFailure("greeting", _text(exc), kind="connection") from None
        if server.security == "starttls":
            if not client.supports_extension("starttls"):
                raise SmtpFailure(
                    "tls", "the server does not offer STARTTLS", kind="starttls"
                ) from None
            try:
                await client.starttls()
            except (aiosmtplib.SMTPException, OSError) as exc:
                failure = _tls_failure(exc) or SmtpFailure("tls", str(exc))
                raise failure from None
            try:
                await client.ehlo()  # what the server offers changes with TLS (AUTH, mostly)
            except aiosmtplib.SMTPResponseException as exc:
                raise SmtpFailure("greeting", exc.message, exc.code) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise SmtpFailure("greeting", _text(exc), kind="connection") from None
        yield client
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


async def authenticate(
    ctx: Context, keeper: TokenKeeper, server: SmtpServer, client: aiosmtplib.SMTP
) -> str:
    """Sign in; returns the mechanism used. A refused token is refreshed and tried once more."""
    if server.credential_id is None:
        try:
            await client.login(server.username, password_of(ctx, server))
        except aiosmtplib.SMTPResponseException as exc:
            raise SmtpFailure("authenticate", exc.message, exc.code) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SmtpFailure("authenticate", _text(exc), kind="connection") from None
        return "password"
    offered = {method.upper() for method in client.server_auth_methods}
    try:
        mechanism = sasl.choose_mechanism(offered, server.sasl_mechanism)
    except sasl.NoOAuthMechanism:
        raise SmtpFailure(
            "authenticate",
            f"the server offers no OAuth 2.0 mechanism (it offers {', '.join(sorted(offered)) or 'none'}"
            "; AUTH may be offered only after STARTTLS)",
            kind="mechanism",
        ) from None
    for attempt in (1, 2):
        try:
            token = await keeper.access_token(server.credential_id)
        except MailgateError as exc:
            raise SmtpFailure("token", str(exc)) from None
        try:
            await _sasl(client, mechanism, server, token.value)
            return mechanism
        except SmtpFailure as refused:
            temporary = refused.code == 454 or (refused.code or 0) // 100 == 4
            if attempt == 2 or temporary or refused.kind == "connection":
                raise
            keeper.invalidate(server.credential_id)
            try:
                await keeper.refresh(server.credential_id)
            except MailgateError as exc:
                raise SmtpFailure("token", str(exc)) from None
    raise AssertionError("unreachable")


async def _sasl(client: aiosmtplib.SMTP, mechanism: str, server: SmtpServer, token: str) -> None:
    initial = sasl.initial_response(mechanism, server.username, token, server.host, server.port)
    try:
        response = await client.execute_command(
            b"AUTH", mechanism.encode(), sasl.b64(initial).encode()
        )
        challenge = None
        if response.code == 334:
            # The error challenge (base64 JSON): answer it, then the final status comes.
            challenge = sasl.parse_error_challenge(response.message)
            response = await client.execute_command(sasl.b64(sasl.error_reply(mechanism)).encode())
    except (aiosmtplib.SMTPException, OSError) as exc:  # the connection, not a refusal
        raise SmtpFailure("authenticate", _text(exc), kind="connection") from None
    if response.code != 235:
        raise SmtpFailure("authenticate", response.message, response.code, challenge=challenge)


async def transact(
    client: aiosmtplib.SMTP, sender: str, recipients: Sequence[str], raw: bytes
) -> tuple[str, dict[str, str]]:
    """MAIL FROM, RCPT TO, DATA: the server's reply to DATA, and recipients it refused."""
    try:
        refused, reply = await client.sendmail(sender, list(recipients), raw, timeout=DATA_TIMEOUT)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        raise SmtpFailure("send", text, first.code, kind="recipients") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise SmtpFailure("send", exc.message, exc.code) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise SmtpFailure("send", _text(exc), kind="connection") from None
    return reply, {r: f"{response.code} {response.message}" for r, response in refused.items()}


async def send(
    ctx: Context,
    keeper: TokenKeeper,
    server: SmtpServer,
    recipients: Sequence[str],
    raw: bytes,
) -> tuple[str, dict[str, str]]:
    """Connect, sign in and send one message; the server's acceptance and refused recipients."""
    async with connected(server) as client:
        await authenticate(ctx, keeper, server, client)
        return await transact(client, server.from_address, recipients, raw)
