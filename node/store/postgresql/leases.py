"""Several workers of one node on one PostgreSQL database: queue rows, received envelopes, adapter
outbox rows and drafts claimed with leases.

A node that serves its identity from several processes (workers behind one TCP load balancer, all on
the same database and blob directory) must not send an envelope from two workers at once, nor apply
a received envelope twice; and when a worker dies (kill -9, a machine lost) what it held must not
wait for it for ever. So a worker *claims* rows: it writes its name (``lease_owner``) and a time
(``lease_until``, now + ``[store] lease_seconds``) on each, picked with ``FOR UPDATE SKIP LOCKED``
so two workers asking at once take different rows. A lease is renewed each time its worker asks
again; one that has run out is anybody's: another worker takes the row over.

- Outbound (:class:`LeasedQueue`): a destination's in-flight window is the worker's own ``active``
  rows; ``active`` rows whose lease ran out go back to waiting (as a restart would put them) before a
  worker tops its window up, and count as due for the scheduler (``destinations_due``,
  ``next_due_at``), so a live worker picks up a dead one's rows within ``lease_seconds``. A worker
  starting requeues only rows whose lease ran out, never a live worker's.
- Inbound (:class:`LeasedMessages`): ``pending_inbound`` claims the due ``new`` rows it returns; the
  processor's wake-up considers when leases end. Marking a row ``done``/``failed`` moves it only from
  ``new``: were a lease to run out mid-application and a second worker apply the same envelope, the
  second's transaction meets a row already done and rolls back (:class:`~node.errors.StoreConflict`),
  so each received envelope is applied exactly once.

- Adapters (:class:`LeasedAdapterOutbox`): every worker runs the adapters' fan-out (the cursors'
  compare-and-set lets one of two racing workers write each event's rows) and a delivery loop per
  consumer, which asks for the consumer's *oldest* pending row: a due row no live worker holds is
  claimed for this worker; one another worker holds comes back due when that lease ends, so the
  asker waits, and a consumer's rows still go out one at a time, in order. The lease is renewed every
  third of ``lease_seconds`` while the attempt runs (:meth:`~LeasedAdapterOutbox.holding`: an attempt
  may take longer than a lease), and the outcome (done, retry, dead) is written only by the holder,
  clearing the lease; a row whose worker died is taken over once its lease ends and delivered again
  with the same event id, which receivers de-duplicate on. Renewals (these and the drafts' below)
  are written on the worker's :class:`~node.store.postgresql.db.SideConnection`, one statement
  guarded by the owner: in a transaction of the writer they waited behind every transaction the
  worker had queued and the advisory lock, and a busy worker's own writes let its lease run out.
  So a claim re-checks the lease in its UPDATE: a renewal may land between its read and its write.

- Drafts (:class:`LeasedDrafts`): a destination's drafts are claimed by the worker that seals them
  (or gives them up: expired, unreadable), so two workers never seal one draft twice. Chosen over
  only forgiving the worker that loses the race: sealing is the costly step (a signature per
  header, the payload encrypted, a blob written), and the loser's failed swap was counted as the
  *peer's* failure by its destination loop, backing a healthy peer off. A look on the reader first
  keeps a destination whose drafts another worker holds from taking the writers' turn. The
  rerouter reads every draft, held or not, and claims none (``every_draft_for``): a unit moved to
  another node moves its drafts whoever is sealing them. The builder claims a round's drafts up
  front and swaps them all at its end, so a round may outlast ``lease_seconds`` (a slow HSM, a large
  payload): the round renews the lease every third of it (:meth:`~LeasedDrafts.holding`), as an
  adapter's attempt does; a renewal that fails is logged and tried again a third later, and a
  draft found taken over is named in the log. Should a renewal still come late (the worker's loop
  stalled past a lease), the swap deletes the draft before it queues the envelope, so of two who sealed one draft the second
  finds it gone (:class:`~node.errors.StoreContended`) and the envelope builder gives its copy up quietly. A
  dead worker's drafts are taken over at the other's next round after the lease (within
  ``lease_seconds`` plus the destination loop's longest sleep).

Sending twice is harmless anyway (the receiver's dedupe answers with the first receipt); applying
twice is what the leases and the guarded mark rule out. The columns are added by
:mod:`.schema` (PostgreSQL only: one SQLite process needs no leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from node.errors import StoreConflict, StoreError, StoreNotFound
from node.store.postgresql.db import SideConnection
from node.store.queue_states import QueueEvent, sources, target
from node.store.sqlite.adapter_outbox import AdapterOutbox
from node.store.sqlite.adapter_outbox import _row as _outbox_row
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import from_db_time, to_db_time
from node.store.sqlite.exchange import Drafts
from node.store.sqlite.messages import Messages
from node.store.sqlite.queue import _COLUMNS, OutboundQueue, _entry, _in, _to_state
from node.store.sqlite.received import _received, processing_outcome
from node.store.values import AdapterOutboxRow, Draft, QueueEntry, ReceivedEnvelope, UnreadableDraft

log = logging.getLogger("gwx.store")

NAME_LOCKS = 0x677778  # the advisory locks' key space of workers' names ("gwx")
NAME_PATIENCE_SECONDS = 5.0
LEASE_COLUMNS = (
    "ALTER TABLE queue ADD COLUMN IF NOT EXISTS lease_owner TEXT",
    "ALTER TABLE queue ADD COLUMN IF NOT EXISTS lease_until TEXT",
    "ALTER TABLE received ADD COLUMN IF NOT EXISTS lease_owner TEXT",
    "ALTER TABLE received ADD COLUMN IF NOT EXISTS lease_until TEXT",
    "ALTER TABLE adapter_outbox ADD COLUMN IF NOT EXISTS lease_owner TEXT",
    "ALTER TABLE adapter_outbox ADD COLUMN IF NOT EXISTS lease_until TEXT",
    "ALTER TABLE drafts ADD COLUMN IF NOT EXISTS lease_owner TEXT",
    "ALTER TABLE drafts ADD COLUMN IF NOT EXISTS lease_until TEXT",
)


def worker_name(name: str = "") -> str:
    """This worker's name on the rows it claims: ``[store] worker``, or the host's name. One process at
    a time holds a name (:func:`hold_name`), so a worker restarted under its name takes back at once
    what it held before it stopped, while a live worker's rows stay its own."""
    return name or socket.gethostname()


