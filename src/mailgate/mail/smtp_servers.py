"""Service functions for SMTP servers (outgoing mail): add, change, list, show, delete.

An SMTP server signs in with an OAuth 2.0 credential (XOAUTH2 or OAUTHBEARER) or a password, and
sends as one From address. Given a Microsoft or Google credential and no host, the provider's
submission host is used (Exchange Online `smtp.office365.com:587` STARTTLS, in the credential's
cloud; Gmail `smtp.gmail.com:587` STARTTLS).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate import names
from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.mail.endpoints import (
    changed_settings,
    endpoint_view,
    iso,
    password_warnings,
    resolve_endpoint,
    settings_of,
)
from mailgate.providers import GOOGLE_MAIL_SCOPE
from mailgate.store import audit
from mailgate.store.models import Credential, Integration, Project, SmtpServer
from mailgate.store.vocabulary import SmtpStatus

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
# Exchange Online's SMTP AUTH host per cloud; Gmail's.
MICROSOFT_HOSTS = {
    "global": "smtp.office365.com",
    "usgov": "smtp.office365.us",
    "china": "smtp.partner.outlook.cn",
}
GOOGLE_HOST = "smtp.gmail.com"
# RFC 5322 §3.4.1 addr-spec in its dot-atom form (or a quoted local part), UTF-8 allowed as
# RFC 6531 does; the domain a name of two labels or more (RFC 5321 §2.3.5): "root", "x@localhost"
# or "a@[192.0.2.1]" are no mailbox mail can be sent to on a person's behalf.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u00a1-\U0010ffff]"
_LOCAL = rf'(?:{_ATEXT}+(?:\.{_ATEXT}+)*|"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*")'
_LETTER_OR_DIGIT = r"[A-Za-z0-9\u00a1-\U0010ffff]"
_LABEL = rf"{_LETTER_OR_DIGIT}(?:[A-Za-z0-9\u00a1-\U0010ffff-]{{0,61}}{_LETTER_OR_DIGIT})?"
_ADDRESS_RE = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*\.(?=[^.]*[^\W\d_])(?:{_LABEL})")
APP_ONLY_GRANT = "client_credentials"


@dataclass
class SmtpOptions:
    """What the admin gave; None means "not given" (keep the current value or the default)."""

    host: str | None = None
    port: int | None = None
    security: str | None = None
    username: str | None = None
    credential_id: int | None = None
    password: str | None = None
    ca_file: str | None = None
    sasl_mechanism: str | None = None
    from_address: str | None = None
    from_name: str | None = None

    def __repr__(self) -> str:  # never show the password
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}
        if "password" in given:
            given["password"] = "<hidden>"
        return f"SmtpOptions({given})"


def check_name(name: str) -> str:
    return names.check_name("SMTP server", name)


def is_address(text: str) -> bool:
    """Whether `text` is a mailbox's address mail can be sent to: an addr-spec with a domain
    (never "root", never a display name, never a line break)."""
    local, _, domain = text.rpartition("@")
    return (
        len(text) <= 254
        and len(local) <= 64
        # No control character or Unicode separator (U+2028 is a line break to some readers).
        and text.isprintable()
        # A domain only as mail servers write it: UTS #46 maps a fullwidth "ｅ" to "e" and
        # composes "a" + U+0301 into "á", so such a spelling is someone else's address in
        # disguise (counted apart from it by every per-sender limit, yet delivered to it).
        and unicodedata.is_normalized("NFKC", domain)
        and _ADDRESS_RE.fullmatch(text) is not None
    )


def check_address(address: str, flag: str) -> str:
    """An address the admin gave, lower-case; bad input (exit 2) when it is none."""
    address = address.strip(" ")
    if not is_address(address):
        raise BadInput(
            f"{address!r} is not an email address: give one like support@example.com ({flag})."
        )
    return address.lower()


def check_display_name(name: str, flag: str) -> str | None:
    """A display name for the From header, on one line: a line break in it would end the
    header and start another in every notification (RFC 5322 §2.2: no CR or LF in a field)."""
    if not name.isprintable():
        raise BadInput(
            f"{flag} holds a line break or another control character: give the name on one line."
        )
    if len(name) > 200:
        raise BadInput(f"{flag} is longer than 200 characters: give a shorter name.")
    return " ".join(name.split()) or None


async def _credential(session: AsyncSession, credential_id: int) -> tuple[Credential, Integration]:
    credential = await session.get(Credential, credential_id)
    if credential is None:
        raise NotFound(
            f"No credential {credential_id}: `mailgate credential list` shows the ones there are "
            "(authorize an account with `mailgate integration authorize`)."
        )
    integration = await session.get(Integration, credential.integration_id)
    assert integration is not None
    return credential, integration


def _provider_defaults(
    row: SmtpServer, opts: SmtpOptions, credential: Credential, integration: Integration
) -> None:
    """The provider's submission host, and the signed-in account as login and From — for what
    neither the admin nor the stored settings give."""
    if opts.host is None and not row.host:
        if integration.provider == "microsoft":
            opts.host = MICROSOFT_HOSTS.get(
                integration.cloud or "global", MICROSOFT_HOSTS["global"]
            )
        elif integration.provider == "google":
            opts.host = GOOGLE_HOST
        if opts.host is not None and opts.security is None:
            opts.security = "starttls"
    if credential.grant_type != APP_ONLY_GRANT and not row.username:
        opts.username = opts.username or credential.account


def missing_smtp_scope(credential: Credential, integration: Integration) -> str | None:
    """Why the credential cannot sign in to its provider's SMTP (it was authorized without the
    scope SMTP needs), or None."""
    granted = " ".join(credential.scopes or integration.scopes or [])
    if (
        integration.provider == "microsoft"
        and credential.grant_type != APP_ONLY_GRANT
        and "SMTP.Send" not in granted
    ):
        return (
            f"Credential {credential.id} was authorized without the SMTP.Send scope: run "
            f"`mailgate integration set {integration.name} --use smtp` (keep its other --use), "
            "then authorize the account again."
        )
    if integration.provider == "google" and GOOGLE_MAIL_SCOPE not in granted:
        return (
            f"Credential {credential.id} was authorized without the {GOOGLE_MAIL_SCOPE} scope, "
            "which Gmail's SMTP requires: authorize the account again with that scope."
        )
    return None


def _scope_warnings(credential: Credential, integration: Integration) -> list[str]:
    missing = missing_smtp_scope(credential, integration)
    if missing is not None:
        raise BadInput(missing)
    if integration.provider == "microsoft" and credential.grant_type == APP_ONLY_GRANT:
        return [
            "This is an app-only credential: Exchange Online accepts it for SMTP only when the "
            "app has the SMTP.SendAsApp application permission and its service principal may "
            "send as the From address; if the server refuses it, use a credential of a signed-in "
            "user with SMTP.Send."
        ]
    return []


@dataclass(frozen=True)
class CredentialChoice:
    """A credential as a server's form offers it: its account and integration, and, for SMTP,
    why it cannot send (None when it can)."""

    id: int
    account: str
    integration: str
    provider: str
    status: str
    smtp_problem: str | None

    @property
    def label(self) -> str:
        return f"{self.account} ({self.integration}, credential {self.id})"


async def credential_choices(ctx: Context) -> list[CredentialChoice]:
    """Every credential a mail server could sign in with, by account."""
    async with ctx.db.session() as session:
        rows = await session.execute(
            select(Credential, Integration)
            .join(Integration, Credential.integration_id == Integration.id)
            .order_by(Credential.account, Credential.id)
        )
        return [
            CredentialChoice(
                credential.id,
                credential.account,
                integration.name,
                integration.provider,
                credential.status,
                missing_smtp_scope(credential, integration),
            )
            for credential, integration in rows.all()
        ]


async def _resolve(
    ctx: Context, session: AsyncSession, row: SmtpServer, opts: SmtpOptions
) -> list[str]:
    warnings: list[str] = []
    if opts.credential_id is not None:
        credential, integration = await _credential(session, opts.credential_id)
        _provider_defaults(row, opts, credential, integration)
        warnings += _scope_warnings(credential, integration)
    warnings += await resolve_endpoint(
        ctx,
        session,
        row,
        opts,
        default_port=lambda security: DEFAULT_PORTS[security],
        reset_port=False,
        login_hint="the sending mailbox's address",
        default_security="starttls",  # submission on 587; Exchange Online has no port 465
    )
    if row.security == "starttls" and row.port == 465:
        warnings.append(
            "Port 465 is usually implicit TLS: if the connection hangs, use --security ssl."
        )
    if opts.from_address is not None:
        row.from_address = check_address(opts.from_address, "--from")
    if not row.from_address:
        if "@" not in row.username:
            raise BadInput("No From address given: use --from with the address mail is sent as.")
        row.from_address = check_address(row.username, "--from")
    if opts.from_name is not None:
        row.from_name = check_display_name(opts.from_name, "--from-name")
    return warnings


async def add_smtp(ctx: Context, name: str, opts: SmtpOptions) -> tuple[SmtpServer, list[str]]:
    check_name(name)
    async with ctx.db.session() as session:
        if await find_smtp(session, name) is not None:
            raise BadInput(
                f"An SMTP server {name!r} already exists: change it with `mailgate smtp set {name}`."
            )
        row = SmtpServer(name=name, host="", port=0, security="", username="", from_address="")
        warnings = await _resolve(ctx, session, row, opts)
        row.status = SmtpStatus.NEW
        session.add(row)
        auth = f"credential {row.credential_id}" if row.credential_id is not None else "password"
        detail = f"{row.username} at {row.host}:{row.port}, {auth}, from {row.from_address}"
        audit.record(session.sync_session, ctx.clock(), "smtp.add", name, detail)
        await session.commit()
        return row, warnings


async def set_smtp(ctx: Context, name: str, opts: SmtpOptions) -> tuple[SmtpServer, list[str]]:
    async with ctx.db.session() as session:
        row = await get_smtp(session, name)
        before = settings_of(smtp_view(row), row)
        warnings = await _resolve(ctx, session, row, opts)
        changed = changed_settings(before, settings_of(smtp_view(row), row))
        if changed:
            audit.record(session.sync_session, ctx.clock(), "smtp.set", name, changed)
        await session.commit()
        return row, warnings


async def delete_smtp(ctx: Context, name: str) -> None:
    """Delete an SMTP server; refused while a project sends through it by name."""
    async with ctx.db.session() as session:
        row = await get_smtp(session, name)
        users = list(await session.scalars(select(Project.key).where(Project.smtp == name)))
        if users:
            raise BadInput(
                f"Project {', '.join(users)} sends its mail through SMTP server {name!r}: choose "
                f"another server for it first (`mailgate project set {users[0]} --smtp NAME`)."
            )
        await session.delete(row)
        audit.record(session.sync_session, ctx.clock(), "smtp.delete", name)
        await session.commit()


async def find_smtp(session: AsyncSession, name: str) -> SmtpServer | None:
    return (await session.scalars(select(SmtpServer).where(SmtpServer.name == name))).first()


async def get_smtp(session: AsyncSession, name: str) -> SmtpServer:
    row = await find_smtp(session, name)
    if row is None:
        raise NotFound(
            f"No SMTP server {name!r}: `mailgate smtp list` shows the ones there are "
            "(add one with `mailgate smtp add`)."
        )
    return row


async def list_smtp(ctx: Context) -> list[SmtpServer]:
    async with ctx.db.session() as session:
        return list((await session.scalars(select(SmtpServer).order_by(SmtpServer.name))).all())


def smtp_view(row: SmtpServer) -> dict[str, Any]:
    """An SMTP server as shown anywhere — never the password."""
    return {
        "name": row.name,
        **endpoint_view(row),
        "from": row.from_address,
        "from_name": row.from_name,
        "status": row.status,
        "last_check_at": iso(row.last_check_at),
        "last_error": row.last_error,
        "warnings": password_warnings(row),
    }
