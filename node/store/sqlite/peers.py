"""What this node knows about its peers: their state as the sender sees it, and their certificates.

* ``peers`` — up / backing-off / dead, consecutive failures, the last error and when the peer may
  be tried again (``retry_at``, migration 5), so that a restart does not forget a peer is backing
  off (``gwx node status`` and ``/metrics`` read it too).
* ``peer_credentials`` — a peer's signing and encryption certificates as last fetched and verified,
  so envelopes can be built at start-up without asking the peer first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from node.errors import StoreConflict
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.values import PEER_STATES, ErrorInfo, PeerState, StoredPeerCredentials
from pki.errors import GwxError


class Peers:
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    async def set_peer_state(self, node_id: str, state: str, *, failures: int = 0,
                             error: ErrorInfo | GwxError | None = None, retry_at: datetime | None = None,
                             tx: SqliteTransaction | None = None, actor: str = "node") -> PeerState:
        """Persist the sender's view of a peer; ``since`` moves only when the state changes.

        ``retry_at`` is when it may be tried again (None: now); it is written every time."""
        if state not in PEER_STATES:
            raise StoreConflict(f"unknown peer state {state!r}", state=state)
        now = to_db_time(self._clock())
        info = ErrorInfo.of(error) if error is not None else None
        async with self._db.maybe_transaction(tx) as t:
            before = await t.fetchone("SELECT state FROM peers WHERE node_id = ?", (node_id,))
            await t.execute(
                "INSERT INTO peers (node_id, state, since, failures, last_error_code, last_error_message,"
                " updated_at, retry_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (node_id) DO UPDATE SET"
                " since = CASE WHEN peers.state = excluded.state THEN peers.since ELSE excluded.since END,"
                " state = excluded.state, failures = excluded.failures,"
                " last_error_code = COALESCE(excluded.last_error_code, peers.last_error_code),"
                " last_error_message = COALESCE(excluded.last_error_message, peers.last_error_message),"
                " updated_at = excluded.updated_at, retry_at = excluded.retry_at",
                (node_id, state, now, failures, info.code if info else None,
                 info.message if info else None, now, to_db_time(retry_at) if retry_at else None))
            if before is None or before["state"] != state:
                await self._audit.append(t, actor, f"peer.{state}", {"node": node_id},
                                         {"error": info.code} if info else {})
            row = await t.fetchone("SELECT * FROM peers WHERE node_id = ?", (node_id,))
        return _peer(row)

    async def get_peer(self, node_id: str) -> PeerState | None:
        row = await self._db.lookup_one("SELECT * FROM peers WHERE node_id = ?", (node_id,))
        return _peer(row) if row else None

    async def list_peers(self) -> list[PeerState]:
        return [_peer(r) for r in await self._db.fetchall("SELECT * FROM peers ORDER BY node_id")]


class PeerCredentials:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, node_id: str) -> StoredPeerCredentials | None:
        row = await self._db.lookup_one("SELECT * FROM peer_credentials WHERE node_id = ?", (node_id,))
        if row is None:
            return None
        return StoredPeerCredentials(row["node_id"], row["signing_cert"], row["encryption_cert"], row["chain"],
                                     from_db_time(row["fetched_at"]))  # type: ignore[arg-type]

    async def save(self, credentials: StoredPeerCredentials) -> None:
        c = credentials
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO peer_credentials (node_id, signing_cert, encryption_cert, chain, fetched_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET signing_cert = excluded.signing_cert,"
                " encryption_cert = excluded.encryption_cert, chain = excluded.chain, fetched_at = excluded.fetched_at",
                (c.node_id, c.signing_cert, c.encryption_cert, c.chain, to_db_time(c.fetched_at)))


def _peer(row: Any) -> PeerState:
    error = ErrorInfo(row["last_error_code"], row["last_error_message"]) if row["last_error_code"] else None
    return PeerState(node_id=row["node_id"], state=row["state"], since=from_db_time(row["since"]),  # type: ignore[arg-type]
                     failures=row["failures"], last_error=error,
                     updated_at=from_db_time(row["updated_at"]),  # type: ignore[arg-type]
                     retry_at=from_db_time(row["retry_at"]))
