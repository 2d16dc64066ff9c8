"""督办 rules: working days with holidays and 调休, overdue, when escalation falls due, the calendar file."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange_protocol.model import BEIJING
from exchange_protocol.states import ReceiverStatus as R
from exchange_protocol.supervision import (
    WEEKENDS_ONLY,
    CalendarInvalid,
    WorkCalendar,
    escalation_due_at,
    judge,
    parse_calendar,
)

D = dt.date
# 2026 National Day: 10-01..10-08 off, Sunday 09-27 and Saturday 10-10 worked (调休).
NATIONAL_DAY = parse_calendar(b'holidays = ["2026-10-01..2026-10-08"]\nworkdays = [2026-09-27, "2026-10-10"]\n')


def beijing(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BEIJING)


def test_weekends_are_off_and_the_calendar_moves_days_both_ways():
    assert WEEKENDS_ONLY.is_working_day(D(2026, 12, 4))  # Friday
    assert not WEEKENDS_ONLY.is_working_day(D(2026, 12, 5))  # Saturday
    assert not NATIONAL_DAY.is_working_day(D(2026, 10, 1))  # Thursday, a holiday
    assert NATIONAL_DAY.is_working_day(D(2026, 9, 27))  # Sunday, worked
    assert NATIONAL_DAY.is_working_day(D(2026, 10, 10))  # Saturday, worked
    assert NATIONAL_DAY.add_working_days(D(2026, 9, 30), 1) == D(2026, 10, 9)
    assert NATIONAL_DAY.add_working_days(D(2026, 9, 25), 1) == D(2026, 9, 27)
    assert NATIONAL_DAY.add_working_days(D(2026, 10, 9), 1) == D(2026, 10, 10)


def test_escalation_falls_due_after_three_working_days_past_the_deadlines_day():
    due_monday = beijing(2026, 12, 7, 17, 0)
    # Tuesday, Wednesday, Thursday are the grace: escalated from Friday 00:00 Beijing time.
    assert escalation_due_at(due_monday, WEEKENDS_ONLY, 3) == beijing(2026, 12, 11)
    # Due on a Friday: the weekend does not count (Mon, Tue, Wed → Thursday).
    assert escalation_due_at(beijing(2026, 12, 4, 17), WEEKENDS_ONLY, 3) == beijing(2026, 12, 10)
    # Due the day before National Day: the week of holidays does not count, the 调休 Saturday does.
    assert escalation_due_at(beijing(2026, 9, 30, 17), NATIONAL_DAY, 3) == beijing(2026, 10, 13)
    # Without a calendar the same document would have gone up on 10-06, in the middle of the holiday.
    assert escalation_due_at(beijing(2026, 9, 30, 17), WEEKENDS_ONLY, 3) == beijing(2026, 10, 6)
    assert escalation_due_at(due_monday, WEEKENDS_ONLY, 0) == due_monday


def test_judge_says_overdue_how_late_and_whether_to_escalate():
    deadline = beijing(2026, 12, 7, 17, 0)  # Monday
    assert not judge(R.PENDING, deadline, deadline).overdue
    late = judge(R.PENDING, deadline, beijing(2026, 12, 8, 10, 0))
    assert late.overdue and late.overdue_by == dt.timedelta(hours=17) and late.working_days_late == 0
    assert not late.escalation_due
    thursday = judge(R.PENDING, deadline, beijing(2026, 12, 10, 23, 59))
    assert thursday.working_days_late == 2 and not thursday.escalation_due
    friday = judge(R.PENDING, deadline, beijing(2026, 12, 11, 0, 0))
    assert friday.working_days_late == 3 and friday.escalation_due
    assert friday.to_json() == {"overdue": True, "overdue_by": 3 * 86400 + 7 * 3600, "overdue_working_days": 3}
    # Settled rows are never overdue nor escalated, whatever the time.
    for status in (R.SIGNED_FOR, R.REGISTERED, R.RETURNED, R.RECALLED):
        assert judge(status, deadline, beijing(2027, 1, 1)) == judge(status, deadline, deadline)
        assert not judge(status, deadline, beijing(2027, 1, 1)).escalation_due
    assert not judge(R.PENDING, None, beijing(2027, 1, 1)).overdue
    with pytest.raises(CalendarInvalid):
        judge(R.PENDING, deadline, deadline, grace=-1)


def test_a_calendar_with_ranges_strings_and_toml_dates_reads_as_one_set():
    assert NATIONAL_DAY.holidays == frozenset(D(2026, 10, d) for d in range(1, 9))
    assert NATIONAL_DAY.workdays == {D(2026, 9, 27), D(2026, 10, 10)}
    assert parse_calendar(b"") == WorkCalendar()


@pytest.mark.parametrize("text, words", [
    (b"holidays = [", "not UTF-8 TOML"),
    (b"\xff\xfe", "not UTF-8 TOML"),
    (b'holiday = ["2026-10-01"]', "unknown keys holiday"),
    (b'holidays = "2026-10-01"', "must be a list"),
    (b'holidays = ["2026-13-01"]', "is not a date"),
    (b'holidays = ["2026-1-1"]', "is not a date"),
    (b"holidays = [20261001]", "must be a date"),
    (b"holidays = [2026-10-01T08:00:00]", "must be a date"),
    (b'holidays = ["2026-10-08..2026-10-01"]', "must run forward"),
    (b'holidays = ["2026-01-01..2026-12-31"]', "at most 60 days"),
    (b'holidays = [2026-10-10]\nworkdays = [2026-10-10]', "both as a holiday and as a working day"),
    (b"workdays = [2026-10-09]", "only a Saturday or Sunday"),
])
def test_a_malformed_calendar_is_refused_with_a_typed_error_naming_what(text, words):
    with pytest.raises(CalendarInvalid) as err:
        parse_calendar(text, source="holidays.toml")
    assert err.value.code == "CALENDAR_INVALID"
    assert words in err.value.message and "holidays.toml" in err.value.message


def test_a_calendar_without_working_days_is_an_error_not_a_hang():
    everything_off = WorkCalendar(frozenset(D(2026, 1, 1) + dt.timedelta(days=i) for i in range(4000)))
    with pytest.raises(CalendarInvalid):
        everything_off.add_working_days(D(2026, 1, 1), 1)


def test_a_deadline_at_midnight_belongs_to_the_day_before():
    # Due Tuesday 00:00 is due at the end of Monday: escalated and counted like a Monday 17:00 deadline.
    monday_evening, midnight = beijing(2026, 11, 30, 17), beijing(2026, 12, 1, 0)
    assert escalation_due_at(midnight, WEEKENDS_ONLY, 3) == escalation_due_at(monday_evening, WEEKENDS_ONLY, 3)
    friday_noon = beijing(2026, 12, 4, 12)
    assert judge(R.PENDING, midnight, friday_noon).working_days_late == 3  # Tue, Wed, Thu
    assert judge(R.PENDING, monday_evening, friday_noon).working_days_late == 3
