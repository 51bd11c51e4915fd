"""The supervisor: runs the process's long-lived tasks and restarts them when they crash.

It keeps OAuth tokens (the token keeper's upkeep), checks integrations daily, runs its share of
the mailboxes (`runtime/workers.py`: each under its lease, all the leases renewed with the
worker's heartbeat in one transaction), and sends the outbox and the webhook deliveries. Stopped
(SIGTERM), it lets each mailbox loop finish the message in hand, then gives back every lease at
once, so another worker takes the mailboxes within a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.oauth.integrations import integration_warnings, list_integrations
from mailgate.oauth.signin import prune as prune_signins
from mailgate.oauth.tokens import TokenKeeper
from mailgate.outbound.alerts import run_check
from mailgate.outbound.outbox import flush
from mailgate.outbound.webhooks import deliver_due
from mailgate.runtime import heap, leases, workers
from mailgate.runtime.imap_mailbox import run_mailbox
from mailgate.runtime.pause import wait_or_stop
from mailgate.runtime.pop3_mailbox import run_pop3_mailbox
from mailgate.store.models import Mailbox
from mailgate.store.vocabulary import Protocol
from mailgate.tracker.sessions import prune_sessions

log = structlog.get_logger(__name__)

# What runs one mailbox while its lease is held, until the event is set.
MailboxLoop = Callable[[Mailbox, asyncio.Event], Awaitable[None]]
RESTART_PAUSE = 5.0  # a crashed mailbox loop starts again after this, its lease kept meanwhile
PRUNE_EVERY = 3600.0


@dataclass
class _Running:
    task: asyncio.Task[None]
    stop: asyncio.Event  # set to hand the mailbox back: the loop ends after the message in hand


def _log_failure(event: str, error: Exception, **fields: object) -> None:
    """A failure a loop survives: a MailgateError in its one sentence (the database down says so
    at every attempt, without a traceback each time); anything else with its traceback."""
    if isinstance(error, MailgateError):
        log.warning(event, error=str(error), **fields)
    else:
        log.exception(event, **fields)


class Supervisor:
    def __init__(
        self,
        ctx: Context,
        *,
        upkeep_interval: float = 60.0,
        integration_check_interval: float = 24 * 3600.0,
        outbox_interval: float = 2.0,
        pace: workers.Pace | None = None,
        mailbox_loop: MailboxLoop | None = None,
        lease_clock: Callable[[], float] | None = None,
        tidy_heap: bool = False,
    ) -> None:
        """`lease_clock`: the monotonic clock the leases' deadlines are kept on (the event
        loop's unless given). `tidy_heap`: keep the garbage collector's passes cheap
        (`runtime/heap.py`), for a process that runs nothing else (`mailgate worker`,
        `mailgate serve`)."""
        self.ctx = ctx
        self.keeper = TokenKeeper(ctx)
        self.upkeep_interval = upkeep_interval
        self.integration_check_interval = integration_check_interval
        self.outbox_interval = outbox_interval
        self.pace = pace or workers.Pace()
        self._mailbox_loop = mailbox_loop or self._read_mailbox
        self._running: dict[int, _Running] = {}
        self._holdings = leases.Holdings(self.pace.lease, lease_clock)
        self._stop = asyncio.Event()
        self._tidy_heap = tidy_heap

    @property
    def owner(self) -> str:
        """The name of this worker and of the owner of its leases."""
        return self.keeper.owner

    def running(self) -> set[int]:
        """The ids of the mailboxes this worker reads now (not those it is handing back)."""
        return {i for i, r in self._running.items() if not r.task.done() and not r.stop.is_set()}

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def warn_about_integrations(self) -> None:
        for integration, _count in await list_integrations(self.ctx):
            for warning in integration_warnings(integration, self.ctx.clock()):
                log.warning("integration needs attention", detail=warning)

    async def _token_upkeep(self) -> None:
        while not self._stop.is_set():
            try:
                await self.keeper.upkeep()
            except Exception as error:  # the supervisor's loop: log, wait, go on
                _log_failure("token upkeep failed", error)
            await self._pause(self.upkeep_interval)

    async def heartbeat(self) -> None:
        """One heartbeat of this worker: its row in `workers` and the lease of every mailbox it
        runs, renewed in one transaction (`workers.beat`). The loop of a mailbox whose lease was
        lost, or could not be renewed in time, is stopped (`leases.Holdings`)."""
        await self._holdings.beat(self._renew)

    async def _renew(self, held: frozenset[int], within: float) -> leases.Renewal:
        beat = workers.beat(self.ctx, self.owner, held, self.pace.lease.lease)
        return await leases.bounded(beat, within)

    async def _beating(self) -> None:
        # One attempt at SQLite's write lock: waiting its turn could outlast the leases.
        self.ctx.db.write_once()
        await self.heartbeat()  # seen by the other workers at once
        await self._holdings.keep(self._renew, asyncio.sleep)

    async def run_mailboxes(self) -> None:
        """Read this worker's share of the mailboxes until stopped: take free mailboxes up to
        the share, hand back what is above it; look again every `pace.scan` seconds (a mailbox
        just added, or left by a worker that stopped or died, is picked up at once); meanwhile
        renew the worker's heartbeat and its leases every `pace.lease.heartbeat` seconds.
        Stopped, hand every mailbox back (`_hand_back`)."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        beating = asyncio.create_task(self._beating())
        try:
            while not self._stop.is_set():
                try:
                    if loop.time() >= next_prune:
                        next_prune = loop.time() + PRUNE_EVERY
                        await workers.prune(self.ctx)
                    await self._balance()
                except Exception as error:  # the supervisor's loop: log, wait, go on
                    _log_failure("sharing the mailboxes failed", error)
                await self._pause(self.pace.scan)
        finally:
            await self._hand_back(beating)

    async def _balance(self) -> None:
        for mailbox_id in [i for i, r in self._running.items() if r.task.done()]:
            del self._running[mailbox_id]
        census = await workers.census(self.ctx, self.pace.alive)
        mine = sorted(self.running())
        more = census.plan(self.owner, len(mine))
        if more < 0:
            log.info("handing mailboxes over to other workers", count=-more)
            for mailbox_id in mine[more:]:
                self._running[mailbox_id].stop.set()
            return
        began = self._holdings.now()  # the leases claimed run from here
        claimed = await leases.claim_free(self.ctx, self.owner, more, self.pace.lease.lease)
        if not claimed:
            return
        async with self.ctx.db.session() as session:
            mailboxes = await session.scalars(select(Mailbox).where(Mailbox.id.in_(claimed)))
            for mailbox in mailboxes:
                if mailbox.id in self._running:
                    continue  # still being handed back: its lease ran out meanwhile
                stop = asyncio.Event()
                task = asyncio.create_task(self._run_mailbox(mailbox, stop, began))
                self._running[mailbox.id] = _Running(task, stop)

    async def _hand_back(self, beating: asyncio.Task[None]) -> None:
        """Let every mailbox loop finish the message in hand (at most `pace.grace` seconds,
        their leases renewed by the heartbeat meanwhile), then stop the heartbeat, give back
        every lease at once and leave the workers."""
        for running in self._running.values():
            running.stop.set()
        tasks = [running.task for running in self._running.values()]
        try:
            if tasks:
                _done, late = await asyncio.wait(tasks, timeout=self.pace.grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            beating.cancel()  # no more renewals: the worker's row and its leases go now
        self._running.clear()
        await asyncio.gather(beating, return_exceptions=True)
        try:
            await leases.release_all(self.ctx, self.owner)
            await workers.leave(self.ctx, self.owner)
        except Exception as error:  # the leases run out, the row is pruned: nothing is lost
            _log_failure("handing the mailboxes back failed", error)

    async def _read_mailbox(self, mailbox: Mailbox, stop: asyncio.Event) -> None:
        run = run_mailbox if mailbox.protocol == Protocol.IMAP else run_pop3_mailbox
        await run(self.ctx, mailbox.name, stop, keeper=self.keeper)

    async def _run_mailbox(
        self, mailbox: Mailbox, stop: asyncio.Event | None = None, claimed_at: float | None = None
    ) -> None:
        """The mailbox's loop under its lease (claimed here, or by a claim that began at
        `claimed_at`), renewed by the worker's heartbeat; a loop that crashed is logged, and
        ends after a pause (the lease kept meanwhile), to start again at the next scan."""
        stop = stop or self._stop
        try:
            async with self._holdings.hold(self.ctx, mailbox.id, self.owner, claimed_at):
                try:
                    await self._mailbox_loop(mailbox, stop)
                except MailgateError as error:  # a sentence that says it all (a full disk)
                    log.error(
                        "mailbox loop stopped; it starts again",
                        mailbox=mailbox.name,
                        error=str(error),
                    )
                    await wait_or_stop(self.ctx, stop, RESTART_PAUSE)
                except (
                    Exception
                ) as error:  # the supervisor catches a crashed loop, logs, restarts it
                    _log_failure("mailbox loop crashed", error, mailbox=mailbox.name)
                    await wait_or_stop(self.ctx, stop, RESTART_PAUSE)
        except leases.HeldElsewhere:
            pass  # another worker has it
        except MailgateError as error:  # the lease itself: the database (a full disk, say)
            log.error(
                "mailbox loop stopped; it starts again", mailbox=mailbox.name, error=str(error)
            )
        except Exception as error:
            _log_failure("mailbox loop crashed", error, mailbox=mailbox.name)

    async def _integration_checks(self) -> None:
        while not self._stop.is_set():
            try:
                await self.warn_about_integrations()
                await prune_signins(self.ctx)
                await prune_sessions(self.ctx)  # expired web sessions, forgotten failures
            except Exception as error:  # the supervisor's loop: log and go on
                _log_failure("integration check failed", error)
            await self._pause(self.integration_check_interval)

    async def _outbox(self) -> None:
        """Send what is due; messages are claimed with a lease, so workers share the outbox."""
        while not self._stop.is_set():
            try:
                await flush(self.ctx, self.keeper)
            except Exception as error:  # the supervisor's loop: log, wait, go on
                _log_failure("outbox flush failed", error)
            await self._pause(self.outbox_interval)

    async def _webhooks(self, interval: float = 2.0) -> None:
        """Deliver what is due; deliveries are claimed with a lease, like the outbox."""
        while not self._stop.is_set():
            try:
                await deliver_due(self.ctx)
            except Exception as error:  # the supervisor's loop: log, wait, go on
                _log_failure("webhook deliveries failed", error)
            await self._pause(interval)

    async def _alerts(self, interval: float = 60.0) -> None:
        """Tell the admin about incidents (and their end), once each."""
        while not self._stop.is_set():
            try:
                await run_check(self.ctx)
            except Exception as error:  # the supervisor's loop: log, wait, go on
                _log_failure("alert check failed", error)
            await self._pause(interval)

    async def _heap(self) -> None:
        """Collect and freeze the long-lived objects (`runtime/heap.py`) soon after the start,
        then every `heap.TIDY_SECONDS`; give them back to the collector when stopped."""
        if not self._tidy_heap:
            return
        try:
            await self._pause(heap.TIDY_FIRST_SECONDS)
            while not self._stop.is_set():
                log.debug("heap tidied", frozen=heap.tidy())
                await self._pause(heap.TIDY_SECONDS)
        finally:
            heap.release()

    async def _pause(self, seconds: float) -> None:
        await wait_or_stop(self.ctx, self._stop, seconds)

    async def run(self) -> None:
        """Run until stopped: token upkeep, mailboxes, the outbox, a daily look at integrations."""
        log.info("supervisor started", owner=self.keeper.owner)
        await asyncio.gather(
            self._token_upkeep(),
            self._integration_checks(),
            self.run_mailboxes(),
            self._outbox(),
            self._webhooks(),
            self._alerts(),
            self._heap(),
        )
        log.info("supervisor stopped")
