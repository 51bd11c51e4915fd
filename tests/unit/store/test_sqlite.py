"""Waiting for SQLite's write lock, with the clock and the sleep given (no database, no time)."""

from __future__ import annotations

import random
import sqlite3
import threading

import pytest

from mailgate.errors import DatabaseBusy
from mailgate.store.sqlite import ATTEMPT_SECONDS, LOCK_PATIENCE, wait_for_lock


def busy() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = 5  # SQLITE_BUSY
    return error


class Lock:
    """A BEGIN that finds the lock taken `taken` times; each attempt costs SQLite's wait."""

    def __init__(self, taken: int) -> None:
        self.taken = taken
        self.attempts = 0
        self.now = 0.0
        self.slept: list[float] = []

    def begin(self) -> None:
        self.attempts += 1
        if self.attempts <= self.taken:
            self.now += ATTEMPT_SECONDS
            raise busy()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def wait(
        self, given_up: threading.Event | None = None, patience: float = LOCK_PATIENCE
    ) -> None:
        wait_for_lock(
            self.begin,
            given_up,
            patience=patience,
            clock=lambda: self.now,
            sleep=self.sleep,
            rng=random.Random(7),
        )


def test_a_begin_that_finds_the_lock_taken_is_tried_again_until_it_gets_it() -> None:
    lock = Lock(taken=5)
    lock.wait()
    assert lock.attempts == 6
    assert all(0 < pause <= 1.0 for pause in lock.slept)  # a backoff between attempts


def test_after_the_patience_one_sentence_says_who_holds_the_database() -> None:
    lock = Lock(taken=10_000)
    with pytest.raises(DatabaseBusy) as refused:
        lock.wait()
    assert "Another mailgate process has held the database for" in str(refused.value)
    assert "nothing was changed" in str(refused.value)
    assert LOCK_PATIENCE <= lock.now < LOCK_PATIENCE + ATTEMPT_SECONDS + 1


def test_no_patience_means_one_attempt() -> None:
    lock = Lock(taken=1)
    with pytest.raises(DatabaseBusy):
        lock.wait(patience=0.0)
    assert lock.attempts == 1 and lock.slept == []


def test_a_caller_that_gave_up_stops_the_wait() -> None:
    given_up = threading.Event()
    lock = Lock(taken=10_000)
    original = lock.begin

    def begin() -> None:
        if lock.attempts == 3:
            given_up.set()  # the awaiting task was cancelled meanwhile
        original()

    lock.begin = begin  # type: ignore[method-assign]
    with pytest.raises(DatabaseBusy):
        lock.wait(given_up)
    assert lock.attempts == 4


def test_other_errors_are_not_retried() -> None:
    def begin() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk"):
        wait_for_lock(begin, sleep=lambda _s: pytest.fail("must not wait"))
