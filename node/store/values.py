"""The values the node and its store exchange: frozen dataclasses, no database types.

Every storage role in :mod:`node.store.interfaces` takes and returns these, so a backend (SQLite
today, PostgreSQL later) never leaks its row objects, placeholders or time encoding to callers.
Times are timezone-aware datetimes; statuses are the strings of :mod:`exchange_protocol.states`
(outbox and inbox) and of :mod:`node.store.queue_states` (the outbound queue).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Generic, TypeVar

from exchange_protocol.envelope import HeaderDraft
from pki.errors import GwxError

T = TypeVar("T")

PEER_UP, PEER_BACKING_OFF, PEER_DEAD = "up", "backing-off", "dead"
PEER_STATES = (PEER_UP, PEER_BACKING_OFF, PEER_DEAD)


@dataclass(frozen=True)
class ErrorInfo:
    """A failure as recorded on a row: the typed error's stable code and its human message."""

    code: str
    message: str

    @classmethod
    def of(cls, error: ErrorInfo | GwxError) -> ErrorInfo:
        return error if isinstance(error, ErrorInfo) else cls(error.code, error.message)


# --- the outbound queue and the peers -------------------------------------------------------------
@dataclass(frozen=True)
class OutboundItem:
    """An envelope to send: its bytes are already durable in the blob store under ``blob_digest``."""

    message_id: str
    destination: str
    blob_digest: str
    size: int
    type: str
    expires_at: datetime | None = None
    not_before: datetime | None = None  # first attempt no earlier than this (default: now)


@dataclass(frozen=True)
class QueueEntry:
    message_id: str
    destination: str
    blob_digest: str
    size: int
    type: str
    state: str                     # a node.store.queue_states state
    attempts: int
    first_attempt_at: datetime | None
    next_attempt_at: datetime
    last_error: ErrorInfo | None
    receipt: bytes | None
    created_at: datetime
    expires_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class PeerState:
    """The sender's view of a peer node, persisted so a restart remembers a peer backing off."""

    node_id: str
    state: str                     # PEER_UP / PEER_BACKING_OFF / PEER_DEAD
    since: datetime
    failures: int                  # consecutive failed attempts to reach it
    last_error: ErrorInfo | None
    updated_at: datetime
    retry_at: datetime | None = None  # nothing is sent to it before this (None: no backoff)


