"""Sending over SMTP: implicit TLS or STARTTLS (verified always), SASL XOAUTH2 / OAUTHBEARER
with an access token (or a password), then one mail transaction.

The client knows nothing of OAuth 2.0: it is handed a token. A refusal that a fresh token may cure
raises `SmtpTokenRefused`, which `mailgate.oauth.access` answers with one refresh and one more
try. Failures carry the step they happened at, the server's code and text, so the outbox can tell
a temporary failure (retry) from a permanent one (dead-letter) from one that waits for the admin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiosmtplib

from mailgate.mail import envelope, sasl
from mailgate.mail.errors import MailError, TokenRefused, enhanced_status, says_try_later
from mailgate.mail.tls import CaFileUnusable, shared_tls_context, tls_failure_kind
from mailgate.store.models import SmtpServer

TIMEOUT = 30.0
DATA_TIMEOUT = 600.0  # RFC 5321 §4.5.3.2.6: the reply to the end of DATA may take 10 minutes
# Refusals in the mail transaction that only the admin can fix, by enhanced status code (RFC
# 3463): sender not allowed (5.7.60, 5.2.252), TLS and sign-in required (5.7.57), SMTP AUTH
# switched off (5.7.139, 5.7.708). The message waits instead of dying.
_ADMIN_FIXABLE = frozenset({"5.7.60", "5.2.252", "5.7.57", "5.7.139", "5.7.708"})
# Exchange Online also refuses Send As with the catch-all 5.2.0 and the reason in words:
# "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied".
_SEND_AS_DENIED = "SendAsDenied"


class SmtpFailure(MailError):
    """What failed, where: `step` is one of resolve, connect, tls, greeting, token,
    authenticate, send; `code` is the server's reply code, `kind` a machine tag (timeout,
    refused, certificate, hostname, handshake, starttls, mechanism, recipients, connection,
    config; smtputf8 and address: `undeliverable`)."""

    def __init__(
        self,
        step: str,
        text: str,
        code: int | None = None,
        *,
        kind: str = "",
        challenge: sasl.ErrorChallenge | None = None,
    ) -> None:
        self.step = step
        self.text = text
        self.code = code
        self.kind = kind
        self.challenge = challenge
        super().__init__(str(self))

    def __str__(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{self.step}: {code}{self.text}"

    @property
    def temporary(self) -> bool:
        """The connection broke, or the server said to try later (4yz)."""
        return self.kind == "connection" or says_try_later(smtp_code=self.code)

    @property
    def waits_for_admin(self) -> bool:
        """Retrying won't help until someone changes something (sign-in, settings, server)."""
        if self.kind == "connection":
            return False
        if self.step in ("token", "tls"):
            return True
        if self.step == "authenticate":
            return not self.temporary
        if self.step == "send" and (self.code or 0) // 100 == 5:
            return enhanced_status(self.text) in _ADMIN_FIXABLE or _SEND_AS_DENIED in self.text
        return False

    @property
    def permanent(self) -> bool:
        """The server refused this message for good (a 5yz in the mail transaction), or it can't
        be sent through this server at all (`undeliverable`)."""
        if self.undeliverable:
            return True
        return self.step == "send" and (self.code or 0) // 100 == 5 and not self.waits_for_admin

    @property
    def undeliverable(self) -> bool:
        """No attempt can send this message through this server, so none is made again: it
        needs SMTPUTF8 and the server does not offer it, or an address can't be sent at all
        (`mail/envelope.py`). Found before MAIL FROM: the connection stays usable."""
        return self.kind in ("smtputf8", "address")


class SmtpTokenRefused(SmtpFailure, TokenRefused):
    """The server refused the access token the way a fresh token may cure."""


def _tls_failure(exc: BaseException) -> SmtpFailure | None:
    kind = tls_failure_kind(exc)
    if kind is None:
        return None
    text = f"{exc} {exc.__cause__ or ''} {exc.__context__ or ''}"
    return SmtpFailure("tls", " ".join(text.split()), kind=kind)


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@asynccontextmanager
async def connected(server: SmtpServer) -> AsyncIterator[aiosmtplib.SMTP]:
    """An SMTP connection, greeted, with TLS in place (implicit or by STARTTLS); the TLS
    context is the one shared by every connection trusting the same CA file."""
    try:
        tls = shared_tls_context(server)
    except CaFileUnusable as exc:
        text = f"the CA file {exc.ca_file} cannot be used ({exc.reason})"
        raise SmtpFailure("tls", text, kind="certificate") from None
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


async def login(client: aiosmtplib.SMTP, server: SmtpServer, password: str) -> str:
    """Sign in with a password (AUTH PLAIN or LOGIN, as the server offers); returns "password"."""
    try:
        await client.login(server.username, password)
    except aiosmtplib.SMTPResponseException as exc:
        raise SmtpFailure("authenticate", exc.message, exc.code) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise SmtpFailure("authenticate", _text(exc), kind="connection") from None
    return "password"


def oauth_mechanism(client: aiosmtplib.SMTP, server: SmtpServer) -> str:
    """The SASL mechanism to sign in with: the server's choice among what it offers."""
    offered = {method.upper() for method in client.server_auth_methods}
    try:
        return sasl.choose_mechanism(offered, server.sasl_mechanism)
    except sasl.NoOAuthMechanism:
        raise SmtpFailure(
            "authenticate",
            f"the server offers no OAuth 2.0 mechanism (it offers {', '.join(sorted(offered)) or 'none'}"
            "; AUTH may be offered only after STARTTLS)",
            kind="mechanism",
        ) from None


async def authenticate(
    client: aiosmtplib.SMTP, server: SmtpServer, mechanism: str, token: str
) -> str:
    """Sign in with an access token; returns the mechanism. A refusal that a fresh token may cure
    raises `SmtpTokenRefused`: 535 (RFC 4954 §6, "authentication credentials invalid"), or any
    final refusal after the server's error challenge, which is about the token (RFC 7628 §3.2.2)."""
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
    if response.code == 235:
        return mechanism
    failure = SmtpFailure("authenticate", response.message, response.code, challenge=challenge)
    if not failure.temporary and (response.code == 535 or challenge is not None):
        raise SmtpTokenRefused("authenticate", response.message, response.code, challenge=challenge)
    raise failure


async def transact(
    client: aiosmtplib.SMTP, sender: str, recipients: Sequence[str], raw: bytes
) -> tuple[str, dict[str, str]]:
    """MAIL FROM, RCPT TO, DATA: the server's reply to DATA, and recipients it refused.
    Domains that are not ASCII go as IDNA A-labels; a message that needs SMTPUTF8 is sent with
    it when the server offers it, else refused here (`SmtpFailure.undeliverable`)."""
    try:
        sent = envelope.prepare(
            sender,
            recipients,
            raw,
            server_offers_smtputf8=client.supports_extension("smtputf8"),
        )
    except envelope.Undeliverable as exc:
        raise SmtpFailure("send", str(exc), kind=exc.kind) from None
    try:
        refused, reply = await client.sendmail(
            sent.sender,
            sent.recipients,
            raw,
            mail_options=["SMTPUTF8"] if sent.smtputf8 else [],
            timeout=DATA_TIMEOUT,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        raise SmtpFailure("send", text, first.code, kind="recipients") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise SmtpFailure("send", exc.message, exc.code) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise SmtpFailure("send", _text(exc), kind="connection") from None
    return reply, {r: f"{response.code} {response.message}" for r, response in refused.items()}