async def hold_name(db: Any, name: str, *, patience: float = NAME_PATIENCE_SECONDS) -> None:
    """Hold ``name`` for as long as this store is open (a session advisory lock, released by the server
    when the process dies), or refuse: another process runs under it. A worker restarted at once after
    a kill waits ``patience`` seconds for the server to notice its predecessor's connection is gone."""
    deadline = time.monotonic() + patience
    while True:
        row = await db.fetchone_writer("SELECT pg_try_advisory_lock(?, hashtext(?))", (NAME_LOCKS, name))
        if (row and row[0]) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    if not row or not row[0]:
        raise StoreError(f"another worker named {name!r} is using this database; give each worker of a node its "
                         "own [store] worker name", worker=name)


class _Lease:
    def __init__(self, clock: Callable[[], datetime], seconds: float, owner: str, side: SideConnection) -> None:
        self.clock = clock
        self.seconds = seconds
        self.owner = owner
        self.side = side  # where holding() renews: not behind this worker's writers (SideConnection)

    def times(self) -> tuple[str, str]:
        """(now, until) as the store writes times."""
        now = self.clock()
        return to_db_time(now), to_db_time(now + timedelta(seconds=self.seconds))


class LeasedQueue(OutboundQueue):
    def __init__(self, db: Any, audit: AuditLog, clock: Callable[[], datetime], lease: _Lease) -> None:
        super().__init__(db, audit, clock)
        self._lease = lease

    async def load_active_window(self, destination: str, limit: int, *,
                                 now: datetime | None = None) -> list[QueueEntry]:
        """This worker's in-flight window of ``destination``: its active rows (leases renewed), topped
        up with due rows no other worker holds; rows of a worker whose lease ran out wait again first."""
        at, until = (to_db_time(now), to_db_time(now + timedelta(seconds=self._lease.seconds))) if now \
            else self._lease.times()
        me = self._lease.owner
        claimable = sources(QueueEvent.CLAIM)
        active = target(QueueEvent.CLAIM, 0)
        restart_sql, restart_params = _to_state(QueueEvent.RESTART)
        async with self._db.transaction() as tx:
            await tx.execute(
                f"UPDATE queue SET state = {restart_sql}, lease_owner = NULL, lease_until = NULL"
                " WHERE destination = ? AND state = ? AND lease_owner IS DISTINCT FROM ?"
                " AND (lease_until IS NULL OR lease_until < ?)", (*restart_params, destination, active, me, at))
            row = await tx.fetchone("SELECT COUNT(*) FROM queue WHERE destination = ? AND state = ?",
                                    (destination, active))
            room = limit - row[0]
            if room > 0:
                await tx.execute(
                    "UPDATE queue SET state = ?, updated_at = ?, lease_owner = ?, lease_until = ? WHERE message_id IN ("
                    f" SELECT message_id FROM queue WHERE destination = ? AND state IN ({_in(claimable)})"
                    " AND next_attempt_at <= ? AND (expires_at IS NULL OR expires_at > ?)"
                    " ORDER BY created_at, message_id LIMIT ? FOR UPDATE SKIP LOCKED)",
                    (active, at, me, until, destination, *claimable, at, at, room))
            await tx.execute("UPDATE queue SET lease_until = ? WHERE destination = ? AND state = ? AND lease_owner = ?",
                             (until, destination, active, me))
            rows = await tx.fetchall(
                f"SELECT {_COLUMNS} FROM queue WHERE destination = ? AND state = ? AND lease_owner = ?"
                " ORDER BY created_at, message_id LIMIT ?", (destination, active, me, limit))
        return [_entry(r) for r in rows]

    async def requeue_active(self, tx: Any) -> int:
        """Start-up: rows this worker had in flight, and those of a worker whose lease ran out, go back
        to waiting — not a live worker's (SQLite's store requeues every active row: one process)."""
        allowed = sources(QueueEvent.RESTART)
        state_sql, state_params = _to_state(QueueEvent.RESTART)
        return await tx.execute(
            f"UPDATE queue SET state = {state_sql}, lease_owner = NULL, lease_until = NULL"
            f" WHERE state IN ({_in(allowed)}) AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)",
            (*state_params, *allowed, to_db_time(self._clock()), self._lease.owner))

    async def destinations_due(self, now: datetime | None = None) -> list[str]:
        """Destinations with a due envelope, or with one held by a worker whose lease ran out."""
        at = to_db_time(now or self._clock())
        due = set(await super().destinations_due(now))
        rows = await self._db.fetchall(
            "SELECT DISTINCT destination FROM queue WHERE state = ? AND (lease_until IS NULL OR lease_until < ?)",
            (target(QueueEvent.CLAIM, 0), at))
        return sorted(due | {r[0] for r in rows})

    async def next_due_at(self, destination: str | None = None) -> datetime | None:
        """When the earliest waiting envelope becomes due, or another worker's lease runs out."""
        waiting = await super().next_due_at(destination)
        where, params = "state = ? AND lease_owner IS DISTINCT FROM ?", [target(QueueEvent.CLAIM, 0), self._lease.owner]
        if destination is not None:
            where += " AND destination = ?"
            params.append(destination)
        row = await self._db.fetchone(f"SELECT MIN(COALESCE(lease_until, '')) FROM queue WHERE {where}", params)
        ends = None if row is None or row[0] is None else (self._clock() if row[0] == "" else from_db_time(row[0]))
        return min((t for t in (waiting, ends) if t is not None), default=None)