# --- inbound ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InboundEnvelope:
    """An envelope whose bytes are durable in the blob store, with the receipt we will answer."""

    message_id: str
    envelope_digest: str  # SHA-256 of the exact envelope bytes
    blob_digest: str
    origin_node: str
    receipt: bytes        # the signed transport receipt binding envelope_digest
    type: str | None = None
    size: int | None = None
    payload_digest: str | None = None  # the decrypted payload, durable beside the envelope
    identity_digest: str | None = None  # exchange_protocol.replay.envelope_identity (hops left out)
    relayed_to: str | None = None  # for another node: the next hop it is queued for (nothing to apply here)
    # Small blobs that never get a file: (digest, bytes) committed with the row into inline_blobs
    # (node.store.sqlite.inline_blobs), so the batch's one commit makes them durable (PostgreSQL:
    # committed just before it, node.store.postgresql.inline_ahead).
    inline: tuple[tuple[str, bytes], ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class Accepted:
    message_id: str
    new: bool        # False: a duplicate; ``receipt`` is the one answered the first time
    receipt: bytes


@dataclass(frozen=True)
class ReceivedEnvelope:
    message_id: str
    envelope_digest: str
    blob_digest: str
    origin_node: str
    type: str | None
    size: int | None
    received_at: datetime
    receipt: bytes
    state: str                     # new (to process) / done / failed / corrupt
    error_code: str | None
    error_message: str | None
    payload_digest: str | None = None
    attempts: int = 0
    identity_digest: str | None = None  # None for rows received before migration 4
    relayed_to: str | None = None  # kept for another node: the next hop it was queued for


@dataclass(frozen=True)
class InboundFailure:
    """A received envelope that could not be applied (``failed``) or lost its bytes (``corrupt``)."""

    message_id: str
    origin_node: str
    error_code: str | None
    error_message: str | None
    processed_at: datetime | None


# --- outbox / inbox rows ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutboxRecipient:
    unit: str
    role: str                      # 主送 / 抄送
    status: str                    # exchange_protocol.states.SenderStatus value
    destination_node: str | None = None
    who: str | None = None
    when: datetime | None = None
    reason: str | None = None
    urge_count: int = 0
    last_urged_at: datetime | None = None
    updated_at: datetime | None = None
    doc_id: str | None = None


@dataclass(frozen=True)
class RegisterFacts:
    """The 公文 elements a 台账 shows that outbox and inbox rows did not keep before migration 12
    (rows from before it read as empty): 发文字号, 紧急程度, 密级, 成文日期, 发文机关 (unit codes)."""

    doc_number: str | None = None
    urgency: str | None = None
    classification: str | None = None
    written_on: date | None = None
    issuers: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboxDocument:
    doc_id: str
    from_unit: str
    title: str
    kind: str                      # 文种
    package_digest: str
    created_at: datetime
    doc_number: str | None = None  # 发文字号
    deadline: datetime | None = None  # 办理时限 (the caller chooses the instant, e.g. end of day)
    id: int | None = None
    recipients: tuple[OutboxRecipient, ...] = ()
    facts: RegisterFacts | None = None  # written with the row; the 台账 reads it


@dataclass(frozen=True)
class InboxRow:
    doc_id: str
    unit: str                      # the receiving unit
    role: str
    from_unit: str
    title: str
    kind: str
    status: str                    # exchange_protocol.states.ReceiverStatus value
    package_digest: str
    received_at: datetime
    urgency: str | None = None
    deadline: datetime | None = None
    signed_by: str | None = None
    signed_at: datetime | None = None
    return_reason: str | None = None
    urge_count: int = 0
    last_urged_at: datetime | None = None
    verification: Mapping[str, Any] | None = None  # the verification report, as JSON; read-only (rows share it)
    message_id: str | None = None
    id: int | None = None
    updated_at: datetime | None = None
    facts: RegisterFacts | None = None  # written with the row; the 台账 reads it


@dataclass(frozen=True)
class ListFilter:
    unit: str | None = None        # outbox: the sending unit; inbox: the receiving unit
    status: str | Enum | None = None  # outbox: documents with a recipient in this status
    kind: str | Enum | None = None
    overdue: bool = False          # deadline passed and not settled (states.is_overdue)
    counterpart: str | None = None  # outbox: a recipient unit; inbox: the sending unit
    before_id: int | None = None   # keyset: the last id of the previous page
    limit: int = 50
    # The console's filters (node.console): 紧急程度; received (inbox) or sent (outbox) at or after
    # ``since`` and before ``until``; ``search`` a part of the title or of the 发文字号.
    urgency: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_before_id: int | None = None  # None: this was the last page


# --- the 台账 (node.documents.ledger) ------------------------------------------------------------------
LEDGER_SENT, LEDGER_RECEIVED = "sent", "received"


@dataclass(frozen=True)
class LedgerQuery:
    """One unit's sent or received ledger, oldest first. ``start``/``end`` bound the time it was sent
    (sent) or received (received): start inclusive, end exclusive. ``counterpart``: the recipient
    unit (sent) or the sending unit (received). ``after``: the ``next_after`` of the previous page.
    ``upto_id`` pins the rows to those stored when the export started, so its count and its pages agree."""

    side: str                      # LEDGER_SENT / LEDGER_RECEIVED
    unit: str                      # whose ledger: the sending unit (sent), the receiving unit (received)
    start: datetime | None = None
    end: datetime | None = None
    kind: str | None = None
    counterpart: str | None = None
    status: str | None = None      # sent: the recipient row's SenderStatus; received: the ReceiverStatus
    after: tuple[Any, ...] | None = None
    limit: int = 1000
    upto_id: int | None = None     # only rows of documents stored up to this id (:meth:`LedgerStore.last_id`)


@dataclass(frozen=True)
class LedgerRow:
    """One line of a ledger: one recipient of a document sent, or one unit's copy of one received.

    ``unit`` is the recipient (sent) or the receiving unit (received); ``at`` when it was sent or
    received; ``who``/``when``/``reason`` the recipient's last act as recorded (签收人 and time, or
    who returned it and why)."""

    side: str
    doc_id: str
    title: str
    kind: str
    from_unit: str
    unit: str
    role: str
    status: str
    at: datetime
    deadline: datetime | None
    facts: RegisterFacts
    who: str | None = None
    when: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class LedgerPage:
    rows: list[LedgerRow]
    next_after: tuple[Any, ...] | None  # None: this was the last page


@dataclass(frozen=True)
class LedgerTallyRules:
    """What the statistics count, decided by :mod:`node.documents.ledger` and handed to the store.
    ``period``: day, week (from Monday) or month of the local date ``offset`` east of UTC."""

    period: str
    offset: timedelta
    by_counterpart: bool
    signed: frozenset[str]              # statuses that are 签收 (the interval runs to the status time)
    returned: str                       # the 退回 status
    overdue_unsigned: frozenset[str]    # statuses overdue once the deadline has passed (unsettled)
    now: datetime


@dataclass(frozen=True)
class LedgerTally:
    """One (counterpart, period) group of a unit's ledger; ``intervals``: seconds from sent/received
    to 签收 of its signed rows (negative ones as 0), ascending."""

    counterpart: str | None
    period_start: date
    documents: int
    rows: int
    overdue: int
    returned: int
    intervals: list[float]


# --- exchange records: drafts, outgoing links, peer credentials -------------------------------------
@dataclass(frozen=True)
class Draft:
    """A message whose envelope cannot be built yet (the destination's certificate is unknown)."""

    header: HeaderDraft  # message id, type and destination included
    payload_digest: str
    payload_size: int
    created_at: datetime
    expires_at: datetime | None
    payload: bytes | None = None  # the payload itself when kept in the row (a notice), else in the blob store


@dataclass(frozen=True)
class UnreadableDraft:
    """A drafts row whose header the current code refuses (written by an older gwx, or damaged).

    Returned in its place so that one bad row never blocks the destination's other drafts; the
    sender sets it aside (deletes it, with an audit event and the document's rows failed)."""

    message_id: str
    destination: str
    error: GwxError


@dataclass(frozen=True)
class OutgoingLink:
    """Which document and units a message we sent concerns (what comes back is matched against it)."""

    message_id: str
    doc_id: str
    type: str
    destination: str
    units: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class LocalDelivery:
    """A document for units of this node whose delivery a crash interrupted (outbox rows committed,
    recipients still queued), or a 转发 (its forwarded copies still queued; ``cover_message_id`` the
    cover 通知's message it answers): re-applied at start-up."""

    message_id: str
    from_unit: str
    units: tuple[str, ...]
    package_digest: str
    created_at: datetime
    cover_message_id: str | None = None


@dataclass(frozen=True)
class StoredPeerCredentials:
    node_id: str
    signing_cert: str
    encryption_cert: str
    chain: str
    fetched_at: datetime


# --- the audit log ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: datetime
    actor: str
    action: str
    subjects: Mapping[str, Any]
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class RecipientUpdate:
    """One recipient row's compare-and-set in a batch (``Messages.update_recipients``): its ``changes``
    apply if its status is still ``expected_status``; ``action`` and ``details`` make its audit event."""

    unit: str
    expected_status: str
    changes: Mapping[str, Any]
    action: str
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class NewEvent:
    """An event to append; ``seq``, time and hashes are filled in by the audit log."""

    actor: str
    action: str
    subjects: Mapping[str, Any]
    details: Mapping[str, Any] | None = None


# --- adapters: the audit log followed, an outbox per consumer ------------------------------------------
ADAPTER_PENDING, ADAPTER_DONE, ADAPTER_DEAD = "pending", "done", "dead"
ADAPTER_STATES = (ADAPTER_PENDING, ADAPTER_DONE, ADAPTER_DEAD)


@dataclass(frozen=True)
class JournalEntry:
    """An audit event as adapters read it, with the document facts its subjects do not carry: the
    unit that sent the document (``sent_by``, when this node sent it) and its title."""

    seq: int
    at: datetime
    action: str
    subjects: Mapping[str, Any]
    details: Mapping[str, Any]
    sent_by: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class AdapterOutboxRow:
    """One event for one consumer: ``event`` is the adapter event's JSON text, kept as written."""

    id: int
    consumer: str
    seq: int
    event: str
    state: str
    attempts: int
    next_attempt_at: datetime
    first_failure_at: datetime | None
    last_error: ErrorInfo | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class WebhookSubscription:
    """A webhook: events of ``types`` for ``unit`` POSTed to ``url`` (its secret is kept apart)."""

    id: str
    unit: str
    url: str
    types: tuple[str, ...]
    created_at: datetime


# --- recovery -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecoveryReport:
    temp_files_removed: int = 0
    requeued: int = 0
    corrupt_queue: tuple[str, ...] = ()      # message ids moved to corrupt
    corrupt_received: tuple[str, ...] = ()   # message ids moved to corrupt
    missing_packages: tuple[str, ...] = ()   # outbox/inbox doc ids whose package blob is gone
    orphan_blobs_removed: tuple[str, ...] = field(default=())
    corrupt_drafts: tuple[str, ...] = ()     # draft message ids dropped: their payload blob is gone


# --- the console's accounts (node.console) -----------------------------------------------------------
@dataclass(frozen=True)
class ConsoleUser:
    """A person who signs in to the console: ``login`` to sign in, ``name`` as recorded (签收人)."""

    id: int
    login: str
    name: str
    role: str                      # clerk | supervisor | operator
    units: tuple[str, ...]         # a clerk's one unit, a supervisor's units, () for an operator
    password_hash: str
    disabled: bool
    failed_sign_ins: int
    locked_until: datetime | None
    created_at: datetime
    supervising_unit: str | None = None  # a supervisor's: its scope also every unit this one supervises


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in browser: found by the SHA-256 of the cookie's id; ``csrf_token`` is its forms' token."""

    id_hash: str
    user: ConsoleUser
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
