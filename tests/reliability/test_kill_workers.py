"""The kill test: three `mailgate worker` processes share twenty Dovecot mailboxes on one
PostgreSQL while mail arrives, and one worker after another is SIGKILLed at a random moment and
started again. Afterwards, with every worker stopped by SIGTERM: each message delivered is
exactly one issue or one comment, with exactly one receipt; each mailbox's post-action (seen,
delete, move) was done on the server, nothing is left unread; each new issue was acknowledged
exactly once, and no notification reached anyone twice.

The moments, the victims and the mail are drawn from one seed, printed at the start and in any
failure (MAILGATE_KILL_SEED=N runs that story again). The CI variant delivers 300 messages with
at least 10 kills; with MAILGATE_SOAK=1, 2,000 with at least 30, on SQLite too (several
processes on one database file).

Each victim is a worker holding mailboxes at that moment (one still starting holds nothing to
lose). It dies holding its leases: its mailboxes wait until those run out (`runtime/leases.py`,
10 s; there is no setting to shorten them), then another worker takes them; mail keeps arriving
meanwhile, and is taken then. A worker's log (JSON, at info) is in the test's folder, and the
end of each is in a failure's message.

Beside it, the deadlock the kill test found, made likely by sixty senders: two batches bringing
the same new customers in opposite orders.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import func, or_, select
from tests.support.dovecot import Dovecot
from tests.support.lmtp import LmtpDelivery
from tests.support.postfix import Postfix
from tests.support.workers import Workers, worker_env

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.inbound.handle import Destination
from mailgate.inbound.mailboxes import MailboxOptions, add_mailbox
from mailgate.inbound.pipeline import Incoming, MessageRef, take_many
from mailgate.mail.smtp_servers import SmtpOptions, add_smtp
from mailgate.store.models import Comment, Issue, Mailbox, OutboxMessage, Receipt
from mailgate.store.vocabulary import OutboxKind, OutboxStatus, ReceiptStatus
from mailgate.tracker.service import add_project

SOAK = os.environ.get("MAILGATE_SOAK") == "1"
MESSAGES = 2000 if SOAK else 300
MIN_KILLS = 30 if SOAK else 10
FEED_SECONDS = 150.0 if SOAK else 25.0  # how long mail keeps arriving, about
KILL_GAP = (1.5, 4.0)  # seconds between a restart and the next kill
DEAD_FOR = (0.0, 1.0)  # seconds a killed worker stays dead
STALLED_SECONDS = 60.0  # no message taken, or no mailbox held, so long: something is stuck
SETTLE_SECONDS = 900.0 if SOAK else 240.0  # at most, for the rest to be taken (a busy machine)
SENDING_SECONDS = 300.0 if SOAK else 60.0  # then for the notifications to go out

WORKERS = 3
MAILBOXES = 20
AFTER = ("seen", "delete", "move:Done")  # mailbox i does AFTER[i % 3]
CUSTOMERS = tuple(f"cust{n}@example.net" for n in range(10))
WATCHER = "dave@example.net"  # Cc'd on some new requests: told of the comments on them
SMTP_ACCOUNT = ("alice@example.test", "alice-password")  # one of Dovecot's default users
REPLY_SHARE = 0.25
CC_SHARE = 0.3
MAX_REPLIES = 2  # per original: well under the comments-per-issue-hour limit

HELP = Destination(project="HELP", own_addresses=("support@example.com",))

pytestmark = pytest.mark.stores(*(("postgresql", "sqlite") if SOAK else ("postgresql",)))


def address(mailbox: int) -> str:
    return f"box{mailbox:02d}@example.test"


@dataclass(frozen=True)
class Mail:
    """One planned message: where it goes and what it must become."""

    number: int
    mailbox: int
    sender: str
    message_id: str  # without the angle brackets
    raw: bytes
    answers: Mail | None  # the original this replies to (a comment on its issue)
    cc: bool  # the watcher is Cc'd (a new request only)


def plan(seed: int) -> list[Mail]:
    """The test's mail, drawn from the seed: new requests, and replies to earlier requests of
    the same mailbox, so that whoever holds the mailbox takes the original first (UID order)."""
    rng = random.Random(seed)
    mails: list[Mail] = []
    originals: dict[int, list[Mail]] = {}
    replies: Counter[int] = Counter()
    for number in range(MESSAGES):
        mailbox = rng.randrange(MAILBOXES)
        open_ones = [m for m in originals.get(mailbox, []) if replies[m.number] < MAX_REPLIES]
        answers = rng.choice(open_ones) if open_ones and rng.random() < REPLY_SHARE else None
        sender = answers.sender if answers else rng.choice(CUSTOMERS)
        cc = answers is None and rng.random() < CC_SHARE
        message_id = f"k{number}.{seed}@example.net"
        message = EmailMessage()
        message["From"] = f"Customer <{sender}>"
        message["To"] = address(mailbox)
        if cc:
            message["Cc"] = WATCHER
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = f"<{message_id}>"
        if answers is not None:
            replies[answers.number] += 1
            message["Subject"] = f"Re: Order {answers.number} [k{number}]"
            message["In-Reply-To"] = f"<{answers.message_id}>"
            message["References"] = f"<{answers.message_id}>"
            message.set_content(f"More about order {answers.number} (k{number}).")
        else:
            message["Subject"] = f"Order {number} [k{number}]"
            message.set_content(f"Where is order {number}? (k{number})")
        mail = Mail(number, mailbox, sender, message_id, bytes(message), answers, cc)
        mails.append(mail)
        if answers is None:
            originals.setdefault(mailbox, []).append(mail)
    return mails


async def configure(ctx: Context, dovecot: Dovecot, postfix: Postfix) -> None:
    """Project HELP answering through Postfix, and the twenty mailboxes (password sign-in) at
    Dovecot, the post-actions mixed."""
    dovecot.add_users(
        {address(n): f"box-password-{n}" for n in range(MAILBOXES)}
        | dict.fromkeys(CUSTOMERS, "customer-password")
        | {WATCHER: "dave-password"}
    )
    await add_project(ctx, "HELP", "Help desk")
    username, password = SMTP_ACCOUNT
    await add_smtp(
        ctx,
        "out",
        SmtpOptions(
            host="127.0.0.1",
            port=postfix.submission_port,
            security="starttls",
            username=username,
            password=password,
            ca_file=str(postfix.ca_file),
            from_address=username,
        ),
    )
    for number in range(MAILBOXES):
        after = AFTER[number % len(AFTER)]
        if after.startswith("move:"):
            dovecot.create_folder(address(number), after[5:])
        await add_mailbox(
            ctx,
            f"box{number:02d}",
            MailboxOptions(
                protocol="imap",
                host="127.0.0.1",
                port=dovecot.imaps_port,
                username=address(number),
                password=f"box-password-{number}",
                ca_file=str(dovecot.ca_file),
                project="HELP",
                after=after,
                backlog="all",
                # Ten customers write hundreds of messages within minutes here.
                route={"max_per_sender_hour": 0},
            ),
        )


def feed(dovecot: Dovecot, mails: list[Mail], delivered: list[Mail], seed: int) -> None:
    """Deliver the mail over LMTP at random intervals (a thread of its own)."""
    rng = random.Random(seed + 1)
    rate = len(mails) / FEED_SECONDS
    due = time.monotonic()
    with LmtpDelivery(dovecot) as lmtp:
        for mail in mails:
            due += rng.expovariate(rate)  # arrivals at random, as mail comes
            time.sleep(max(0.0, due - time.monotonic()))
            lmtp.deliver(address(mail.mailbox), mail.raw, sender=mail.sender)
            delivered.append(mail)


async def kill_at_random(
    ctx: Context, workers: Workers, seed: int, feeding: asyncio.Future[None], story: list[str]
) -> None:
    """SIGKILL a random worker at random moments and start it again, until the mail is all
    delivered and there were enough kills. The victim is one that holds mailboxes: a worker
    still starting, or one that has none yet, holds nothing a kill could lose."""
    rng = random.Random(seed + 2)
    began = time.monotonic()
    while not feeding.done() or workers.kills < MIN_KILLS:
        await asyncio.sleep(rng.uniform(*KILL_GAP))
        waiting = time.monotonic()
        while not (holding := await holders(ctx, workers)):
            if time.monotonic() - waiting > STALLED_SECONDS:
                raise AssertionError(f"no worker has held a mailbox for {STALLED_SECONDS:g} s")
            await asyncio.sleep(0.2)
        victim = rng.choice(holding)
        workers.kill(victim)
        story.append(f"{time.monotonic() - began:6.1f} s: killed worker-{victim}")
        await asyncio.sleep(rng.uniform(*DEAD_FOR))
        workers.start(victim)


async def holders(ctx: Context, workers: Workers) -> list[int]:
    """The workers holding a mailbox's lease now."""
    async with ctx.db.session() as session:
        owners = (
            await session.scalars(
                select(Mailbox.lease_owner).where(Mailbox.lease_owner.is_not(None)).distinct()
            )
        ).all()
    return [
        number
        for number, worker in enumerate(workers.workers)
        if any(worker.owns(owner) for owner in owners if owner)
    ]


