"""Service functions for integrations: add, change, show, delete.

The CLI, the web UI and the API call these; rules live here once.
"""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate import names
from mailgate.context import Context
from mailgate.errors import BadInput, NotFound
from mailgate.providers import (
    GOOGLE_AUTH_PARAMS,
    GOOGLE_SCOPES,
    TOKEN_AUTH_METHODS,
    Endpoints,
    app_scopes_from,
    check_cloud,
    check_endpoints,
    check_provider,
    check_tenant,
    check_uses,
    default_tenant,
    discover,
    generic_scopes,
    generic_token_auth,
    google_endpoints,
    microsoft_app_scopes,
    microsoft_endpoints,
    microsoft_scopes,
)
from mailgate.store import audit
from mailgate.store.models import Credential, Integration, Mailbox
from mailgate.store.vocabulary import CredentialStatus

SECRET_EXPIRY_WARNING_DAYS = 14
_ENDPOINT_FIELDS = (
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
)
# What the audit log names when an integration changes (the secret is said apart, never shown).
_AUDITED_FIELDS = (
    "client_id",
    "client_secret_expires",
    "tenant",
    "cloud",
    "account_type",
    "uses",
    "authority",
    "discovery_url",
    *_ENDPOINT_FIELDS,
    "revocation_endpoint",
    "scopes",
    "app_scopes",
    "token_auth",
)


@dataclass
class IntegrationOptions:
    """What the admin gave; None means "not given" (keep the current value or the preset's)."""

    provider: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_expires: date | None = None
    tenant: str | None = None
    cloud: str | None = None
    account_type: str | None = None
    uses: list[str] | None = None
    authority: str | None = None
    discovery_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    scopes: list[str] | None = None
    app_scopes: list[str] | None = None
    token_auth: str | None = None

    def __repr__(self) -> str:  # never show the secret
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}
        if "client_secret" in given:
            given["client_secret"] = "<hidden>"
        return f"IntegrationOptions({given})"


def check_name(name: str) -> str:
    return names.check_name("Integration", name)


