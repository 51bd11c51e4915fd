"""Credentials as the admin reviews them: each with the mailboxes and SMTP servers that sign in
with it, and the age of its refresh token — Microsoft ends a refresh token unused for 90 days,
and the token keeper refreshes idle credentials long before that, so an old one means upkeep
has stopped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.context import Context
from mailgate.oauth.credentials import credential_view, get_credential, show_credential
from mailgate.store.models import Credential, Integration, Mailbox, SmtpServer

# Microsoft: "refresh tokens ... are valid for 90 days" without use
# (learn.microsoft.com/entra/identity-platform/refresh-tokens); warned well before.
MICROSOFT_REFRESH_TOKEN_DAYS = 90
REFRESH_TOKEN_AGE_WARNING_DAYS = 30


async def credential_users(
    session: AsyncSession, credential_ids: Sequence[int]
) -> dict[int, dict[str, list[str]]]:
    """For each credential id, the names of the mailboxes and SMTP servers that use it."""
    used: dict[int, dict[str, list[str]]] = {
        cid: {"mailboxes": [], "smtp_servers": []} for cid in credential_ids
    }
    for table, key in ((Mailbox, "mailboxes"), (SmtpServer, "smtp_servers")):
        rows = await session.execute(
            select(table.credential_id, table.name)
            .where(table.credential_id.in_(list(credential_ids)))
            .order_by(table.name)
        )
        for cid, name in rows.all():
            if cid is not None:  # the query asked for these ids only
                used[cid][key].append(name)
    return used


def refresh_token_age_days(cred: Credential, now: datetime) -> int | None:
    """Whole days since the provider last issued the credential's refresh token."""
    if cred.refresh_token_enc is None or cred.refresh_token_issued_at is None:
        return None
    return (now - cred.refresh_token_issued_at).days


def _review(
    cred: Credential, integration: Integration, used: dict[str, list[str]], now: datetime
) -> dict[str, Any]:
    view = credential_view(cred, integration.name)
    age = refresh_token_age_days(cred, now)
    limit = MICROSOFT_REFRESH_TOKEN_DAYS if integration.provider == "microsoft" else None
    view.update(
        provider=integration.provider,
        used_by=used,
        refresh_token_age_days=age,
        refresh_token_limit_days=limit,
        refresh_token_old=age is not None and age >= REFRESH_TOKEN_AGE_WARNING_DAYS,
    )
    return view


async def credential_reviews(ctx: Context, integration: str | None = None) -> list[dict[str, Any]]:
    """Every credential (or one integration's) as `credential_view` shows it, plus its provider,
    `used_by` (mailboxes and SMTP servers) and its refresh token's age in days."""
    now = ctx.clock()
    async with ctx.db.session() as session:
        query = select(Credential, Integration).join(Integration).order_by(Credential.id)
        if integration is not None:
            query = query.where(Integration.name == integration)
        rows = (await session.execute(query)).all()
        used = await credential_users(session, [cred.id for cred, _ in rows])
    return [_review(cred, row, used[cred.id], now) for cred, row in rows]


async def credential_review(ctx: Context, credential_id: int) -> dict[str, Any]:
    """One credential as `credential_reviews` shows it, with its history (`show_credential`);
    `NotFound` when there is none."""
    history = (await show_credential(ctx, credential_id))["history"]
    cred, integration, _ = await get_credential(ctx, credential_id)
    async with ctx.db.session() as session:
        used = await credential_users(session, [credential_id])
    view = _review(cred, integration, used[credential_id], ctx.clock())
    view["history"] = history
    return view
