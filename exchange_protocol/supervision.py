"""督办 rules: working days, when a received document is overdue, when its escalation falls due.

Pure: the calendar is a value, time is an argument. The node (``node.supervision``) asks
:func:`judge` about each received row; the local API, the CLI and the sweep that escalates all read
the same :class:`Lateness`, so "overdue" and "escalation due" are decided here once.

**Working days** are Monday to Friday, except the holidays of the operator's calendar, plus the
calendar's adjusted working days (调休: a Saturday or Sunday worked to bridge a holiday — China
moves several a year). Days are Beijing dates (a 公文's 办理时限 is a Beijing time).

**Overdue** (red light): the 办理时限 has passed and the unit has not settled the document
(``states.is_overdue``: not signed for, returned or recalled). ``overdue_by`` is the time since
the deadline; ``working_days_late`` counts the working days wholly past since the deadline's day
(a document due Monday 17:00 is 0 working days late on Tuesday, 1 on Wednesday).

**Escalation** falls due when ``grace`` working days have passed after the deadline's day: due
Monday, grace 3 → escalated from Friday 00:00 Beijing time (Tuesday, Wednesday, Thursday were the
grace). A grace of 0 escalates as soon as the document is overdue (networks that want no grace,
and tests with real node processes that cannot wait for days).

**The calendar file** (TOML, UTF-8; ``[supervision] calendar`` in node.toml; checked by ``gwx node
check``)::

    # 2026 的法定节假日与调休（国务院办公厅通知）
    holidays = [2026-10-01, 2026-10-02, 2026-10-05, "2026-10-06..2026-10-08"]
    workdays = [2026-09-27, 2026-10-10]   # 调休上班的周六、周日

Each entry is a TOML date, a ``"YYYY-MM-DD"`` string or a ``"FROM..TO"`` range (inclusive, at
most 60 days). A day may not be both; a ``workdays`` entry must fall on a Saturday or Sunday (a
weekday is a working day already: listing it is a mistake worth hearing about); no other keys.

**Per network** (:class:`NetworkSupervision`): the signed network directory may carry the grace and
the calendar for every node of the network (``gwx net build`` reads ``[supervision]`` of the network
source). Its JSON form, a key of the directory left out when the source sets neither, so a directory
without it signs byte for byte as before::

    "supervision": {"grace_working_days": 3,                                  # optional
                    "calendar": {"holidays": ["2026-10-01", …], "workdays": [ "2026-09-27", …]}}  # optional

What it sets wins over the node's own ``[supervision]`` in node.toml; what it leaves out is the
node's (``node.supervision.settings.rules_in_force`` decides, once).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from typing import Any

from pki.errors import ErrorKind

from .errors import DirectoryBadField, ProtocolError
from .model import BEIJING
from .states import Status, is_overdue

DEFAULT_GRACE_WORKING_DAYS = 3  # as in 临沂
MAX_GRACE_WORKING_DAYS = 60
MAX_RANGE_DAYS = 60
MAX_CALENDAR_BYTES = 256 * 1024
_SEARCH_DAYS = 3700  # a calendar without working days for ten years is refused, never looped on


class CalendarInvalid(ProtocolError):
    """The operator's holiday calendar file is not one (bad TOML, a bad date, a day in both lists)."""

    code = "CALENDAR_INVALID"
    kind = ErrorKind.INVALID_INPUT