async def wait_until_all_taken(ctx: Context, count: int) -> None:
    """Until `count` receipts have their post-action done: while the count grows (a busy
    machine takes a backlog slowly), but no longer than `SETTLE_SECONDS`, and not once it
    stands still for `STALLED_SECONDS`."""
    done, moved = -1, time.monotonic()
    deadline = moved + SETTLE_SECONDS
    while True:
        async with ctx.db.session() as session:
            now_done = await session.scalar(
                select(func.count())
                .select_from(Receipt)
                .where(Receipt.post_action_done_at.is_not(None))
            )
        if now_done == count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{now_done} of {count} messages taken in {SETTLE_SECONDS:g} s")
        if now_done != done:
            done, moved = now_done or 0, time.monotonic()
        elif time.monotonic() - moved > STALLED_SECONDS:
            raise AssertionError(
                f"{done} of {count} messages taken; none more in {STALLED_SECONDS:g} s"
            )
        await asyncio.sleep(0.5)


async def wait_until_sent(ctx: Context, postfix: Postfix) -> None:
    """Until no notification is due that a live worker could send, and Postfix delivered all
    it took. (A notification a killed worker had claimed waits for its lease, 15 minutes.)"""
    deadline = time.monotonic() + SENDING_SECONDS
    while True:
        async with ctx.db.session() as session:
            due = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    or_(
                        OutboxMessage.lease_until.is_(None),
                        OutboxMessage.lease_until < datetime.now(UTC),
                    ),
                )
            )
        if due == 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{due} notifications still due after {SENDING_SECONDS:g} s")
        await asyncio.sleep(0.5)
    await asyncio.to_thread(postfix.wait_for_empty_queue, SENDING_SECONDS)


