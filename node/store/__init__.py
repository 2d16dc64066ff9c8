"""Durable storage of a gwx node: rows behind interfaces, bytes in a content-addressed blob store.

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

The line callers see (import these from ``node.store``, never from ``node.store.sqlite``):

- :mod:`.interfaces` — one ``typing.Protocol`` per storage role (queue, peers, messages, drafts,
  outgoing links, peer credentials, adapters' outbox, ledger, audit, blobs, group commit) and :class:`NodeStore` holding them,
  with an opaque :class:`Transaction` handle.
- :mod:`.values` — the frozen dataclasses those roles take and return (no database types).
- :mod:`.queue_states` — the outbound queue's lifecycle as a table: which event moves an envelope
  from which state to which (the SQL asks it; no rule lives in a query string).
- :mod:`.blobs` — the content-addressed blob store: streaming in and out, digest checks, GC.
- :mod:`.opener` — :func:`open_store`, the one place that picks the backend (node.toml's ``[store]``).

Behind the line, :mod:`.sqlite` (its package docstring is its map) and :mod:`.postgresql` (the same
role modules over PostgreSQL, for several workers of one node) are the only code that speaks SQL, with
:mod:`.sql_common`, the half the two share (the writer's transactions, the migration loop, the time
text); a test fails the build if SQL or a database driver appears anywhere else in ``node/``.

Every write takes an optional ``tx``: several state changes (say, a 签收 receipt updating a recipient
row and queueing the acknowledgement) commit together with ``async with store.transaction() as tx:
…(tx=tx)``, audit events included. Hot-path writes that come one by one from many coroutines go
through ``store.accept_inbound`` / ``store.enqueue`` instead (group commit). Reads see the last
committed state. Behind the line each read says what it reads: the rows a primary or unique key
names are a *lookup* (``lookup`` / ``lookup_one``), which SQLite serves on the event loop's thread
through a connection of its own (microseconds, less than a hand-over to a thread); whatever scans,
counts, groups, pages or lists is ``fetchall`` / ``fetchone``, kept off the loop on the reader's
thread (:mod:`node.store.sqlite.db`, "Reads outside a transaction").
"""

from node.store.blobs import BlobRef, BlobStore
from node.store.interfaces import (
    AdapterOutboxStore,
    AuditTrail,
    BlobStorage,
    DraftStore,
    GroupCommit,
    LedgerStore,
    MessageStore,
    NodeStore,
    OutgoingLinkStore,
    PeerCredentialStore,
    PeerStore,
    QueueStore,
    Transaction,
)
from node.store.values import (
    PEER_BACKING_OFF,
    PEER_DEAD,
    PEER_STATES,
    PEER_UP,
    Accepted,
    AdapterOutboxRow,
    AuditEvent,
    Draft,
    ErrorInfo,
    InboundEnvelope,
    InboundFailure,
    InboxRow,
    JournalEntry,
    LedgerPage,
    LedgerQuery,
    LedgerRow,
    LedgerTally,
    LedgerTallyRules,
    ListFilter,
    LocalDelivery,
    NewEvent,
    OutboundItem,
    OutboxDocument,
    OutboxRecipient,
    OutgoingLink,
    Page,
    PeerState,
    QueueEntry,
    ReceivedEnvelope,
    RecipientUpdate,
    RecoveryReport,
    RegisterFacts,
    StoredPeerCredentials,
    UnreadableDraft,
    WebhookSubscription,
)

__all__ = [
    "AdapterOutboxRow", "AdapterOutboxStore", "JournalEntry", "WebhookSubscription",
    "PEER_BACKING_OFF", "PEER_DEAD", "PEER_STATES", "PEER_UP", "Accepted", "AuditEvent", "AuditTrail",
    "BlobRef", "BlobStorage", "BlobStore", "Draft", "DraftStore", "ErrorInfo", "GroupCommit", "InboundEnvelope",
    "InboundFailure", "InboxRow", "ListFilter", "LocalDelivery", "MessageStore", "NewEvent", "NodeStore",
    "OutboundItem", "OutboxDocument", "OutboxRecipient", "RecipientUpdate", "OutgoingLink", "OutgoingLinkStore", "Page",
    "PeerCredentialStore", "PeerState", "PeerStore", "QueueEntry", "QueueStore", "ReceivedEnvelope",
    "RecoveryReport", "StoredPeerCredentials", "Transaction", "UnreadableDraft",
    "LedgerPage", "LedgerQuery", "LedgerRow", "LedgerStore", "LedgerTally", "LedgerTallyRules", "RegisterFacts",
]