class LeasedMessages(Messages):
    def __init__(self, db: Any, audit: AuditLog, clock: Callable[[], datetime], lease: _Lease) -> None:
        super().__init__(db, audit, clock)
        self._lease = lease

    async def pending_inbound(self, limit: int = 100) -> list[ReceivedEnvelope]:
        """Due ``new`` envelopes no live worker holds, oldest first, claimed for this worker."""
        now, until = self._lease.times()
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE received SET lease_owner = ?, lease_until = ? WHERE message_id IN ("
                " SELECT message_id FROM received WHERE state = 'new' AND (retry_at IS NULL OR retry_at <= ?)"
                " AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)"
                " ORDER BY received_at, message_id LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING *",
                (self._lease.owner, until, now, now, self._lease.owner, limit))
        return sorted((_received(r) for r in rows), key=lambda r: (r.received_at, r.message_id))

    async def next_inbound_retry(self) -> datetime | None:
        """When a ``new`` envelope is next due: its retry time, or when another worker's lease on it runs
        out (this worker's own lease never holds back a retry it deferred)."""
        row = await self._db.fetchone(
            "SELECT MIN(GREATEST(COALESCE(retry_at, ''),"
            " CASE WHEN lease_owner = ? THEN '' ELSE COALESCE(lease_until, '') END)) FROM received WHERE state = 'new'",
            (self._lease.owner,))
        if row is None or row[0] is None:
            return None
        return self._clock() if row[0] == "" else from_db_time(row[0])

    async def mark_inbound(self, message_id: str, state: str, *, error: Any = None,
                           tx: Any = None, actor: str = "node") -> None:
        """As the SQLite store's, but only from ``new``: a row another worker already applied is a
        :class:`StoreConflict`, and the transaction applying it a second time rolls back."""
        code, message = processing_outcome(state, error)
        async with self._db.maybe_transaction(tx) as t:
            changed = await t.execute(
                "UPDATE received SET state = ?, error_code = ?, error_message = ?, processed_at = ?,"
                " lease_owner = NULL, lease_until = NULL WHERE message_id = ? AND state = 'new'",
                (state, code, message, to_db_time(self._clock()), message_id))
            if not changed:
                row = await t.fetchone("SELECT state FROM received WHERE message_id = ?", (message_id,))
                if row is None:
                    raise StoreNotFound("no such received message", message_id=message_id)
                raise StoreConflict("the received message was already processed (by another worker)",
                                    message_id=message_id, state=row[0])
            await self._audit.append(t, actor, f"envelope.{state}", {"message_id": message_id},
                                     {"error": code} if code else {})


