"""Reading an IMAP mailbox: find new mail by UID, take each message exactly once, then run the
post-action; and the loop that keeps the mailbox connected (IDLE, or polling).

New mail is found by UID, never by \\Seen, so mail a person opened first is not lost. The UID
state (UIDVALIDITY, last UID) advances in the transaction that records each message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select

from mailgate import metrics
from mailgate.backoff import Backoff
from mailgate.context import Context
from mailgate.errors import MailgateError, NeedsReauthorization, Transient
from mailgate.inbound import pipeline
from mailgate.inbound.mailboxes import destination_of, get_mailbox
from mailgate.logs import bind
from mailgate.mail import sasl
from mailgate.mail.connection import ConnectionLost
from mailgate.mail.diagnose import Failure, diagnose
from mailgate.mail.imap import (
    IDLE_RENEW_SECONDS,
    AuthenticationFailed,
    ImapClient,
    ImapError,
    Selected,
    SessionEnded,
)
from mailgate.oauth.tokens import TokenKeeper
from mailgate.runtime import leases
from mailgate.runtime.connect import signed_in
from mailgate.runtime.pacing import FIRST_ROUND_SECONDS, pacer_for_this_loop
from mailgate.runtime.pause import or_stop, wait_or_stop
from mailgate.store.models import Mailbox, Receipt
from mailgate.store.vocabulary import MailboxStatus, ReceiptStatus

log = structlog.get_logger(__name__)


@dataclass
class PollReport:
    taken: list[int] = field(default_factory=list)  # UIDs taken now
    skipped: list[int] = field(default_factory=list)  # taken before (not done again)
    quarantined: list[int] = field(default_factory=list)
    post_actions_finished: int = 0
    would_take: list[int] = field(default_factory=list)  # --dry-run
    # When the poll began: when its messages were found (right after IDLE's EXISTS).
    found_at: datetime | None = None

    def as_json(self, *, dry_run: bool = False) -> dict[str, Any]:
        """`mailbox poll --json`'s object: what was taken, or with --dry-run what would be."""
        if dry_run:
            return {"would_take": self.would_take}
        return {
            "taken": self.taken,
            "skipped": self.skipped,
            "quarantined": self.quarantined,
            "post_actions_finished": self.post_actions_finished,
        }


async def load(ctx: Context, name: str) -> Mailbox:
    async with ctx.db.session() as session:
        return await get_mailbox(session, name)


async def set_status(
    ctx: Context, mailbox_id: int, status: str, error: str | None = None, *, checked: bool = True
) -> None:
    async with ctx.db.session() as session, session.begin():
        row = await session.get(Mailbox, mailbox_id)
        if row is None:
            return
        row.status = status
        row.last_error = error
        if checked:
            row.last_check_at = ctx.clock()


async def report_status(
    ctx: Context, mailbox_id: int, status: str, error: str | None = None
) -> None:
    """`set_status` in a loop's error handler: should the database be what failed (down,
    read-only, its disk full), the status cannot be written — the loop's log line said why —
    and the loop goes on to retry."""
    try:
        await set_status(ctx, mailbox_id, status, error)
    except MailgateError as exc:
        log.warning("mailbox status not written", error=str(exc))


async def load_or_wait(
    ctx: Context, name: str, stop: asyncio.Event, backoff: Backoff
) -> Mailbox | None:
    """The mailbox's row for a loop's next round; None (after a wait with backoff) while the
    database cannot be reached."""
    try:
        mailbox = await load(ctx, name)
    except Transient as exc:
        delay = backoff.next()
        log.warning("mailbox not loaded", mailbox=name, error=str(exc), retry_in=delay)
        await wait_or_stop(ctx, stop, delay)
        return None
    return mailbox


async def _post_action(imap: ImapClient, action: str, uids: list[int]) -> None:
    if not uids:
        return
    if action == "seen":
        await imap.mark_seen(uids)
    elif action == "delete":
        await imap.delete(uids)
    elif action.startswith("move:"):
        await imap.move(uids, action[5:])


