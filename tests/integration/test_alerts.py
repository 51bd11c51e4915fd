"""Alerts to the admin: one message when an incident starts, one when it ends, never more than one
per incident an hour; a mailbox must have been failing for 15 minutes. Time is injected."""

from __future__ import annotations

import dataclasses
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select, update
from tests.support.clock import FakeClock
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.keeper import microsoft_credential
from tests.support.mail import with_mailbox

from mailgate.context import Context
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.outbound.alerts import run_check
from mailgate.store.models import Credential, Mailbox, OutboxMessage

pytestmark = pytest.mark.stores("sqlite", "postgresql")


@pytest.fixture
async def admin_ctx(ctx: Context) -> Context:
    await add_smtp(
        ctx,
        "out",
        SmtpOptions(
            host="127.0.0.1",
            security="none",
            username="support@example.com",
            password="not used here",
        ),
    )
    return dataclasses.replace(
        ctx, settings=dataclasses.replace(ctx.settings, admin_email="admin@example.com")
    )


async def alerts(ctx: Context) -> list[str]:
    async with ctx.db.session() as session:
        raws = (
            await session.scalars(
                select(OutboxMessage.raw)
                .where(OutboxMessage.kind == "alert")
                .order_by(OutboxMessage.id)
            )
        ).all()
    return [str(message_from_bytes(raw, policy=policy.default)["Subject"]) for raw in raws]


async def set_status(ctx: Context, model: type[Credential] | type[Mailbox], status: str) -> None:
    async with ctx.db.session() as session, session.begin():
        await session.execute(update(model).values(status=status, last_error="test says so"))


async def test_a_credential_needing_reauthorization_alerts_once_and_recovers_once(
    admin_ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    ctx = admin_ctx
    await microsoft_credential(ctx, emulator)
    assert await run_check(ctx) == []
    await set_status(ctx, Credential, "needs-reauthorization")
    [problem] = await run_check(ctx)
    assert problem.startswith("PROBLEM: credential 1")
    clock.advance(minutes=30)
    assert await run_check(ctx) == []  # still the same incident: no second message
    await set_status(ctx, Credential, "active")
    [recovered] = await run_check(ctx)
    assert recovered.startswith("RECOVERED: credential 1")
    assert await run_check(ctx) == []
    subjects = await alerts(ctx)
    assert [s.split(":")[0] for s in subjects] == ["[mailgate] PROBLEM", "[mailgate] RECOVERED"]
    async with ctx.db.session() as session:
        recipients = (await session.scalars(select(OutboxMessage.recipients))).all()
    assert recipients == [["admin@example.com"], ["admin@example.com"]]


async def test_the_same_incident_again_within_the_hour_is_not_announced_again(
    admin_ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    ctx = admin_ctx
    await microsoft_credential(ctx, emulator)
    await set_status(ctx, Credential, "needs-reauthorization")
    await run_check(ctx)
    await set_status(ctx, Credential, "active")
    await run_check(ctx)
    clock.advance(minutes=10)
    await set_status(ctx, Credential, "needs-reauthorization")
    assert await run_check(ctx) == []  # flapping
    assert len(await alerts(ctx)) == 2
    clock.advance(minutes=30)
    assert await run_check(ctx) == []  # still within the hour of the last message
    clock.advance(minutes=31)
    [again] = await run_check(ctx)  # still broken an hour later: said again, not kept silent
    assert again.startswith("PROBLEM: credential 1")


async def test_a_mailbox_is_announced_after_15_minutes_of_failing(
    admin_ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, clock: FakeClock
) -> None:
    ctx = admin_ctx
    await with_mailbox(ctx, emulator, dovecot)
    await set_status(ctx, Mailbox, "failing")
    assert await run_check(ctx) == []
    clock.advance(minutes=14)
    assert await run_check(ctx) == []
    clock.advance(minutes=2)
    [problem] = await run_check(ctx)
    assert problem.startswith("PROBLEM: mailbox support is failing")


async def test_without_an_admin_address_nothing_is_sent(
    ctx: Context, emulator: RunningEmulator
) -> None:
    await microsoft_credential(ctx, emulator)
    await set_status(ctx, Credential, "needs-reauthorization")
    assert await run_check(ctx) == []
    assert await alerts(ctx) == []


async def test_a_client_secret_expiring_within_14_days_is_announced(
    admin_ctx: Context, emulator: RunningEmulator, clock: FakeClock
) -> None:
    from datetime import timedelta

    from mailgate.store.models import Integration

    ctx = admin_ctx
    await microsoft_credential(ctx, emulator)
    async with ctx.db.session() as session, session.begin():
        expires = (clock() + timedelta(days=20)).date()
        await session.execute(update(Integration).values(client_secret_expires=expires))
    assert await run_check(ctx) == []
    clock.advance(days=7)
    [problem] = await run_check(ctx)
    assert "client secret of integration m365 expires" in problem
    assert "--client-secret-file" in problem
