"""Reading an IMAP mailbox from the real Dovecot: exactly once, by UID, post-actions after commit,
backlog policies, UIDVALIDITY changes, size limits, IDLE push and reconnects."""

from __future__ import annotations

import asyncio

import pytest
from tests.support.dovecot import Dovecot
from tests.support.emulator import RunningEmulator
from tests.support.mail import ALICE, message, wait_for_receipts, with_mailbox

from mailgate.backoff import Backoff
from mailgate.context import Context
from mailgate.inbound import pipeline
from mailgate.inbound.mailboxes import destination_of
from mailgate.mail.imap import ImapClient
from mailgate.runtime import imap_mailbox
from mailgate.runtime.imap_mailbox import load, poll_once, receipts_of, run_mailbox
from mailgate.store.models import Mailbox
from mailgate.tracker.issues import list_issues

# Representative tests run on PostgreSQL too (the stores marker below); the rest on SQLite.


async def flags(dovecot: Dovecot, emulator: RunningEmulator) -> dict[str, set[str]]:
    """Subject → flags, seen through a second connection (password login)."""
    async with ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    ) as imap:
        await imap.login(ALICE, "alice-password")
        await imap.select("INBOX", readonly=True)
        out = {}
        for uid in await imap.uid_search("ALL"):
            raw = await imap.fetch(uid) or b""
            subject = next(
                line for line in raw.decode().splitlines() if line.startswith("Subject:")
            )
            responses = await imap.command(f"UID FETCH {uid} (FLAGS)")
            out[subject[9:]] = {
                f for r in responses for f in ("\\Seen", "\\Deleted") if f in r.text
            }
        return out


async def test_backlog_unseen_then_new_mail_once(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("old and read"))
    dovecot.deliver(ALICE, message("old unread"))
    async with ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    ) as imap:
        await imap.login(ALICE, "alice-password")
        await imap.select("INBOX")
        await imap.mark_seen((await imap.uid_search("ALL"))[0])
    row = await with_mailbox(ctx, emulator, dovecot)
    preview = await poll_once(ctx, "support", dry_run=True)
    assert len(preview.would_take) == 1
    assert await receipts_of(ctx, row.id) == []

    first = await poll_once(ctx, "support")
    assert len(first.taken) == 1
    dovecot.deliver(ALICE, message("new"))
    second = await poll_once(ctx, "support")
    assert len(second.taken) == 1
    assert (await poll_once(ctx, "support")).taken == []
    receipts = await receipts_of(ctx, row.id)
    assert [r.message_id for r in receipts] == ["old-unread@example.net", "new@example.net"]
    assert all(r.post_action_done_at for r in receipts)
    assert (await flags(dovecot, emulator))["new"] == {"\\Seen"}


async def test_mail_someone_read_first_is_still_taken(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    await with_mailbox(ctx, emulator, dovecot)
    assert (await poll_once(ctx, "support")).taken == []
    dovecot.deliver(ALICE, message("read by a person"))
    async with ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    ) as imap:
        await imap.login(ALICE, "alice-password")
        await imap.select("INBOX")
        await imap.mark_seen((await imap.uid_search("ALL"))[0])
    assert len((await poll_once(ctx, "support")).taken) == 1


@pytest.mark.parametrize(("backlog", "expected"), [("none", 0), ("all", 2)])
async def test_backlog_policies(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, backlog: str, expected: int
) -> None:
    dovecot.deliver(ALICE, message("one"))
    dovecot.deliver(ALICE, message("two"))
    await with_mailbox(ctx, emulator, dovecot, backlog=backlog)
    assert len((await poll_once(ctx, "support")).taken) == expected
    dovecot.deliver(ALICE, message("three"))
    assert len((await poll_once(ctx, "support")).taken) == 1


@pytest.mark.parametrize("after", ["delete", "move:Done"])
async def test_post_actions(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, after: str
) -> None:
    dovecot.create_folder(ALICE, "Done")
    dovecot.deliver(ALICE, message("handled"))
    await with_mailbox(ctx, emulator, dovecot, after=after)
    assert len((await poll_once(ctx, "support")).taken) == 1
    assert await flags(dovecot, emulator) == {}
    assert dovecot.mailbox_status(ALICE, "Done")["messages"] == (
        1 if after.startswith("move") else 0
    )


@pytest.mark.stores("sqlite", "postgresql")
async def test_crash_between_commit_and_post_action_repeats_only_the_post_action(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("committed"))
    row = await with_mailbox(ctx, emulator, dovecot, after="delete", backlog="all")
    status = dovecot.mailbox_status(ALICE)
    # As if a process committed the message, then died before deleting it on the server.
    async with ImapClient.connect(
        "127.0.0.1", dovecot.imaps_port, security="ssl", tls=dovecot.ssl_context()
    ) as imap:
        await imap.login(ALICE, "alice-password")
        await imap.select("INBOX")
        [uid] = await imap.uid_search("ALL")
        raw = await imap.fetch(uid) or b""
    taken = await pipeline.take(
        ctx,
        row.id,
        pipeline.MessageRef(status["uidvalidity"], uid),
        raw,
        destination=destination_of(row),
    )
    assert taken.status == "created"
    # The restart: the post-action is finished, nothing is taken again.
    report = await poll_once(ctx, "support")
    assert report.taken == [] and report.post_actions_finished == 1
    assert await flags(dovecot, emulator) == {}
    assert len(await receipts_of(ctx, row.id)) == 1
    assert [i["summary"] for i in await list_issues(ctx, "HELP")] == ["committed"]