async def _finish_pending(
    ctx: Context, imap: ImapClient, mailbox: Mailbox, uidvalidity: int | None
) -> int:
    """Post-actions a crash left undone (the messages were committed)."""
    done = 0
    for receipt in await pipeline.pending_post_actions(ctx, mailbox.id):
        if (
            receipt.status != ReceiptStatus.QUARANTINED
            and receipt.uid is not None
            and receipt.uidvalidity == uidvalidity
            and await imap.uid_search(f"UID {receipt.uid}")
        ):
            action = receipt.post_action or mailbox.after
            await _safe_post_action(ctx, imap, mailbox, action, [receipt.uid])
        await pipeline.post_actions_done(ctx, [receipt.id])
        done += 1
    return done


async def _plan(
    imap: ImapClient, mailbox: Mailbox, selected: Selected
) -> tuple[list[int], int | None]:
    """The UIDs to take now, and — when the UID state starts over (first poll, or the server
    renumbered the folder) — the last UID to remember once they are all taken."""
    if mailbox.uidvalidity is not None and mailbox.uidvalidity == selected.uidvalidity:
        last = mailbox.last_uid or 0
        # "n:*" always matches the highest UID, even below n (RFC 3501 §6.4.8): filter.
        return [uid for uid in await imap.uid_search(f"UID {last + 1}:*") if uid > last], None
    if mailbox.uidvalidity is not None:
        # The server renumbered the folder: the backlog policy applies again; what was taken
        # before is recognised (place, content or Message-ID) and not taken again.
        log.warning(
            "uidvalidity changed",
            mailbox=mailbox.name,
            old=mailbox.uidvalidity,
            new=selected.uidvalidity,
        )
    present = selected.uidnext - 1 if selected.uidnext else max(await imap.uid_search("ALL") or [0])
    if mailbox.backlog == "all":
        return await imap.uid_search("ALL"), present
    if mailbox.backlog == "unseen":
        return await imap.uid_search("UNSEEN"), present
    return [], present


async def _remember(ctx: Context, mailbox: Mailbox, uidvalidity: int | None, last_uid: int) -> None:
    async with ctx.db.session() as session, session.begin():
        row = await session.get(Mailbox, mailbox.id)
        assert row is not None
        same = row.uidvalidity == uidvalidity
        row.last_uid = max(last_uid, row.last_uid or 0) if same else last_uid
        row.uidvalidity = uidvalidity
    mailbox.uidvalidity, mailbox.last_uid = uidvalidity, last_uid


async def _refetch(
    ctx: Context, imap: ImapClient, mailbox: Mailbox, uidvalidity: int | None
) -> list[int]:
    """UIDs of quarantined messages whose retry asked for them to be fetched again. Their
    receipts stay until the transaction that takes each message anew replaces it (a poll that
    fails before that finds them again); only those no UID reaches any more (an earlier
    UIDVALIDITY, or the message left the server) are dropped."""
    async with ctx.db.session() as session:
        receipts = (
            await session.execute(
                select(Receipt.id, Receipt.uidvalidity, Receipt.uid).where(
                    Receipt.mailbox_id == mailbox.id, Receipt.status == ReceiptStatus.REFETCH
                )
            )
        ).all()
    wanted = [r.uid for r in receipts if r.uidvalidity == uidvalidity and r.uid is not None]
    present = set(await imap.sizes(wanted)) if wanted else set()
    stale = [r.id for r in receipts if r.uidvalidity != uidvalidity or r.uid not in present]
    if stale:
        async with ctx.db.session() as session, session.begin():
            await session.execute(delete(Receipt).where(Receipt.id.in_(stale)))
    return sorted(present)


async def _safe_post_action(
    ctx: Context, imap: ImapClient, mailbox: Mailbox, action: str, uids: list[int]
) -> None:
    """The post-action; its failure (e.g. the move folder is missing) is recorded, and does not
    hold back the mailbox: the messages are committed already."""
    try:
        await _post_action(imap, action, uids)
    except ImapError as exc:
        uid = ",".join(map(str, uids))
        log.warning("post-action failed", mailbox=mailbox.name, uid=uid, error=str(exc))
        await set_status(
            ctx,
            mailbox.id,
            MailboxStatus.FAILING,
            f"the post-action {action} failed for UID {uid} ({exc}): the message was "
            "taken; fix the mailbox's --after (e.g. create the folder)",
            checked=False,
        )