@dataclass(frozen=True)
class WorkCalendar:
    """Weekends off, ``holidays`` off, ``workdays`` (调休 weekend days) on."""

    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()

    def __post_init__(self) -> None:
        both = self.holidays & self.workdays
        if both:
            raise CalendarInvalid(f"{min(both)} is listed both as a holiday and as a working day",
                                  day=min(both).isoformat())
        weekday = sorted(d for d in self.workdays if d.weekday() < 5)
        if weekday:
            raise CalendarInvalid(f"working day {weekday[0]} is a {weekday[0]:%A}: only a Saturday or Sunday "
                                  "can be an adjusted working day (调休)", day=weekday[0].isoformat())

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, day: dt.date, n: int) -> dt.date:
        """The ``n``-th working day after ``day`` (``day`` itself for ``n`` = 0)."""
        current = day
        for _ in range(_SEARCH_DAYS):
            if n == 0:
                return current
            current += dt.timedelta(days=1)
            if self.is_working_day(current):
                n -= 1
        raise CalendarInvalid(f"no working day within {_SEARCH_DAYS} days after {day}", day=day.isoformat())

    def working_days_between(self, after: dt.date, before: dt.date) -> int:
        """Working days strictly after ``after`` and strictly before ``before``."""
        count, current = 0, after + dt.timedelta(days=1)
        while current < before:
            count += self.is_working_day(current)
            current += dt.timedelta(days=1)
        return count


WEEKENDS_ONLY = WorkCalendar()


@dataclass(frozen=True)
class Lateness:
    """What the rules say about one received row at one moment."""

    overdue: bool
    overdue_by: dt.timedelta | None  # since the deadline, when overdue
    working_days_late: int  # working days wholly past since the deadline's day (0 when not overdue)
    escalation_due_at: dt.datetime | None  # when escalation falls due (None: no deadline)
    escalation_due: bool  # overdue and past escalation_due_at

    def to_json(self) -> dict[str, Any]:
        return {"overdue": self.overdue,
                "overdue_by": None if self.overdue_by is None else int(self.overdue_by.total_seconds()),
                "overdue_working_days": self.working_days_late}


NOT_LATE = Lateness(False, None, 0, None, False)


def deadline_day(deadline: dt.datetime) -> dt.date:
    """The Beijing date a deadline falls on; one at 00:00 sharp is the end of the day before (due
    Tuesday 00:00 is due by Monday night), so it counts like a deadline in Monday's office hours."""
    return (deadline.astimezone(BEIJING) - dt.timedelta(microseconds=1)).date()


def escalation_due_at(deadline: dt.datetime, calendar: WorkCalendar, grace: int) -> dt.datetime:
    """When a document due at ``deadline`` and still unsettled is escalated (see the module header)."""
    if grace == 0:
        return deadline
    last_grace_day = calendar.add_working_days(deadline_day(deadline), grace)
    return dt.datetime.combine(last_grace_day + dt.timedelta(days=1), dt.time(), BEIJING)


def judge(status: Status, deadline: dt.datetime | None, now: dt.datetime, calendar: WorkCalendar = WEEKENDS_ONLY,
          grace: int = DEFAULT_GRACE_WORKING_DAYS) -> Lateness:
    """The one answer to "is this row overdue, by how much, and is its escalation due"."""
    if not 0 <= grace <= MAX_GRACE_WORKING_DAYS:
        raise CalendarInvalid(f"grace must be 0–{MAX_GRACE_WORKING_DAYS} working days, got {grace}", grace=grace)
    if deadline is None or not is_overdue(status, deadline, now):
        due_at = None if deadline is None else escalation_due_at(deadline, calendar, grace)
        return Lateness(False, None, 0, due_at, False)
    due_at = escalation_due_at(deadline, calendar, grace)
    late_days = calendar.working_days_between(deadline_day(deadline), now.astimezone(BEIJING).date())
    return Lateness(True, now - deadline, late_days, due_at, now >= due_at)


