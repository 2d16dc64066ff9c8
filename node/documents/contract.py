"""The contract between the local API (HTTP, CLI, adapters) and the node's document service.

``node.documents.service.DocumentService`` implements it; ``node.api.local_api`` and the SOAP adapter call only
these methods. Every method takes the authenticated :class:`node.api.auth.Principal` first and
enforces what that principal may do (a clerk acts for their own unit only). Results are plain
JSON-ready dicts whose shapes are documented here and in the OpenAPI description; errors are
typed (``GwxError``) and mapped to HTTP statuses by their kind in ``node.error_kinds``.

Shapes (keys are a contract; Chinese values intact):

``RecipientView``: {"unit", "unit_name"|null, "role": "主送"|"抄送", "node", "status"
    ("queued"|"sent"|"delivered"|"signed_for"|"returned"|"recalled"|"failed"), "status_label"
    (待发送 …), "who"|null, "when"|null (ISO 8601), "reason"|null, "urge_count", "last_urged_at"|null,
    "overdue": bool, "overdue_by": seconds|null, "overdue_working_days": n}
``OutboxItem``: {"doc_id", "from_unit", "title", "kind", "doc_number"|null, "deadline"|null,
    "created_at", "counts": {status: n}, "overdue": bool}
``Tracking``: {"doc": OutboxItem, "recipients": [RecipientView, …], "forwarded": Forwarded|null}
``Forwarded`` (a cover 通知's 转发): {"doc_id" (the document forwarded), "title"|null, "from_unit"|null
    (who sent it to us), "recipients": [{"unit", "unit_name", "node", "status", "status_label", "who",
    "when", "reason"}]} — each unit's copy followed like a recipient row.
``TrackingSummary``: {"doc": OutboxItem}
``InboxItem``: {"doc_id", "unit", "from_unit", "from_unit_name"|null (as the network directory names
    it; null where no directory names the unit), "title", "kind", "urgency"|null, "deadline"|null,
    "status" ("pending"|"signed_for"|"registered"|"returned"|"recalled"), "status_label",
    "signed_by"|null, "signed_at"|null, "return_reason"|null, "urge_count", "received_at", "overdue",
    "overdue_by": seconds since the 办理时限|null, "overdue_working_days": working days wholly past since
    the deadline's day, "escalated_at"|null (督办 sent to the supervising unit), "escalated_to"|null,
    "doc_number"|null (发文字号; null for documents received before the report kept it)}
    ("overdue" and the rest are ``exchange_protocol.supervision.judge``'s, with the node's calendar.)
``SupervisionItem`` (督办 a supervising unit holds): {"id", "doc_id", "unit" (the late unit),
    "unit_name"|null, "supervisor", "from_unit" (who sent the document), "title", "deadline",
    "escalated_at", "working_days_late", "overdue_by"|null (while open), "status" ("open"|"settled"),
    "status_label" (督办中|已办结), "settled_at"|null, "settled_by"|null, "settled_as"
    ("signed_for"|"returned"|"recalled")|null, "node" (hosting the late unit), "received_at"}
``LateItem`` (a supervised unit's row past its 办理时限, unsettled): {"doc_id", "unit", "unit_name", "from_unit",
    "title", "deadline", "status", "status_label", "escalated_at"|null, "overdue", "overdue_by",
    "overdue_working_days"}
``SupervisedPage``: {"state", "units", "items": [LateItem | SupervisionItem], "next"|null (the next page's ``after``)}
``TrackingPage``: {"doc": OutboxItem, "overdue": n (recipients past the 办理时限, unsettled), "recipients":
    [RecipientView, …] (by unit code), "next"|null}
``InboxDocument``: InboxItem + {"metadata": META.json dict, "verification": report dict,
    "attachments": [{"name", "size"}]}; a document received by 转发 also {"forwarded_by": unit,
    "cover_doc_id": the cover 通知's 公文标识|null (null until the cover is in)}
Paging: items carry an ``id`` (a whole number); ``after`` is the ``id`` of the last item of the
previous page. ``overdue=True`` keeps only overdue items; absent or False does not filter.

``FolderCounts``: {"inbox": {status: n}, "overdue": n (past 办理时限, not settled), "outbox": n}
``LedgerExport`` (:mod:`node.documents.ledger`): ``headings``, ``rows`` (the count), ``pages()`` — the
    sent or received 台账 of the clerk's own unit, checked and counted before any row is read; written
    as CSV or XLSX by :mod:`node.documents.ledger_files`.
``LedgerStats`` (:mod:`node.documents.statistics`): {"side", "period", "by", "from", "to", "timezone",
    "unit_meaning", "rows": [{"unit", "unit_name", "counterpart", "counterpart_name", "period_start", "documents", "rows", "signed",
    "sign_median_s", "sign_p90_s", "overdue", "overdue_rate", "returned", "returned_rate"}]}.

``QueueRow`` (:mod:`node.federation.queue_admin`): {"message_id", "destination" (the next hop), "type",
    "state" (incoming|active|deferred|hold|corrupt|sent|bounced), "attempts", "size", "doc_id"|null (the
    公文标识 of our own message), "created_at", "next_attempt_at", "expires_at"|null,
    "last_error": {"code", "message"}|null}

``NodeStatus``: {"node_id", "units": [{"code", "name"}], "queues": {destination: {state: n}},
    "peers": [{"node_id", "state", "since", "failures", "last_error"}], "inbound": {state: n},
    "last_errors": [...]}
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Protocol

from node.api.auth import Principal
from node.documents.ledger import LedgerExport

Json = dict[str, Any]


class DocumentServiceApi(Protocol):
    async def submit(self, who: Principal, meta: Json, body_pdf: Path,
                     attachments: list[tuple[str, Path]]) -> Json:
        """Seal and send a document as ``who``'s unit. Returns {"doc_id", "recipients": [RecipientView]}.

        ``meta`` is META.json (exchange_protocol's contract); its first issuer must be the
        clerk's unit. Files are read from disk by streaming; the caller deletes them afterwards.
        """

    async def outbox(self, who: Principal, *, status: str | None = None, kind: str | None = None,
                     overdue: bool | None = None, unit: str | None = None, limit: int = 50,
                     after: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
                     search: str | None = None) -> list[Json]:
        """OutboxItems of ``who``'s unit, newest first; ``unit`` filters by recipient unit; ``since`` /
        ``until`` by when it was sent; ``search`` keeps those whose title or 发文字号 contains it."""

    async def track(self, who: Principal, doc_id: str, *, where: bool = False, recipients: bool = True) -> Json:
        """Tracking: the document and one RecipientView per recipient unit; with ``where``, each view
        also says where the message for a recipient not yet delivered waits (``where``: its stops
        from this node on and one plain line; null for the others). Without ``recipients``,
        TrackingSummary: the document and its counts only (cheap to poll for thousands of recipients)."""

    async def recall(self, who: Principal, doc_id: str, units: list[str] | None = None) -> Json:
        """撤回 for all (or the given) recipients not yet signed for; returns Tracking."""

    async def urge(self, who: Principal, doc_id: str, units: list[str] | None = None) -> Json:
        """催办 the given (or all unsigned) recipients; returns Tracking."""

    async def forward(self, who: Principal, doc_id: str, meta: Json, body_pdf: Path,
                      attachments: list[tuple[str, Path]]) -> Json:
        """转发 a document ``who``'s unit received: ``meta``/``body_pdf`` make the cover 通知 (sealed and
        sent like ``submit``; its 主送/抄送 are the units forwarded to) and the received package goes
        with it to each, unchanged. Returns SubmitResult + {"forwarded": Forwarded}."""

    async def add_recipients(self, who: Principal, doc_id: str, units: list[str]) -> Json:
        """补发: the same sealed package to ``units`` (not yet recipients), as 抄送; returns Tracking.
        A unit already a recipient is ``STORE_DUPLICATE``; one no node hosts ``ROUTE_UNKNOWN_UNIT``."""

    async def inbox(self, who: Principal, *, status: str | None = None, kind: str | None = None,
                    overdue: bool | None = None, unit: str | None = None, limit: int = 50,
                    after: str | None = None, urgency: str | None = None, since: dt.datetime | None = None,
                    until: dt.datetime | None = None, search: str | None = None) -> list[Json]:
        """InboxItems of ``who``'s unit, newest first; ``unit`` filters by sending unit, ``urgency`` by
        紧急程度, ``since`` / ``until`` by when it was received; ``search`` keeps those whose title or
        发文字号 contains it (documents received before gwx kept the 发文字号 are found by title only)."""

    async def folder_counts(self, who: Principal) -> Json:
        """FolderCounts of ``who``'s unit (the console's folders)."""

    async def show(self, who: Principal, doc_id: str) -> Json:
        """InboxDocument (for a received document) — or Tracking with metadata for a sent one."""

    async def package_path(self, who: Principal, doc_id: str) -> Path:
        """The sealed package file of a document ``who`` may read (for streaming download)."""

    async def sent_package_path(self, who: Principal, doc_id: str) -> Path:
        """The sealed package of the document ``who``'s unit *sent* as ``doc_id`` — never one it received
        under the same id (which :meth:`package_path` prefers); NotFound if the unit sent none."""

    async def archive(self, who: Principal, side: str, doc_id: str, reason: str | None = None) -> tuple[Any, Json]:
        """一键归档 (:mod:`node.archive`): the archive package of a document ``who``'s unit sent (``side``
        "outbox") or received ("inbox") — a :class:`node.archive.builder.BuiltArchive` whose temporary
        file the caller streams and deletes — and its summary {"doc_id", "side", "unit", "sha256", "size",
        "files", "timestamp_time", "tsa", "messages", "without_envelope", "reason"}. Unsettled recipients
        without a ``reason`` are ``ARCHIVE_DOC_NOT_FINISHED``; no TSA to ask ``ARCHIVE_NO_TSA``."""

    async def sign_for(self, who: Principal, doc_id: str) -> Json:
        """签收 as ``who`` (name and time recorded and sent to the sender); returns InboxItem."""

    async def return_document(self, who: Principal, doc_id: str, reason: str) -> Json:
        """退回 with a reason (required, 1–500 characters); returns InboxItem."""

    async def register(self, who: Principal, doc_id: str) -> Json:
        """登记 a signed-for document; returns InboxItem."""

    async def ledger(self, who: Principal, side: str, *, unit: str | None = None, date_from: str | None = None,
                     date_to: str | None = None, kind: str | None = None, status: str | None = None,
                     counterpart: str | None = None) -> LedgerExport:
        """The ``side`` ("sent"|"received") 台账 of ``who``'s unit (a clerk's own only; ``unit`` another is
        API_FORBIDDEN), dates ``YYYY-MM-DD`` in Beijing time, both inclusive; ``counterpart`` the
        recipient (sent) or sending (received) unit. Bad filters are LEDGER_BAD_* before any row is read."""

    async def ledger_stats(self, who: Principal, side: str, period: str, *, unit: str | None = None,
                           by: str = "unit", date_from: str | None = None, date_to: str | None = None,
                           kind: str | None = None, status: str | None = None,
                           counterpart: str | None = None) -> Json:
        """LedgerStats per unit (``by="counterpart"``: and per recipient or sending unit) and ``period``
        ("day"|"week"|"month"): a clerk's own unit; an operator's, every hosted unit or the one named
        (numbers only, no document)."""

    async def supervision(self, who: Principal, *, settled: bool | None = None, limit: int = 50,
                          after: str | None = None) -> list[Json]:
        """SupervisionItems escalated to ``who``'s unit (as supervising unit), newest first;
        ``settled`` keeps only open (False) or settled (True) ones."""

    async def supervised(self, who: Principal, state: str = "late", *, unit: str | None = None, limit: int = 50,
                         after: str | None = None) -> Json:
        """SupervisedPage for a supervisor (``who.units``, or the one of them named; another unit is
        API_FORBIDDEN): ``state`` "late" (LateItems), "open" or "settled" (SupervisionItems)."""

    async def track_page(self, who: Principal, doc_id: str, *, status: str | None = None, after: str | None = None,
                         limit: int = 100) -> Json:
        """TrackingPage: the sent document with its counts and ``limit`` recipients by unit code after
        ``after``; ``status`` a SenderStatus value, "unsigned" or "overdue"."""

    async def node_status(self, who: Principal) -> Json:
        """NodeStatus (operators): readiness, queues, peers with the last refusal, last errors."""

    async def queue_list(self, who: Principal, *, destination: str | None = None, states: list[str] | None = None,
                         after: str | None = None, limit: int = 100) -> list[Json]:
        """QueueRow list (operators), oldest first: the send queue's unfinished rows (or ``states``')."""

    async def queue_action(self, who: Principal, action: str, message_id: str, reason: str = "") -> Json:
        """QueueRow after ``hold``, ``release``, ``retry`` (due now) or ``purge`` (a reason; the sender is told)."""

    async def queue_retry_destination(self, who: Principal, destination: str) -> Json:
        """{"destination", "retried": [message id, …]}: every waiting row for the destination due now."""

    async def readiness(self) -> Json:
        """Readiness (no token: like /healthz): {"ready", "checks": [{"name", "verdict", "message", "code"?}]}."""