async def _resolve(ctx: Context, row: Integration, opts: IntegrationOptions, is_new: bool) -> None:
    """Fill `row` from the options and the provider's preset (and discovery, for generic)."""
    provider = row.provider
    _refuse_foreign_options(provider, opts)
    if opts.client_id is not None:
        if not opts.client_id.strip():
            raise BadInput("The client ID is empty: give the application (client) ID.")
        if len(opts.client_id.strip()) > 500:
            raise BadInput("The client ID is longer than 500 characters: give the client ID only.")
        row.client_id = opts.client_id.strip()
    if opts.client_secret_expires is not None:
        row.client_secret_expires = opts.client_secret_expires
    if opts.token_auth is not None:
        if opts.token_auth not in TOKEN_AUTH_METHODS:
            raise BadInput(
                f"Unknown token endpoint authentication {opts.token_auth!r}: use "
                "client_secret_basic or client_secret_post."
            )
        row.token_auth = opts.token_auth

    endpoints: Endpoints | None = None
    preset_changed = is_new
    if provider == "microsoft":
        if opts.account_type is not None:
            if opts.account_type not in ("work", "personal"):
                raise BadInput(f"Unknown account type {opts.account_type!r}: use work or personal.")
            row.account_type = opts.account_type
        for name in ("tenant", "cloud", "authority", "uses"):
            if getattr(opts, name) is not None:
                preset_changed = True
        row.tenant = check_tenant(opts.tenant or row.tenant or default_tenant(row.account_type))
        row.cloud = opts.cloud or row.cloud or "global"
        check_cloud(row.cloud)
        row.uses = (
            check_uses(opts.uses) if opts.uses is not None else (row.uses or ["imap", "smtp"])
        )
        if opts.authority is not None:
            row.authority = opts.authority.rstrip("/") or None
        if row.account_type == "personal" and row.tenant not in ("consumers", "common"):
            raise BadInput(
                "Personal Microsoft accounts sign in through the consumers (or common) tenant: "
                "use --tenant consumers."
            )
        if preset_changed:
            endpoints = microsoft_endpoints(row.tenant, row.cloud, row.authority)
            if opts.scopes is None:
                row.scopes = microsoft_scopes(row.cloud, row.uses)
            if opts.app_scopes is None:
                row.app_scopes = microsoft_app_scopes(row.cloud)
        row.token_auth = opts.token_auth or row.token_auth or "client_secret_post"
    elif provider == "google":
        if opts.authority is not None:
            row.authority = opts.authority.rstrip("/") or None
            preset_changed = True
        if preset_changed:
            endpoints = google_endpoints(row.authority)
        row.scopes = row.scopes or list(GOOGLE_SCOPES)
        row.auth_params = dict(GOOGLE_AUTH_PARAMS)
        row.token_auth = opts.token_auth or row.token_auth or "client_secret_post"
    else:
        if opts.discovery_url is not None:
            row.discovery_url = opts.discovery_url
            endpoints = await discover(opts.discovery_url, ctx.http)
        elif is_new and not (opts.token_endpoint and opts.authorization_endpoint):
            raise BadInput(
                "A generic integration needs the provider's discovery URL (--discovery-url), or "
                "its authorization and token endpoints (--authorization-endpoint, "
                "--token-endpoint)."
            )
        if endpoints is not None and opts.token_auth is None:
            row.token_auth = generic_token_auth(endpoints.token_auth_methods)
        row.token_auth = row.token_auth or "client_secret_basic"
        if opts.scopes is None and not row.scopes:
            row.scopes = generic_scopes(endpoints.scopes_supported if endpoints else [])

    if endpoints is not None:
        for name in (
            "authorization_endpoint",
            "token_endpoint",
            "device_authorization_endpoint",
            "revocation_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "issuer",
        ):
            setattr(row, name, getattr(endpoints, name))
    for name in _ENDPOINT_FIELDS:
        value = getattr(opts, name)
        if value is not None:
            setattr(row, name, value.strip() or None)
    if not row.token_endpoint:
        raise BadInput("The token endpoint is empty: give the provider's token endpoint URL.")
    check_endpoints(
        Endpoints(
            token_endpoint=row.token_endpoint,
            authorization_endpoint=row.authorization_endpoint,
            device_authorization_endpoint=row.device_authorization_endpoint,
            revocation_endpoint=row.revocation_endpoint,
            userinfo_endpoint=row.userinfo_endpoint,
            jwks_uri=row.jwks_uri,
        )
    )
    if opts.scopes is not None:
        row.scopes = _clean_scopes(opts.scopes)
    if opts.app_scopes is not None:
        row.app_scopes = _clean_scopes(opts.app_scopes)
    elif provider == "generic" and (is_new or opts.scopes is not None):
        row.app_scopes = app_scopes_from(row.scopes)
    if opts.client_secret is not None:
        secret = opts.client_secret.strip()
        if not secret:
            raise BadInput("The client secret given is empty: give the secret's value.")
        row.client_secret_enc = ctx.secrets.encrypt(secret)
        # A new secret clears the provider's refusal of the old one.
        row.client_error = None


def _clean_scopes(scopes: list[str]) -> list[str]:
    cleaned = [s for scope in scopes for s in scope.split() if s]
    if not cleaned:
        raise BadInput("No scope given: give at least one --scope.")
    return list(dict.fromkeys(cleaned))


def _refuse_foreign_options(provider: str, opts: IntegrationOptions) -> None:
    only_microsoft = ("tenant", "cloud", "account_type", "uses")
    if provider != "microsoft":
        for name in only_microsoft:
            if getattr(opts, name) is not None:
                flag = "--" + name.replace("_", "-")
                raise BadInput(f"{flag} applies to Microsoft integrations only: leave it out.")
    if provider != "generic" and opts.discovery_url is not None:
        raise BadInput(
            "--discovery-url applies to generic integrations only: the Microsoft and Google "
            "presets know their endpoints."
        )
    if provider == "generic" and opts.authority is not None:
        raise BadInput(
            "--authority applies to the Microsoft and Google presets: give a generic provider's "
            "--discovery-url or endpoints instead."
        )


