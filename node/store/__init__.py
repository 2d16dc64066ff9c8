"""Durable storage of a gwx node: SQLite (WAL) for rows, a content-addressed blob store for bytes.

The one rule (as in Postfix): **bytes durable, then the row committed, then the acknowledgement**.
An envelope arriving from a peer is streamed into the blob store (temp file → fsync → rename to its
SHA-256 → fsync the directory), then a ``received`` row naming that digest is committed, and only
then does the node answer with its signed transport receipt. Sending works the same way round: the
envelope blob first, then the ``queue`` row. So after any crash the disk tells the truth:

- a blob without a row was never acknowledged: garbage, collected;
- a row without its blob is corrupt (it should be impossible; a disk or an operator lost it): the
  row moves to ``corrupt`` and a typed ``STORE_BLOB_MISSING`` error is logged, never silently dropped;
- a row in ``active`` was in flight: it goes back to the queue (at-least-once on the wire; the
  receiver's ``received`` table turns that into exactly-once in the inbox).

Parts (one purpose each): :mod:`.blobs` here, the rows in the SQLite backend (:mod:`.sqlite`):

- :mod:`.sqlite.db` — connections, PRAGMAs (WAL, ``synchronous=FULL`` and why), transactions, time format.
- :mod:`.sqlite.migrations` — the schema, versioned, one transaction per step, idempotent on re-open.
- :mod:`.blobs` — the content-addressed blob store: streaming in and out, digest checks, GC.
- :mod:`.sqlite.queue` — the outbound queue per destination node (incoming/active/deferred/hold/corrupt/
  sent/bounced) and the peers table.
- :mod:`.sqlite.messages` — inbound dedupe with the original receipt; outbox/recipient and inbox rows with
  compare-and-set updates and keyset-paged listings.
- :mod:`.sqlite.audit` — the append-only hash-chained audit log, written in the same transaction as the
  change it records; triggers refuse UPDATE/DELETE; ``verify_chain`` finds tampering.
- :mod:`.sqlite.group_commit` — many concurrent acceptances, one transaction, one fsync.
- :mod:`.sqlite.store` — :class:`Store`, which opens all of the above and recovers after a crash.

Every write API takes an optional ``tx``: several state changes (say, a 签收 receipt updating a
recipient row and queueing the acknowledgement) commit together with
``async with store.transaction() as tx: …(tx=tx)``, audit events included. Hot-path writes that
come one by one from many coroutines go through ``store.accept_inbound`` / ``store.enqueue`` instead
(group commit). Reads use a separate connection and see the last committed state.

The PostgreSQL backend planned for scale-out would implement the same method signatures.
"""

from node.store.blobs import BlobRef, BlobStore
from node.store.sqlite.audit import AuditEvent, AuditLog, NewEvent
from node.store.sqlite.db import Database, Transaction, from_db_time, to_db_time
from node.store.sqlite.messages import (
    Accepted,
    InboundEnvelope,
    InboxRow,
    ListFilter,
    Messages,
    OutboxDocument,
    OutboxRecipient,
    Page,
    ReceivedEnvelope,
)
from node.store.sqlite.queue import ErrorInfo, OutboundItem, OutboundQueue, PeerState, QueueEntry
from node.store.sqlite.store import RecoveryReport, Store

__all__ = [
    "Accepted", "AuditEvent", "AuditLog", "BlobRef", "BlobStore", "Database", "ErrorInfo",
    "InboundEnvelope", "InboxRow", "ListFilter", "Messages", "NewEvent", "OutboundItem", "OutboundQueue",
    "OutboxDocument", "OutboxRecipient", "Page", "PeerState", "QueueEntry", "ReceivedEnvelope",
    "RecoveryReport", "Store", "Transaction", "from_db_time", "to_db_time",
]
