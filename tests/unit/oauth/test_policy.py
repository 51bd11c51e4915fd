import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailgate.oauth.tokens import (
    ACTIVE,
    NEEDS_REAUTHORIZATION,
    REFRESH_FAILING,
    REVOKED,
    IllegalTransition,
    RefreshPolicy,
    transition,
)

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
policy = RefreshPolicy()


def test_token_is_refreshed_a_margin_before_it_expires() -> None:
    assert policy.access_token_fresh(NOW + timedelta(minutes=6), NOW)
    assert not policy.access_token_fresh(NOW + timedelta(minutes=4), NOW)
    assert not policy.access_token_fresh(None, NOW)


def test_idle_credentials_are_refreshed_well_inside_90_days() -> None:
    assert policy.idle_refresh_after < timedelta(days=30)
    assert policy.idle(NOW - timedelta(days=8), NOW)
    assert not policy.idle(NOW - timedelta(days=1), NOW)


@given(failures=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_backoff_grows_with_jitter_and_is_capped(failures: int, seed: int) -> None:
    delay = policy.backoff(failures, random.Random(seed))
    nominal = min(policy.backoff_base * 2 ** min(failures - 1, 30), policy.backoff_max)
    assert nominal * 0.5 <= delay <= nominal


def test_backoff_doubles() -> None:
    rng = random.Random(1)
    firsts = [policy.backoff(n, random.Random(1)) for n in (1, 2, 3)]
    tolerance = timedelta(milliseconds=1)
    assert abs(firsts[1] - firsts[0] * 2) < tolerance
    assert abs(firsts[2] - firsts[0] * 4) < tolerance
    assert policy.backoff(100, rng) <= policy.backoff_max


def test_status_table() -> None:
    assert transition(ACTIVE, REFRESH_FAILING) == REFRESH_FAILING
    assert transition(REFRESH_FAILING, ACTIVE) == ACTIVE
    assert transition(NEEDS_REAUTHORIZATION, ACTIVE) == ACTIVE
    with pytest.raises(IllegalTransition):
        transition(REVOKED, REFRESH_FAILING)
