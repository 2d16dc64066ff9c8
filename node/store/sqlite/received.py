"""The ``received`` table: inbound dedupe and the processing state of each accepted envelope.

Exactly-once in the inbox over an at-least-once wire: ``received`` is keyed by message id and keeps
the signed transport receipt we answered with. :meth:`ReceivedRows.accept_inbound` inserts with
``INSERT … ON CONFLICT DO NOTHING`` and reads the row back in the same write transaction, so two
copies of an envelope racing in produce one row and both callers get the one stored receipt; the
same id with another envelope (another identity, :mod:`exchange_protocol.replay`: the bytes but the
hop count) is refused with ``ENV_REPLAYED``. The batch variant used by group commit does the same
for many envelopes with a constant number of statements. The processor then takes the rows still
``new`` (:meth:`ReceivedRows.pending_inbound`) and marks each ``done``, ``failed`` or ``corrupt``.

A part of :class:`node.store.sqlite.messages.Messages` (its base class), which callers reach as
``store.messages``; PostgreSQL's leased variant overrides the claiming of pending rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from exchange_protocol.errors import EnvelopeReplayed
from node.errors import StoreError, StoreNotFound
from node.store.blobs import check_digest
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.values import Accepted, InboundEnvelope, InboundFailure, NewEvent, ReceivedEnvelope


def _in(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class ReceivedRows:
    """Inbound dedupe and processing state (module docstring); :class:`Messages` adds the business rows."""

    _db: Database
    _audit: AuditLog
    _clock: Callable[[], datetime]

    async def accept_inbound(self, env: InboundEnvelope, *, tx: SqliteTransaction | None = None,
                             actor: str = "node") -> Accepted:
        """Record an envelope once; a duplicate gets the original receipt, a replay ENV_REPLAYED."""
        check_digest(env.blob_digest)
        async with self._db.maybe_transaction(tx) as t:
            inserted = await t.execute(
                f"INSERT INTO received ({_RECEIVED_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (message_id) DO NOTHING", self._received_row(env))
            row = await t.fetchone("SELECT envelope_digest, identity_digest, receipt FROM received"
                                   " WHERE message_id = ?", (env.message_id,))
            if not _same_envelope(env, row["envelope_digest"], row["identity_digest"]):
                raise _replayed(env, row["envelope_digest"])
            if inserted:
                await self._audit.append_many(t, [_received_event(env, actor)])
        return Accepted(env.message_id, bool(inserted), row["receipt"])

    async def accept_inbound_batch(self, tx: SqliteTransaction, envs: Sequence[InboundEnvelope], *,
                                   actor: str = "node") -> list[Accepted | EnvelopeReplayed]:
        """Many envelopes in ``tx`` with a constant number of statements; results in input order.

        Inside ``BEGIN IMMEDIATE`` nobody else can insert, so rows found by the first SELECT are
        exactly the duplicates; the rest are inserted (ON CONFLICT DO NOTHING kept as a belt).
        """
        for env in envs:
            check_digest(env.blob_digest)
        ids = list(dict.fromkeys(env.message_id for env in envs))
        stored: dict[str, tuple[str, str | None, bytes]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in await tx.fetchall(
                    "SELECT message_id, envelope_digest, identity_digest, receipt FROM received"
                    f" WHERE message_id IN ({_in(chunk)})", chunk):
                stored[row["message_id"]] = (row["envelope_digest"], row["identity_digest"], row["receipt"])
        results: list[Accepted | EnvelopeReplayed] = []
        fresh: list[InboundEnvelope] = []
        for env in envs:
            if env.message_id in stored:
                digest, identity, receipt = stored[env.message_id]
                results.append(Accepted(env.message_id, False, receipt) if _same_envelope(env, digest, identity)
                               else _replayed(env, digest))
                continue
            stored[env.message_id] = (env.envelope_digest, env.identity_digest, env.receipt)
            fresh.append(env)
            results.append(Accepted(env.message_id, True, env.receipt))
        if fresh:
            await tx.send_many(
                f"INSERT INTO received ({_RECEIVED_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (message_id) DO NOTHING", [self._received_row(env) for env in fresh])
            await self._audit.append_many(tx, [_received_event(env, actor) for env in fresh])
        return results

    def _received_row(self, env: InboundEnvelope) -> tuple[Any, ...]:
        return (env.message_id, env.envelope_digest, env.blob_digest, env.origin_node, env.type, env.size,
                to_db_time(self._clock()), env.receipt, env.payload_digest, env.identity_digest, env.relayed_to,
                "new" if env.relayed_to is None else "done")

    async def get_received(self, message_id: str) -> ReceivedEnvelope | None:
        row = await self._db.lookup_one("SELECT * FROM received WHERE message_id = ?", (message_id,))
        return _received(row) if row else None

    async def pending_inbound(self, limit: int = 100) -> list[ReceivedEnvelope]:
        """Acknowledged envelopes not yet processed and due (not waiting to be retried), oldest first."""
        rows = await self._db.fetchall(
            "SELECT * FROM received WHERE state = 'new' AND (retry_at IS NULL OR retry_at <= ?)"
            " ORDER BY received_at, message_id LIMIT ?", (to_db_time(self._clock()), limit))
        return [_received(r) for r in rows]

    async def next_inbound_retry(self) -> datetime | None:
        row = await self._db.fetchone("SELECT MIN(retry_at) FROM received WHERE state = 'new'")
        return from_db_time(row[0]) if row else None

    async def defer_inbound(self, message_id: str, retry_at: datetime, error: Any) -> None:
        """A transient failure applying ``message_id``: try again at ``retry_at`` (counted)."""
        code = getattr(error, "code", "INTERNAL")
        message = getattr(error, "message", str(error))
        async with self._db.transaction() as t:
            await t.execute(
                "UPDATE received SET retry_at = ?, attempts = attempts + 1, error_code = ?, error_message = ?"
                " WHERE message_id = ? AND state = 'new'", (to_db_time(retry_at), code, message, message_id))
            await self._audit.append(t, "node", "envelope.deferred", {"message_id": message_id},
                                     {"error": code, "retry_at": to_db_time(retry_at)})

    async def mark_inbound(self, message_id: str, state: str, *, error: Any = None,
                           tx: SqliteTransaction | None = None, actor: str = "node") -> None:
        """Record the outcome of processing: ``done``, ``failed`` or ``corrupt`` (with a typed error)."""
        code, message = processing_outcome(state, error)
        async with self._db.maybe_transaction(tx) as t:
            changed = await t.execute(
                "UPDATE received SET state = ?, error_code = ?, error_message = ?, processed_at = ?"
                " WHERE message_id = ?", (state, code, message, to_db_time(self._clock()), message_id))
            if not changed:
                raise StoreNotFound("no such received message", message_id=message_id)
            await self._audit.append(t, actor, f"envelope.{state}", {"message_id": message_id},
                                     {"error": code} if code else {})

    async def inbound_counts(self) -> dict[str, int]:
        """How many received envelopes are in each processing state (for status and /metrics)."""
        rows = await self._db.fetchall("SELECT state, COUNT(*) FROM received GROUP BY state")
        return {r[0]: r[1] for r in rows}

    async def inbound_failures(self, limit: int = 10) -> list[InboundFailure]:
        """The latest received envelopes that failed or were found corrupt, newest first."""
        rows = await self._db.fetchall(
            "SELECT message_id, origin_node, error_code, error_message, processed_at FROM received"
            " WHERE state IN ('failed','corrupt') ORDER BY processed_at DESC LIMIT ?", (limit,))
        return [InboundFailure(r["message_id"], r["origin_node"], r["error_code"], r["error_message"],
                               from_db_time(r["processed_at"])) for r in rows]



def processing_outcome(state: str, error: Any) -> tuple[str | None, str | None]:
    """The error code and message recorded with a received message's processing ``state`` (``done``,
    ``failed`` or ``corrupt``); any other state is refused. Shared with PostgreSQL's leased rows."""
    if state not in ("done", "failed", "corrupt"):
        raise StoreError(f"unknown processing state {state!r} of a received message", state=state)
    return getattr(error, "code", None), getattr(error, "message", None if error is None else str(error))

