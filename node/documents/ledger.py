"""The 台账: a unit's sent and received ledgers, as headed rows of typed cells, a page at a time.

What a ledger is (one place decides each):

* **Whose.** A clerk's own unit, and nobody else's (:func:`ledger_unit`): naming another unit is
  ``API_FORBIDDEN``. Operators see no documents (``node.api.auth``), so no ledger rows either;
  they get the statistics (:mod:`node.documents.statistics`), which carry numbers only.
* **Which rows.** Sent: one row per recipient of each document the unit sent (发文时间 in the
  range). Received: one row per document the unit received (收文时间 in the range). Filters:
  the range (``date_from``/``date_to``, Beijing dates, both inclusive), 文种, status (the
  recipient's sender-side status on the sent side, the unit's own on the received side) and the
  counterpart (the recipient unit, or the sending unit). Anything else is a typed
  ``LEDGER_BAD_*`` error before a row is read (:func:`parse_filters`).
* **Which columns.** :data:`HEADINGS`, named as the 公文 elements are (GB/T 9704): 发文字号, 标题,
  发文机关, 文种, 紧急程度, 密级, 成文日期, 办理时限, 收文单位, 状态, 签收人, 签收时间, 退回理由 …
* **Cell types.** Text as text; 成文日期 a ``date``; times (发文/收文时间, 办理时限, 签收时间) naive
  ``datetime`` in Beijing time (UTC+8), since spreadsheets hold no time zone; empty cells ``None``.
* **超期** is :func:`was_overdue`: past the 办理时限 when signed for, or still unsigned now.

:class:`LedgerExport` is what the service hands out: the headings, the row count, and
:meth:`LedgerExport.pages`, which reads the store a page at a time (keyset; never all rows), so
the writers in :mod:`node.documents.ledger_files` hold one page at most.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from exchange_protocol.errors import ProtocolError
from exchange_protocol.kinds import parse_kind
from exchange_protocol.model import BEIJING, DocumentMetadata
from exchange_protocol.states import ReceiverStatus, SenderStatus, is_overdue
from node.api.auth import Principal
from node.documents.supervised import supervised_units
from node.errors import NodeError
from node.store import LedgerQuery, LedgerRow, NodeStore, RegisterFacts
from node.store.values import LEDGER_RECEIVED, LEDGER_SENT
from pki.errors import ErrorKind, InvalidUnitCode
from pki.unit_code import validate_unit_code

SIDES = (LEDGER_SENT, LEDGER_RECEIVED)
PAGE_ROWS = 1000  # rows read from the store per query
STATUSES = {LEDGER_SENT: tuple(s.value for s in SenderStatus),
            LEDGER_RECEIVED: tuple(s.value for s in ReceiverStatus)}
SIGNED = {LEDGER_SENT: frozenset({SenderStatus.SIGNED_FOR.value}),
          LEDGER_RECEIVED: frozenset({ReceiverStatus.SIGNED_FOR.value, ReceiverStatus.REGISTERED.value})}
RETURNED = {LEDGER_SENT: SenderStatus.RETURNED.value, LEDGER_RECEIVED: ReceiverStatus.RETURNED.value}
_DATE = re.compile(r"(19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}")  # 1970–2999: what the store's times hold

HEADINGS = {
    side: ("公文标识", "发文字号", "标题", "发文机关", "发文机关代码", "文种", "紧急程度", "密级", "成文日期",
           "发文时间" if side == LEDGER_SENT else "收文时间", "办理时限", "收文单位", "收文单位代码", "主送/抄送",
           "状态", "签收人", "签收时间", "退回理由", "超期")
    for side in SIDES}


class LedgerFilterError(NodeError):
    """A ledger or statistics request that cannot be used as given (a date, a status, a range …)."""

    code = "LEDGER_BAD_FILTER"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("LEDGER_BAD_SIDE", "LEDGER_BAD_DATE", "LEDGER_BAD_RANGE", "LEDGER_BAD_KIND", "LEDGER_BAD_STATUS",
                "LEDGER_BAD_UNIT", "LEDGER_BAD_PERIOD", "LEDGER_BAD_GROUPING", "LEDGER_BAD_FORMAT",
                "LEDGER_UNIT_REQUIRED")


class LedgerUnitNotHosted(NodeError):
    """Statistics asked for a unit this node does not host: it keeps no ledger of it."""

    code = "LEDGER_UNIT_NOT_HOSTED"
    kind = ErrorKind.NOT_FOUND


@dataclass(frozen=True)
class LedgerFilters:
    """Validated filters; ``start``/``end`` are the Beijing day boundaries (end exclusive)."""

    side: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    kind: str | None = None
    status: str | None = None
    counterpart: str | None = None

    def query(self, unit: str, limit: int = PAGE_ROWS) -> LedgerQuery:
        return LedgerQuery(self.side, unit, start=self.start, end=self.end, kind=self.kind,
                           counterpart=self.counterpart, status=self.status, limit=limit)


def register_facts(meta: DocumentMetadata) -> RegisterFacts:
    """What a ledger shows of a document that its outbox or inbox row would not otherwise keep."""
    return RegisterFacts(doc_number=meta.doc_number.format() if meta.doc_number else None,
                         urgency=meta.urgency.value if meta.urgency else None,
                         classification=meta.classification.format(), written_on=meta.written_on,
                         issuers=tuple(meta.issuers))


def parse_date(text: str | None, name: str) -> dt.date | None:
    if text in (None, ""):
        return None
    try:
        if not isinstance(text, str) or not _DATE.fullmatch(text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise LedgerFilterError(f"{name} must be a date written YYYY-MM-DD (Beijing date, 1970–2999), "
                                f"not {str(text)[:40]!r}",
                                code="LEDGER_BAD_DATE", parameter=name) from None


def parse_unit(text: str | None, name: str) -> str | None:
    if text in (None, ""):
        return None
    try:
        return validate_unit_code(text)  # type: ignore[arg-type]
    except InvalidUnitCode as exc:
        raise LedgerFilterError(f"{name}: {exc.message}", code="LEDGER_BAD_UNIT", parameter=name) from None


def parse_filters(side: str, *, date_from: str | None = None, date_to: str | None = None,
                  kind: str | None = None, status: str | None = None,
                  counterpart: str | None = None) -> LedgerFilters:
    """The filters as given by the API or the CLI (strings), checked; a typed error names the first
    one that cannot be used."""
    if side not in SIDES:
        raise LedgerFilterError(f"a ledger is sent or received, not {str(side)[:40]!r}", code="LEDGER_BAD_SIDE",
                                parameter="side")
    first, last = parse_date(date_from, "from"), parse_date(date_to, "to")
    if first and last and first > last:
        raise LedgerFilterError(f"from ({first}) is after to ({last})", code="LEDGER_BAD_RANGE", parameter="from")
    if kind not in (None, ""):
        try:
            kind = parse_kind(kind).value
        except ProtocolError as exc:
            raise LedgerFilterError(f"kind (文种): {exc.message}", code="LEDGER_BAD_KIND", parameter="kind") from None
    if status not in (None, "") and status not in STATUSES[side]:
        raise LedgerFilterError(f"status of the {side} ledger must be one of {', '.join(STATUSES[side])}, "
                                f"not {str(status)[:40]!r}", code="LEDGER_BAD_STATUS", parameter="status")
    return LedgerFilters(side, start=_day_start(first), end=_day_start(last + dt.timedelta(days=1)) if last else None,
                         kind=kind or None, status=status or None, counterpart=parse_unit(counterpart, "counterpart"))


def _day_start(day: dt.date | None) -> dt.datetime | None:
    return dt.datetime.combine(day, dt.time(), BEIJING) if day else None


def ledger_unit(who: Principal, unit: str | None, hosted: Collection[str] = ()) -> str:
    """Whose ledger ``who`` may read: a clerk's own unit only (``unit`` absent or the same); a
    supervisor's, one unit it supervises that this node hosts (named, unless it has only one)."""
    who.require_role("clerk", "supervisor")  # before the unit is parsed: an operator is refused whatever it names
    asked = parse_unit(unit, "unit")
    if who.role == "supervisor":
        here = [u for u in supervised_units(who, asked) if u in hosted]
        if asked is not None and not here:
            raise LedgerUnitNotHosted(f"this node does not host unit {asked}, so it keeps no ledger of it", unit=asked)
        if len(here) != 1:
            raise LedgerFilterError(f"name the unit whose 台账 to export: one of {', '.join(here) or 'none here'}",
                                    code="LEDGER_UNIT_REQUIRED", parameter="unit")
        return here[0]
    who.require_unit(asked or who.unit)  # type: ignore[arg-type]
    return who.unit  # type: ignore[return-value]


