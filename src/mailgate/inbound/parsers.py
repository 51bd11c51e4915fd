"""Parsing in other processes: a batch of messages is parsed there while the previous batch is
written (one core parses, another writes), the hot path of `ingest` and of a mailbox's backlog.

One pool per process, started when first needed; small batches (a message pushed by IDLE) are
parsed in the write thread, where they cost no hop at all.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

import structlog

from mailgate.inbound.parse import InboundMessage, parse_many

log = structlog.get_logger(__name__)

PARSERS = max(1, min(os.cpu_count() or 1, 4))
MIN_BATCH = 20  # fewer messages are parsed faster where they are written

_pool: ProcessPoolExecutor | None = None


def _die_with_parent() -> None:
    """In a parsing process: end when the process that started it ends (Linux), so a killed
    `mailgate ingest` or `poll` leaves no parsing process behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _parsers() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        # "spawn": the parsing processes start clean (no copy of this process's threads, locks
        # or open connections).
        _pool = ProcessPoolExecutor(
            PARSERS,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
        )
    return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Stop a pool that failed or hangs (a parsing process killed while answering can leave
    it waiting forever): kill its processes; the next batch starts a new pool."""
    global _pool
    if _pool is pool:
        _pool = None
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()


def _deadline(raws: list[bytes]) -> float:
    """Seconds a batch may take to parse: generous (a slow host), but not forever."""
    return 30.0 + sum(len(raw) for raw in raws) / 1_000_000


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
    if len(raws) < MIN_BATCH or PARSERS < 2:
        return None
    pool = _parsers()
    parsing = asyncio.get_running_loop().run_in_executor(pool, parse_many, raws)
    try:
        return await asyncio.wait_for(parsing, _deadline(raws))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # broken or hung (a parsing process killed): a new pool later
        log.warning("parsing process failed; parsing in the write thread", error=repr(exc))
        _discard(pool)
        return None
