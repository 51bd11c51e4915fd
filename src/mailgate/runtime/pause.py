"""Waiting in the long-running loops: the context's sleep (injected by tests), cut short by stop."""

from __future__ import annotations

import asyncio

from mailgate.context import Context


async def wait_or_stop(ctx: Context, stop: asyncio.Event, seconds: float) -> None:
    sleeper = asyncio.ensure_future(ctx.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in (sleeper, stopper):
        task.cancel()
