"""A process's leases renewed together (`runtime/leases.py`, `Holdings`), on a clock the test
moves: each lease keeps its own deadline, whatever happens to the others in the same renewal."""

from __future__ import annotations

from mailgate.runtime.leases import Holdings, Renewal, Timing

TIMING = Timing(lease=10.0, heartbeat=3.0, stop=1.0)  # a lease claimed at 0 must stop by 9


class Time:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def holdings_of(time: Time, *mailboxes: int) -> tuple[Holdings, list[int]]:
    """Leases of `mailboxes`, claimed at 0; the list fills with those whose holder was stopped."""
    holdings = Holdings(TIMING, time)
    stopped: list[int] = []
    for mailbox in mailboxes:
        holdings.add(mailbox, 0.0, lambda mailbox=mailbox: stopped.append(mailbox))
    return holdings, stopped


async def test_a_row_skipped_by_a_renewal_is_kept_until_it_could_run_out_then_stopped_alone() -> (
    None
):
    time = Time()
    holdings, stopped = holdings_of(time, 1, 2)
    asked: list[tuple[frozenset[int], float]] = []

    async def renew_all_but_1(held: frozenset[int], within: float) -> Renewal:
        asked.append((held, within))
        return Renewal(held - {1})  # 1's row was being written: neither renewed nor lost

    time.now = 3.0
    await holdings.beat(renew_all_but_1)
    assert stopped == []  # 3 + 3 < 9: the next heartbeat may still renew it
    time.now = 6.0
    await holdings.beat(renew_all_but_1)
    assert stopped == [1]  # the next heartbeat would end after its deadline
    assert holdings.held() == {2}
    # Each renewal was given until the earliest deadline of the leases it renews.
    assert asked == [(frozenset({1, 2}), 6.0), (frozenset({1, 2}), 3.0)]


async def test_a_lease_claimed_during_a_renewal_is_not_judged_by_it() -> None:
    time = Time()
    holdings, stopped = holdings_of(time, 1)

    async def slow_renewal(held: frozenset[int], _within: float) -> Renewal:
        holdings.add(2, time.now, lambda: stopped.append(2))  # claimed meanwhile
        return Renewal(frozenset(), lost=held)  # 1 was taken by another process

    time.now = 3.0
    await holdings.beat(slow_renewal)
    assert stopped == [1]
    assert holdings.held() == {2}


async def test_a_lease_past_its_deadline_is_stopped_before_the_renewal_is_even_tried() -> None:
    time = Time()
    holdings, stopped = holdings_of(time, 1)
    holdings.add(2, 5.0, lambda: stopped.append(2))  # claimed later: its deadline is 14

    async def renew(held: frozenset[int], _within: float) -> Renewal:
        assert held == {2}  # 1 is not renewed after its holder was stopped
        return Renewal(held)

    time.now = 9.5  # the event loop was held up past 1's deadline
    await holdings.beat(renew)
    assert stopped == [1]
    assert holdings.held() == {2}