@pytest.mark.stores("sqlite", "postgresql")
async def test_uidvalidity_change_takes_only_new_mail(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("before"))
    row = await with_mailbox(ctx, emulator, dovecot, after="seen", backlog="all")
    assert len((await poll_once(ctx, "support")).taken) == 1
    dovecot.change_uidvalidity(ALICE)
    dovecot.deliver(ALICE, message("after"))
    report = await poll_once(ctx, "support")
    assert len(report.taken) == 1 and len(report.skipped) == 1
    assert [r.message_id for r in await receipts_of(ctx, row.id)] == [
        "before@example.net",
        "after@example.net",
    ]


async def test_message_over_the_size_limit_is_quarantined_not_fetched(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("huge", size=50_000))
    dovecot.deliver(ALICE, message("small"))
    row = await with_mailbox(ctx, emulator, dovecot, max_message_bytes=20_000, backlog="all")
    report = await poll_once(ctx, "support")
    assert len(report.quarantined) == 1 and len(report.taken) == 1
    receipts = await receipts_of(ctx, row.id)
    huge = next(r for r in receipts if r.status == "quarantined")
    assert huge.sha256 == "" and "over the limit" in (huge.reason or "")  # never fetched
    assert (await flags(dovecot, emulator))["huge"] == set()  # left on the server, unread
    async with ctx.db.session() as session:
        fresh = await session.get(Mailbox, row.id)
        assert fresh is not None and fresh.quarantined == 1 and fresh.processed == 1


@pytest.mark.stores("sqlite", "postgresql")
async def test_a_backlog_is_taken_in_batches_in_uid_order(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches (fetched with one command, taken in one transaction, the next one fetched
    meanwhile) around a message over the size limit: every message once, in order, each with
    its post-action; the oversized one untouched."""
    monkeypatch.setattr(imap_mailbox, "BATCH", 2)
    subjects = ["m1", "m2", "m3", "huge", "m5", "m6", "m7"]
    for subject in subjects:
        dovecot.deliver(ALICE, message(subject, size=50_000 if subject == "huge" else 0))
    row = await with_mailbox(
        ctx, emulator, dovecot, max_message_bytes=20_000, backlog="all", after="seen"
    )
    report = await poll_once(ctx, "support")
    assert len(report.taken) == 6 and len(report.quarantined) == 1
    receipts = await receipts_of(ctx, row.id)
    assert [r.uid for r in receipts] == sorted(r.uid for r in receipts)
    assert [(r.message_id or "huge").split("@")[0] for r in receipts] == subjects
    assert all(r.post_action_done_at is not None for r in receipts)
    seen = await flags(dovecot, emulator)
    assert seen["huge"] == set()
    assert all(seen[s] == {"\\Seen"} for s in subjects if s != "huge")
    issues = await list_issues(ctx, "HELP")
    assert [i["summary"] for i in issues] == [s for s in subjects if s != "huge"]
    again = await poll_once(ctx, "support")
    assert again.taken == [] and again.quarantined == []


async def test_bulk_delete_removes_automated_mail_and_keeps_the_rest(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    auto_reply = message("Out of office").replace(
        b"Subject:", b"Auto-Submitted: auto-replied\nSubject:", 1
    )
    dovecot.deliver(ALICE, auto_reply)
    dovecot.deliver(ALICE, message("a person writes"))
    row = await with_mailbox(
        ctx, emulator, dovecot, backlog="all", after="seen", route={"bulk": "delete"}
    )
    report = await poll_once(ctx, "support")
    assert len(report.taken) == 2
    left = await flags(dovecot, emulator)
    assert left == {"a person writes": {"\\Seen"}}  # the auto-reply is gone from the server
    statuses = {r.message_id: (r.status, r.post_action) for r in await receipts_of(ctx, row.id)}
    assert statuses == {
        "Out-of-office@example.net": ("ignored", "delete"),
        "a-person-writes@example.net": ("created", None),
    }


async def test_a_list_copy_deleted_by_bulk_delete_does_not_take_the_direct_copy_with_it(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    """The customer writes to support@ and to a list support@ is on: the list's copy (same
    Message-ID) arrives first and is deleted as bulk mail; the direct copy is a person's mail."""
    direct = message("Order 42 missing")
    via_list = direct.replace(b"Subject:", b"List-Id: <orders.example.net>\nSubject:", 1)
    dovecot.deliver(ALICE, via_list)
    dovecot.deliver(ALICE, direct)
    row = await with_mailbox(
        ctx, emulator, dovecot, backlog="all", after="seen", route={"bulk": "delete"}
    )
    report = await poll_once(ctx, "support")
    assert len(report.taken) == 2 and report.skipped == []
    assert [(r.status, r.post_action) for r in await receipts_of(ctx, row.id)] == [
        ("ignored", "delete"),
        ("created", None),
    ]
    assert await flags(dovecot, emulator) == {"Order 42 missing": {"\\Seen"}}


