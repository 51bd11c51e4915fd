"""Service functions for credentials: store a grant, list, show, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx2
import structlog
from sqlalchemy import Update, select, update
from sqlalchemy.exc import IntegrityError

from mailgate.context import Context
from mailgate.errors import BadInput, MailgateError, NotFound
from mailgate.oauth.endpoint import TokenResponse
from mailgate.oauth.tokens import ACTIVE, REVOKED, RefreshPolicy, TokenKeeper, transition
from mailgate.store import audit
from mailgate.store.models import (
    Credential,
    CredentialEvent,
    Integration,
    OutboxMessage,
    SmtpServer,
)
from mailgate.store.vocabulary import CredentialEventKind, GrantType, OutboxStatus

log = structlog.get_logger(__name__)


async def store_grant(
    ctx: Context,
    integration: Integration,
    account: str,
    grant_type: str,
    response: TokenResponse,
    policy: RefreshPolicy | None = None,
) -> Credential:
    """Store the tokens of a completed grant.

    Authorizing the same account again under an integration updates its credential in place
    (status back to active), so whatever uses the credential keeps working.
    """
    policy = policy or RefreshPolicy()
    try:
        cred, kind = await _upsert_grant(ctx, integration, account, grant_type, response, policy)
    except IntegrityError:
        # Two first sign-ins of one account at once: the other inserted it; update it now.
        cred, kind = await _upsert_grant(ctx, integration, account, grant_type, response, policy)
    log.info("credential stored", credential=cred.id, integration=integration.name, change=kind)
    return cred


async def _upsert_grant(
    ctx: Context,
    integration: Integration,
    account: str,
    grant_type: str,
    response: TokenResponse,
    policy: RefreshPolicy,
) -> tuple[Credential, str]:
    now = ctx.clock()
    async with ctx.db.session() as session:
        cred = (
            await session.scalars(
                select(Credential).where(
                    Credential.integration_id == integration.id, Credential.account == account
                )
            )
        ).first()
        kind = CredentialEventKind.REAUTHORIZED
        if cred is None:
            kind = CredentialEventKind.AUTHORIZED
            cred = Credential(
                integration_id=integration.id, account=account, failure_count=0, created_at=now
            )
            session.add(cred)
        # A new grant is the one way out of every status, revoked included.
        cred.status = ACTIVE
        cred.grant_type = grant_type
        cred.scopes = list(response.scope) or list(
            integration.app_scopes
            if grant_type == GrantType.CLIENT_CREDENTIALS
            else integration.scopes
        )
        cred.access_token_enc = ctx.secrets.encrypt(response.access_token)
        cred.expires_at = policy.expires_at(response, now)
        if response.refresh_token:
            cred.refresh_token_enc = ctx.secrets.encrypt(response.refresh_token)
            cred.refresh_token_issued_at = now
        cred.last_refresh_at = now
        cred.last_error = None
        cred.failure_count = 0
        cred.next_attempt_at = None
        await session.flush()
        session.add(
            CredentialEvent(
                credential_id=cred.id, at=now, kind=kind, detail=f"{grant_type} for {account}"
            )
        )
        await session.execute(_resume_waiting_mail(cred.id, now))
        authorized = kind == CredentialEventKind.AUTHORIZED
        action = "credential.authorize" if authorized else "credential.reauthorize"
        detail = f"{grant_type} under integration {integration.name}"
        audit.record(session.sync_session, now, action, account, detail)
        await session.commit()
        return cred, kind


def _resume_waiting_mail(credential_id: int, now: datetime) -> Update:
    """The outbox's messages for SMTP servers that sign in with this credential, due now: those
    waiting for it to be authorized again go out at the next flush, not after their backoff."""
    servers = select(SmtpServer.id).where(SmtpServer.credential_id == credential_id)
    return (
        update(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.smtp_server_id.in_(servers),
            OutboxMessage.next_attempt_at > now,
        )
        .values(next_attempt_at=now)
    )


async def list_credentials(
    ctx: Context, integration: str | None = None
) -> list[tuple[Credential, str]]:
    async with ctx.db.session() as session:
        query = select(Credential, Integration.name).join(Integration).order_by(Credential.id)
        if integration is not None:
            query = query.where(Integration.name == integration)
        return [(c, n) for c, n in (await session.execute(query)).all()]


async def get_credential(
    ctx: Context, credential_id: int
) -> tuple[Credential, Integration, list[CredentialEvent]]:
    async with ctx.db.session() as session:
        cred = await session.get(Credential, credential_id)
        if cred is None:
            raise NotFound(
                f"No credential {credential_id}: `mailgate credential list` shows the ones there are."
            )
        integration = await session.get(Integration, cred.integration_id)
        assert integration is not None
        events = (
            await session.scalars(
                select(CredentialEvent)
                .where(CredentialEvent.credential_id == credential_id)
                .order_by(CredentialEvent.at.desc(), CredentialEvent.id.desc())
                .limit(50)
            )
        ).all()
        return cred, integration, list(events)


def credential_view(cred: Credential, integration_name: str) -> dict[str, Any]:
    """A credential as shown anywhere — never a token."""

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": cred.id,
        "integration": integration_name,
        "account": cred.account,
        "grant_type": cred.grant_type,
        "status": cred.status,
        "scopes": list(cred.scopes),
        "expires_at": iso(cred.expires_at),
        "last_refresh_at": iso(cred.last_refresh_at),
        "last_error": cred.last_error,
        "failure_count": cred.failure_count,
        "next_attempt_at": iso(cred.next_attempt_at),
        "has_refresh_token": cred.refresh_token_enc is not None,
        "refresh_token_issued_at": iso(cred.refresh_token_issued_at),
        "created_at": iso(cred.created_at),
    }


async def show_credential(ctx: Context, credential_id: int) -> dict[str, Any]:
    """A credential as shown (`credential_view`), with its history, oldest first."""
    cred, integration, events = await get_credential(ctx, credential_id)
    view = credential_view(cred, integration.name)
    view["history"] = [
        {"at": event.at.isoformat(), "event": event.kind, "detail": event.detail}
        for event in events
    ]
    return view


async def refresh_credential(ctx: Context, credential_id: int) -> dict[str, Any]:
    """Refresh the access token now, whatever its age: the credential as shown after it, with
    `ok` and, when the provider refused or could not be reached, `error`. Bad input (no such
    credential, an integration without the secret it needs) is raised, not reported."""
    await get_credential(ctx, credential_id)
    failure: MailgateError | None = None
    try:
        await TokenKeeper(ctx).refresh(credential_id)
    except BadInput:
        raise
    except MailgateError as error:
        failure = error
    cred, integration, _ = await get_credential(ctx, credential_id)
    view = credential_view(cred, integration.name)
    view["ok"] = failure is None
    if failure is not None:
        view["error"] = str(failure)
    # The refresh itself committed in the keeper's transaction; this records who asked for it.
    outcome = f"valid until {view['expires_at']}" if failure is None else f"failed: {failure}"
    async with ctx.db.session() as session:
        detail = f"by hand under integration {integration.name}: {outcome}"
        audit.record(session.sync_session, ctx.clock(), "credential.refresh", cred.account, detail)
        await session.commit()
    return view


async def revoke_credential(ctx: Context, credential_id: int) -> bool:
    """Forget the credential's tokens (status revoked); revoke at the provider when it can.

    Returns whether the provider confirmed the revocation (RFC 7009); Microsoft has no
    revocation endpoint, so there the tokens are only forgotten.
    """
    cred, integration, _ = await get_credential(ctx, credential_id)
    revoked_remotely = False
    token_enc = cred.refresh_token_enc or cred.access_token_enc
    if integration.revocation_endpoint and token_enc:
        keeper = TokenKeeper(ctx)
        client = keeper.client_config(integration)
        data = {"token": ctx.secrets.decrypt(token_enc), "client_id": client.client_id}
        if client.client_secret and client.token_auth == "client_secret_post":
            data["client_secret"] = client.client_secret
        try:
            async with ctx.http() as http:
                if client.client_secret and client.token_auth == "client_secret_basic":
                    response = await http.post(
                        integration.revocation_endpoint,
                        data=data,
                        auth=(client.client_id, client.client_secret),
                    )
                else:
                    response = await http.post(integration.revocation_endpoint, data=data)
            revoked_remotely = response.status_code == 200
        except httpx2.HTTPError:
            revoked_remotely = False
    now = ctx.clock()
    async with ctx.db.session() as session:
        row = await session.get(Credential, credential_id)
        assert row is not None
        row.status = transition(row.status, REVOKED)
        row.refresh_token_enc = None
        row.access_token_enc = None
        row.expires_at = None
        row.next_attempt_at = None
        detail = "revoked at the provider" if revoked_remotely else "tokens forgotten"
        session.add(
            CredentialEvent(
                credential_id=row.id, at=now, kind=CredentialEventKind.REVOKED, detail=detail
            )
        )
        where = f"under integration {integration.name}: {detail}"
        audit.record(session.sync_session, now, "credential.revoke", row.account, where)
        await session.commit()
    return revoked_remotely