async def add_integration(ctx: Context, name: str, opts: IntegrationOptions) -> Integration:
    """Create an integration from a provider preset and the admin's options."""
    ctx.settings.require_https_base_url()
    check_name(name)
    if opts.provider is None:
        raise BadInput("No provider given: use --provider microsoft, google or generic.")
    check_provider(opts.provider)
    if not opts.client_id:
        raise BadInput(
            "No client ID given: use --client-id with the app's application (client) ID."
        )
    async with ctx.db.session() as session:
        if await _find(session, name) is not None:
            raise BadInput(
                f"An integration named {name!r} already exists: change it with "
                f"`mailgate integration set {name} …` or choose another name."
            )
        row = Integration(
            name=name,
            provider=opts.provider,
            uses=[],
            scopes=[],
            app_scopes=[],
            auth_params={},
            token_auth="",
        )
        await _resolve(ctx, row, opts, is_new=True)
        session.add(row)
        secret = "client secret set" if row.client_secret_enc else "no client secret"
        detail = f"{row.provider}, client ID {row.client_id}, {secret}"
        audit.record(session.sync_session, ctx.clock(), "integration.add", name, detail)
        await session.commit()
        return row


async def set_integration(ctx: Context, name: str, opts: IntegrationOptions) -> Integration:
    """Change an integration; its credentials (and the mailboxes using them) stay."""
    async with ctx.db.session() as session:
        row = await get_integration(session, name)
        if opts.provider is not None and opts.provider != row.provider:
            raise BadInput(
                f"Integration {name!r} is a {row.provider} integration and cannot change provider: "
                "add a new integration instead."
            )
        if (
            opts.authority is not None
            or opts.discovery_url is not None
            or any(getattr(opts, n) is not None for n in _ENDPOINT_FIELDS)
        ):
            ctx.settings.require_https_base_url()
        before = _audited(row)
        await _resolve(ctx, row, opts, is_new=False)
        after = _audited(row)
        changed = [n.replace("_", " ") for n in _AUDITED_FIELDS if before[n] != after[n]]
        if opts.client_secret is not None:
            changed.append("client secret changed")
        if changed:
            detail = "changed: " + ", ".join(changed)
            audit.record(session.sync_session, ctx.clock(), "integration.set", name, detail)
        if opts.client_secret is not None:
            # Credentials held back by the refused secret are retried now, not at their backoff.
            for cred in (
                await session.scalars(select(Credential).where(Credential.integration_id == row.id))
            ).all():
                if cred.status == CredentialStatus.REFRESH_FAILING:
                    cred.next_attempt_at = None
        await session.commit()
        return row


def _audited(row: Integration) -> dict[str, Any]:
    return {name: copy(getattr(row, name)) for name in _AUDITED_FIELDS}


async def _find(session: AsyncSession, name: str) -> Integration | None:
    result = await session.scalars(select(Integration).where(Integration.name == name))
    return result.first()


async def get_integration(session: AsyncSession, name: str) -> Integration:
    row = await _find(session, name)
    if row is None:
        raise NotFound(
            f"No integration named {name!r}: `mailgate integration list` shows the ones there are."
        )
    return row


async def list_integrations(ctx: Context) -> list[tuple[Integration, int]]:
    """Every integration with its number of credentials."""
    async with ctx.db.session() as session:
        counts = dict(
            (
                await session.execute(
                    select(Credential.integration_id, func.count()).group_by(
                        Credential.integration_id
                    )
                )
            ).all()
        )
        rows = (await session.scalars(select(Integration).order_by(Integration.name))).all()
        return [(row, counts.get(row.id, 0)) for row in rows]


async def integration_views(ctx: Context) -> tuple[list[dict[str, Any]], list[str]]:
    """Every integration as shown (`integration_view`), and the warnings they call for."""
    now = ctx.clock()
    rows = await list_integrations(ctx)
    views = [integration_view(row, ctx.settings.redirect_url, now, count) for row, count in rows]
    return views, [warning for row, _ in rows for warning in integration_warnings(row, now)]


