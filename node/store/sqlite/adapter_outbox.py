"""Adapters' durable state: a cursor per consumer into the audit log, and its outbox rows.

* ``adapter_cursors`` — ``(consumer, seq)``: the audit seq up to which a consumer's events have
  been fanned out into its outbox. A new consumer starts at the log's head (events from now on).
* ``adapter_outbox`` — one row per event per consumer, ``pending`` → ``done`` or ``dead``; a dead
  row goes back to ``pending`` only when the operator replays it. ``UNIQUE (consumer, seq)``: an
  event can never be queued twice for one consumer, whatever a crash interrupts.
* ``webhooks`` — webhook subscriptions (their secrets live in 0600 files, not here). Each change
  also rewrites ``webhooks.changed`` beside the database (:meth:`AdapterOutbox.webhooks_mark`), so
  a running node notices a ``gwx webhook add`` by a stat instead of a query every second.

The fan-out writes its rows and moves the cursor in one transaction, compare-and-set on the
cursor, so a crash leaves either both or neither. Audit seqs are assigned under the database's
write lock, so they commit in order: once the log's head is read, no event below it can still
appear, and the cursor may pass events no consumer wants.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from node.errors import StoreConflict, StoreDuplicate, StoreNotFound
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.values import (
    ADAPTER_DONE,
    AdapterOutboxRow,
    ErrorInfo,
    JournalEntry,
    WebhookSubscription,
)
from pki.errors import GwxError
from pki.keystore import write_public_file

WEBHOOKS_MARK = "webhooks.changed"  # beside the database

log = logging.getLogger("gwx.store")


class AdapterOutbox:
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        # Rewritten after every committed change of the subscriptions, by whichever process made it:
        # a running node sees a change by a stat of this file instead of a query every second.
        self._webhooks_mark = db.path.with_name(WEBHOOKS_MARK)

    # --- following the audit log ---------------------------------------------------------------
    async def head(self) -> int:
        row = await self._db.fetchone("SELECT COALESCE(MAX(seq), 0) FROM audit")
        return int(row[0])

    async def journal(self, after_seq: int, actions: Sequence[str], limit: int = 200) -> tuple[list[JournalEntry], int]:
        """Audit events after ``after_seq`` whose action is one of ``actions``, oldest first, with
        the sending unit and title of their document; and the seq the reading covered (the cursor
        may move there even when nothing matched)."""
        head = await self.head()
        if head <= after_seq or not actions:
            return [], max(head, after_seq)
        marks = ",".join("?" * len(actions))
        rows = await self._db.fetchall(
            "SELECT a.seq, a.at, a.action, a.subjects, a.details, o.from_unit AS sent_by,"
            " COALESCE(i.title, o.title) AS title FROM audit a"
            " LEFT JOIN outbox o ON o.doc_id = a.doc_id"
            " LEFT JOIN inbox i ON i.doc_id = a.doc_id AND i.unit_code = json_extract(a.subjects, '$.unit')"
            f" WHERE a.seq > ? AND a.seq <= ? AND a.action IN ({marks}) ORDER BY a.seq LIMIT ?",
            (after_seq, head, *actions, limit))
        entries = [JournalEntry(seq=r["seq"], at=from_db_time(r["at"]), action=r["action"],  # type: ignore[arg-type]
                                subjects=json.loads(r["subjects"]), details=json.loads(r["details"]),
                                sent_by=r["sent_by"], title=r["title"]) for r in rows]
        covered = entries[-1].seq if len(entries) == limit else head
        return entries, covered

    async def cursor(self, consumer: str) -> int | None:
        row = await self._db.lookup_one("SELECT seq FROM adapter_cursors WHERE consumer = ?", (consumer,))
        return None if row is None else int(row[0])

    async def start_cursor(self, consumer: str, *, tx: SqliteTransaction | None = None) -> int:
        """The consumer's cursor, created at the log's head if it has none (events from now on)."""
        async with self._db.maybe_transaction(tx) as t:
            await t.execute(
                "INSERT INTO adapter_cursors (consumer, seq, updated_at)"
                " SELECT ?, COALESCE(MAX(seq), 0), ? FROM audit WHERE true ON CONFLICT (consumer) DO NOTHING",
                (consumer, to_db_time(self._clock())))
            row = await t.fetchone("SELECT seq FROM adapter_cursors WHERE consumer = ?", (consumer,))
        return int(row[0])

    async def incarnation(self) -> str:
        """Which life of this database (8 random hex digits drawn when it was made)."""
        row = await self._db.lookup_one("SELECT incarnation FROM store_identity")
        return row[0]

    async def fan_out(self, consumer: str, expected_cursor: int, new_cursor: int,
                      events: Sequence[tuple[int, str]]) -> int:
        """:meth:`fan_out_many` for one consumer."""
        return await self.fan_out_many([(consumer, expected_cursor, new_cursor, events)])

    async def fan_out_many(self, moves: Sequence[tuple[str, int, int, Sequence[tuple[int, str]]]]) -> int:
        """For each ``(consumer, expected_cursor, new_cursor, events)``: queue ``events`` (seq, event
        JSON) and move the cursor from ``expected_cursor`` to ``new_cursor`` — all in one transaction;
        :class:`StoreConflict` (nothing written) if a cursor moved or went meanwhile. Returns how many
        rows were queued."""
        now = to_db_time(self._clock())
        queued = 0
        async with self._db.transaction() as t:
            for consumer, expected_cursor, new_cursor, events in moves:
                moved = await t.execute(
                    "UPDATE adapter_cursors SET seq = ?, updated_at = ? WHERE consumer = ? AND seq = ?",
                    (new_cursor, now, consumer, expected_cursor))
                if not moved:
                    raise StoreConflict("the consumer's cursor moved (another fan-out ran, or it was forgotten)",
                                        consumer=consumer, expected=expected_cursor)
                if events:
                    queued += await t.executemany(
                        "INSERT INTO adapter_outbox (consumer, seq, event, state, attempts, next_attempt_at,"
                        " created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?) ON CONFLICT (consumer, seq) DO NOTHING",
                        [(consumer, seq, text, now, now) for seq, text in events])
        return queued

    async def earlier_dead(self, consumer: str, doc_id: str, seq: int) -> bool:
        """Whether an event of ``doc_id`` before ``seq`` is dead for ``consumer``."""
        row = await self._db.fetchone(
            "SELECT 1 FROM adapter_outbox WHERE consumer = ? AND state = 'dead' AND seq < ?"
            " AND json_extract(event, '$.doc_id') = ? LIMIT 1", (consumer, seq, doc_id))
        return row is not None

    # --- delivering ------------------------------------------------------------------------------
    async def oldest_pending(self, consumer: str) -> AdapterOutboxRow | None:
        row = await self._db.fetchone(
            "SELECT * FROM adapter_outbox WHERE consumer = ? AND state = 'pending' ORDER BY seq LIMIT 1",
            (consumer,))
        return _row(row) if row else None

    @contextlib.asynccontextmanager
    async def holding(self, row_id: int) -> AsyncIterator[None]:
        """While an attempt at ``row_id`` runs: nothing to keep on SQLite (one process delivers); on
        PostgreSQL the row's lease is renewed (:class:`node.store.postgresql.leases.LeasedAdapterOutbox`)."""
        yield

    async def mark_done(self, row_id: int) -> None:
        now = to_db_time(self._clock())
        await self._set(row_id, "state = 'done', attempts = attempts + 1, finished_at = ?, next_attempt_at = ?",
                        (now, now))

    async def mark_retry(self, row_id: int, next_attempt_at: datetime, first_failure_at: datetime,
                         error: ErrorInfo | GwxError) -> None:
        info = ErrorInfo.of(error)
        await self._set(row_id, "attempts = attempts + 1, next_attempt_at = ?, first_failure_at = ?,"
                                " last_error_code = ?, last_error_message = ?",
                        (to_db_time(next_attempt_at), to_db_time(first_failure_at), info.code, info.message))

    async def mark_dead(self, row_id: int, error: ErrorInfo | GwxError, *, first_failure_at: datetime) -> None:
        """Dead-letter a row (its window closed, or the consumer's answer was final); audited."""
        info = ErrorInfo.of(error)
        now = to_db_time(self._clock())
        async with self._db.transaction() as t:
            row = await t.fetchone("SELECT consumer, seq FROM adapter_outbox WHERE id = ?", (row_id,))
            await self._set(row_id, "state = 'dead', attempts = attempts + 1, finished_at = ?, first_failure_at = ?,"
                                    " last_error_code = ?, last_error_message = ?",
                            (now, to_db_time(first_failure_at), info.code, info.message), tx=t)
            await self._audit.append(t, "node", "adapter.dead", {"consumer": row["consumer"]},
                                     {"seq": row["seq"], "error": info.code, "message": info.message})

    async def _set(self, row_id: int, sets: str, params: tuple[Any, ...], *,
                   tx: SqliteTransaction | None = None) -> None:
        async with self._db.maybe_transaction(tx) as t:
            changed = await t.execute(f"UPDATE adapter_outbox SET {sets} WHERE id = ? AND state = 'pending'",
                                      (*params, row_id))
            if not changed:
                raise StoreConflict("the outbox row is no longer pending", row_id=row_id)

    async def replay(self, consumer: str, row_ids: Sequence[int] | None = None, *, actor: str = "operator") -> int:
        """Dead rows of ``consumer`` (all, or those of ``row_ids``) back to pending, due now, with a
        fresh retry window; audited. Returns how many."""
        now = to_db_time(self._clock())
        where, params = "consumer = ? AND state = 'dead'", [consumer]
        if row_ids is not None:
            if not row_ids:
                return 0
            where += f" AND id IN ({','.join('?' * len(row_ids))})"
            params += list(row_ids)
        async with self._db.transaction() as t:
            changed = await t.execute(
                "UPDATE adapter_outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                f" first_failure_at = NULL, finished_at = NULL WHERE {where}", (now, *params))
            if changed:
                await self._audit.append(t, actor, "adapter.replay", {"consumer": consumer},
                                         {"rows": changed, "ids": list(row_ids) if row_ids is not None else "all"})
        return changed

    # --- reading for operators -----------------------------------------------------------------
    async def rows(self, consumer: str, *, state: str | None = None, limit: int = 100) -> list[AdapterOutboxRow]:
        where, params = "consumer = ?", [consumer]
        if state is not None:
            where += " AND state = ?"
            params.append(state)
        found = await self._db.fetchall(f"SELECT * FROM adapter_outbox WHERE {where} ORDER BY seq DESC LIMIT ?",
                                        (*params, limit))
        return [_row(r) for r in found]

    async def counts(self) -> dict[str, dict[str, int]]:
        """{consumer: {state: rows}} (every consumer with a cursor, even with no rows)."""
        result: dict[str, dict[str, int]] = {}
        for r in await self._db.fetchall("SELECT consumer FROM adapter_cursors"):
            result[r[0]] = {}
        for consumer, state, n in await self._db.fetchall(
                "SELECT consumer, state, COUNT(*) FROM adapter_outbox GROUP BY consumer, state"):
            result.setdefault(consumer, {})[state] = n
        return result

    async def forget(self, consumer: str, *, tx: SqliteTransaction | None = None) -> int:
        """Drop a consumer's cursor and rows (a webhook removed); returns the rows dropped."""
        async with self._db.maybe_transaction(tx) as t:
            await t.execute("DELETE FROM adapter_cursors WHERE consumer = ?", (consumer,))
            return await t.execute("DELETE FROM adapter_outbox WHERE consumer = ?", (consumer,))

    async def purge_finished(self, older_than: datetime) -> int:
        """Delete done rows finished before ``older_than`` (dead rows stay until replayed or forgotten)."""
        async with self._db.transaction(offload=True) as t:
            return await t.execute(f"DELETE FROM adapter_outbox WHERE state = '{ADAPTER_DONE}' AND finished_at < ?",
                                   (to_db_time(older_than),))

    # --- webhook subscriptions ------------------------------------------------------------------
    def webhooks_mark(self) -> tuple[int, int, int] | None:
        """What changes whenever the subscriptions change (None before any change): a stat, no query."""
        try:
            st = os.stat(self._webhooks_mark)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _webhooks_changed(self) -> None:
        """After a committed change: a new mark (a new file each time, its content a fresh number).
        Best effort: the change is committed already, and the mark only makes a running node see it
        sooner; should it not be written, the node's re-read every FULL_SYNC_SECONDS catches up. So a
        failure here is a warning, never an error of the add/change/remove that committed."""
        try:
            write_public_file(self._webhooks_mark, f"{time.time_ns()}\n".encode())
        except OSError as exc:
            log.warning("cannot write %s (%s): a running node sees this webhook change within a minute "
                        "instead of a second", self._webhooks_mark, exc)

    async def add_webhook(self, sub: WebhookSubscription, *, actor: str = "operator") -> None:
        """Store a subscription and start its consumer's cursor at the log's head, together."""
        async with self._db.transaction() as t:
            if await t.fetchone("SELECT 1 FROM webhooks WHERE id = ?", (sub.id,)):
                raise StoreDuplicate("a webhook with this id exists", webhook=sub.id)
            await t.execute("INSERT INTO webhooks (id, unit, url, types, created_at) VALUES (?, ?, ?, ?, ?)",
                            (sub.id, sub.unit, sub.url, json.dumps(list(sub.types)), to_db_time(sub.created_at)))
            await self.start_cursor(f"webhook:{sub.id}", tx=t)
            await self._audit.append(t, actor, "webhook.add", {"unit": sub.unit, "webhook": sub.id},
                                     {"url": sub.url, "types": list(sub.types)})
        self._webhooks_changed()

    async def remove_webhook(self, webhook_id: str, *, actor: str = "operator") -> WebhookSubscription:
        async with self._db.transaction() as t:
            row = await t.fetchone("SELECT * FROM webhooks WHERE id = ?", (webhook_id,))
            if row is None:
                raise StoreNotFound(f"no webhook {webhook_id}", webhook=webhook_id)
            await t.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            await self.forget(f"webhook:{webhook_id}", tx=t)
            await self._audit.append(t, actor, "webhook.remove", {"unit": row["unit"], "webhook": webhook_id})
        self._webhooks_changed()
        return _webhook(row)

    async def change_webhook_url(self, webhook_id: str, url: str, *, actor: str = "operator") -> WebhookSubscription:
        async with self._db.transaction() as t:
            row = await t.fetchone("SELECT * FROM webhooks WHERE id = ?", (webhook_id,))
            if row is None:
                raise StoreNotFound(f"no webhook {webhook_id}", webhook=webhook_id)
            await t.execute("UPDATE webhooks SET url = ? WHERE id = ?", (url, webhook_id))
            await self._audit.append(t, actor, "webhook.change", {"unit": row["unit"], "webhook": webhook_id},
                                     {"from": row["url"], "to": url})
            row = await t.fetchone("SELECT * FROM webhooks WHERE id = ?", (webhook_id,))
        self._webhooks_changed()
        return _webhook(row)

    async def webhooks(self) -> list[WebhookSubscription]:
        return [_webhook(r) for r in await self._db.fetchall("SELECT * FROM webhooks ORDER BY created_at, id")]


def _row(r: Any) -> AdapterOutboxRow:
    error = ErrorInfo(r["last_error_code"], r["last_error_message"] or "") if r["last_error_code"] else None
    return AdapterOutboxRow(id=r["id"], consumer=r["consumer"], seq=r["seq"], event=r["event"], state=r["state"],
                            attempts=r["attempts"], next_attempt_at=from_db_time(r["next_attempt_at"]),  # type: ignore[arg-type]
                            first_failure_at=from_db_time(r["first_failure_at"]), last_error=error,
                            created_at=from_db_time(r["created_at"]),  # type: ignore[arg-type]
                            finished_at=from_db_time(r["finished_at"]))


def _webhook(r: Any) -> WebhookSubscription:
    return WebhookSubscription(id=r["id"], unit=r["unit"], url=r["url"], types=tuple(json.loads(r["types"])),
                               created_at=from_db_time(r["created_at"]))  # type: ignore[arg-type]
