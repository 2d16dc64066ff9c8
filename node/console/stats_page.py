"""The statistics page (``GET /console/stats``, route ``stats``) and the 台账 export (``GET /console/ledger``,
route ``ledger_export``).

Statistics are :meth:`DocumentServiceApi.ledger_stats`'s (:mod:`node.documents.statistics`: a
clerk's own unit; an operator's every hosted unit — numbers only), per unit and per period, with
the 台账's filters: ``side`` (sent 发文 / received 收文), ``period`` (day, week, month), ``from`` and
``to`` (Beijing dates), ``kind``, ``status``, ``counterpart``, ``unit`` (an operator's choice among
the hosted units; without it, :data:`PAGE_UNITS` of them a page by unit code, ``after`` the last
unit of the page before). Each unit gets three charts drawn
here as inline SVG (:mod:`node.console.charts`): documents and 签收 per period; median and p90
hours to 签收; overdue and returned rates — and the numbers as a table beneath.

The export button downloads the 台账 with the same filters as CSV or XLSX, streamed as the local
API streams it (:func:`node.api.ledger_routes.send_export`); it is a clerk's (the ledger holds
titles: operators see no documents). Every parameter is checked here (known, once) and by the
service (values: ``LEDGER_BAD_*``, 400; another unit: ``API_FORBIDDEN``, 403).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from exchange_protocol.states import ReceiverStatus, SenderStatus
from node.api.ledger_routes import send_export
from node.api.local_api import PRINCIPAL
from node.console import charts
from node.console.errors import BadFilter, WrongRole
from node.console.folders import known_filters
from node.console.security import ACCOUNTS, RENDER, SERVICE, SESSION, TMP
from node.documents.ledger import STATUSES
from node.documents.statistics import PERIODS
from node.store.values import LEDGER_SENT

SIDES = {"sent": "发文", "received": "收文"}
PERIOD_LABEL = {"day": "日", "week": "周", "month": "月"}
FILTERS = ("side", "period", "from", "to", "kind", "status", "counterpart", "unit", "after")
# An operator without a chosen unit sees the hosted units this many at a time, by unit code (three
# charts each: hundreds of units on one page would be thousands of SVG shapes and as many queries).
PAGE_UNITS = 10
FORMATS = ("csv", "xlsx")
# The states' own labels (exchange_protocol.states): the page says what the lists and gwx track say.
STATUS_LABEL = {s.value: s.label for s in (*SenderStatus, *ReceiverStatus)}


def routes() -> list[web.RouteDef]:
    return [web.get("/stats", stats_page, name="stats", allow_head=False),
            web.get("/ledger", ledger_export, name="ledger_export", allow_head=False)]


def _query(request: web.Request, extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = known_filters(request.query, FILTERS + extra)
    if out.get("side", LEDGER_SENT) not in SIDES:
        raise BadFilter("filter 'side' is sent or received", parameter="side")
    return out


def _after(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9A-Z]{18}", value):
        raise BadFilter("after is not a unit code this page gave", parameter="after")
    return value


def _service_filters(q: dict[str, str]) -> dict[str, str | None]:
    return {"unit": q.get("unit"), "date_from": q.get("from"), "date_to": q.get("to"), "kind": q.get("kind"),
            "status": q.get("status"), "counterpart": q.get("counterpart")}


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 1)


def unit_charts(rows: list[dict[str, Any]], side: str) -> dict[str, Any]:
    """The three charts of one unit's rows (one per period, in order)."""
    labels = [r["period_start"] for r in rows]
    counted = "rows" if side == LEDGER_SENT else "documents"
    return {
        "counts": charts.bars("每期公文数与签收数", labels, [
            ("发文（单位次）" if side == LEDGER_SENT else "收文", "#6b7fa8", [r[counted] for r in rows]),
            ("已签收", "#1b7a32", [r["signed"] for r in rows])]),
        "times": charts.lines("签收用时（小时）", labels, [
            ("中位数", "#1565c0", [_hours(r["sign_median_s"]) for r in rows]),
            # Said in words: a clerk reads a bare "90%" as a rate, and "h" is no unit a clerk uses.
            ("90%分位", "#e08a00", [_hours(r["sign_p90_s"]) for r in rows])], unit="小时"),
        "rates": charts.lines("超期率与退回率（%）", labels, [
            ("超期率", "#d32f2f", [round(r["overdue_rate"] * 100, 1) for r in rows]),
            ("退回率", "#7b1fa2", [round(r["returned_rate"] * 100, 1) for r in rows])], unit="%", top=100),
    }