@pytest.mark.stores("sqlite", "postgresql")
async def test_idle_push_and_reconnect_after_a_server_restart(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    row = await with_mailbox(ctx, emulator, dovecot, poll_seconds=3600)
    ctx.sleep = asyncio.sleep  # real waits: this test watches a live connection
    stop = asyncio.Event()
    loop = asyncio.create_task(run_mailbox(ctx, "support", stop, backoff=Backoff(base=0.2, cap=1)))
    try:
        for _ in range(100):
            async with ctx.db.session() as session:
                if (await session.get(Mailbox, row.id, populate_existing=True)).status == "idle":  # type: ignore[union-attr]
                    break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(dovecot.deliver, ALICE, message("pushed"))
        await wait_for_receipts(ctx, row.id, 1)  # by IDLE: the poll interval is an hour

        await asyncio.to_thread(dovecot.restart)
        await asyncio.to_thread(dovecot.deliver, ALICE, message("after restart"))
        await wait_for_receipts(ctx, row.id, 2)
    finally:
        stop.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert [r.message_id for r in await receipts_of(ctx, row.id)] == [
        "pushed@example.net",
        "after-restart@example.net",
    ]


async def test_revoked_grant_marks_the_mailbox(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    row = await with_mailbox(ctx, emulator, dovecot)
    emulator.state.revoke_account("microsoft", ALICE, revoke_access_tokens=True)
    with pytest.raises(Exception, match="AADSTS50173"):
        await poll_once(ctx, "support")
    async with ctx.db.session() as session:
        fresh = await session.get(Mailbox, row.id)
        assert fresh is not None and fresh.status == "needs-reauthorization"


async def test_expired_token_is_refreshed_once_and_the_login_retried(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("after a refresh"))
    await with_mailbox(ctx, emulator, dovecot, backlog="all")
    emulator.state.advance(2 * 3600)  # Dovecot's view: expired; mailgate's clock: still valid
    assert len((await poll_once(ctx, "support")).taken) == 1
    assert emulator.state.count_requests(endpoint="token", grant_type="refresh_token") == 1


@pytest.mark.stores("sqlite", "postgresql")
async def test_an_interrupted_backlog_is_finished_at_the_next_poll(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    for subject in ("one", "two", "three"):
        dovecot.deliver(ALICE, message(subject))
    row = await with_mailbox(ctx, emulator, dovecot)  # backlog: unseen
    real_take = pipeline.take_many
    calls = 0

    async def dies_after_the_first(*args: object, **kwargs: object) -> list[pipeline.Taken]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the process dies here")
        return await real_take(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(imap_mailbox, "BATCH", 1)  # one message per transaction
    monkeypatch.setattr(pipeline, "take_many", dies_after_the_first)
    with pytest.raises(ConnectionError):
        await poll_once(ctx, "support")
    monkeypatch.setattr(pipeline, "take_many", real_take)
    report = await poll_once(ctx, "support")
    assert len(report.taken) == 2
    assert sorted(r.message_id or "" for r in await receipts_of(ctx, row.id)) == [
        "one@example.net",
        "three@example.net",
        "two@example.net",
    ]


@pytest.mark.stores("sqlite", "postgresql")
async def test_mail_announced_while_processing_is_not_left_waiting_for_idle(
    ctx: Context, emulator: RunningEmulator, dovecot: Dovecot
) -> None:
    dovecot.deliver(ALICE, message("first"))
    row = await with_mailbox(ctx, emulator, dovecot, backlog="none", poll_seconds=3600)
    ctx.sleep = asyncio.sleep
    delivered = False
    real_take = pipeline.take_many

    async def deliver_meanwhile(*args: object, **kwargs: object) -> list[pipeline.Taken]:
        nonlocal delivered
        taken = await real_take(*args, **kwargs)  # type: ignore[arg-type]
        if not delivered:  # arrives after the search, announced in a later command's reply
            delivered = True
            await asyncio.to_thread(dovecot.deliver, ALICE, message("meanwhile"))
        return taken

    import mailgate.runtime.imap_mailbox as reader

    original = reader.pipeline.take_many
    reader.pipeline.take_many = deliver_meanwhile  # type: ignore[assignment]
    stop = asyncio.Event()
    loop = asyncio.create_task(run_mailbox(ctx, "support", stop, idle_renew=3600))
    try:
        for _ in range(100):
            if (await load(ctx, "support")).status == "idle":
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(dovecot.deliver, ALICE, message("second"))
        # "second" by IDLE; "meanwhile" without waiting for the hour-long IDLE renewal
        await wait_for_receipts(ctx, row.id, 2, seconds=10)
    finally:
        reader.pipeline.take_many = original
        stop.set()
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert [r.message_id for r in await receipts_of(ctx, row.id)] == [
        "second@example.net",
        "meanwhile@example.net",
    ]