class LeasedAdapterOutbox(AdapterOutbox):
    def __init__(self, db: Any, audit: AuditLog, clock: Callable[[], datetime], lease: _Lease) -> None:
        super().__init__(db, audit, clock)
        self._lease = lease

    async def oldest_pending(self, consumer: str) -> AdapterOutboxRow | None:
        """The consumer's oldest pending row: claimed for this worker when it is due and no live worker
        holds it; held by another, it comes back due when that lease ends (the asker waits till then)."""
        now, until = self._lease.times()
        oldest = "SELECT * FROM adapter_outbox WHERE consumer = ? AND state = 'pending' ORDER BY seq LIMIT 1"
        # A look first, on the reader: an idle consumer's loop takes no writers' lock.
        found = await self._db.fetchone(oldest, (consumer,))
        if found is None or self._held(found, now) or found["next_attempt_at"] > now:
            return self._as_seen(found, now)
        async with self._db.transaction() as tx:  # the writers' lock: no other worker decides meanwhile
            found = await tx.fetchone(oldest, (consumer,))
            if found is None or self._held(found, now) or found["next_attempt_at"] > now:
                return self._as_seen(found, now)
            # Guarded: a holder's renewal does not wait for the writers' lock, so it may have landed
            # since the read (then the row is still the holder's).
            if not await tx.execute("UPDATE adapter_outbox SET lease_owner = ?, lease_until = ? WHERE id = ? AND"
                                    " (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                                    (self._lease.owner, until, found["id"], self._lease.owner, now)):
                return self._as_seen(await tx.fetchone(oldest, (consumer,)), now)
        return _outbox_row(found)

    def _held(self, found: Any, now: str) -> bool:
        """Whether another worker's lease on the row still runs."""
        return found["lease_owner"] not in (None, self._lease.owner) and found["lease_until"] >= now

    def _as_seen(self, found: Any, now: str) -> AdapterOutboxRow | None:
        """The row unclaimed; held by another worker, due when that lease ends."""
        if found is None:
            return None
        row = _outbox_row(found)
        if self._held(found, now):
            return dataclasses.replace(row, next_attempt_at=max(row.next_attempt_at, from_db_time(found["lease_until"])))
        return row

    def holding(self, row_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Renew this worker's lease on ``row_id`` every third of ``lease_seconds`` while the attempt runs."""
        async def renew() -> bool:
            _, until = self._lease.times()
            kept, _ = await self._lease.side.fetchall(
                "UPDATE adapter_outbox SET lease_until = ? WHERE id = ? AND state = 'pending'"
                " AND lease_owner = ?", (until, row_id, self._lease.owner))
            if not kept:
                log.warning("adapter outbox row %s: this worker's lease on it is gone (taken over after it "
                            "ran out); the attempt's outcome will not be recorded here", row_id)
            return bool(kept)
        return _renewing(self._lease, f"adapter outbox row {row_id}", renew)

    async def _set(self, row_id: int, sets: str, params: tuple[Any, ...], *, tx: Any = None) -> None:
        """An attempt's outcome, written only while no other worker holds the row; the lease ends with it."""
        async with self._db.maybe_transaction(tx) as t:
            changed = await t.execute(
                f"UPDATE adapter_outbox SET {sets}, lease_owner = NULL, lease_until = NULL WHERE id = ?"
                " AND state = 'pending' AND (lease_owner IS NULL OR lease_owner = ?)",
                (*params, row_id, self._lease.owner))
            if not changed:
                raise StoreConflict("the outbox row is no longer pending, or another worker holds it now",
                                    row_id=row_id)


class LeasedDrafts(Drafts):
    def __init__(self, db: Any, node_id: str | None, lease: _Lease) -> None:
        super().__init__(db, node_id)
        self._lease = lease

    async def drafts_for(self, destination: str, limit: int = 100) -> list[Draft | UnreadableDraft]:
        """The destination's drafts no other live worker holds, oldest first, claimed for this worker."""
        return await self._claim("destination = ?", (destination,), limit)

    async def expired_drafts(self, destination: str, now: datetime,
                             limit: int = 100) -> list[Draft | UnreadableDraft]:
        """Those of them whose retry window ended by ``now``, claimed for this worker."""
        return await self._claim("destination = ? AND expires_at IS NOT NULL AND expires_at <= ?",
                                 (destination, to_db_time(now)), limit)

    async def _claim(self, where: str, params: tuple[Any, ...], limit: int) -> list[Draft | UnreadableDraft]:
        now, until = self._lease.times()
        free = f"{where} AND (lease_until IS NULL OR lease_until < ? OR lease_owner = ?)"
        free_params = (*params, now, self._lease.owner)
        # A look first, on the reader: a destination whose drafts another worker holds costs no writers' turn.
        if await self._db.fetchone(f"SELECT 1 FROM drafts WHERE {free} LIMIT 1", free_params) is None:
            return []
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE drafts SET lease_owner = ?, lease_until = ? WHERE message_id IN ("
                f" SELECT message_id FROM drafts WHERE {free} ORDER BY message_id LIMIT ? FOR UPDATE SKIP LOCKED)"
                " RETURNING *", (self._lease.owner, until, *free_params, limit))
        return [self._draft(r) for r in sorted(rows, key=lambda r: r["message_id"])]

    def holding(self, message_ids: Sequence[str]) -> contextlib.AbstractAsyncContextManager[None]:
        """Renew this worker's lease on the drafts ``message_ids`` every third of ``lease_seconds`` while
        a builder round seals them (a round may outlast a lease: a slow HSM, a large payload). A draft
        the round swapped or dropped meanwhile is simply no longer renewed; one another worker took
        over (this worker's loop stalled past the lease) is told in the log: both may seal it, the
        first swap wins and the other's copy is given up."""
        ids = list(message_ids)

        async def renew() -> bool:
            if not ids:
                return False
            _, until = self._lease.times()
            _, rows = await self._lease.side.fetchall(f"UPDATE drafts SET lease_until = ? WHERE lease_owner = ? AND message_id"
                                          f" IN ({_in(ids)}) RETURNING message_id", (until, self._lease.owner, *ids))
            kept = {row[0] for row in rows}
            gone = [i for i in ids if i not in kept]
            lost = [] if not gone else [row[0] for row in await self._db.fetchall(
                f"SELECT message_id FROM drafts WHERE message_id IN ({_in(gone)})"
                " AND lease_owner <> ? ORDER BY message_id", (*gone, self._lease.owner))]  # another's now
            if lost:
                log.warning("drafts %s: this worker's lease on them is gone (taken over after it ran out); "
                            "the round seals them all the same, and of two swaps the second is given up",
                            ", ".join(lost))
            ids[:] = [i for i in ids if i in kept]  # swapped, dropped, re-addressed or lost: not renewed again
            return bool(ids)
        return _renewing(self._lease, f"drafts of a builder round ({len(ids)})", renew)


@contextlib.asynccontextmanager
async def _renewing(lease: _Lease, what: str, renew: Callable[[], Awaitable[bool]]) -> AsyncIterator[None]:
    """Call ``renew`` every third of ``lease.seconds`` while the block runs, until it answers False
    (nothing left to hold); ``renew`` writes on ``lease.side``, behind none of this worker's writes. A
    renewal that fails (its rows locked by another transaction past a lock timeout, a connection
    lost for a moment) is logged and tried again a third of a lease later: one failure must not end
    the renewals of an attempt or a round that then outlasts its lease unnoticed."""
    async def loop() -> None:
        while True:
            await asyncio.sleep(lease.seconds / 3)
            try:
                if not await renew():
                    return
            except Exception as exc:
                log.warning("%s: renewing this worker's lease failed (%s: %s); trying again in %.1f s",
                            what, type(exc).__name__, exc, lease.seconds / 3)
    task = asyncio.get_running_loop().create_task(loop(), name=f"gwx-lease {what}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
