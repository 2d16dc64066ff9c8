"""The append-only, hash-chained audit log (全程留痕).

Every state change the node makes appends one event in the *same transaction* as the change, so the
log can neither miss a committed change nor record one that rolled back. An event is
``(seq, at, actor, action, subjects, details, prev_hash, hash)`` with, from the seq migration 18
recorded in ``audit_version`` on (hash version 2),

    content_hash = SHA-256( canonical_json([at, actor, action, subjects, details]) )   (kept in its column)
    hash = SHA-256( canonical_json([prev_hash, seq, content_hash]) )

and before it (version 1, rows an older gwx wrote, never rehashed)
``hash = SHA-256(canonical_json([prev_hash, seq, at, actor, action, subjects, details]))``
(canonical JSON from :mod:`exchange_protocol.canonical`; the one definition is
:mod:`exchange_protocol.audit_chain`), ``prev_hash`` the previous event's hash (64 zeros for the
first). A v2 link is recomputable from its content hash alone, so an archive's excerpt proves that
no event between its first and the head was removed without carrying other documents' events. ``subjects`` names what the event
is about (``doc_id``, ``message_id``, ``unit``, ``node`` …; the first two are indexed for history
look-ups); ``details`` carries the facts (who signed, the reason, the error code).

Two defences, for two threats: SQLite triggers refuse UPDATE and DELETE on ``audit`` so no code path
(ours or a careless operator's ``sqlite3`` session) can rewrite history by accident; the hash chain
makes deliberate tampering (dropping the triggers first) detectable by :func:`verify_chain`, which
reports the first event whose hash or link does not match. Anchoring the head hash outside the node
(e.g. in a signed receipt or a periodic timestamp) is what turns "detectable" into "provable";
:meth:`AuditLog.head` exposes it for that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from exchange_protocol.audit_chain import GENESIS_HASH, event_hash, hash_at
from exchange_protocol.canonical import canonical_json
from node.errors import AuditChainBroken
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.values import AuditEvent, NewEvent

__all__ = ["GENESIS_HASH", "AuditLog", "event_hash"]


class AuditLog:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock
        self._v2_from: int | None = None  # migration 18's row, read once (it never changes)

    async def v2_from_seq(self, fetchone=None) -> int:
        """The seq from which events are hashed in version 2 (migration 18's row)."""
        if self._v2_from is None:
            row = await (fetchone or self._db.fetchone)("SELECT from_seq FROM audit_version WHERE version = 2")
            self._v2_from = int(row[0])
        return self._v2_from

    async def append(self, tx: SqliteTransaction, actor: str, action: str, subjects: Mapping[str, Any],
                     details: Mapping[str, Any] | None = None) -> int:
        """Append one event inside ``tx``; returns its seq."""
        return (await self.append_many(tx, [NewEvent(actor, action, subjects, details)]))[0]

    async def append_many(self, tx: SqliteTransaction, events: Sequence[NewEvent]) -> list[int]:
        """Append events in order with one ``executemany``; returns their seqs."""
        if not events:
            return []
        if tx.audit_head is None:
            row = await tx.fetchone("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            tx.audit_head = (row["seq"], row["hash"]) if row else (0, GENESIS_HASH)
        seq, prev = tx.audit_head
        v2_from = await self.v2_from_seq(tx.fetchone)
        at = to_db_time(self._clock())
        rows = []
        seqs = []
        for event in events:
            seq += 1
            details = dict(event.details or {})
            subjects = dict(event.subjects)
            digest, content = hash_at(v2_from, prev, seq, at, event.actor, event.action, subjects, details)
            rows.append((seq, at, event.actor, event.action, canonical_json(subjects).decode(),
                         canonical_json(details).decode(), prev, digest, content))
            seqs.append(seq)
            prev = digest
        await tx.send_many(  # the caller needs no answer: PostgreSQL reads it with the next statement's
            "INSERT INTO audit (seq, at, actor, action, subjects, details, prev_hash, hash, content_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        tx.audit_head = (seq, prev)
        return seqs

    def watch(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """``callback(seq)`` after each commit that appended events (in this process); returns the
        unsubscribe. See :meth:`node.store.sqlite.db.Database.watch_audit`."""
        return self._db.watch_audit(callback)

    async def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest committed event; (0, 64 zeros) for an empty log."""
        row = await self._db.fetchone("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (row["seq"], row["hash"]) if row else (0, GENESIS_HASH)

    async def events(self, *, doc_id: str | None = None, message_id: str | None = None,
                     after_seq: int = 0, limit: int = 100) -> list[AuditEvent]:
        """Events in seq order, optionally only those about one document or one message."""
        where, params = ["seq > ?"], [after_seq]
        if doc_id is not None:
            where.append("doc_id = ?")
            params.append(doc_id)
        if message_id is not None:
            where.append("message_id = ?")
            params.append(message_id)
        rows = await self._db.fetchall(
            f"SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit"
            f" WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", (*params, limit))
        return [_event(row) for row in rows]

    async def excerpt(self, doc_id: str, *, page: int = 2000) -> dict[str, Any]:
        """The events about ``doc_id`` as stored (``at`` as hashed), the v1 hash of every event from the
        first of them to the log's v2 seq, the content hash of every event from there to the head, and
        the head: :mod:`exchange_protocol.audit_chain`'s version 2 excerpt, recomputable to the head."""
        head_seq, head_hash = await self.head()  # first: events appended meanwhile are left out
        v2_from = await self.v2_from_seq()
        events: list[dict[str, Any]] = []
        after = 0
        while rows := await self._db.fetchall(
                "SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit"
                " WHERE doc_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?", (doc_id, after, head_seq, page)):
            events += [{"seq": r["seq"], "at": r["at"], "actor": r["actor"], "action": r["action"],
                        "subjects": json.loads(r["subjects"]), "details": json.loads(r["details"]),
                        "prev_hash": r["prev_hash"], "hash": r["hash"]} for r in rows]
            after = rows[-1]["seq"]
        first = events[0]["seq"] if events else head_seq + 1
        links: list[str] = []
        contents: list[str] = []
        if events:
            # v1 hashes up to the v2 seq (up to the last event when the head is still before it) ...
            v1_last = v2_from - 1 if head_seq >= v2_from else events[-1]["seq"]
            links = await self._column("hash", first, v1_last, page)
            # ... and from there to the head, each event's content hash: its link is recomputable.
            if head_seq >= v2_from:
                contents = await self._column("content_hash", max(first, v2_from), head_seq, page)
        return {"v": 2, "events": events, "first_seq": first, "v2_from_seq": v2_from, "links": links,
                "content_hashes": contents, "head": [head_seq, head_hash]}

    async def _column(self, column: str, low: int, high: int, page: int) -> list[str]:
        values: list[str] = []
        while low + len(values) <= high and (rows := await self._db.fetchall(
                f"SELECT seq, {column} FROM audit WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                (low + len(values), high, page * 10))):
            for row in rows:
                if row[0] != low + len(values) or row[1] is None:
                    raise AuditChainBroken(f"the audit log misses the event or the {column} at seq {low + len(values)}",
                                           seq=low + len(values), reason="missing")
                values.append(row[1])
        return values

    async def verify_chain(self, *, page: int = 2000) -> int:
        """Walk the whole log (v1 rows, then v2 rows with their stored content hash); returns the number
        of events, or raises :class:`AuditChainBroken`.

        Reads in pages so a long log is checked in bounded memory.
        """
        prev, expected_seq, count = GENESIS_HASH, 1, 0
        v2_from = await self.v2_from_seq()
        while True:
            rows = await self._db.fetchall(
                "SELECT seq, at, actor, action, subjects, details, prev_hash, hash, content_hash FROM audit"
                " WHERE seq >= ? ORDER BY seq LIMIT ?", (expected_seq, page))
            if not rows:
                break
            for row in rows:
                seq = row["seq"]
                if seq != expected_seq:
                    raise AuditChainBroken(f"the audit log misses the event at seq {expected_seq}",
                                           seq=expected_seq, reason="missing")
                if row["prev_hash"] != prev:
                    raise AuditChainBroken(f"the audit log chain breaks at seq {seq}", seq=seq, reason="link")
                try:
                    digest, content = hash_at(v2_from, prev, seq, row["at"], row["actor"], row["action"],
                                              json.loads(row["subjects"]), json.loads(row["details"]))
                except Exception as exc:  # unreadable JSON, floats, anything canonical JSON refuses
                    raise AuditChainBroken(f"the audit log event at seq {seq} does not parse", seq=seq,
                                           reason="unreadable", error=str(exc)) from None
                if digest != row["hash"] or content != row["content_hash"]:
                    raise AuditChainBroken(f"the audit log event at seq {seq} does not match its hash", seq=seq, reason="hash")
                prev, expected_seq, count = digest, seq + 1, count + 1
        return count


def _event(row: Any) -> AuditEvent:
    return AuditEvent(seq=row["seq"], at=from_db_time(row["at"]), actor=row["actor"],  # type: ignore[arg-type]
                      action=row["action"], subjects=json.loads(row["subjects"]),
                      details=json.loads(row["details"]), prev_hash=row["prev_hash"], hash=row["hash"])
