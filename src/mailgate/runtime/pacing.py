"""Pacing the connection attempts of one process, so that a worker starting with a thousand
mailboxes does not open a thousand TLS connections and ask for a thousand tokens in the same
second (a thundering herd at the mail server and at the token endpoint), yet has them all
connected within a minute.

A `Pacer` lets at most `in_flight` attempts run at once, and starts new ones at most `rate` a
second, each gap drawn around 1/`rate` (jitter) so that several workers restarted together do
not march in step. An attempt is whatever `slot()` wraps: for a mailbox, the token, the TCP
connection, TLS, the greeting and the sign-in (`runtime/connect.py`) — and for an IMAP mailbox
its first round too, up to IDLE (`turn`, `runtime/imap_mailbox.py`), so that the database work
of a start is paced as well. A lone attempt — one mailbox reconnecting — starts at once. The price: a token endpoint or a server that hangs holds
the slots of the attempts waiting on it until their timeout, and the others wait meanwhile.

One pacer per event loop (`pacer_for_this_loop`): a process runs one loop, and a pacer's
waiting attempts belong to the loop they wait in.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Protocol

RATE = 50.0  # new connection attempts a second: 1,000 mailboxes in about 20 s
IN_FLIGHT = 20  # attempts at once: a slow server or token endpoint slows the start, no more
JITTER = 0.5  # each gap is 1/RATE times a factor drawn in [1 - JITTER, 1 + JITTER]
# The longest a mailbox's first round (the mail waiting since it was last read) keeps its turn:
# a backlog of thousands of messages must not hold the others back for minutes.
FIRST_ROUND_SECONDS = 30.0


class Pacer:
    """At most `in_flight` attempts at once, started at most `rate` a second.

    `clock` (seconds, monotonic) and `sleep` are injected, so a test runs a thousand attempts
    in virtual time."""

    def __init__(
        self,
        *,
        rate: float = RATE,
        in_flight: int = IN_FLIGHT,
        jitter: float = JITTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if rate <= 0 or in_flight < 1 or not 0 <= jitter < 1:
            raise ValueError("a pacer needs rate > 0, in_flight ≥ 1 and 0 ≤ jitter < 1")
        self.gap = 1 / rate
        self.in_flight = in_flight
        self.jitter = jitter
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.active = 0  # attempts holding a slot now
        self._next_start = -math.inf
        self._waiting: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot and for this attempt's turn, then run the body in the slot."""
        async with self.turn():
            yield

    @asynccontextmanager
    async def turn(self, at_most: float | None = None) -> AsyncIterator[Turn]:
        """Wait for a free slot and this attempt's turn; the slot is the body's until it calls
        `Turn.release` — or `at_most` seconds pass, or the body ends. For an attempt whose end
        its caller decides: a mailbox's opening and its first round, which ends with IDLE."""
        await self._enter()
        held = Turn(self)
        try:
            await self._take_turn()
            if at_most is not None:
                held.deadline = asyncio.create_task(self._release_after(held, at_most))
            yield held
        finally:
            held.release()

    async def _release_after(self, held: Turn, seconds: float) -> None:
        await self.sleep(seconds)
        held.release()

    async def _enter(self) -> None:
        if self.active < self.in_flight and not self._waiting:
            self.active += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # `_leave` hands its slot over: `active` stays as it is
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._leave()  # handed a slot while being cancelled: pass it on
            else:
                with suppress(ValueError):
                    self._waiting.remove(turn)
            raise

    def _leave(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.active -= 1

    async def _take_turn(self) -> None:
        """Reserve the next start time, at least a gap after the previous one, and wait for it.
        Reserved before waiting, so that attempts arriving together get successive turns."""
        now = self.clock()
        start = max(now, self._next_start)
        spread = self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        self._next_start = start + self.gap * spread
        if start > now:
            await self.sleep(start - now)


class Turn:
    """A slot held by one attempt, given back once (`release`). It is itself what
    `runtime/connect.py` waits on (`slot`), at once: the attempt holds its slot already."""

    def __init__(self, pacer: Pacer) -> None:
        self._pacer: Pacer | None = pacer
        self.deadline: asyncio.Task[None] | None = None

    def release(self) -> None:
        """Give the slot back to the next attempt (again: nothing)."""
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            pacer._leave()
        if self.deadline is not None and self.deadline is not asyncio.current_task():
            self.deadline.cancel()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        yield


class Pacing(Protocol):
    """What an opening waits for: a `Pacer`, or a `Turn` taken already."""

    def slot(self) -> AbstractAsyncContextManager[None]: ...


_pacers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer] = weakref.WeakKeyDictionary()


def pacer_for_this_loop() -> Pacer:
    """The running loop's pacer (with the default rate and limit), made when first asked for:
    every mailbox of the process connects through it."""
    loop = asyncio.get_running_loop()
    pacer = _pacers.get(loop)
    if pacer is None:
        pacer = _pacers[loop] = Pacer()
    return pacer