async def process(
    ctx: Context, imap: ImapClient, mailbox: Mailbox, *, dry_run: bool = False
) -> PollReport:
    """Take every new message of the selected folder, in UID order."""
    report = PollReport(found_at=ctx.clock())
    selected = await imap.select(mailbox.folder, readonly=dry_run)
    imap.news = False  # SELECT's own EXISTS is the count, not news
    uids, start_over = await _plan(imap, mailbox, selected)
    if dry_run:
        report.would_take = uids
        return report
    report.post_actions_finished = await _finish_pending(ctx, imap, mailbox, selected.uidvalidity)
    uids = sorted(set(uids) | set(await _refetch(ctx, imap, mailbox, selected.uidvalidity)))
    if len(uids) > 1:
        ctx.parsers.warm_up()  # a backlog is parsed by several: they start meanwhile
    sizes = await imap.sizes(uids)
    # UID order throughout: batches of messages fetched with one command, parsed in a parsing
    # process and taken in one transaction; while one batch is written the next ones are fetched
    # and parsed.
    steps = _steps(uids, sizes, mailbox.max_message_bytes)
    pipe = _Batches(ctx, imap, mailbox, steps, selected, start_over)
    try:
        await pipe.fill()
        while pipe.ahead:
            item = pipe.ahead.popleft()
            if isinstance(item, int):  # too large: recorded, left on the server
                reason = (
                    f"{sizes[item]} bytes, over the limit of {mailbox.max_message_bytes} "
                    "(--max-message-bytes); left on the server"
                )
                await pipeline.quarantine(ctx, mailbox.id, pipe.ref(item), sizes[item], reason)
                report.quarantined.append(item)
                await pipe.fill()
                continue
            await _take_batch(ctx, imap, mailbox, pipe, item, report)
    finally:
        pipe.cancel()
    if start_over is not None:
        await _remember(ctx, mailbox, selected.uidvalidity, max([start_over, *uids]))
    else:
        mailbox.last_uid = max([mailbox.last_uid or 0, *uids])
    return report


_Fetched = asyncio.Task[list[pipeline.Incoming]]


class _Batches:
    """The steps of a poll, fetched and parsed up to two batches ahead of the one written."""

    def __init__(
        self,
        ctx: Context,
        imap: ImapClient,
        mailbox: Mailbox,
        steps: list[list[int] | int],
        selected: Selected,
        start_over: int | None,
    ) -> None:
        self.ctx = ctx
        self.imap = imap
        self.mailbox = mailbox
        self.steps = iter(steps)
        self.selected = selected
        self.start_over = start_over
        self.ahead: deque[_Fetched | int] = deque()

    def ref(self, uid: int) -> pipeline.MessageRef:
        # While a backlog is taken the UID state stays put: an interrupted backlog is taken
        # again from the start, and what was taken is recognised.
        return pipeline.MessageRef(
            uidvalidity=self.selected.uidvalidity, uid=uid, advance=self.start_over is None
        )

    async def fill(self) -> None:
        """Fetch up to two batches ahead (the connection must be free: no other command)."""
        while len(self.ahead) < 2 and (step := next(self.steps, None)) is not None:
            if isinstance(step, int):
                self.ahead.append(step)
                continue
            raws = await self.imap.fetch_many(step)
            # A message deleted meanwhile by someone else is simply not there.
            incoming = [pipeline.Incoming(self.ref(uid), raws[uid]) for uid in step if uid in raws]
            parsing = pipeline.prepare(
                self.ctx, self.mailbox.id, incoming, destination_of(self.mailbox)
            )
            self.ahead.append(asyncio.create_task(parsing))

    def cancel(self) -> None:
        for item in self.ahead:
            if not isinstance(item, int):
                item.cancel()


