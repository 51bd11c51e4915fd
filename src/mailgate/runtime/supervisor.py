"""The supervisor: runs the process's long-lived tasks and restarts them when they crash.

It keeps OAuth tokens (the token keeper's upkeep), checks integrations daily, runs every
mailbox it holds the lease of, and sends the outbox and the webhook deliveries.
"""

from __future__ import annotations

import asyncio

import structlog

from mailgate.context import Context
from mailgate.errors import MailgateError
from mailgate.inbound.mailboxes import list_mailboxes
from mailgate.oauth.integrations import integration_warnings, list_integrations
from mailgate.oauth.signin import prune as prune_signins
from mailgate.oauth.tokens import TokenKeeper
from mailgate.outbound.alerts import run_check
from mailgate.outbound.outbox import flush
from mailgate.outbound.webhooks import deliver_due
from mailgate.runtime import leases
from mailgate.runtime.imap_mailbox import run_mailbox
from mailgate.runtime.pause import wait_or_stop
from mailgate.runtime.pop3_mailbox import run_pop3_mailbox
from mailgate.store.models import Mailbox
from mailgate.store.vocabulary import Protocol
from mailgate.tracker.sessions import prune_sessions

log = structlog.get_logger(__name__)


class Supervisor:
    def __init__(
        self,
        ctx: Context,
        *,
        upkeep_interval: float = 60.0,
        integration_check_interval: float = 24 * 3600.0,
        outbox_interval: float = 2.0,
    ) -> None:
        self.ctx = ctx
        self.keeper = TokenKeeper(ctx)
        self.upkeep_interval = upkeep_interval
        self.integration_check_interval = integration_check_interval
        self.outbox_interval = outbox_interval
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def warn_about_integrations(self) -> None:
        for integration, _count in await list_integrations(self.ctx):
            for warning in integration_warnings(integration, self.ctx.clock()):
                log.warning("integration needs attention", detail=warning)

    async def _token_upkeep(self) -> None:
        while not self._stop.is_set():
            try:
                await self.keeper.upkeep()
            except Exception:  # the supervisor's loop: log, wait, go on
                log.exception("token upkeep failed")
            await self._pause(self.upkeep_interval)

    async def _mailboxes(self, scan_interval: float = 5.0) -> None:
        """Run every mailbox whose lease this process can take; look again every few seconds
        (one small query), so a mailbox just added on a page, or left by a worker that died,
        is picked up at once."""
        running: dict[int, asyncio.Task[None]] = {}
        try:
            while not self._stop.is_set():
                try:
                    mailboxes = await list_mailboxes(self.ctx)
                except Exception:  # the supervisor's loop: log, wait, go on
                    log.exception("listing mailboxes failed")
                    mailboxes = []
                present = {m.id for m in mailboxes}
                for mailbox_id in [i for i in running if i not in present]:
                    running.pop(mailbox_id).cancel()
                for mailbox in mailboxes:
                    task = running.get(mailbox.id)
                    if task is None or task.done():
                        running[mailbox.id] = asyncio.create_task(self._run_mailbox(mailbox))
                await self._pause(scan_interval)
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def _run_mailbox(self, mailbox: Mailbox) -> None:
        try:
            async with leases.holding(self.ctx, mailbox.id, self.keeper.owner):
                run = run_mailbox if mailbox.protocol == Protocol.IMAP else run_pop3_mailbox
                await run(self.ctx, mailbox.name, self._stop, keeper=self.keeper)
        except leases.HeldElsewhere:
            pass  # the next scan tries again
        except MailgateError as error:  # a sentence that says it all (a full disk, say)
            log.error(
                "mailbox loop stopped; it starts again", mailbox=mailbox.name, error=str(error)
            )
        except Exception:  # the supervisor catches a crashed loop, logs, and restarts it later
            log.exception("mailbox loop crashed", mailbox=mailbox.name)

    async def _integration_checks(self) -> None:
        while not self._stop.is_set():
            try:
                await self.warn_about_integrations()
                await prune_signins(self.ctx)
                await prune_sessions(self.ctx)  # expired web sessions, forgotten failures
            except Exception:  # the supervisor's loop: log and go on
                log.exception("integration check failed")
            await self._pause(self.integration_check_interval)

    async def _outbox(self) -> None:
        """Send what is due; messages are claimed with a lease, so workers share the outbox."""
        while not self._stop.is_set():
            try:
                await flush(self.ctx, self.keeper)
            except Exception:  # the supervisor's loop: log, wait, go on
                log.exception("outbox flush failed")
            await self._pause(self.outbox_interval)

    async def _webhooks(self, interval: float = 2.0) -> None:
        """Deliver what is due; deliveries are claimed with a lease, like the outbox."""
        while not self._stop.is_set():
            try:
                await deliver_due(self.ctx)
            except Exception:  # the supervisor's loop: log, wait, go on
                log.exception("webhook deliveries failed")
            await self._pause(interval)

    async def _alerts(self, interval: float = 60.0) -> None:
        """Tell the admin about incidents (and their end), once each."""
        while not self._stop.is_set():
            try:
                await run_check(self.ctx)
            except Exception:  # the supervisor's loop: log, wait, go on
                log.exception("alert check failed")
            await self._pause(interval)

    async def _pause(self, seconds: float) -> None:
        await wait_or_stop(self.ctx, self._stop, seconds)

    async def run(self) -> None:
        """Run until stopped: token upkeep, mailboxes, the outbox, a daily look at integrations."""
        log.info("supervisor started", owner=self.keeper.owner)
        await asyncio.gather(
            self._token_upkeep(),
            self._integration_checks(),
            self._mailboxes(),
            self._outbox(),
            self._webhooks(),
            self._alerts(),
        )
        log.info("supervisor stopped")