async def show_integration(ctx: Context, name: str) -> tuple[dict[str, Any], list[str]]:
    """One integration as shown, and its warnings; `NotFound` when there is none."""
    async with ctx.db.session() as session:
        row = await get_integration(session, name)
        credentials = await session.scalar(
            select(func.count()).where(Credential.integration_id == row.id)
        )
    now = ctx.clock()
    view = integration_view(row, ctx.settings.redirect_url, now, credentials or 0)
    return view, integration_warnings(row, now)


async def delete_integration(ctx: Context, name: str, *, force: bool = False) -> None:
    async with ctx.db.session() as session:
        row = await get_integration(session, name)
        count = await session.scalar(
            select(func.count()).select_from(Credential).where(Credential.integration_id == row.id)
        )
        used_by = (
            await session.scalars(
                select(Mailbox.name)
                .join(Credential, Mailbox.credential_id == Credential.id)
                .where(Credential.integration_id == row.id)
            )
        ).all()
        if used_by:
            raise BadInput(
                f"Integration {name!r} signs in mailbox(es) {', '.join(used_by)}: give them "
                "another credential or delete them first."
            )
        if count and not force:
            raise BadInput(
                f"Integration {name!r} has {count} authorized account(s): delete it with --force "
                "to drop them too, or keep it."
            )
        await session.delete(row)
        detail = f"with its {count} credential(s)" if count else None
        audit.record(session.sync_session, ctx.clock(), "integration.delete", name, detail)
        await session.commit()


def secret_expiry_days(row: Integration, now: datetime) -> int | None:
    if row.client_secret_expires is None:
        return None
    return (row.client_secret_expires - now.date()).days


def integration_warnings(row: Integration, now: datetime) -> list[str]:
    """What the admin should act on soon, in plain sentences."""
    warnings = []
    if row.client_error:
        warnings.append(f"Integration {row.name!r}: {row.client_error}")
    days = secret_expiry_days(row, now)
    if days is not None and days < 0:
        warnings.append(
            f"Integration {row.name!r}: the client secret expired on {row.client_secret_expires}: "
            f"create a new one and run `mailgate integration set {row.name} --client-secret-file F "
            "--client-secret-expires YYYY-MM-DD`."
        )
    elif days is not None and days <= SECRET_EXPIRY_WARNING_DAYS:
        warnings.append(
            f"Integration {row.name!r}: the client secret expires in {days} day(s), on "
            f"{row.client_secret_expires}: create a new one now and run `mailgate integration set "
            f"{row.name} --client-secret-file F --client-secret-expires YYYY-MM-DD`."
        )
    return warnings


def integration_view(
    row: Integration, redirect_url: str, now: datetime, credentials: int
) -> dict[str, Any]:
    """The integration as shown by the CLI, the API and the pages — never the secret."""
    days = secret_expiry_days(row, now)
    if row.client_error:
        status = "client-rejected"
    elif days is not None and days < 0:
        status = "secret-expired"
    elif days is not None and days <= SECRET_EXPIRY_WARNING_DAYS:
        status = "secret-expiring"
    else:
        status = "ok"
    return {
        "name": row.name,
        "provider": row.provider,
        "client_id": row.client_id,
        "client_secret_set": row.client_secret_enc is not None,
        "client_secret_expires": row.client_secret_expires.isoformat()
        if row.client_secret_expires
        else None,
        "client_secret_expires_in_days": days,
        "tenant": row.tenant,
        "cloud": row.cloud,
        "account_type": row.account_type,
        "uses": list(row.uses),
        "authority": row.authority,
        "discovery_url": row.discovery_url,
        "issuer": row.issuer,
        "authorization_endpoint": row.authorization_endpoint,
        "token_endpoint": row.token_endpoint,
        "device_authorization_endpoint": row.device_authorization_endpoint,
        "revocation_endpoint": row.revocation_endpoint,
        "redirect_url": redirect_url,
        "scopes": list(row.scopes),
        "app_scopes": list(row.app_scopes),
        "token_auth": row.token_auth,
        "auth_params": dict(row.auth_params),
        "status": status,
        "problem": row.client_error,
        "credentials": credentials,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