async def test_workers_killed_at_random_lose_nothing_and_do_nothing_twice(
    ctx: Context,
    settings: Settings,
    dovecot: Dovecot,
    postfix: Postfix,
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("MAILGATE_KILL_SEED") or random.SystemRandom().randrange(2**31))
    print(f"kill test: seed {seed} (MAILGATE_KILL_SEED={seed} runs it again)")
    mails = plan(seed)
    await configure(ctx, dovecot, postfix)
    env = worker_env(settings.home, settings.database_url)
    story: list[str] = []
    delivered: list[Mail] = []
    began = time.monotonic()
    with Workers(env, tmp_path / "logs", count=WORKERS) as workers:
        try:
            feeding = asyncio.ensure_future(
                asyncio.to_thread(feed, dovecot, mails, delivered, seed)
            )
            await kill_at_random(ctx, workers, seed, feeding, story)
            await feeding
            story.append(f"{time.monotonic() - began:6.1f} s: all delivered, kills over")
            await wait_until_all_taken(ctx, len(mails))
            story.append(f"{time.monotonic() - began:6.1f} s: all taken")
            await wait_until_sent(ctx, postfix)
            story.append(f"{time.monotonic() - began:6.1f} s: notifications sent")
            statuses = workers.stop()
            story.append(f"{time.monotonic() - began:6.1f} s: workers stopped")
            assert statuses == [0] * WORKERS, "a worker did not stop cleanly on SIGTERM"
            print(
                f"kill test: {len(mails)} messages, {workers.kills} kills, "
                f"{time.monotonic() - began:.0f} s"
            )
            assert workers.kills >= MIN_KILLS
            await check_issues_and_receipts(ctx, mails)
            await asyncio.to_thread(check_mailboxes, dovecot, mails)
            await check_notifications(ctx, dovecot, mails)
            story.append(f"{time.monotonic() - began:6.1f} s: checked")
            print("\n".join(story))
        except Exception as failure:
            raise AssertionError(
                f"seed {seed} (MAILGATE_KILL_SEED={seed} runs it again), {len(delivered)} of "
                f"{len(mails)} delivered: {failure}\n" + "\n".join(story) + "\n" + workers.tails()
            ) from failure