async def stats_page(request: web.Request) -> web.Response:
    user = request[SESSION].user
    if user.role not in ("clerk", "operator", "supervisor"):
        raise WrongRole(f"{user.login} is a {user.role}; statistics are a clerk's, a supervisor's or an operator's",
                        role=user.role)
    query = _query(request)
    side, period = query.get("side", LEDGER_SENT), query.get("period", "month")
    after = _after(query.get("after"))
    hosted = sorted(request.app[ACCOUNTS].hosted_units or ()) if user.role != "clerk" else []
    if user.role == "supervisor":  # the hosted units it supervises (the directory's word, read now)
        hosted = [u for u in hosted if u in request[PRINCIPAL].units]
    # A clerk's own unit, or the unit chosen: one call. An operator's or a supervisor's units: a page of them.
    more, paged = None, bool(hosted) and "unit" not in query
    if paged:
        rest = [u for u in hosted if after is None or u > after]
        page: list[str | None] = list(rest[:PAGE_UNITS])
        more = rest[PAGE_UNITS - 1] if len(rest) > PAGE_UNITS else None
    else:
        page = [query.get("unit")]
    rows: list[dict[str, Any]] = []
    for unit in page:
        stats = await request.app[SERVICE].ledger_stats(request[PRINCIPAL], side, period, by="unit",
                                                        **{**_service_filters(query), "unit": unit})
        rows += stats["rows"]
    # Each unit of an operator's page has its section, one without documents too (said so, no charts).
    by_unit: dict[str, list[dict[str, Any]]] = {u: [] for u in page if u is not None} if paged else {}
    for row in rows:
        by_unit.setdefault(row["unit"], []).append(row)
    sections = [{"unit": code, "rows": found, "charts": unit_charts(found, side) if found else None}
                for code, found in by_unit.items()]
    # A supervisor's 台账 is one unit's: the one chosen goes with the export.
    keep_unit = user.role == "supervisor"
    export = {k: v for k, v in query.items() if k not in ("period", "after") and (k != "unit" or keep_unit)}
    return request.app[RENDER](request, "stats.html", 200, filters=query, side=side, period=period,
                               sections=sections, sides=SIDES, periods={p: PERIOD_LABEL[p] for p in PERIODS},
                               statuses={s: STATUS_LABEL.get(s, s) for s in STATUSES[side]}, export=export,
                               can_export=user.role == "clerk" or (keep_unit and bool(query.get("unit"))),
                               hosted=hosted, page_units=PAGE_UNITS,
                               next=more, again={k: v for k, v in query.items() if k != "after"})


async def ledger_export(request: web.Request) -> web.StreamResponse:
    user = request[SESSION].user
    if user.role not in ("clerk", "supervisor"):
        raise WrongRole(f"{user.login} is a {user.role}; the 台账 is a clerk's or a supervisor's", role=user.role)
    query = _query(request, ("format",))
    fmt = query.pop("format", "csv")
    if fmt not in FORMATS:
        raise BadFilter("format is csv or xlsx", parameter="format")
    query.pop("period", None)  # the statistics' form sends it along; a ledger has no periods
    export = await request.app[SERVICE].ledger(request[PRINCIPAL], query.get("side", LEDGER_SENT),
                                               **_service_filters(query))
    # The XLSX is built in the node's upload directory (the console's own directory is its child).
    return await send_export(request, export, fmt, request.app[TMP].parent)
