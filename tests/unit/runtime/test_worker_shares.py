"""A worker's share of the mailboxes: how many more it takes, or hands back, from what it sees
of the others (`runtime/workers.py`)."""

from __future__ import annotations

import pytest

from mailgate.runtime.workers import Census, share


@pytest.mark.parametrize(
    ("mailboxes", "workers", "expected"), [(9, 3, 3), (10, 3, 4), (1, 2, 1), (0, 2, 0), (5, 0, 5)]
)
def test_a_share_is_the_mailboxes_over_the_live_workers_rounded_up(
    mailboxes: int, workers: int, expected: int
) -> None:
    assert share(mailboxes, workers) == expected


@pytest.mark.parametrize(
    ("mailboxes", "others", "mine", "expected"),
    [
        (9, {}, 0, 9),  # alone: everything
        (6, {"b": 0}, 0, 3),  # two starting at once: each its floor first
        (9, {"b": 4}, 5, 0),  # 5 and 4: settled
        (9, {"b": 4, "c": 0}, 5, -2),  # a third joins: down to 3
        (9, {"b": 3, "c": 3}, 0, 3),  # the new one takes what was handed back
        (10, {"b": 5, "c": 2}, 3, 0),  # c below its floor: a waits while b hands back
        (10, {"b": 5, "c": 2}, 5, -2),  # … and a, above the floor, hands back too
        (10, {"b": 3, "c": 3}, 3, 1),  # nobody below the floor: one more, if still free
        (0, {"b": 0}, 2, -2),  # the mailboxes were deleted
    ],
)
def test_a_worker_takes_up_to_its_share_and_makes_room_for_one_below_its_floor(
    mailboxes: int, others: dict[str, int], mine: int, expected: int
) -> None:
    census = Census(mailboxes, {"a": mine, **others})
    assert census.plan("a", mine) == expected


def test_a_worker_not_seen_alive_yet_counts_itself() -> None:
    # b holds all 9 and a's heartbeat is not in yet: a's share of two, whatever b does.
    assert Census(9, {"b": 9}).plan("a", 0) == 5
