"""The business rows: outbox documents with their recipients, and the inbox.

Inbound dedupe (the ``received`` table: exactly-once over an at-least-once wire) is the base class,
:class:`node.store.sqlite.received.ReceivedRows`; callers reach both as ``store.messages``.

Outbox and inbox statuses are the strings of :mod:`exchange_protocol.states` (Enum members are
accepted and stored by value). Which transition is legal is decided there, not here: this layer
stores what it is told, but only through compare-and-set updates (``expected_status``), so of two
clerks acting on the same row at once, one wins and the other gets :class:`StoreConflict` and can
re-read and re-decide instead of silently overwriting.

Listings page by keyset on the rows' integer ``id`` (newest first): ``before_id`` of the next page
is the last id of this one, stable while new rows arrive.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from exchange_protocol.states import ReceiverStatus, SenderStatus, is_settled
from node.errors import StoreConflict, StoreDuplicate, StoreError, StoreNotFound
from node.store.blobs import check_digest
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.sqlite.ledger import facts_columns
from node.store.sqlite.received import ReceivedRows, _in
from node.store.values import (
    InboxRow,
    ListFilter,
    NewEvent,
    OutboxDocument,
    OutboxRecipient,
    Page,
    RecipientUpdate,
    RegisterFacts,
)

# Statuses in which a passed deadline is no longer a red light (the rule lives in states.is_settled).
SETTLED_SENDER = tuple(s.value for s in SenderStatus if is_settled(s))
SETTLED_RECEIVER = tuple(s.value for s in ReceiverStatus if is_settled(s))
OPEN_RECEIVER = tuple(s.value for s in ReceiverStatus if not is_settled(s))  # 待签收: still a red light when late


def _v(value: Any) -> Any:
    """Enums by value, datetimes as stored text, everything else as is."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return to_db_time(value)
    return value


_RECIPIENT_FIELDS = {"status": "status", "destination_node": "destination_node", "who": "status_by",
                     "when": "status_at", "reason": "reason", "urge_count": "urge_count",
                     "last_urged_at": "last_urged_at"}
_INBOX_FIELDS = {"status", "signed_by", "signed_at", "return_reason", "urge_count", "last_urged_at",
                 "verification"}


