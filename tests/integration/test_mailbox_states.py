"""Each mailbox's live state on the dashboard, from what its loop records: a mailbox the
supervisor keeps on IDLE at the real Dovecot shows "IDLE connected", then the message delivered
to it with its issue and counts, and "not running" once the process stops; a refused sign-in
shows the catalog's diagnosis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, message, with_mailbox

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.runtime.imap_mailbox import poll_once
from mailgate.runtime.overview import Activity, Counts, MailboxState, mailbox_states
from mailgate.runtime.supervisor import Supervisor

pytestmark = pytest.mark.stores("sqlite", "postgresql")


async def state_when(
    ctx: Context, wanted: Callable[[MailboxState], bool], seconds: float = 15
) -> MailboxState:
    for _ in range(int(seconds * 10)):
        [state] = await mailbox_states(ctx)
        if wanted(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"the mailbox never got there; last seen: {state}")


async def test_a_mailbox_on_idle_shows_it_then_its_last_message_and_counts(
    settings: Settings, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    live = Context.open(settings)  # the real clock and sleep, like a running process
    try:
        await idle_then_a_message(live, emulator, dovecot)
    finally:
        await live.close()


async def idle_then_a_message(live: Context, emulator: RunningEmulator, dovecot: Dovecot) -> None:
    await with_mailbox(live, emulator, dovecot, poll_seconds=3600)
    [before] = await mailbox_states(live)
    assert (before.activity, before.words, before.running) == (
        Activity.NOT_RUNNING,
        "not running",
        False,
    )
    assert before.last_message is None and before.counts == Counts()
    supervisor = Supervisor(live)
    running = asyncio.create_task(supervisor.run())
    try:
        idle = await state_when(live, lambda s: s.activity == Activity.IDLE)
        assert (idle.words, idle.running, idle.last_error) == ("IDLE connected", True, None)
        await asyncio.to_thread(dovecot.deliver, ALICE, message("Printer on fire"))
        # Taken by IDLE (the poll interval is an hour), and still connected afterwards.
        after = await state_when(live, lambda s: s.counts.taken == 1)
        assert after.activity == Activity.IDLE
        assert after.counts == Counts(taken=1, created=1)
        last = after.last_message
        assert last is not None
        assert (last.issue, last.summary, last.outcome) == ("HELP-1", "Printer on fire", "created")
        assert last.sender == "customer@example.net"
        assert last.message_id == "Printer-on-fire@example.net"
        data = after.as_json()
        assert (data["state"], data["words"], data["href"]) == (
            "idle",
            "IDLE connected",
            "/mailboxes/support",
        )
        assert data["counts"]["created"] == 1 and data["last_message"]["issue"] == "HELP-1"
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 20)
    [stopped] = await mailbox_states(live)
    assert stopped.activity == Activity.NOT_RUNNING  # the status says idle; nobody holds it
    assert stopped.last_message == last and stopped.counts.created == 1


async def test_a_refused_sign_in_shows_as_failing_with_the_diagnosis(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await with_mailbox(ctx, emulator, dovecot, credential_id=None, password="not-her-password")
    with pytest.raises(MailgateError):
        await poll_once(ctx, "support")
    [state] = await mailbox_states(ctx)
    assert (state.activity, state.words) == (Activity.FAILING, "sign-in refused")
    assert state.failing_since == ctx.clock() and not state.running
    assert state.last_error is not None
    assert state.last_error.startswith("The server refused the username or password")
