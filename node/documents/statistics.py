"""Statistics of the 台账 per unit and per period (day, week, month): counts, time to 签收, rates.

Counted by the store in SQL (:meth:`node.store.LedgerStore.tally`) over the same rows as the
export (:mod:`node.documents.ledger`), for the same filters: nothing per row runs on the event loop.
One statistics row per (unit, period) — and counterpart, split by it — for every period from
``from`` to ``to`` (from the first to the last period with rows when they are left out): a period
without rows has zeros and null times, so a table or a chart shows the gap.

* **unit**: the ledger's own unit — the sending unit for the sent side, the receiving unit for
  the received side. A clerk gets their unit; an operator every unit the node hosts (or the one
  named): numbers only, no titles, which is why operators may have them; a supervisor the units it
  supervises that this node hosts (or the one of them named).
* **counterpart** (with ``by="counterpart"``): each unit's rows split further by the other side,
  the recipient (sent) or the sending unit (received); null otherwise.
* **period**: the Beijing date the document was sent (sent) or received (received) falls on,
  rounded down to its day, its ISO week's Monday (week) or the first of its month (month).
* ``documents``: documents sent, or received; ``rows``: recipient rows (sent: one per recipient;
  received: the same as documents).
* ``signed``: rows signed for (签收; on the received side 登记 counts, it comes after 签收).
* ``sign_median_s`` / ``sign_p90_s``: seconds from sending (sent) or receiving (received) to
  签收, over the signed rows: the median (the mean of the two middle values for an even count) and
  the 90th percentile by nearest rank (the smallest value at least 90 % of the values do not
  exceed). Null when nothing was signed. A negative interval (another node's clock behind ours)
  counts as 0.
* ``overdue`` / ``overdue_rate``: rows past their 办理时限 when signed, or still unsigned and past
  it now (:func:`node.documents.ledger.was_overdue`), over all ``rows``.
* ``returned`` / ``returned_rate``: rows returned (退回), over all ``rows``.

Memory: a counter set per group and the signed rows' intervals (one float each) — never the rows.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Collection, Sequence
from typing import Any

from exchange_protocol.model import BEIJING
from exchange_protocol.states import ReceiverStatus, SenderStatus, is_overdue
from node.api.auth import Principal
from node.documents.ledger import (
    RETURNED,
    SIGNED,
    STATUSES,
    LedgerFilterError,
    LedgerUnitNotHosted,
    parse_filters,
    parse_unit,
)
from node.documents.supervised import supervised_units
from node.store import LedgerTally, LedgerTallyRules, NodeStore
from node.store.values import LEDGER_SENT

PERIODS = ("day", "week", "month")
GROUPINGS = ("unit", "counterpart")
MAX_PERIODS = 5000  # about 13 years of days: a table, not a dump of the calendar


def period_start(at: dt.datetime, period: str) -> dt.date:
    day = at.astimezone(BEIJING).date()
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def next_period(start: dt.date, period: str) -> dt.date:
    if period == "month":
        return (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return start + dt.timedelta(days=7 if period == "week" else 1)


def periods(first: dt.date | None, last: dt.date | None, period: str) -> list[dt.date]:
    """Every period start from ``first`` to ``last`` (both included): a period without rows is a
    row of zeros, so a chart or a table shows the gap. Refused past :data:`MAX_PERIODS`."""
    if first is None or last is None:
        return []
    out = [first]
    while (following := next_period(out[-1], period)) <= last:
        if len(out) >= MAX_PERIODS:
            raise LedgerFilterError(f"more than {MAX_PERIODS} {period}s from {first} to {last}; give a shorter "
                                    "range (--from/--to) or a longer period", code="LEDGER_BAD_RANGE",
                                    parameter="period")
        out.append(following)
    return out


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def nearest_rank(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of ``values`` (sorted here): the smallest value that at least
    ``percent`` % of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(percent / 100 * len(ordered)), 1) - 1]


def _figures(t: LedgerTally) -> dict[str, Any]:
    return {"documents": t.documents, "rows": t.rows, "signed": len(t.intervals),
            "sign_median_s": _seconds(median(t.intervals)), "sign_p90_s": _seconds(nearest_rank(t.intervals, 90)),
            "overdue": t.overdue, "overdue_rate": _rate(t.overdue, t.rows),
            "returned": t.returned, "returned_rate": _rate(t.returned, t.rows)}


def tally_rules(side: str, period: str, by: str, now: dt.datetime) -> LedgerTallyRules:
    """What the store counts, from the rules of :mod:`node.documents.ledger`: 签收 and 退回 statuses,
    and the statuses :func:`was_overdue` calls overdue once the 办理时限 has passed unsigned."""
    status = SenderStatus if side == LEDGER_SENT else ReceiverStatus
    past = now - dt.timedelta(seconds=1)
    unsettled = frozenset(s for s in STATUSES[side] if s not in SIGNED[side] and is_overdue(status(s), past, now))
    return LedgerTallyRules(period=period, offset=BEIJING.utcoffset(None), by_counterpart=by == "counterpart",
                            signed=SIGNED[side], returned=RETURNED[side], overdue_unsigned=unsettled, now=now)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def stats_units(who: Principal, unit: str | None, hosted: Collection[str]) -> list[str]:
    """The units whose statistics ``who`` may have: a clerk's own; for an operator the hosted ones; for
    a supervisor the hosted ones it supervises (naming another is API_FORBIDDEN)."""
    who.require_role("clerk", "operator", "supervisor")
    asked = parse_unit(unit, "unit")
    if who.role == "clerk":
        who.require_unit(asked or who.unit)  # type: ignore[arg-type]
        return [who.unit]  # type: ignore[list-item]
    if who.role == "supervisor":
        scope = supervised_units(who, asked)
        if asked is not None and asked not in hosted:
            raise LedgerUnitNotHosted(f"this node does not host unit {asked}, so it keeps no ledger of it", unit=asked)
        return sorted(u for u in scope if u in hosted)
    if asked is not None:
        if asked not in hosted:
            raise LedgerUnitNotHosted(f"this node does not host unit {asked}, so it keeps no ledger of it", unit=asked)
        return [asked]
    return sorted(hosted)


async def compute(store: NodeStore, who: Principal, side: str, period: str, hosted: Collection[str],
                  unit_name: Callable[[str], str | None], now: dt.datetime, *, unit: str | None = None,
                  by: str = "unit", **filters: str | None) -> dict[str, Any]:
    """The statistics as JSON: {"side", "period", "by", "from", "to", "timezone", "rows": [...]}.

    ``by="counterpart"`` splits each unit's rows by the other side — the recipient (sent), the
    sending unit (received) — so a sender sees how fast each unit it writes to signs."""
    if period not in PERIODS:
        raise LedgerFilterError(f"period must be one of {', '.join(PERIODS)}, not {str(period)[:40]!r}",
                                code="LEDGER_BAD_PERIOD", parameter="period")
    if by not in GROUPINGS:
        raise LedgerFilterError(f"by must be one of {', '.join(GROUPINGS)}, not {str(by)[:40]!r}",
                                code="LEDGER_BAD_GROUPING", parameter="by")
    parsed = parse_filters(side, **filters)
    rules = tally_rules(side, period, by, now)
    out: list[dict[str, Any]] = []
    first = period_start(parsed.start, period) if parsed.start else None
    last = period_start(parsed.end - dt.timedelta(seconds=1), period) if parsed.end else None
    for code in stats_units(who, unit, hosted):
        tallies = await store.ledger.tally(parsed.query(code), rules)
        others = sorted({t.counterpart for t in tallies}, key=lambda o: o or "") if by == "counterpart" else [None]
        found = {(t.counterpart, t.period_start): t for t in tallies}
        starts = periods(first or min((t.period_start for t in tallies), default=None),
                         last or max((t.period_start for t in tallies), default=None), period)
        for other in others:
            for start in starts:
                t = found.get((other, start)) or LedgerTally(other, start, 0, 0, 0, 0, [])
                out.append({"unit": code, "unit_name": unit_name(code), "counterpart": other,
                            "counterpart_name": unit_name(other) if other else None,
                            "period_start": start.isoformat(), **_figures(t)})
    return {"side": side, "period": period, "by": by, "from": filters.get("date_from") or None,
            "to": filters.get("date_to") or None, "timezone": "+08:00",
            "unit_meaning": "the sending unit" if side == LEDGER_SENT else "the receiving unit", "rows": out}