@dataclass(frozen=True)
class NetworkSupervision:
    """The 督办 rules the network directory sets for every node: None leaves that one to the node."""

    grace_working_days: int | None = None
    calendar: WorkCalendar | None = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {}
        if self.grace_working_days is not None:
            value["grace_working_days"] = self.grace_working_days
        if self.calendar is not None:
            value["calendar"] = {"holidays": sorted(d.isoformat() for d in self.calendar.holidays),
                                 "workdays": sorted(d.isoformat() for d in self.calendar.workdays)}
        return value

    @classmethod
    def from_json(cls, value: Any, path: str = "$.supervision") -> NetworkSupervision:
        """From the directory's (untrusted) JSON: a wrong key, type or day is ``DIR_BAD_FIELD`` naming it."""
        if not isinstance(value, dict) or not value or set(value) - {"grace_working_days", "calendar"}:
            raise DirectoryBadField(f"{path} must be an object of grace_working_days and/or calendar", path=path)
        grace = value.get("grace_working_days")
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int)
                                  or not 0 <= grace <= MAX_GRACE_WORKING_DAYS):
            raise DirectoryBadField(f"{path}.grace_working_days must be a whole number 0–{MAX_GRACE_WORKING_DAYS}",
                                    path=f"{path}.grace_working_days")
        calendar = None
        if "calendar" in value:
            raw = value["calendar"]
            where = f"{path}.calendar"
            if not isinstance(raw, dict) or set(raw) != {"holidays", "workdays"}:
                raise DirectoryBadField(f"{where} must be an object of holidays and workdays", path=where)
            days = {key: frozenset(_directory_day(d, f"{where}.{key}[{i}]") for i, d in enumerate(
                raw[key] if isinstance(raw[key], list) else _not_a_list(f"{where}.{key}"))) for key in raw}
            try:
                calendar = WorkCalendar(days["holidays"], days["workdays"])
            except CalendarInvalid as exc:
                raise DirectoryBadField(f"{where}: {exc.message}", path=where) from None
        return cls(grace, calendar)


def _not_a_list(path: str) -> list:
    raise DirectoryBadField(f"{path} must be a list of dates", path=path)


def _directory_day(value: Any, path: str) -> dt.date:
    try:
        if isinstance(value, str) and len(value) == 10:
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise DirectoryBadField(f"{path} must be a date YYYY-MM-DD", path=path)


# --- the calendar file --------------------------------------------------------------------------
def parse_calendar(data: bytes, *, source: str = "calendar") -> WorkCalendar:
    """A :class:`WorkCalendar` from the file's bytes (untrusted: typed errors naming the entry)."""
    if len(data) > MAX_CALENDAR_BYTES:
        raise CalendarInvalid(f"{source} is {len(data)} bytes, more than {MAX_CALENDAR_BYTES}", source=source)
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalendarInvalid(f"{source} is not UTF-8 TOML: {exc}", source=source) from None
    unknown = sorted(set(raw) - {"holidays", "workdays"})
    if unknown:
        raise CalendarInvalid(f"{source}: unknown keys {', '.join(unknown)} (only holidays and workdays)",
                              source=source, keys=unknown)
    lists = {}
    for key in ("holidays", "workdays"):
        entries = raw.get(key, [])
        if not isinstance(entries, list):
            raise CalendarInvalid(f"{source}: {key} must be a list of dates", source=source, key=key)
        days: set[dt.date] = set()
        for i, entry in enumerate(entries):
            days.update(_days(entry, f"{key}[{i}]", source))
        lists[key] = frozenset(days)
    try:
        return WorkCalendar(lists["holidays"], lists["workdays"])
    except CalendarInvalid as exc:
        raise CalendarInvalid(f"{source}: {exc.message}", source=source) from None


def _days(entry: Any, where: str, source: str) -> list[dt.date]:
    if isinstance(entry, dt.date) and not isinstance(entry, dt.datetime):
        return [entry]
    if not isinstance(entry, str):
        raise CalendarInvalid(f"{source}: {where} must be a date, \"YYYY-MM-DD\" or \"FROM..TO\", got {entry!r}",
                              source=source, entry=where)
    first, dots, last = entry.partition("..")
    start = _date(first, where, source)
    end = _date(last, where, source) if dots else start
    if not start <= end <= start + dt.timedelta(days=MAX_RANGE_DAYS - 1):
        raise CalendarInvalid(f"{source}: {where} range {entry!r} must run forward over at most {MAX_RANGE_DAYS} days",
                              source=source, entry=where)
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def _date(text: str, where: str, source: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CalendarInvalid(f"{source}: {where} {text!r} is not a date YYYY-MM-DD", source=source,
                              entry=where) from None
