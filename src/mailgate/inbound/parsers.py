"""Parsing in other processes: a batch of messages is parsed there while the previous batch is
written (one core parses, another writes), the hot path of `ingest` and of a mailbox's backlog.

One pool per process, started when first needed; small batches (a message pushed by IDLE) are
parsed in the write thread, where they cost no hop at all.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import structlog

from mailgate.inbound.parse import InboundMessage, parse_many

log = structlog.get_logger(__name__)

PARSERS = max(1, min(os.cpu_count() or 1, 4))
MIN_BATCH = 20  # fewer messages are parsed faster where they are written

_pool: ProcessPoolExecutor | None = None


def _parsers() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # "spawn": the parsing processes start clean (no copy of this process's threads, locks
        # or open connections).
        _pool = ProcessPoolExecutor(PARSERS, mp_context=multiprocessing.get_context("spawn"))
    return _pool


def warm_up() -> None:
    """Start the parsing processes now, in the background (their start-up then overlaps the
    caller's: connecting, signing in, reading files), when a large batch is likely."""
    if PARSERS < 2:
        return
    pool = _parsers()
    for _ in range(PARSERS):
        pool.submit(parse_many, [])


async def parse_aside(raws: list[bytes]) -> list[InboundMessage] | None:
    """The messages parsed in a parsing process, or None: parse them in the write thread (a
    small batch, one core, or the parsing process failed — nothing is lost either way)."""
    global _pool
    if len(raws) < MIN_BATCH or PARSERS < 2:
        return None
    try:
        return await asyncio.get_running_loop().run_in_executor(_parsers(), parse_many, raws)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a broken pool (a parsing process killed): start a new one later
        log.warning("parsing process failed; parsing in the write thread", error=repr(exc))
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None
        return None
