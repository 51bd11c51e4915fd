"""Waiting in the long-running loops: the context's sleep (injected by tests), cut short by stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from mailgate.context import Context

T = TypeVar("T")


async def wait_or_stop(ctx: Context, stop: asyncio.Event, seconds: float) -> None:
    sleeper = asyncio.ensure_future(ctx.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for task in (sleeper, stopper):
        task.cancel()


async def or_stop(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`work`'s result, or None once `stop` is set first (`work` is cancelled then): an IMAP
    IDLE, which may last half an hour, is left at once when its loop is stopped."""
    working = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({working, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not working.done():
            working.cancel()
            await asyncio.gather(working, return_exceptions=True)
    return None if working.cancelled() else working.result()
