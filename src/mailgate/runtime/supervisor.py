"""The supervisor: runs the process's long-lived tasks and restarts them when they crash.

Today it keeps OAuth tokens (the token keeper's upkeep); mailbox loops and the outbox join it.
"""

from __future__ import annotations

import asyncio

import structlog

from mailgate.context import Context
from mailgate.oauth.integrations import integration_warnings, list_integrations
from mailgate.oauth.signin import prune as prune_signins
from mailgate.oauth.tokens import TokenKeeper

log = structlog.get_logger(__name__)


class Supervisor:
    def __init__(
        self,
        ctx: Context,
        *,
        upkeep_interval: float = 60.0,
        integration_check_interval: float = 24 * 3600.0,
    ) -> None:
        self.ctx = ctx
        self.keeper = TokenKeeper(ctx)
        self.upkeep_interval = upkeep_interval
        self.integration_check_interval = integration_check_interval
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

    async def _integration_checks(self) -> None:
        while not self._stop.is_set():
            try:
                await self.warn_about_integrations()
                await prune_signins(self.ctx)
            except Exception:  # the supervisor's loop: log and go on
                log.exception("integration check failed")
            await self._pause(self.integration_check_interval)

    async def _pause(self, seconds: float) -> None:
        """Sleep (the context's, so tests inject it) unless stopped first."""
        sleeper = asyncio.ensure_future(self.ctx.sleep(seconds))
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeper, stopper):
            task.cancel()

    async def run(self) -> None:
        """Run until stopped: token upkeep, and a daily look at integrations."""
        log.info("supervisor started", owner=self.keeper.owner)
        await asyncio.gather(
            self._token_upkeep(),
            self._integration_checks(),
        )
        log.info("supervisor stopped")
