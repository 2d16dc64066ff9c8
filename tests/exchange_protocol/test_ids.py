"""Time-ordered ids: UUIDv7 layout, creation-time order, and the time read back."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_protocol.errors import InvalidId
from exchange_protocol.ids import IdGenerator, id_time, new_id, parse_id

T0 = datetime(2026, 11, 20, 9, 0, 0, 123000, tzinfo=timezone(timedelta(hours=8)))


def test_ids_are_rfc_9562_version_7() -> None:
    # A generator of its own: the process-wide one never goes back in time, and an earlier test in
    # the same process may have made ids far in the future (a clock set 30 years ahead).
    text = IdGenerator().new(T0)
    value = uuid.UUID(text)
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert text == str(value) and len(text) == 36
    assert id_time(text) == T0.astimezone(UTC)


def test_ids_sort_by_creation_time_even_within_one_millisecond() -> None:
    gen = IdGenerator()
    times = [T0] * 50 + [T0 + timedelta(microseconds=300)] * 5 + [T0 + timedelta(milliseconds=1)] * 50
    made = [gen.new(t) for t in times]
    assert sorted(made) == made and len(set(made)) == len(made)


def test_a_clock_stepping_back_does_not_break_the_order() -> None:
    gen = IdGenerator()
    first = gen.new(T0)
    second = gen.new(T0 - timedelta(seconds=3))
    assert second > first


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    counter = itertools.count()
    # the counter starts from the random bits: all-ones start at 0x7FF, leaving 2048 increments
    gen = IdGenerator(random_bytes=lambda n: (next(counter) % 256).to_bytes(1, "big") * n)
    made = [gen.new(T0) for _ in range(5000)]
    assert sorted(made) == made and len(set(made)) == 5000
    assert id_time(made[-1]) > T0.astimezone(UTC)


def test_injected_randomness_makes_ids_reproducible() -> None:
    def make() -> str:
        return IdGenerator(random_bytes=lambda n: b"\x42" * n).new(T0)
    assert make() == make()


@given(st.lists(st.datetimes(datetime(1971, 1, 1), datetime(9999, 1, 1), timezones=st.just(UTC)),
                min_size=2, max_size=30))
def test_ids_made_in_time_order_sort_in_time_order(times: list[datetime]) -> None:
    gen = IdGenerator()
    made = [gen.new(t) for t in sorted(times)]
    assert sorted(made) == made


@given(st.datetimes(datetime(1971, 1, 1), datetime(9999, 1, 1), timezones=st.just(UTC)),
       st.datetimes(datetime(1971, 1, 1), datetime(9999, 1, 1), timezones=st.just(UTC)))
def test_separate_generators_order_by_millisecond(a: datetime, b: datetime) -> None:
    ms = timedelta(milliseconds=1)
    if (a - b) >= ms:
        assert IdGenerator().new(a) > IdGenerator().new(b)


@pytest.mark.parametrize("bad", [datetime(2026, 1, 1), "2026-01-01", datetime(1969, 12, 31, tzinfo=UTC)])
def test_bad_times_are_refused(bad) -> None:
    with pytest.raises(InvalidId):
        new_id(bad)


@pytest.mark.parametrize("bad", [
    "", "not-an-id", pytest.param(str(uuid.uuid4()), id="uuid4"), pytest.param(new_id(T0).upper(), id="upper-case"),
    pytest.param(new_id(T0) + " ", id="trailing-space"), 7, None,
])  # ids of their own where the value is random: pytest-xdist's workers must collect the same names
def test_parse_id_refuses_what_we_did_not_make(bad) -> None:
    with pytest.raises(InvalidId) as info:
        parse_id(bad)
    assert info.value.code == "PROTO_INVALID_ID"
