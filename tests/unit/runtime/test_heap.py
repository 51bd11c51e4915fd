"""The garbage collector's passes kept cheap: long-lived objects frozen, garbage among them
freed at the next tidy, everything given back when the supervisor stops."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from mailgate.context import Context
from mailgate.runtime import heap
from mailgate.runtime.supervisor import Supervisor


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_tidy_freezes_what_lives_and_frees_a_cycle_frozen_since_at_the_next_tidy() -> None:
    node = Node()
    gone = weakref.ref(node)
    assert heap.tidy() > 0
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()  # the collector's own passes skip what is frozen
    assert gone() is not None
    heap.tidy()
    assert gone() is None


def test_release_gives_every_object_back() -> None:
    heap.tidy()
    heap.release()
    assert gc.get_freeze_count() == 0


async def test_the_supervisor_tidies_after_its_start_and_releases_when_stopped(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    tidied: list[int] = []
    monkeypatch.setattr(heap, "tidy", lambda: tidied.append(1) or 1)
    supervisor = Supervisor(ctx, tidy_heap=True)
    gc.freeze()
    running = asyncio.ensure_future(supervisor._heap())
    for _ in range(100):
        await asyncio.sleep(0)
        if len(tidied) >= 2:
            break
    assert len(tidied) >= 2  # first after TIDY_FIRST_SECONDS, then every TIDY_SECONDS
    supervisor.stop()
    await running
    assert gc.get_freeze_count() == 0


async def test_a_supervisor_not_asked_to_tidy_leaves_the_collector_alone(ctx: Context) -> None:
    await Supervisor(ctx)._heap()
    assert gc.get_freeze_count() == 0