def was_overdue(row: LedgerRow, now: dt.datetime) -> bool:
    """超期: the 办理时限 had passed when the row was signed for, or has passed and it is still unsigned
    (and not returned or recalled: :func:`exchange_protocol.states.is_overdue`, the red light)."""
    if row.deadline is None:
        return False
    if row.status in SIGNED[row.side]:
        return row.when is not None and row.when > row.deadline
    status = SenderStatus(row.status) if row.side == LEDGER_SENT else ReceiverStatus(row.status)
    return is_overdue(status, row.deadline, now)


def local_time(value: dt.datetime | None) -> dt.datetime | None:
    """A stored instant as the naive Beijing time a spreadsheet cell holds."""
    return value.astimezone(BEIJING).replace(tzinfo=None) if value else None


class LedgerExport:
    """One ledger, ready to be written: headings, row count, and the rows a page at a time."""

    def __init__(self, store: NodeStore, query: LedgerQuery, unit_name: Callable[[str], str | None],
                 now: dt.datetime, rows: int) -> None:
        self.side = query.side
        self.unit = query.unit
        self.headings = HEADINGS[query.side]
        self.rows = rows
        self._store = store
        self._query = query
        self._name = unit_name
        self.now = now  # the service clock's time of the request: 超期 is judged at it, the file named by it

    async def pages(self) -> AsyncIterator[list[list[Any]]]:
        query = self._query
        while True:
            page = await self._store.ledger.page(query)
            if page.rows:
                yield [self.cells(r) for r in page.rows]
            if page.next_after is None:
                return
            query = replace(query, after=page.next_after)

    def _names(self, codes: Sequence[str]) -> str:
        return "、".join(self._name(c) or c for c in codes)

    def cells(self, r: LedgerRow) -> list[Any]:
        facts = r.facts
        issuers = facts.issuers or (r.from_unit,)
        signed = r.status in SIGNED[r.side]
        status = SenderStatus(r.status) if r.side == LEDGER_SENT else ReceiverStatus(r.status)
        return [r.doc_id, facts.doc_number, r.title, self._names(issuers), "、".join(issuers), r.kind,
                facts.urgency, facts.classification, facts.written_on, local_time(r.at), local_time(r.deadline),
                self._name(r.unit) or r.unit, r.unit, r.role, status.label, r.who if signed else None,
                local_time(r.when) if signed else None, r.reason if r.status == RETURNED[r.side] else None,
                "是" if was_overdue(r, self.now) else None]


async def open_export(store: NodeStore, who: Principal, side: str, unit_name: Callable[[str], str | None],
                      now: dt.datetime, *, unit: str | None = None, hosted: Collection[str] = (),
                      **filters: str | None) -> LedgerExport:
    """Check everything, count the rows, and hand out the export (nothing is read before the checks)."""
    parsed = parse_filters(side, **filters)
    query = parsed.query(ledger_unit(who, unit, hosted))
    # Pinned to the documents stored now, so that the count announced (X-Gwx-Ledger-Rows) is the
    # number of rows sent even if documents arrive during a long export. A row whose status changes
    # meanwhile is shown as read; with a status filter it may then be in or out of the pages alone.
    query = replace(query, upto_id=await store.ledger.last_id(side))
    return LedgerExport(store, query, unit_name, now, await store.ledger.count(query))
