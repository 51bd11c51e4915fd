"""The connection pacer in virtual time: a thousand mailboxes connect at a steady pace, a few at
a time, and all within a minute; a lone reconnect does not wait."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from mailgate.runtime.pacing import Pacer, pacer_for_this_loop


class VirtualTime:
    """A clock and a sleep for the pacer and the attempts: time jumps to the next wake-up once
    every task waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), wake))
        await wake

    async def run(self, jobs: list[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        tasks = [asyncio.create_task(job()) for job in jobs]
        while not all(task.done() for task in tasks):
            # Every task woken reaches its next sleep within a few turns of the loop: a slot
            # handed on wakes one waiter, which reserves its turn and sleeps (no real I/O here).
            for _ in range(10):
                await asyncio.sleep(0)
            if self._sleepers:
                self.now = max(self.now, self._sleepers[0][0])
            while self._sleepers and self._sleepers[0][0] <= self.now:
                wake = heapq.heappop(self._sleepers)[2]
                if not wake.done():  # not a sleep cancelled meanwhile
                    wake.set_result(None)
        await asyncio.gather(*tasks)


class Attempts:
    """Connection attempts that each take `seconds`, recording when they start and how many
    run at once."""

    def __init__(self, pacer: Pacer, time: VirtualTime, seconds: float) -> None:
        self.pacer, self.time, self.seconds = pacer, time, seconds
        self.starts: list[float] = []
        self.running = 0
        self.most = 0

    async def one(self) -> None:
        async with self.pacer.slot():
            self.starts.append(self.time.now)
            self.running += 1
            self.most = max(self.most, self.running)
            await self.time.sleep(self.seconds)
            self.running -= 1


def paced(time: VirtualTime, *, rate: float, in_flight: int, jitter: float = 0.5) -> Pacer:
    return Pacer(
        rate=rate,
        in_flight=in_flight,
        jitter=jitter,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(14),
    )


async def test_a_thousand_mailboxes_connect_at_the_rate_a_few_at_a_time() -> None:
    time = VirtualTime()
    pacer = paced(time, rate=50, in_flight=20)
    attempts = Attempts(pacer, time, seconds=0.3)  # TLS and sign-in at a busy server
    await time.run([attempts.one] * 1000)
    assert len(attempts.starts) == 1000
    assert attempts.most <= 20
    # Never more than the rate allows in any second (each gap at least half the mean: jitter).
    for second in range(int(attempts.starts[-1]) + 1):
        started = [s for s in attempts.starts if second <= s < second + 1]
        assert len(started) <= 2 * 50, second
    # All connected within a minute: about 1000 / 50 = 20 s.
    assert 15 < attempts.starts[-1] + attempts.seconds < 60
    assert pacer.active == 0


async def test_a_slow_server_is_kept_to_the_attempts_in_flight() -> None:
    time = VirtualTime()
    pacer = paced(time, rate=50, in_flight=20)
    attempts = Attempts(pacer, time, seconds=4.0)  # a server (or token endpoint) struggling
    await time.run([attempts.one] * 200)
    assert attempts.most == 20
    # 20 at a time, 4 s each: 200 attempts take ten rounds, however fast the rate would allow.
    assert attempts.starts[-1] >= 9 * 4.0


async def test_without_jitter_starts_are_evenly_spaced() -> None:
    time = VirtualTime()
    attempts = Attempts(paced(time, rate=10, in_flight=5, jitter=0), time, seconds=0.1)
    await time.run([attempts.one] * 30)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts.starts)]
    assert gaps == pytest.approx([0.1] * 29)


async def test_a_lone_reconnect_starts_at_once() -> None:
    time = VirtualTime()
    attempts = Attempts(paced(time, rate=1, in_flight=1), time, seconds=0.5)
    await time.run([attempts.one])
    time.now += 60  # an hour of IDLE later, one mailbox loses its connection
    await time.run([attempts.one])
    assert attempts.starts == [0.0, 60.5]


async def test_a_cancelled_waiter_leaves_its_place_and_the_slots_add_up() -> None:
    pacer = Pacer(rate=1000, in_flight=1)  # the real clock: no turn waits over 2 ms
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with pacer.slot():
            held.set()
            await release.wait()

    first = asyncio.create_task(holder())
    await held.wait()
    waiter = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    release.set()
    await first
    assert pacer.active == 0
    # The slot is free again: the next attempt goes in without waiting for anyone.
    async with pacer.slot():
        assert pacer.active == 1


async def test_one_pacer_per_event_loop() -> None:
    assert pacer_for_this_loop() is pacer_for_this_loop()


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        Pacer(rate=0)
    with pytest.raises(ValueError, match="in_flight"):
        Pacer(in_flight=0)


async def test_a_turn_is_held_until_released_or_at_most_its_time() -> None:
    time = VirtualTime()
    pacer = paced(time, rate=1000, in_flight=1, jitter=0)
    ends: list[tuple[str, float]] = []

    async def catches_up(name: str, work: float) -> None:
        # A mailbox's opening and first round: the slot is released when it is caught up.
        async with pacer.turn(at_most=30) as turn:
            async with turn.slot():  # what opens the connection does not wait again
                pass
            await time.sleep(work)
            turn.release()
            ends.append((name, time.now))
            await time.sleep(100)  # IDLE: the slot is the next mailbox's already

    async def next_one() -> None:
        async with pacer.slot():
            ends.append(("next", time.now))

    # A first round of 5 s lets the next in after 5 s; a backlog of 300 s, after 30 s at most.
    await time.run([lambda: catches_up("quick", 5), next_one])
    assert ends[:2] == [("quick", 5.0), ("next", 5.0)]
    ends.clear()
    started = time.now
    await time.run([lambda: catches_up("backlog", 300), next_one])
    assert ends[0] == ("next", started + 30)
    assert pacer.active == 0