async def _take_batch(
    ctx: Context,
    imap: ImapClient,
    mailbox: Mailbox,
    pipe: _Batches,
    batch: _Fetched,
    report: PollReport,
) -> None:
    incoming = await batch
    writing = asyncio.create_task(
        pipeline.take_many(
            ctx, mailbox.id, incoming, destination=destination_of(mailbox), seen_at=report.found_at
        )
    )
    try:
        await pipe.fill()  # the next batches come in while this one is written
    finally:
        # Whatever happened to the connection, the write ends (committed or not) first.
        taken = await writing
    done: dict[str, list[int]] = {}  # post-action → UIDs
    for message, result in zip(incoming, taken, strict=True):
        uid = message.ref.uid
        assert uid is not None
        (report.taken if result.new else report.skipped).append(uid)
        if result.status == ReceiptStatus.QUARANTINED:
            report.quarantined.append(uid)  # kept on the server, untouched, for a retry
        else:
            done.setdefault(result.post_action or mailbox.after, []).append(uid)
    for action, uids in done.items():
        await _safe_post_action(ctx, imap, mailbox, action, uids)
    await pipeline.post_actions_done(ctx, [result.receipt_id for result in taken])


BATCH = 100  # messages per FETCH and per transaction
BATCH_BYTES = 32 * 1024 * 1024


def _steps(uids: list[int], sizes: dict[int, int], limit: int) -> list[list[int] | int]:
    """`uids` in order, as batches to fetch and take together, and single UIDs (ints) of
    messages over the size limit."""
    steps: list[list[int] | int] = []
    batch: list[int] = []
    held = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if size > limit or len(batch) == BATCH or held + size > BATCH_BYTES:
            if batch:
                steps.append(batch)
            batch, held = [], 0
        if size > limit:
            steps.append(uid)
            continue
        batch.append(uid)
        held += size
    if batch:
        steps.append(batch)
    return steps


async def poll_once(
    ctx: Context, name: str, *, keeper: TokenKeeper | None = None, dry_run: bool = False
) -> PollReport:
    """`mailbox poll`: connect, take everything there, disconnect."""
    keeper = keeper or TokenKeeper(ctx)
    mailbox = await load(ctx, name)
    bind(mailbox=name, credential=mailbox.credential_id)
    try:
        # A dead holder's lease runs out within LEASE_SECONDS: wait that long, then take over.
        async with (
            leases.holding(ctx, mailbox.id, keeper.owner, wait=leases.LEASE_SECONDS + 2),
            signed_in(ctx, keeper, mailbox, ImapClient) as imap,
        ):
            mailbox = await load(ctx, name)  # the state as the previous holder left it
            report = await process(ctx, imap, mailbox, dry_run=dry_run)
            await imap.logout()
    except (
        AuthenticationFailed,
        ConnectionLost,
        ImapError,
        NeedsReauthorization,
        sasl.NoOAuthMechanism,
    ) as exc:
        message = describe(mailbox, exc)
        if not dry_run:
            await set_status(ctx, mailbox.id, status_for(exc), message)
        raise Transient(message) from None
    if not dry_run:
        await set_status(
            ctx, mailbox.id, MailboxStatus.POLLING if not mailbox.idle else MailboxStatus.CONNECTED
        )
    return report


def status_for(exc: BaseException) -> str:
    if isinstance(exc, NeedsReauthorization):
        return MailboxStatus.NEEDS_REAUTHORIZATION
    if isinstance(exc, AuthenticationFailed):
        return MailboxStatus.AUTH_FAILED
    return MailboxStatus.FAILING


def describe(mailbox: Mailbox, exc: BaseException) -> str:
    if isinstance(exc, AuthenticationFailed):
        return diagnose(
            Failure(
                step="authenticate",
                protocol="imap",
                host=mailbox.host,
                port=mailbox.port,
                text=f"{exc.status} {exc.text}",
                challenge=exc.challenge,
                auth="oauth2" if mailbox.credential_id else "password",
                username=mailbox.username,
            )
        )
    return str(exc)