def bare(message_id: str | None) -> str | None:
    return message_id.strip().strip("<>") if message_id else None


async def check_issues_and_receipts(ctx: Context, mails: list[Mail]) -> None:
    """One receipt per message, its post-action done; one issue per request, one comment per
    reply, on the request's issue; nothing else."""
    async with ctx.db.session() as session:
        boxes = dict((await session.execute(select(Mailbox.id, Mailbox.name))).all())
        receipts = (
            await session.execute(
                select(
                    Receipt.mailbox_id,
                    Receipt.message_id,
                    Receipt.status,
                    Receipt.post_action_done_at,
                    Receipt.issue_id,
                )
            )
        ).all()
        issues = (await session.execute(select(Issue.id, Issue.source_message_id))).all()
        comments = (
            await session.execute(select(Comment.issue_id, Comment.source_message_id))
        ).all()
    taken = Counter((boxes[r.mailbox_id], bare(r.message_id)) for r in receipts)
    planned = Counter((f"box{m.mailbox:02d}", m.message_id) for m in mails)
    assert taken == planned, (
        f"receipts twice: {sorted(k for k, n in taken.items() if n > 1)[:5]}; missing: "
        f"{sorted(planned - taken)[:5]}; unexpected: {sorted(taken - planned)[:5]}"
    )
    outcome = {bare(r.message_id): r.status for r in receipts}
    wanted = {
        m.message_id: ReceiptStatus.COMMENTED if m.answers else ReceiptStatus.CREATED for m in mails
    }
    wrong = {k: v for k, v in outcome.items() if v != wanted[k]}  # type: ignore[index]
    assert not wrong, f"{len(wrong)} messages became something else: {list(wrong.items())[:5]}"
    assert all(r.post_action_done_at is not None for r in receipts)

    issue_of = Counter(bare(i.source_message_id) for i in issues)
    requests = Counter(m.message_id for m in mails if m.answers is None)
    assert issue_of == requests, (
        f"issues twice or missing: {(issue_of - requests) or (requests - issue_of)}"
    )
    commented = Counter(bare(c.source_message_id) for c in comments)
    replies = Counter(m.message_id for m in mails if m.answers is not None)
    assert commented == replies, (
        f"comments twice or missing: {(commented - replies) or (replies - commented)}"
    )
    issue_id = {bare(i.source_message_id): i.id for i in issues}
    on = {bare(c.source_message_id): c.issue_id for c in comments}
    misplaced = [
        m.number for m in mails if m.answers and on[m.message_id] != issue_id[m.answers.message_id]
    ]
    assert not misplaced, f"replies commented on the wrong issue: {misplaced[:5]}"


