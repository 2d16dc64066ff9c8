"""Outbound queue persistence: one logical queue per destination node.

Which move is legal from which state is :mod:`node.store.queue_states`'s table (read its header for
the lifecycle); every ``WHERE state IN (…)`` here and every state written is asked of that table, so
the rule lives in one place. A move from a state the table does not allow changes nothing and raises
:class:`StoreConflict` (:class:`StoreNotFound` for an unknown id); claiming rows for the in-flight
window is the one unaudited move.

Retry timing (when ``next_attempt_at`` is) is decided by ``exchange_protocol.retry``; this module
stores what it is told. Envelopes past ``expires_at`` never enter a window: :meth:`expired` lists
them for the sender to bounce.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from node.errors import StoreConflict, StoreDuplicate, StoreNotFound
from node.store.blobs import check_digest
from node.store.queue_states import (
    AT_REST_STATES,
    EXPIRABLE_STATES,
    FINAL_STATES,
    INCOMING,
    UNFINISHED_STATES,
    WAITING_STATES,
    WITHDRAWABLE_STATES,
    QueueEvent,
    ordered,
    sources,
    target,
)
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.values import ErrorInfo, NewEvent, OutboundItem, QueueEntry
from pki.errors import GwxError

_COLUMNS = ("message_id, destination, blob_digest, size, type, state, attempts, first_attempt_at,"
            " next_attempt_at, last_error_code, last_error_message, receipt, created_at, expires_at,"
            " updated_at")


def _entry(row: Any) -> QueueEntry:
    error = ErrorInfo(row["last_error_code"], row["last_error_message"]) if row["last_error_code"] else None
    return QueueEntry(
        message_id=row["message_id"], destination=row["destination"], blob_digest=row["blob_digest"],
        size=row["size"], type=row["type"], state=row["state"], attempts=row["attempts"],
        first_attempt_at=from_db_time(row["first_attempt_at"]),
        next_attempt_at=from_db_time(row["next_attempt_at"]),  # type: ignore[arg-type]
        last_error=error, receipt=row["receipt"], created_at=from_db_time(row["created_at"]),  # type: ignore[arg-type]
        expires_at=from_db_time(row["expires_at"]), updated_at=from_db_time(row["updated_at"]))  # type: ignore[arg-type]


def _in(values: Sequence[str]) -> str:
    return ",".join("?" * len(values))


def _to_state(event: QueueEvent) -> tuple[str, list[str]]:
    """The SQL expression (and its parameters) of the state ``event`` moves a row to."""
    never_tried, tried = target(event, 0), target(event, 1)
    if never_tried == tried:
        return "?", [tried]
    return "CASE WHEN attempts = 0 THEN ? ELSE ? END", [never_tried, tried]


class OutboundQueue:
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    # --- writing ------------------------------------------------------------------------------
    async def enqueue(self, item: OutboundItem, *, tx: SqliteTransaction | None = None,
                      actor: str = "node") -> None:
        await self.enqueue_many([item], tx=tx, actor=actor)

    async def enqueue_many(self, items: Sequence[OutboundItem], *, tx: SqliteTransaction | None = None,
                           actor: str = "node") -> None:
        """Insert rows in state ``incoming``; a message id already queued raises :class:`StoreDuplicate`."""
        if not items:
            return
        now = to_db_time(self._clock())
        rows = []
        for item in items:
            check_digest(item.blob_digest)
            rows.append((item.message_id, item.destination, item.blob_digest, item.size, item.type,
                         INCOMING, to_db_time(item.not_before) if item.not_before else now, now,
                         to_db_time(item.expires_at) if item.expires_at else None, now))
        async with self._db.maybe_transaction(tx) as t:
            ids = [item.message_id for item in items]
            existing = await t.fetchall(f"SELECT message_id FROM queue WHERE message_id IN ({_in(ids)})", ids)
            if existing or len(set(ids)) != len(ids):
                dup = existing[0]["message_id"] if existing else ids[0]
                raise StoreDuplicate("the message is already in the send queue", message_id=dup)
            await t.send_many(
                "INSERT INTO queue (message_id, destination, blob_digest, size, type, state,"
                " next_attempt_at, created_at, expires_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            await self._audit.append_many(t, [
                NewEvent(actor, "queue.enqueue", {"message_id": i.message_id, "node": i.destination},
                         {"type": i.type, "size": i.size, "blob": i.blob_digest}) for i in items])

    async def load_active_window(self, destination: str, limit: int, *,
                                 now: datetime | None = None) -> list[QueueEntry]:
        """The destination's in-flight window, oldest first: active rows topped up with due ones.

        At most ``limit`` rows are active per destination. Calling again before the window is
        settled returns the same rows (safe: sending twice is absorbed by the receiver's dedupe).
        """
        at = to_db_time(now or self._clock())
        claimable = sources(QueueEvent.CLAIM)
        active = target(QueueEvent.CLAIM, 0)
        # Nothing in flight and nothing due: no write transaction. A destination's queue asks at every
        # round, most often for nothing (before it seals its drafts, and once more after sending), and
        # each ask was a BEGIN IMMEDIATE and a COMMIT handed to the writer's thread, the writers' lock
        # taken from the clerks' group commits. Two probes of the queue_due index (destination, state,
        # next_attempt_at), one row at most each, on the loop's own connection; a row committed after
        # them wakes the queue for another round, as any enqueued row does.
        if not (await self._db.lookup(
                "SELECT EXISTS (SELECT 1 FROM queue WHERE destination = ? AND state = ?) OR EXISTS ("
                f"SELECT 1 FROM queue WHERE destination = ? AND state IN ({_in(claimable)})"
                " AND next_attempt_at <= ? AND (expires_at IS NULL OR expires_at > ?))",
                (destination, active, destination, *claimable, at, at)))[0][0]:
            return []
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT COUNT(*) FROM queue WHERE destination = ? AND state = ?", (destination, active))
            room = limit - row[0]
            if room > 0:
                await tx.execute(
                    "UPDATE queue SET state = ?, updated_at = ? WHERE message_id IN ("
                    f" SELECT message_id FROM queue WHERE destination = ? AND state IN ({_in(claimable)})"
                    " AND next_attempt_at <= ? AND (expires_at IS NULL OR expires_at > ?)"
                    " ORDER BY created_at, message_id LIMIT ?)", (active, at, destination, *claimable, at, at, room))
            rows = await tx.fetchall(
                f"SELECT {_COLUMNS} FROM queue WHERE destination = ? AND state = ?"
                " ORDER BY created_at, message_id LIMIT ?", (destination, active, limit))
        return [_entry(r) for r in rows]

    async def mark_sent(self, message_ids: Sequence[str], receipt: bytes | Mapping[str, bytes] | None,
                        *, tx: SqliteTransaction | None = None, actor: str = "node") -> int:
        """Record delivery to the next node (with its signed receipt); returns rows changed.

        Ids already sent or bounced are left alone, so a repeated call after a crash is harmless.
        """
        if not message_ids:
            return 0
        now = to_db_time(self._clock())
        per_id = receipt if isinstance(receipt, Mapping) else dict.fromkeys(message_ids, receipt)
        movable = sources(QueueEvent.SENT)
        async with self._db.maybe_transaction(tx) as t:
            rows = await t.fetchall(
                f"SELECT message_id, destination FROM queue WHERE message_id IN ({_in(message_ids)})"
                f" AND state IN ({_in(movable)})", (*message_ids, *movable))
            await t.executemany(
                "UPDATE queue SET state = ?, attempts = attempts + 1,"
                " first_attempt_at = COALESCE(first_attempt_at, ?), receipt = ?, last_error_code = NULL,"
                " last_error_message = NULL, updated_at = ? WHERE message_id = ?",
                [(target(QueueEvent.SENT, 1), now, per_id.get(r["message_id"]), now, r["message_id"])
                 for r in rows])
            await self._audit.append_many(t, [
                NewEvent(actor, "queue.sent", {"message_id": r["message_id"], "node": r["destination"]})
                for r in rows])
        return len(rows)

    async def defer(self, message_id: str, next_attempt_at: datetime, error: ErrorInfo | GwxError, *,
                    tx: SqliteTransaction | None = None, actor: str = "node") -> None:
        """A failed attempt: count it, remember the error, try again at ``next_attempt_at``."""
        now = to_db_time(self._clock())
        info = ErrorInfo.of(error)
        await self._transition(
            message_id, QueueEvent.DEFER, tx,
            "attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?),"
            " next_attempt_at = ?, last_error_code = ?, last_error_message = ?, updated_at = ?",
            (now, to_db_time(next_attempt_at), info.code, info.message, now),
            NewEvent(actor, "queue.defer", {"message_id": message_id},
                     {"error": info.code, "message": info.message, "next_attempt_at": to_db_time(next_attempt_at)}))

    async def hold(self, message_id: str, *, actor: str, reason: str = "",
                   tx: SqliteTransaction | None = None) -> None:
        now = to_db_time(self._clock())
        await self._transition(message_id, QueueEvent.HOLD, tx, "updated_at = ?", (now,),
                               NewEvent(actor, "queue.hold", {"message_id": message_id}, {"reason": reason}))

    async def release(self, message_id: str, *, actor: str, tx: SqliteTransaction | None = None) -> None:
        """Back from hold, due now (``incoming`` if never tried, else ``deferred``)."""
        now = to_db_time(self._clock())
        await self._transition(message_id, QueueEvent.RELEASE, tx, "next_attempt_at = ?, updated_at = ?",
                               (now, now), NewEvent(actor, "queue.release", {"message_id": message_id}))

    async def retry_now(self, *, actor: str, message_id: str | None = None,
                        destination: str | None = None) -> list[str]:
        """An operator's "try now": the waiting row ``message_id``, or every waiting row for
        ``destination``, due now; returns the ids moved (none: :class:`StoreConflict` for a message id
        whose row is not waiting, :class:`StoreNotFound` for an unknown one)."""
        if (message_id is None) == (destination is None):
            raise ValueError("retry_now takes a message id or a destination")
        now = to_db_time(self._clock())
        if message_id is not None:
            await self._transition(message_id, QueueEvent.RETRY, None, "next_attempt_at = ?, updated_at = ?",
                                   (now, now), NewEvent(actor, "queue.retry", {"message_id": message_id}))
            return [message_id]
        allowed = sources(QueueEvent.RETRY)
        state_sql, state_params = _to_state(QueueEvent.RETRY)
        async with self._db.transaction() as t:
            rows = await t.fetchall(f"SELECT message_id FROM queue WHERE destination = ? AND state IN ({_in(allowed)})"
                                    " ORDER BY created_at, message_id", (destination, *allowed))
            ids = [r[0] for r in rows]
            await t.execute(f"UPDATE queue SET state = {state_sql}, next_attempt_at = ?, updated_at = ?"
                            f" WHERE destination = ? AND state IN ({_in(allowed)})",
                            (*state_params, now, now, destination, *allowed))
            # One event a row; none waiting (the destination's drafts wait for its backoff to end): one for
            # the destination, so the operator's "try now" is in the log whatever it moved.
            await self._audit.append_many(t, [NewEvent(actor, "queue.retry", {"message_id": i, "node": destination})
                                              for i in ids] or [NewEvent(actor, "queue.retry", {"node": destination},
                                                                         {"messages": 0})])
        return ids

    async def bounce(self, message_id: str, reason: ErrorInfo | GwxError, *,
                     tx: SqliteTransaction | None = None, actor: str = "node") -> None:
        """Give up (retry window over, or refused for good); the caller sends the bounce notice."""
        await self._end_with_error(message_id, QueueEvent.BOUNCE, "queue.bounce", reason, tx, actor)

    async def mark_corrupt(self, message_id: str, error: ErrorInfo | GwxError, *,
                           tx: SqliteTransaction | None = None, actor: str = "node") -> None:
        await self._end_with_error(message_id, QueueEvent.CORRUPT, "queue.corrupt", error, tx, actor)

    async def _end_with_error(self, message_id: str, move: QueueEvent, audit_kind: str,
                              error: ErrorInfo | GwxError, tx: SqliteTransaction | None, actor: str) -> None:
        """A final move that records why (bounced or corrupt), with its audit event."""
        info = ErrorInfo.of(error)
        await self._transition(
            message_id, move, tx, "last_error_code = ?, last_error_message = ?, updated_at = ?",
            (info.code, info.message, to_db_time(self._clock())),
            NewEvent(actor, audit_kind, {"message_id": message_id}, {"error": info.code, "message": info.message}))

    async def _transition(self, message_id: str, move: QueueEvent, tx: SqliteTransaction | None,
                          assignments: str, params: Sequence[Any], event: NewEvent) -> None:
        """Apply ``move`` to one row if the table allows it from the row's state, with ``assignments``."""
        allowed = sources(move)
        state_sql, state_params = _to_state(move)
        async with self._db.maybe_transaction(tx) as t:
            changed = await t.execute(
                f"UPDATE queue SET state = {state_sql}, {assignments}"
                f" WHERE message_id = ? AND state IN ({_in(allowed)})",
                (*state_params, *params, message_id, *allowed))
            if not changed:
                row = await t.fetchone("SELECT state FROM queue WHERE message_id = ?", (message_id,))
                if row is None:
                    raise StoreNotFound("no such message in the send queue", message_id=message_id)
                raise StoreConflict(f"the message is {row['state']}; cannot {event.action} it",
                                    message_id=message_id, state=row["state"], action=event.action)
            await self._audit.append_many(t, [event])

    async def requeue_active(self, tx: SqliteTransaction) -> int:
        """Start-up: nothing is in flight after a restart, so active rows go back to waiting."""
        allowed = sources(QueueEvent.RESTART)
        state_sql, state_params = _to_state(QueueEvent.RESTART)
        return await tx.execute(f"UPDATE queue SET state = {state_sql} WHERE state IN ({_in(allowed)})",
                                (*state_params, *allowed))

    async def purge_finished(self, older_than: datetime) -> int:
        """Delete sent/bounced rows last changed before ``older_than`` (their audit events remain)."""
        final = ordered(FINAL_STATES)
        async with self._db.transaction(offload=True) as tx:
            return await tx.execute(
                f"DELETE FROM queue WHERE state IN ({_in(final)}) AND updated_at < ?",
                (*final, to_db_time(older_than)))

    async def withdraw(self, tx: SqliteTransaction, message_id: str, reason: str, *, actor: str = "node") -> bool:
        """Take a waiting row out of the queue (its message is re-addressed); False when it is not
        waiting (in flight, held, sent, gone) and so stays where it is."""
        allowed = ordered(WITHDRAWABLE_STATES)
        row = await tx.fetchone(f"SELECT destination FROM queue WHERE message_id = ? AND state IN ({_in(allowed)})",
                                (message_id, *allowed))
        if row is None:
            return False
        await tx.execute(f"DELETE FROM queue WHERE message_id = ? AND state IN ({_in(allowed)})", (message_id, *allowed))
        await self._audit.append_many(tx, [NewEvent(actor, "queue.withdrawn", {"message_id": message_id,
                                                                               "node": row["destination"]},
                                                    {"reason": reason})])
        return True

    async def frame_rows(self, message_id: str) -> list[str]:
        """The unfinished rows sent in one frame with ``message_id`` (the headers of one bundle, itself
        included), in message id order: a frame goes out whole, so they are withdrawn together."""
        unfinished = ordered(UNFINISHED_STATES)
        rows = await self._db.fetchall(
            "SELECT q.message_id FROM queue q JOIN queue m ON m.blob_digest = q.blob_digest"
            f" AND m.destination = q.destination WHERE m.message_id = ? AND q.state IN ({_in(unfinished)})"
            " ORDER BY q.message_id", (message_id, *unfinished))
        return [r[0] for r in rows]

    async def at_rest(self) -> list[tuple[str, str]]:
        """(message id, blob digest) of every unfinished row not in flight: what recovery checks."""
        states = ordered(AT_REST_STATES)
        rows = await self._db.fetchall(
            f"SELECT message_id, blob_digest FROM queue WHERE state IN ({_in(states)})", states)
        return [(r[0], r[1]) for r in rows]

    # --- reading ------------------------------------------------------------------------------
    async def get(self, message_id: str) -> QueueEntry | None:
        row = await self._db.lookup_one(f"SELECT {_COLUMNS} FROM queue WHERE message_id = ?", (message_id,))
        return _entry(row) if row else None

    async def entries(self, *, destination: str | None = None, states: Sequence[str] | None = None,
                      after: str | None = None, limit: int = 100) -> list[QueueEntry]:
        """Rows oldest first (``created_at``, then message id), of ``destination`` and ``states`` when
        given (default: the unfinished ones); ``after`` is the message id of the last row of the
        previous page. What ``gwx node queue list`` shows."""
        states = ordered(frozenset(states)) if states else ordered(UNFINISHED_STATES)
        where, params = [f"state IN ({_in(states)})"], list(states)
        if destination is not None:
            where.append("destination = ?")
            params.append(destination)
        if after is not None:
            where.append("(created_at, message_id) > (SELECT created_at, message_id FROM queue WHERE message_id = ?)")
            params.append(after)
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM queue WHERE {' AND '.join(where)}"
                                       " ORDER BY created_at, message_id LIMIT ?", (*params, limit))
        return [_entry(r) for r in rows]

    async def destinations_due(self, now: datetime | None = None) -> list[str]:
        """Destinations with at least one unexpired envelope due now (incoming or deferred)."""
        at = to_db_time(now or self._clock())
        waiting = ordered(WAITING_STATES)
        rows = await self._db.fetchall(
            f"SELECT DISTINCT destination FROM queue WHERE state IN ({_in(waiting)})"
            " AND next_attempt_at <= ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY destination",
            (*waiting, at, at))
        return [r[0] for r in rows]

    async def next_due_at(self, destination: str | None = None) -> datetime | None:
        """When the earliest waiting envelope (of ``destination``, or of any) becomes due."""
        waiting = ordered(WAITING_STATES)
        where, params = f"state IN ({_in(waiting)})", list(waiting)
        if destination is not None:
            where += " AND destination = ?"
            params.append(destination)
        row = await self._db.fetchone(f"SELECT MIN(next_attempt_at) FROM queue WHERE {where}", params)
        return from_db_time(row[0]) if row else None

    async def expired(self, now: datetime | None = None, limit: int = 500,
                      destination: str | None = None) -> list[QueueEntry]:
        """Unfinished envelopes past ``expires_at`` (not held), of ``destination`` or all: to be bounced."""
        at = to_db_time(now or self._clock())
        expirable = ordered(EXPIRABLE_STATES)
        extra, params = ("", [at, limit]) if destination is None else (" AND destination = ?", [at, destination, limit])
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM queue WHERE state IN ({_in(expirable)})"
            f" AND expires_at IS NOT NULL AND expires_at <= ?{extra} ORDER BY expires_at LIMIT ?",
            (*expirable, *params))
        return [_entry(r) for r in rows]

    async def oldest_unfinished(self) -> dict[str, datetime]:
        """{destination: when its oldest unfinished envelope was queued} — the age an alert watches
        (a queue that drains keeps it small whatever its depth; one that is stuck lets it grow)."""
        unfinished = ordered(UNFINISHED_STATES)
        rows = await self._db.fetchall(
            f"SELECT destination, MIN(created_at) FROM queue WHERE state IN ({_in(unfinished)}) GROUP BY destination",
            unfinished)
        return {r[0]: from_db_time(r[1]) for r in rows}  # type: ignore[misc]

    async def depth(self) -> dict[str, dict[str, int]]:
        """{destination: {state: count}} for /metrics and ``gwx node status``."""
        rows = await self._db.fetchall(
            "SELECT destination, state, COUNT(*) FROM queue GROUP BY destination, state")
        out: dict[str, dict[str, int]] = {}
        for destination, state, count in rows:
            out.setdefault(destination, {})[state] = count
        return out