async def run_mailbox(
    ctx: Context,
    name: str,
    stop: asyncio.Event,
    *,
    keeper: TokenKeeper | None = None,
    idle_renew: float = IDLE_RENEW_SECONDS,
    backoff: Backoff | None = None,
    auth_failure_wait: timedelta = timedelta(minutes=15),
) -> None:
    """Keep one mailbox connected until `stop`: IDLE when offered, else poll; reconnect on faults."""
    keeper = keeper or TokenKeeper(ctx)
    backoff = backoff or Backoff()
    while not stop.is_set():
        mailbox = await load_or_wait(ctx, name, stop, backoff)
        if mailbox is None:
            continue
        bind(mailbox=name, credential=mailbox.credential_id)  # this task's lines
        try:
            # The opening and the first round take one turn of the process's pacer: a worker
            # starting with a thousand mailboxes brings them up a few at a time, each to IDLE.
            async with (
                pacer_for_this_loop().turn(at_most=FIRST_ROUND_SECONDS) as turn,
                signed_in(ctx, keeper, mailbox, ImapClient, pacer=turn) as imap,
            ):
                use_idle = mailbox.idle and "IDLE" in imap.capabilities
                await set_status(
                    ctx, mailbox.id, MailboxStatus.IDLE if use_idle else MailboxStatus.POLLING
                )
                backoff.reset()
                while not stop.is_set():
                    mailbox = await load(ctx, name)  # `mailbox set` applies at the next round
                    await process(ctx, imap, mailbox)
                    await set_status(
                        ctx, mailbox.id, MailboxStatus.IDLE if use_idle else MailboxStatus.POLLING
                    )
                    turn.release()  # caught up: the next mailbox's turn
                    if imap.news:
                        continue  # mail announced while the last batch was processed
                    if use_idle:
                        # Push: back within a second of new mail; re-issued before 29 minutes;
                        # left at once when the loop is stopped (its lease handed over).
                        with metrics.IDLE_CONNECTIONS.track_inprogress():
                            await or_stop(imap.idle(idle_renew), stop)
                    else:
                        await wait_or_stop(ctx, stop, mailbox.poll_seconds)
        except NeedsReauthorization as exc:
            await set_status(ctx, mailbox.id, MailboxStatus.NEEDS_REAUTHORIZATION, str(exc))
            await wait_or_stop(ctx, stop, 60)
        except AuthenticationFailed as exc:
            # Refused even after one refresh: stop and say why; never loop against the server.
            await set_status(ctx, mailbox.id, MailboxStatus.AUTH_FAILED, describe(mailbox, exc))
            await wait_or_stop(ctx, stop, auth_failure_wait.total_seconds())
        except ConnectionLost as exc:
            expired = isinstance(exc, SessionEnded) and exc.access_token_expired
            if expired and mailbox.credential_id is not None and backoff.failures == 0:
                # Microsoft ends a session when the token it began with expires
                # ("* BYE Session invalidated - AccessTokenExpired"): refresh, reconnect now
                # (once; a second time in a row backs off like any other loss).
                log.info("session ended: access token expired", mailbox=name)
                assert mailbox.credential_id is not None
                keeper.invalidate(mailbox.credential_id)
                backoff.failures = 1
                try:
                    await keeper.refresh(mailbox.credential_id)
                except MailgateError as refresh_failed:
                    await report_status(ctx, mailbox.id, MailboxStatus.FAILING, str(refresh_failed))
                    await wait_or_stop(ctx, stop, backoff.next())
                continue
            delay = backoff.next()
            # Logged first: should the database be what fails, the status cannot be written.
            log.warning("mailbox connection lost", mailbox=name, error=str(exc), retry_in=delay)
            await report_status(
                ctx, mailbox.id, MailboxStatus.FAILING, f"{exc}; reconnecting in {delay:.0f} s"
            )
            await wait_or_stop(ctx, stop, delay)
        except Exception as exc:  # the loop survives anything: log, say it, back off, retry
            if not isinstance(exc, ImapError | Transient | sasl.NoOAuthMechanism | OSError):
                log.exception("mailbox loop error", mailbox=name)
            delay = backoff.next()
            log.warning("mailbox connection failed", mailbox=name, error=str(exc), retry_in=delay)
            await report_status(
                ctx, mailbox.id, MailboxStatus.FAILING, f"{exc}; reconnecting in {delay:.0f} s"
            )
            await wait_or_stop(ctx, stop, delay)


async def receipts_of(ctx: Context, mailbox_id: int) -> list[Receipt]:
    async with ctx.db.session() as session:
        return list(
            (
                await session.scalars(
                    select(Receipt).where(Receipt.mailbox_id == mailbox_id).order_by(Receipt.id)
                )
            ).all()
        )