_RECEIVED_COLUMNS = ("message_id, envelope_digest, blob_digest, origin_node, type, size, received_at, receipt,"
                     " payload_digest, identity_digest, relayed_to, state")


def _same_envelope(env: InboundEnvelope, stored_digest: str, stored_identity: str | None) -> bool:
    """Whether ``env`` is the envelope stored under its id: the same identity (the acceptor has
    decided this already with :func:`~exchange_protocol.replay.classify_replay`; this guards two
    copies racing in, both past that check)."""
    if stored_identity is not None and env.identity_digest is not None:
        return stored_identity == env.identity_digest
    return stored_digest == env.envelope_digest  # a row from before migration 4: its exact bytes


def _replayed(env: InboundEnvelope, stored_digest: str) -> EnvelopeReplayed:
    return EnvelopeReplayed("a message with this id was already received with other bytes (a replay or an id collision)",
                            message_id=env.message_id, stored_digest=stored_digest,
                            digest=env.envelope_digest, origin=env.origin_node)


def _received_event(env: InboundEnvelope, actor: str) -> NewEvent:
    return NewEvent(actor, "envelope.received", {"message_id": env.message_id, "node": env.origin_node},
                    {"digest": env.envelope_digest, "type": env.type, "size": env.size})


def _received(row: Any) -> ReceivedEnvelope:
    return ReceivedEnvelope(
        message_id=row["message_id"], envelope_digest=row["envelope_digest"], blob_digest=row["blob_digest"],
        origin_node=row["origin_node"], type=row["type"], size=row["size"],
        received_at=from_db_time(row["received_at"]), receipt=row["receipt"], state=row["state"],  # type: ignore[arg-type]
        error_code=row["error_code"], error_message=row["error_message"], payload_digest=row["payload_digest"],
        attempts=row["attempts"], identity_digest=row["identity_digest"], relayed_to=row["relayed_to"])