def check_mailboxes(dovecot: Dovecot, mails: list[Mail]) -> None:
    """Each mailbox's post-action, as Dovecot has it: seen (and nothing unread), deleted, or
    moved to Done (every message, once)."""
    for number in range(MAILBOXES):
        user = address(number)
        mine = sorted(m.message_id for m in mails if m.mailbox == number)
        inbox = dovecot.mailbox_status(user)
        after = AFTER[number % len(AFTER)]
        if after == "seen":
            assert (inbox["messages"], inbox["unseen"]) == (len(mine), 0), (user, inbox)
            continue
        assert inbox["messages"] == 0, f"{user}: {inbox['messages']} left in INBOX ({after})"
        if after.startswith("move:"):
            moved = sorted(bare(message_id_of(raw)) or "" for raw in dovecot.messages(user, "Done"))
            assert moved == mine, f"{user}: Done holds {len(moved)}, not the {len(mine)} sent"


def message_id_of(raw: bytes) -> str | None:
    value = message_from_bytes(raw, policy=policy.default)["Message-ID"]
    return str(value) if value is not None else None


async def check_notifications(ctx: Context, dovecot: Dovecot, mails: list[Mail]) -> None:
    """One acknowledgement per new issue, to its customer; one comment notification to the
    watcher per reply on an issue they watch; each delivered once at most."""
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(
                    OutboxMessage.kind,
                    OutboxMessage.issue_id,
                    OutboxMessage.recipients,
                    OutboxMessage.message_id,
                    OutboxMessage.status,
                    OutboxMessage.raw,
                )
            )
        ).all()
        source = dict((await session.execute(select(Issue.id, Issue.source_message_id))).all())
    assert {r.status for r in rows} <= {OutboxStatus.SENT, OutboxStatus.PENDING}
    requests = {m.message_id: m for m in mails if m.answers is None}
    acknowledged = Counter(
        (bare(source[r.issue_id]), tuple(r.recipients))
        for r in rows
        if r.kind == OutboxKind.ACKNOWLEDGEMENT
    )
    assert acknowledged == Counter((k, (m.sender,)) for k, m in requests.items())
    # A comment notification answers the reply that caused it (In-Reply-To).
    told = Counter(
        (
            bare(str(message_from_bytes(r.raw, policy=policy.default)["In-Reply-To"])),
            tuple(r.recipients),
        )
        for r in rows
        if r.kind == OutboxKind.COMMENT
    )
    assert told == Counter(
        (m.message_id, (WATCHER,)) for m in mails if m.answers is not None and m.answers.cc
    )
    assert len(rows) == sum(acknowledged.values()) + sum(told.values())

    written = {bare(r.message_id) for r in rows}
    sent = {bare(r.message_id) for r in rows if r.status == OutboxStatus.SENT}
    received: Counter[str | None] = Counter()
    for user in (*CUSTOMERS, WATCHER):
        for raw in await asyncio.to_thread(dovecot.messages, user):
            received[bare(message_id_of(raw))] += 1
    assert max(received.values(), default=1) == 1, [k for k, n in received.items() if n > 1][:5]
    assert set(received) <= written, "a customer got mail the outbox never held"
    assert sent <= set(received), f"{len(sent - set(received))} sent notifications never arrived"


@pytest.mark.stores("postgresql")  # SQLite has one writer at a time
async def test_two_batches_bringing_the_same_new_customers_both_commit(ctx: Context) -> None:
    """Two workers' batches whose senders are the same new customers, in opposite orders: on
    PostgreSQL each waited for the other's uncommitted customer (a deadlock, one batch lost and
    its mailbox reconnecting), and with twenty mailboxes at once hardly any batch got through."""
    await add_project(ctx, "HELP", "Help desk")
    senders = [f"new{n:02d}@example.net" for n in range(60)]

    def batch(order: list[str], tag: str) -> list[Incoming]:
        return [
            Incoming(MessageRef(), request(sender, f"<{tag}{n}@example.net>"))
            for n, sender in enumerate(order)
        ]

    taken = await asyncio.gather(
        take_many(ctx, None, batch(senders, "a"), destination=HELP),
        take_many(ctx, None, batch(senders[::-1], "b"), destination=HELP),
    )
    assert [t.status for t in taken[0] + taken[1]] == [ReceiptStatus.CREATED] * 120


def request(sender: str, message_id: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = f"Request from {sender}"
    message["Message-ID"] = message_id
    message.set_content("Please help.")
    return bytes(message)