class Messages(ReceivedRows):
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        # The last report add_inbox wrote and its text: a document's rows, one per unit, carry the same one.
        self._last_report: tuple[Mapping[str, Any], str] | None = None

    # --- outbox ---------------------------------------------------------------------------------
    async def add_outbox(self, doc: OutboxDocument, recipients: Sequence[OutboxRecipient], *, actor: str,
                         tx: SqliteTransaction | None = None) -> int:
        """Store a sent document and one row per recipient unit; returns the document's row id."""
        check_digest(doc.package_digest)
        now = to_db_time(self._clock())
        async with self._db.maybe_transaction(tx) as t:
            if await t.fetchone("SELECT 1 FROM outbox WHERE doc_id = ?", (doc.doc_id,)):
                raise StoreDuplicate("the outbox already holds this document", doc_id=doc.doc_id)
            facts = doc.facts or RegisterFacts()
            await t.execute(
                "INSERT INTO outbox (doc_id, from_unit, title, kind, doc_number, deadline, created_at,"
                " package_digest, urgency, classification, written_on, issuers) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (doc.doc_id, doc.from_unit, doc.title, _v(doc.kind), doc.doc_number, _v(doc.deadline),
                 _v(doc.created_at), doc.package_digest, *facts_columns(facts)[1:]))
            row = await t.fetchone("SELECT id FROM outbox WHERE doc_id = ?", (doc.doc_id,))
            await t.executemany(
                "INSERT INTO outbox_recipients (doc_id, unit_code, role, destination_node, status, status_by,"
                " status_at, reason, urge_count, last_urged_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(doc.doc_id, r.unit, _v(r.role), r.destination_node, _v(r.status), r.who, _v(r.when),
                  r.reason, r.urge_count, _v(r.last_urged_at), now) for r in recipients])
            await self._audit.append(t, actor, "outbox.create", {"doc_id": doc.doc_id, "unit": doc.from_unit},
                                     {"kind": _v(doc.kind), "title": doc.title,
                                      "recipients": [[r.unit, _v(r.role)] for r in recipients]})
        return row["id"]

    async def add_recipients(self, doc_id: str, recipients: Sequence[OutboxRecipient], *, actor: str,
                             tx: SqliteTransaction) -> None:
        """补发: more recipient rows for a document already sent (refused for a unit it already has)."""
        now = to_db_time(self._clock())
        units = [r.unit for r in recipients]
        marks = ",".join("?" * len(units))
        held = await tx.fetchall(f"SELECT unit_code FROM outbox_recipients WHERE doc_id = ? AND unit_code IN ({marks})",
                                 (doc_id, *units))
        if held:
            raise StoreDuplicate(f"{held[0][0]} is already a recipient of {doc_id}", doc_id=doc_id, unit=held[0][0])
        await tx.executemany(
            "INSERT INTO outbox_recipients (doc_id, unit_code, role, destination_node, status, status_by,"
            " status_at, reason, urge_count, last_urged_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(doc_id, r.unit, _v(r.role), r.destination_node, _v(r.status), r.who, _v(r.when), r.reason,
              r.urge_count, _v(r.last_urged_at), now) for r in recipients])
        await self._audit.append(tx, actor, "outbox.recipients_added", {"doc_id": doc_id},
                                 {"recipients": [[r.unit, _v(r.role)] for r in recipients]})

    async def update_recipient(self, doc_id: str, unit: str, expected_status: str | Enum,
                               changes: Mapping[str, Any], *, actor: str, action: str | None = None,
                               details: Mapping[str, Any] | None = None,
                               tx: SqliteTransaction | None = None) -> OutboxRecipient:
        """Compare-and-set one recipient row: applies ``changes`` only if its status is still
        ``expected_status``; else :class:`StoreConflict` (``details['status']`` is the current one).

        ``changes`` keys: status, who, when, reason, urge_count, last_urged_at, destination_node.
        """
        unknown = set(changes) - set(_RECIPIENT_FIELDS)
        if unknown:
            raise StoreError(f"a recipient row has no fields {sorted(unknown)}", fields=sorted(unknown))
        sets = [f"{_RECIPIENT_FIELDS[k]} = ?" for k in changes] + ["updated_at = ?"]
        params = [_v(v) for v in changes.values()] + [to_db_time(self._clock())]
        new_status = _v(changes.get("status", expected_status))
        event = NewEvent(actor, action or f"recipient.{new_status}", {"doc_id": doc_id, "unit": unit},
                         {"from": _v(expected_status), **_jsonable(changes), **dict(details or {})})
        async with self._db.maybe_transaction(tx) as t:
            row = await self._cas(t, "outbox_recipients", sets, params, doc_id, unit, _v(expected_status), event)
        return _recipient(row)

    async def update_recipients(self, doc_id: str, updates: Sequence[RecipientUpdate], *, actor: str,
                                tx: SqliteTransaction) -> None:
        """:meth:`update_recipient` for several rows of one document at once, inside ``tx``: one
        ``UPDATE`` run for every row (each compared with its own expected status) and their audit events
        (one a row, as one at a time would write them) in one append. Every update names the same
        ``changes`` keys. Should a row have moved, :class:`StoreConflict` — after the rows that still
        matched were written: the caller's transaction is to be rolled back, as with one row."""
        if not updates:
            return
        keys = list(updates[0].changes)
        if unknown := set(keys) - set(_RECIPIENT_FIELDS):
            raise StoreError(f"a recipient row has no fields {sorted(unknown)}", fields=sorted(unknown))
        if any(list(u.changes) != keys for u in updates):
            raise StoreError("recipient updates of one batch must change the same fields", doc_id=doc_id)
        now = to_db_time(self._clock())
        sets = ", ".join([f"{_RECIPIENT_FIELDS[k]} = ?" for k in keys] + ["updated_at = ?"])
        changed = await tx.executemany(
            f"UPDATE outbox_recipients SET {sets} WHERE doc_id = ? AND unit_code = ? AND status = ?",
            [(*[_v(u.changes[k]) for k in keys], now, doc_id, u.unit, _v(u.expected_status)) for u in updates])
        if changed != len(updates):
            raise StoreConflict(f"{len(updates) - changed} of {len(updates)} recipient rows of {doc_id} moved on;"
                                " refresh and try again", doc_id=doc_id)
        await self._audit.append_many(tx, [
            NewEvent(actor, u.action, {"doc_id": doc_id, "unit": u.unit},
                     {"from": _v(u.expected_status), **_jsonable(u.changes), **dict(u.details or {})})
            for u in updates])

    async def _cas(self, t: SqliteTransaction, table: str, sets: list[str], params: list[Any], doc_id: str,
                   unit: str, expected: str, event: NewEvent, also: Mapping[str, Any] | None = None) -> Any:
        """The row as changed (``RETURNING``: one statement, not an UPDATE and a SELECT). ``also``:
        more columns that must still hold these values (``IS``: NULL matches NULL)."""
        also = {k: _v(v) for k, v in (also or {}).items()}
        unknown = set(also) - _INBOX_FIELDS - {"role"}
        if unknown:
            raise StoreError(f"an inbox row has no fields {sorted(unknown)}", fields=sorted(unknown))
        compared = "".join(f" AND {k} IS ?" for k in also)
        changed = await t.fetchone(
            f"UPDATE {table} SET {', '.join(sets)} WHERE doc_id = ? AND unit_code = ? AND status = ?{compared}"
            " RETURNING *", (*params, doc_id, unit, expected, *also.values()))
        if changed is None:
            row = await t.fetchone(f"SELECT status FROM {table} WHERE doc_id = ? AND unit_code = ?",
                                   (doc_id, unit))
            if row is None:
                raise StoreNotFound("no row for this unit of this document", doc_id=doc_id, unit=unit)
            raise StoreConflict(f"the row is now {row['status']} (expected {expected}); refresh and try again",
                                doc_id=doc_id, unit=unit, status=row["status"], expected=expected)
        await self._audit.append_many(t, [event])
        return changed

    async def get_outbox(self, doc_id: str, *, recipients: bool = True) -> OutboxDocument | None:
        """A sent document; without ``recipients`` its row alone (``recipients`` empty), for a view
        that needs only :meth:`outbox_counts` — not 3,600 rows read and built."""
        row = await self._db.lookup_one("SELECT * FROM outbox WHERE doc_id = ?", (doc_id,))
        if row is None:
            return None
        return (await self._with_recipients([row], recipients))[0]

    async def outbox_counts(self, doc_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """How many recipients of each document are in each status, counted by SQLite (the rows of a
        document are adjacent in the table's key): a few ms for 3,600 recipients."""
        counts: dict[str, dict[str, int]] = {doc_id: {} for doc_id in doc_ids}
        for start in range(0, len(doc_ids), 500):
            chunk = list(doc_ids[start:start + 500])
            for row in await self._db.fetchall(
                    f"SELECT doc_id, status, COUNT(*) FROM outbox_recipients WHERE doc_id IN ({_in(chunk)})"
                    " GROUP BY doc_id, status", chunk):
                counts[row[0]][row[1]] = row[2]
        return counts

    async def recipients_page(self, doc_id: str, *, statuses: Sequence[str] | None = None,
                              after_unit: str | None = None, limit: int = 100) -> list[OutboxRecipient]:
        """A page of a document's recipients by unit code (the table's key: its rows are adjacent, so a
        page of 3,600 is read from the key, no sort); ``statuses`` keeps those in one of them;
        ``after_unit`` the last unit of the previous page."""
        where, params = ["doc_id = ?"], [doc_id]
        if statuses is not None:
            where.append(f"status IN ({_in(statuses)})")
            params += list(statuses)
        if after_unit is not None:
            where.append("unit_code > ?")
            params.append(after_unit)
        rows = await self._db.fetchall(f"SELECT * FROM outbox_recipients WHERE {' AND '.join(where)}"
                                       " ORDER BY unit_code LIMIT ?", (*params, limit))
        return [_recipient(r) for r in rows]

    async def get_outbox_recipient(self, doc_id: str, unit: str, *,
                                   tx: SqliteTransaction | None = None) -> OutboxRecipient | None:
        """One recipient's row: what an event about that recipient needs (not the document's whole list).
        With ``tx``, as that transaction sees it (with its own writes, which the reader cannot see)."""
        row = await (tx or self._db).lookup_one("SELECT * FROM outbox_recipients WHERE doc_id = ? AND unit_code = ?",
                                              (doc_id, unit))
        return _recipient(row) if row is not None else None

    async def get_outbox_recipients(self, doc_id: str, units: Sequence[str], *,
                                    tx: SqliteTransaction) -> dict[str, OutboxRecipient]:
        """The rows of ``units`` for ``doc_id`` as ``tx`` sees them, by unit (a unit without one absent)."""
        rows = await tx.fetchall(f"SELECT * FROM outbox_recipients WHERE doc_id = ? AND unit_code IN ({_in(units)})",
                                 (doc_id, *units))
        return {r["unit_code"]: _recipient(r) for r in rows}

    async def list_outbox(self, flt: ListFilter = ListFilter(), *, recipients: bool = True) -> Page[OutboxDocument]:
        where, params = ["1 = 1"], []
        if flt.unit is not None:
            where.append("o.from_unit = ?")
            params.append(flt.unit)
        if flt.kind is not None:
            where.append("o.kind = ?")
            params.append(_v(flt.kind))
        if flt.status is not None:
            where.append("EXISTS (SELECT 1 FROM outbox_recipients r WHERE r.doc_id = o.doc_id AND r.status = ?)")
            params.append(_v(flt.status))
        if flt.counterpart is not None:
            where.append("EXISTS (SELECT 1 FROM outbox_recipients r WHERE r.doc_id = o.doc_id AND r.unit_code = ?)")
            params.append(flt.counterpart)
        if flt.overdue:
            where.append("o.deadline IS NOT NULL AND o.deadline < ? AND EXISTS (SELECT 1 FROM"
                         f" outbox_recipients r WHERE r.doc_id = o.doc_id AND r.status NOT IN ({_in(SETTLED_SENDER)}))")
            params += [to_db_time(self._clock()), *SETTLED_SENDER]
        _narrow(where, params, flt, "o", "o.created_at", "o.doc_number")
        rows = await self._page("outbox o", "o", where, params, flt)
        items = await self._with_recipients(rows[:flt.limit], recipients)
        return Page(items, items[-1].id if len(rows) > flt.limit else None)

    async def count_outbox(self, unit: str) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM outbox WHERE from_unit = ?", (unit,))
        return int(row[0])

    async def _with_recipients(self, rows: Sequence[Any], recipients: bool = True) -> list[OutboxDocument]:
        if not rows:
            return []
        ids = [r["doc_id"] for r in rows]
        by_doc: dict[str, list[OutboxRecipient]] = {}
        for r in [] if not recipients else await self._db.fetchall(
                f"SELECT * FROM outbox_recipients WHERE doc_id IN ({_in(ids)}) ORDER BY doc_id, role, unit_code",
                ids):
            by_doc.setdefault(r["doc_id"], []).append(_recipient(r))
        return [OutboxDocument(
            doc_id=r["doc_id"], from_unit=r["from_unit"], title=r["title"], kind=r["kind"],
            package_digest=r["package_digest"], created_at=from_db_time(r["created_at"]),  # type: ignore[arg-type]
            doc_number=r["doc_number"], deadline=from_db_time(r["deadline"]), id=r["id"],
            recipients=tuple(by_doc.get(r["doc_id"], ()))) for r in rows]

    async def _page(self, table: str, alias: str, where: list[str], params: list[Any],
                    flt: ListFilter) -> list[Any]:
        if flt.before_id is not None:
            where.append(f"{alias}.id < ?")
            params.append(flt.before_id)
        return await self._db.fetchall(
            f"SELECT {alias}.* FROM {table} WHERE {' AND '.join(where)} ORDER BY {alias}.id DESC LIMIT ?",
            (*params, flt.limit + 1))

    # --- inbox ----------------------------------------------------------------------------------
    async def add_inbox(self, row: InboxRow, *, actor: str = "node", tx: SqliteTransaction | None = None) -> bool:
        """Place a document in a unit's inbox; False if it is there already (re-processing after a crash)."""
        check_digest(row.package_digest)
        now = to_db_time(self._clock())
        facts = row.facts or RegisterFacts(urgency=_v(row.urgency))
        async with self._db.maybe_transaction(tx) as t:
            inserted = await t.execute(
                "INSERT INTO inbox (doc_id, unit_code, role, from_unit, title, kind, urgency, deadline, status,"
                " signed_by, signed_at, return_reason, urge_count, last_urged_at, package_digest, verification,"
                " message_id, received_at, updated_at, doc_number, classification, written_on, issuers)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (doc_id, unit_code) DO NOTHING",
                (row.doc_id, row.unit, _v(row.role), row.from_unit, row.title, _v(row.kind), _v(row.urgency),
                 _v(row.deadline), _v(row.status), row.signed_by, _v(row.signed_at), row.return_reason,
                 row.urge_count, _v(row.last_urged_at), row.package_digest,
                 None if row.verification is None else self._report_text(row.verification),
                 row.message_id, _v(row.received_at), now, facts.doc_number, *facts_columns(facts)[2:]))
            if inserted:
                await self._audit.append(t, actor, "inbox.add", {"doc_id": row.doc_id, "unit": row.unit},
                                         {"from_unit": row.from_unit, "kind": _v(row.kind),
                                          "message_id": row.message_id})
        return bool(inserted)

    def _report_text(self, report: Mapping[str, Any]) -> str:
        """``report`` as stored; encoded once for all the rows of a document (it is read-only,
        ``InboxRow.verification``): 2 % of a 54-node process's GIL time, encoded once per unit."""
        if self._last_report is None or self._last_report[0] is not report:
            self._last_report = (report, json.dumps(report, ensure_ascii=False))
        return self._last_report[1]

    async def update_inbox(self, doc_id: str, unit: str, expected_status: str | Enum,
                           changes: Mapping[str, Any], *, actor: str, action: str | None = None,
                           details: Mapping[str, Any] | None = None,
                           tx: SqliteTransaction | None = None, also_expected: Mapping[str, Any] | None = None) -> InboxRow:
        """Compare-and-set one inbox row (keys: status, signed_by, signed_at, return_reason,
        urge_count, last_urged_at, verification); :class:`StoreConflict` if the status moved on, or
        any column of ``also_expected`` no longer holds its value (the row a decision was made on)."""
        unknown = set(changes) - _INBOX_FIELDS
        if unknown:
            raise StoreError(f"an inbox row has no fields {sorted(unknown)}", fields=sorted(unknown))
        values = {k: (json.dumps(v, ensure_ascii=False) if k == "verification" and v is not None else _v(v))
                  for k, v in changes.items()}
        sets = [f"{k} = ?" for k in values] + ["updated_at = ?"]
        params = [*values.values(), to_db_time(self._clock())]
        new_status = _v(changes.get("status", expected_status))
        event = NewEvent(actor, action or f"inbox.{new_status}", {"doc_id": doc_id, "unit": unit},
                         {"from": _v(expected_status),
                          **_jsonable({k: v for k, v in changes.items() if k != "verification"}),
                          **dict(details or {})})
        async with self._db.maybe_transaction(tx) as t:
            row = await self._cas(t, "inbox", sets, params, doc_id, unit, _v(expected_status), event, also_expected)
        return _inbox(row)

    async def inbox_for_message(self, message_id: str, unit: str) -> InboxRow | None:
        """``unit``'s row of the document message ``message_id`` brought (a 转发's cover)."""
        row = await self._db.lookup_one("SELECT * FROM inbox WHERE message_id = ? AND unit_code = ?", (message_id, unit))
        return _inbox(row) if row else None

    async def adopt_inbox(self, doc_id: str, unit: str, from_unit: str, message_id: str, *, actor: str,
                          tx: SqliteTransaction) -> None:
        """The issuer's own delivery of a document a unit first received forwarded (转发): the row
        answers to the issuer from now on (its 撤回 and 催办 match it; 签收 tells it)."""
        row = await tx.fetchone("SELECT from_unit, message_id FROM inbox WHERE doc_id = ? AND unit_code = ?",
                                (doc_id, unit))
        await tx.execute("UPDATE inbox SET from_unit = ?, message_id = ?, updated_at = ? WHERE doc_id = ?"
                         " AND unit_code = ?", (from_unit, message_id, to_db_time(self._clock()), doc_id, unit))
        await self._audit.append(tx, actor, "inbox.adopted", {"doc_id": doc_id, "unit": unit},
                                 {"from_unit": from_unit, "message_id": message_id,
                                  "forwarded_by": row["from_unit"] if row else None})

    async def get_inbox(self, doc_id: str, unit: str, *, tx: SqliteTransaction | None = None) -> InboxRow | None:
        """``unit``'s row of ``doc_id``; with ``tx``, as that transaction sees it (its own writes too)."""
        row = await (tx or self._db).lookup_one("SELECT * FROM inbox WHERE doc_id = ? AND unit_code = ?",
                                              (doc_id, unit))
        return _inbox(row) if row else None

    async def list_inbox(self, flt: ListFilter = ListFilter()) -> Page[InboxRow]:
        where, params = ["1 = 1"], []
        for column, value in (("i.unit_code", flt.unit), ("i.status", flt.status), ("i.kind", flt.kind),
                              ("i.from_unit", flt.counterpart)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(_v(value))
        if flt.overdue:
            # The open statuses named (not "NOT IN" the settled), and "+" on the deadline: the open
            # folder's entries of inbox_folder (unit, status, id, deadline) are read newest first and
            # the deadline checked in each, so only late rows are read from the table. (A seek on
            # the deadline would take inbox_status_deadline: every unit's late rows, then a sort.)
            where.append(f"i.deadline IS NOT NULL AND +i.deadline < ? AND i.status IN ({_in(OPEN_RECEIVER)})")
            params += [to_db_time(self._clock()), *OPEN_RECEIVER]
        if flt.urgency is not None:
            where.append("i.urgency = ?")
            params.append(flt.urgency)
        # A received document's 发文字号 is in its column since migration 12 (the register facts, from
        # the same metadata as the report), in its verification report (PackageReport.doc_number)
        # before: the report (~1.6 KB of JSON a row) is read only for an older row.
        _narrow(where, params, flt, "i", "i.received_at",
                "COALESCE(i.doc_number, json_extract(i.verification, '$.doc_number'))")
        rows = await self._page("inbox i", "i", where, params, flt)
        items = [_inbox(r) for r in rows[:flt.limit]]
        return Page(items, items[-1].id if len(rows) > flt.limit else None)

    async def count_inbox(self, unit: str) -> dict[str, int]:
        """A unit's received documents by status, and ``overdue``: past their deadline, not settled.
        One pass over the unit's entries of the index inbox_folder (status, id, deadline), no table
        row read: ~20 ms for 100,000 documents where reading the rows took ~70 (bench/console.py)."""
        rows = await self._db.fetchall(
            "SELECT status, COUNT(*), SUM(deadline IS NOT NULL AND deadline < ?) FROM inbox WHERE unit_code = ?"
            " GROUP BY status", (to_db_time(self._clock()), unit))
        counts = {r[0]: int(r[1]) for r in rows}
        counts["overdue"] = sum(int(r[2]) for r in rows if r[0] not in SETTLED_RECEIVER)
        return counts


def _narrow(where: list[str], params: list[Any], flt: ListFilter, alias: str, time_column: str, number: str) -> None:
    """The console's date range and search (``ListFilter.since``, ``until``, ``search``): ``alias`` is
    the table's, ``time_column`` when a row was sent or received, ``number`` its 发文字号."""
    if flt.since is not None:
        where.append(f"{time_column} >= ?")
        params.append(to_db_time(flt.since))
    if flt.until is not None:
        where.append(f"{time_column} < ?")
        params.append(to_db_time(flt.until))
    if flt.search:
        pattern = "%" + flt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(f"({alias}.title LIKE ? ESCAPE '\\' OR {number} LIKE ? ESCAPE '\\')")
        params += [pattern, pattern]


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _v(v) for k, v in values.items()}


def _recipient(row: Any) -> OutboxRecipient:
    return OutboxRecipient(
        doc_id=row["doc_id"], unit=row["unit_code"], role=row["role"], status=row["status"],
        destination_node=row["destination_node"], who=row["status_by"], when=from_db_time(row["status_at"]),
        reason=row["reason"], urge_count=row["urge_count"], last_urged_at=from_db_time(row["last_urged_at"]),
        updated_at=from_db_time(row["updated_at"]))


def _inbox(row: Any) -> InboxRow:
    return InboxRow(
        id=row["id"], doc_id=row["doc_id"], unit=row["unit_code"], role=row["role"], from_unit=row["from_unit"],
        title=row["title"], kind=row["kind"], status=row["status"], package_digest=row["package_digest"],
        received_at=from_db_time(row["received_at"]), urgency=row["urgency"],  # type: ignore[arg-type]
        deadline=from_db_time(row["deadline"]), signed_by=row["signed_by"],
        signed_at=from_db_time(row["signed_at"]), return_reason=row["return_reason"],
        urge_count=row["urge_count"], last_urged_at=from_db_time(row["last_urged_at"]),
        verification=_report(row["verification"]) if row["verification"] else None,
        message_id=row["message_id"], updated_at=from_db_time(row["updated_at"]))


@functools.lru_cache(maxsize=256)
def _report(text: str) -> Mapping[str, Any]:
    """A verification report as stored, decoded once: every unit a document reached holds the same
    report, and its 签收 reads the row twice (before and in the transaction) — decoding it each time
    was 4.5 % of a 54-node process's GIL time in bench/network.py. Shared between rows, so read-only
    (``InboxRow.verification``); a caller that changes one copies it first."""
    return json.loads(text)
