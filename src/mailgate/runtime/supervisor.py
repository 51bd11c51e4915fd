"""The supervisor: runs the process's long-lived tasks and restarts them when they crash.

Today it keeps OAuth tokens (the token keeper's upkeep); mailbox loops and the outbox join it.
"""

from __future__ import annotations

import asyncio

import structlog

from mailgate.context import Context
from mailgate.oauth.integrations import integration_warnings, list_integrations
from mailgate.oauth.tokens import TokenKeeper

log = structlog.get_logger(__name__)


class Supervisor:
    def __init__(self, ctx: Context, *, upkeep_interval: float = 60.0) -> None:
        self.ctx = ctx
        self.keeper = TokenKeeper(ctx)
        self.upkeep_interval = upkeep_interval
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def warn_about_integrations(self) -> None:
        for integration, _count in await list_integrations(self.ctx):
            for warning in integration_warnings(integration, self.ctx.clock()):
                log.warning("integration needs attention", detail=warning)

    async def run(self) -> None:
        """Run until stopped: token upkeep, and a daily look at integrations."""
        log.info("supervisor started", owner=self.keeper.owner)
        await self.warn_about_integrations()
        await self.keeper.run(self._stop, interval=self.upkeep_interval)
        log.info("supervisor stopped")
