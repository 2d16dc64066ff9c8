"""Retry timing: bounds, growth, the retry window, and hostile parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_protocol.errors import InvalidRetryInput, InvalidRetryPolicy
from exchange_protocol.retry import GIVE_UP, RetryPolicy, next_attempt

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
rands = st.floats(0, 1, exclude_max=True)
attempts = st.integers(1, 10_000)


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    lo = draw(st.integers(1, 600))
    hi = draw(st.integers(lo, 7 * 86400))
    return RetryPolicy(min_delay=timedelta(seconds=lo), max_delay=timedelta(seconds=hi),
                       multiplier=draw(st.floats(1, 10)), jitter=draw(st.floats(0, 1)),
                       max_age=timedelta(seconds=draw(st.integers(1, 30 * 86400))))


def test_plain_exponential_schedule_without_jitter() -> None:
    p = RetryPolicy(min_delay=timedelta(seconds=10), max_delay=timedelta(seconds=100), multiplier=2,
                    jitter=0, max_age=timedelta(hours=1))
    delays = [next_attempt(n, T0, T0, p, 0.99) - T0 for n in range(1, 7)]
    assert [d.total_seconds() for d in delays] == [10, 20, 40, 80, 100, 100]


def test_full_jitter_spreads_down_to_the_floor() -> None:
    p = RetryPolicy(min_delay=timedelta(seconds=10), max_delay=timedelta(seconds=100), multiplier=2,
                    jitter=1, max_age=timedelta(hours=1))
    assert next_attempt(6, T0, T0, p, 0.0) - T0 == timedelta(seconds=100)
    assert next_attempt(6, T0, T0, p, 0.5) - T0 == timedelta(seconds=50)
    assert next_attempt(6, T0, T0, p, 0.999999) - T0 == timedelta(seconds=10)


def test_last_attempt_at_the_edge_then_give_up() -> None:
    p = RetryPolicy(min_delay=timedelta(minutes=10), max_delay=timedelta(hours=1), multiplier=2, jitter=0,
                    max_age=timedelta(hours=2))
    now = T0 + timedelta(hours=1, minutes=55)
    assert next_attempt(5, T0, now, p, 0.3) == T0 + timedelta(hours=2)
    assert next_attempt(6, T0, T0 + timedelta(hours=2), p, 0.3) is GIVE_UP
    assert next_attempt(1, T0, T0 + timedelta(days=9), p, 0.3) is GIVE_UP


def test_clock_stepping_back_counts_as_no_time_elapsed() -> None:
    p = RetryPolicy(jitter=0)
    assert next_attempt(1, T0, T0 - timedelta(minutes=5), p, 0.1) == T0 + p.min_delay


@given(policies(), attempts, rands)
def test_delay_is_always_between_min_and_max(policy: RetryPolicy, attempt: int, rand: float) -> None:
    assert policy.min_delay <= policy.delay(attempt, rand) <= policy.max_delay


@given(policies(), attempts, attempts, rands)
def test_bounds_grow_with_the_attempt_number(policy: RetryPolicy, a: int, b: int, rand: float) -> None:
    a, b = min(a, b), max(a, b)
    assert policy.ceiling(a) <= policy.ceiling(b)
    # the same random draw never gives a shorter wait for a later attempt
    assert policy.delay(a, rand) <= policy.delay(b, rand)
    # and the jitter-free floor of the range grows too
    assert max(policy.min_delay, policy.ceiling(a) * (1 - policy.jitter)) <= \
        max(policy.min_delay, policy.ceiling(b) * (1 - policy.jitter))


@given(policies(), attempts, rands, st.integers(-86400, 40 * 86400))
def test_next_attempt_stays_inside_the_window(policy: RetryPolicy, attempt: int, rand: float,
                                               elapsed: int) -> None:
    now = T0 + timedelta(seconds=elapsed)
    result = next_attempt(attempt, T0, now, policy, rand)
    end = T0 + policy.max_age
    if max(now, T0) >= end:
        assert result is GIVE_UP
    else:
        assert result is not GIVE_UP
        assert max(now, T0) < result <= end
        assert result - max(now, T0) <= policy.max_delay


@pytest.mark.parametrize("kwargs", [
    {"min_delay": timedelta(0)},
    {"min_delay": timedelta(seconds=-1)},
    {"min_delay": timedelta(minutes=10), "max_delay": timedelta(minutes=5)},
    {"multiplier": 0.5},
    {"multiplier": float("inf")},
    {"multiplier": float("nan")},
    {"multiplier": True},
    {"jitter": -0.1},
    {"jitter": 1.5},
    {"max_age": timedelta(0)},
    {"max_age": 3600},
])
def test_bad_policies_are_refused_at_construction(kwargs) -> None:
    with pytest.raises(InvalidRetryPolicy) as info:
        RetryPolicy(**kwargs)
    assert info.value.code == "RETRY_INVALID_POLICY"
    assert info.value.details["field"] in kwargs


@pytest.mark.parametrize(("args", "field"), [
    ((0, T0, T0, 0.5), "attempt"),
    ((1.0, T0, T0, 0.5), "attempt"),
    ((1, T0, T0, 1.0), "rand"),
    ((1, T0, T0, -0.1), "rand"),
    ((1, T0.replace(tzinfo=None), T0, 0.5), "first_failure"),
    ((1, T0, T0.replace(tzinfo=None), 0.5), "now"),
])
def test_bad_inputs_are_typed_errors(args, field) -> None:
    with pytest.raises(InvalidRetryInput) as info:
        next_attempt(args[0], args[1], args[2], RetryPolicy(), args[3])
    assert info.value.details["field"] == field
