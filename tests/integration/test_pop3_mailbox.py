"""Reading a POP3 mailbox from the real Dovecot: UIDL tracking, DELE only after commit."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, message, with_mailbox

from mailgate.context import Context
from mailgate.runtime import pop3_mailbox
from mailgate.runtime.imap_mailbox import receipts_of
from mailgate.store.models import Receipt

pytestmark = pytest.mark.stores("sqlite", "postgresql")


@pytest.mark.parametrize("security", ["ssl", "starttls"])
async def test_messages_left_on_the_server_are_taken_once(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, security: str
) -> None:
    dovecot.deliver(ALICE, message("first"))
    port = dovecot.pop3s_port if security == "ssl" else dovecot.pop3_port
    row = await with_mailbox(
        ctx, emulator, dovecot, protocol="pop3", port=port, security=security, after="seen"
    )
    assert len((await pop3_mailbox.poll_once(ctx, "support", dry_run=True)).would_take) == 1
    assert len((await pop3_mailbox.poll_once(ctx, "support")).taken) == 1
    dovecot.deliver(ALICE, message("second"))
    assert len((await pop3_mailbox.poll_once(ctx, "support")).taken) == 1
    assert (await pop3_mailbox.poll_once(ctx, "support")).taken == []
    assert dovecot.mailbox_status(ALICE)["messages"] == 2  # still there: --after seen
    assert [r.message_id for r in await receipts_of(ctx, row.id)] == [
        "first@example.net",
        "second@example.net",
    ]


async def test_delete_happens_after_commit(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("to delete"))
    row = await with_mailbox(
        ctx, emulator, dovecot, protocol="pop3", port=dovecot.pop3s_port, after="delete"
    )
    assert len((await pop3_mailbox.poll_once(ctx, "support")).taken) == 1
    assert dovecot.mailbox_status(ALICE)["messages"] == 0
    [receipt] = await receipts_of(ctx, row.id)
    assert receipt.post_action_done_at is not None and receipt.sha256


async def test_backlog_none_skips_what_is_there(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("old"))
    row = await with_mailbox(
        ctx, emulator, dovecot, protocol="pop3", port=dovecot.pop3s_port, backlog="none"
    )
    assert (await pop3_mailbox.poll_once(ctx, "support")).taken == []
    dovecot.deliver(ALICE, message("new"))
    assert len((await pop3_mailbox.poll_once(ctx, "support")).taken) == 1
    statuses = [(r.message_id, r.status) for r in await receipts_of(ctx, row.id)]
    assert statuses == [(None, "skipped"), ("new@example.net", "created")]


async def test_expired_token_is_refreshed_once(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("after refresh"))
    await with_mailbox(ctx, emulator, dovecot, protocol="pop3", port=dovecot.pop3s_port)
    emulator.state.advance(2 * 3600)
    assert len((await pop3_mailbox.poll_once(ctx, "support")).taken) == 1
    assert emulator.state.count_requests(endpoint="token", grant_type="refresh_token") == 1


async def test_a_post_action_a_crash_left_pending_is_finished_once(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    """Committed, then a crash before the post-action was marked: the next poll finishes it
    (here "seen": nothing to do on POP3) and it is not pending again after."""
    dovecot.deliver(ALICE, message("before the crash"))
    row = await with_mailbox(ctx, emulator, dovecot, protocol="pop3", port=dovecot.pop3s_port)
    assert len((await pop3_mailbox.poll_once(ctx, "support")).taken) == 1
    [receipt] = await receipts_of(ctx, row.id)
    async with ctx.db.session() as session, session.begin():
        await session.execute(
            update(Receipt).where(Receipt.id == receipt.id).values(post_action_done_at=None)
        )
    assert (await pop3_mailbox.poll_once(ctx, "support")).post_actions_finished == 1
    assert (await pop3_mailbox.poll_once(ctx, "support")).post_actions_finished == 0
    assert dovecot.mailbox_status(ALICE)["messages"] == 1  # "seen" keeps it on the server
