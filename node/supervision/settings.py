"""``[supervision]`` in node.toml: grace period, holiday calendar, sweep interval.

::

    [supervision]
    grace_working_days = 3          # default; 0 escalates as soon as a document is overdue
    calendar = "holidays-2026.toml" # optional, relative to the node directory (format:
                                    # exchange_protocol.supervision)
    sweep_seconds = 60.0            # how often overdue rows are looked for

**Per network: the signed directory wins.** The grace is one value per network and the calendar
one per network (调休 is announced late in the year, by the State Council): the root operator sets
them in the network source's ``[supervision]`` and every node holding that directory uses them
(:func:`rules_in_force`, the one place that decides, read at each judgement so a new directory
version changes when escalation happens). What the directory leaves out — or all of it on a node
without a directory (static peers) — is node.toml's, then the defaults. A directory carrying
``supervision`` is refused by nodes older than it (unknown field): upgrade the nodes first.

The calendar file is read and checked when the configuration loads (``gwx node check`` and
``gwx node run`` refuse a bad one with ``CALENDAR_INVALID``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange_protocol.supervision import (
    DEFAULT_GRACE_WORKING_DAYS,
    MAX_GRACE_WORKING_DAYS,
    WEEKENDS_ONLY,
    CalendarInvalid,
    WorkCalendar,
    parse_calendar,
)
from node.errors import ConfigError


@dataclass(frozen=True)
class SupervisionSettings:
    grace_working_days: int = DEFAULT_GRACE_WORKING_DAYS
    calendar_path: Path | None = None
    sweep_seconds: float = 60.0
    calendar: WorkCalendar = field(default=WEEKENDS_ONLY, compare=False)


_KEYS = {"grace_working_days", "calendar", "sweep_seconds"}


@dataclass(frozen=True)
class RulesInForce:
    """The grace and calendar a node judges lateness by now, and where each came from."""

    grace_working_days: int
    calendar: WorkCalendar
    grace_from: str  # "directory" or "node.toml" (node.toml's value or the default)
    calendar_from: str


def rules_in_force(ctx: Any) -> RulesInForce:
    """The network directory's 督办 rules where it sets them, else ``[supervision]`` of node.toml."""
    own = ctx.config.supervision
    directory_of = getattr(ctx.router, "directory", None)
    directory = directory_of() if directory_of is not None else None
    network = directory.supervision if directory is not None else None
    grace = network.grace_working_days if network is not None else None
    calendar = network.calendar if network is not None else None
    return RulesInForce(own.grace_working_days if grace is None else grace,
                        own.calendar if calendar is None else calendar,
                        "node.toml" if grace is None else "directory", "node.toml" if calendar is None else "directory")


def parse_supervision(raw: Any, directory: Path) -> SupervisionSettings:
    if not isinstance(raw, dict):
        raise ConfigError("[supervision] must be a table", key="supervision")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown keys in [supervision]: {', '.join(unknown)}", key="supervision", keys=unknown)
    grace = raw.get("grace_working_days", DEFAULT_GRACE_WORKING_DAYS)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE_WORKING_DAYS:
        raise ConfigError(f"[supervision] grace_working_days must be a whole number 0–{MAX_GRACE_WORKING_DAYS}, "
                          f"got {grace!r}", key="supervision.grace_working_days")
    sweep = raw.get("sweep_seconds", 60.0)
    if isinstance(sweep, bool) or not isinstance(sweep, (int, float)) or not 0 < sweep <= 86400:
        raise ConfigError(f"[supervision] sweep_seconds must be a number of seconds, 0 < s <= 86400, got {sweep!r}",
                          key="supervision.sweep_seconds")
    path, calendar = None, WEEKENDS_ONLY
    if "calendar" in raw:
        if not isinstance(raw["calendar"], str) or not raw["calendar"]:
            raise ConfigError("[supervision] calendar must be a file name", key="supervision.calendar")
        path = directory / raw["calendar"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CalendarInvalid(f"cannot read the holiday calendar {path}: {exc.strerror or exc}",
                                  source=str(path)) from None
        calendar = parse_calendar(data, source=str(path))
    return SupervisionSettings(grace, path, float(sweep), calendar)
