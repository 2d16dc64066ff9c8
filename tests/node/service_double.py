"""A dict-backed DocumentServiceApi for testing the HTTP layer and the clerks' CLI.

A test double of the document service, not of anything the API does itself: it parses META.json
with the real :func:`exchange_protocol.meta_json.parse_meta`, moves recipient rows with the real
transition tables of :mod:`exchange_protocol.states`, and enforces principals as the contract says
(a clerk acts for their own unit). Documents between units it hosts are "delivered" at once, so a
test can send as one clerk and sign for as another. It records what the API handed it (file bytes
and whether the temp files still existed) so tests can check the streaming path end to end.
"""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange_protocol.meta_json import meta_to_dict, parse_meta
from exchange_protocol.states import Event, ReceiverStatus, SenderStatus, transition
from node.auth import Principal
from node.errors import NodeError

NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


class NotFound(NodeError):
    code = "API_NOT_FOUND"


class ServiceDouble:
    def __init__(self, units: dict[str, str], workdir: Path) -> None:
        self.units = units
        self.workdir = workdir
        self.sent: dict[str, dict[str, Any]] = {}        # doc_id → {"item", "recipients", "metadata"}
        self.inbox_rows: dict[tuple[str, str], dict[str, Any]] = {}  # (unit, doc_id) → InboxItem
        self.received_files: list[dict[str, Any]] = []
        self.calls: list[tuple[str, Any]] = []
        self.fail_with: Exception | None = None

    # --- helpers -------------------------------------------------------------------------------
    def _clerk(self, who: Principal) -> str:
        who.require_role("clerk")
        assert who.unit
        return who.unit

    def _tracking(self, doc_id: str) -> dict[str, Any]:
        doc = self.sent[doc_id]
        counts: dict[str, int] = {}
        for r in doc["recipients"]:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {"doc": {**doc["item"], "counts": counts}, "recipients": [dict(r) for r in doc["recipients"]]}

    def _own_sent(self, who: Principal, doc_id: str) -> dict[str, Any]:
        unit = self._clerk(who)
        doc = self.sent.get(doc_id)
        if doc is None or doc["item"]["from_unit"] != unit:
            raise NotFound(f"发文箱中没有公文 {doc_id}", doc_id=doc_id)
        return doc

    def _own_inbox(self, who: Principal, doc_id: str) -> dict[str, Any]:
        row = self.inbox_rows.get((self._clerk(who), doc_id))
        if row is None:
            raise NotFound(f"收文箱中没有公文 {doc_id}", doc_id=doc_id)
        return row

    def _receiver_event(self, who: Principal, doc_id: str, event: Event, reason: str | None = None) -> dict:
        row = self._own_inbox(who, doc_id)
        new = transition(ReceiverStatus(row["status"]), event)
        row.update(status=new.value, status_label=new.label)
        sender_row = next(r for r in self.sent[doc_id]["recipients"] if r["unit"] == row["unit"])
        if event in (Event.SIGNED_FOR, Event.RETURNED):
            sender_new = transition(SenderStatus(sender_row["status"]), event)
            sender_row.update(status=sender_new.value, status_label=sender_new.label, who=who.name,
                              when=NOW.isoformat(), reason=reason)
        if event is Event.SIGNED_FOR:
            row.update(signed_by=who.name, signed_at=NOW.isoformat())
        if event is Event.RETURNED:
            row["return_reason"] = reason
        return dict(row)

    # --- the contract --------------------------------------------------------------------------
    async def submit(self, who, meta, body_pdf, attachments):
        self.calls.append(("submit", who.name))
        unit = self._clerk(who)
        parsed = parse_meta(meta, now=NOW).metadata
        if parsed.issuers[0] != unit:
            raise NodeError(f"发文机关 {parsed.issuers[0]} is not the clerk's unit {unit}", code="API_FORBIDDEN")
        body = body_pdf.read_bytes()
        if not body.startswith(b"%PDF-"):
            raise NodeError("the body is not a PDF", code="DOC_BODY_NOT_PDF")
        self.received_files.append({"body": hashlib.sha256(body).hexdigest(), "body_size": len(body),
                                    "attachments": [(n, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size)
                                                    for n, p in attachments],
                                    "paths": [body_pdf, *(p for _, p in attachments)]})
        doc_id = parsed.id
        recipients = []
        for role, codes in (("主送", parsed.to), ("抄送", parsed.cc)):
            for code in codes:
                status = SenderStatus.DELIVERED if code in self.units else SenderStatus.QUEUED
                recipients.append({"unit": code, "unit_name": self.units.get(code), "role": role,
                                   "node": "double" if code in self.units else None, "status": status.value,
                                   "status_label": status.label, "who": None, "when": None, "reason": None,
                                   "urge_count": 0, "last_urged_at": None, "overdue": False})
        deadline = parsed.deadline.isoformat() if parsed.deadline else None
        item = {"doc_id": doc_id, "from_unit": unit, "title": parsed.title, "kind": parsed.kind.value,
                "doc_number": meta.get("doc_number"), "deadline": deadline, "created_at": NOW.isoformat(),
                "counts": {}, "overdue": False}
        self.sent[doc_id] = {"item": item, "recipients": recipients, "metadata": meta_to_dict(parsed),
                             "attachments": [{"name": n, "size": p.stat().st_size,
                                              "media_type": "application/octet-stream"} for n, p in attachments]}
        for r in recipients:
            if r["unit"] in self.units:
                self.inbox_rows[(r["unit"], doc_id)] = {
                    "doc_id": doc_id, "unit": r["unit"], "from_unit": unit, "title": parsed.title,
                    "kind": parsed.kind.value, "urgency": meta.get("urgency"), "deadline": deadline,
                    "status": "pending", "status_label": ReceiverStatus.PENDING.label, "signed_by": None,
                    "signed_at": None, "return_reason": None, "urge_count": 0, "received_at": NOW.isoformat(),
                    "overdue": False}
        return {"doc_id": doc_id, "recipients": recipients}

    async def outbox(self, who, *, status=None, kind=None, overdue=None, unit=None, limit=50, after=None):
        self.calls.append(("outbox", {"status": status, "kind": kind, "overdue": overdue, "unit": unit,
                                      "limit": limit, "after": after}))
        me = self._clerk(who)
        items = [self._tracking(d)["doc"] for d, doc in self.sent.items() if doc["item"]["from_unit"] == me]
        if kind:
            items = [i for i in items if i["kind"] == kind]
        return items[:limit]

    async def track(self, who, doc_id):
        self._own_sent(who, doc_id)
        return self._tracking(doc_id)

    async def _sender_event(self, who, doc_id, units, event):
        doc = self._own_sent(who, doc_id)
        for r in doc["recipients"]:
            if units is None or r["unit"] in units:
                if event is Event.URGED:
                    r["urge_count"] += 1
                    r["last_urged_at"] = NOW.isoformat()
                    if (r["unit"], doc_id) in self.inbox_rows:
                        self.inbox_rows[(r["unit"], doc_id)]["urge_count"] += 1
                else:
                    new = transition(SenderStatus(r["status"]), event)
                    r.update(status=new.value, status_label=new.label)
        return self._tracking(doc_id)

    async def recall(self, who, doc_id, units=None):
        self.calls.append(("recall", units))
        return await self._sender_event(who, doc_id, units, Event.RECALLED)

    async def urge(self, who, doc_id, units=None):
        self.calls.append(("urge", units))
        return await self._sender_event(who, doc_id, units, Event.URGED)

    async def inbox(self, who, *, status=None, kind=None, overdue=None, unit=None, limit=50, after=None):
        self.calls.append(("inbox", {"status": status, "kind": kind, "overdue": overdue, "unit": unit,
                                     "limit": limit, "after": after}))
        if self.fail_with is not None:
            raise self.fail_with
        me = self._clerk(who)
        rows = [dict(r) for (u, _), r in self.inbox_rows.items() if u == me]
        if status:
            rows = [r for r in rows if r["status"] == status]
        if unit:
            rows = [r for r in rows if r["from_unit"] == unit]
        return rows[:limit]

    async def show(self, who, doc_id):
        row = self._own_inbox(who, doc_id)
        doc = self.sent[doc_id]
        return {**row, "metadata": doc["metadata"], "verification": {"ok": True, "seal": "valid"},
                "attachments": doc["attachments"]}

    async def package_path(self, who, doc_id):
        self._own_inbox(who, doc_id)
        path = self.workdir / f"{doc_id}.zip"
        if not path.exists():
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("metadata.json", str(self.sent[doc_id]["metadata"]))
        return path

    async def sign_for(self, who, doc_id):
        return self._receiver_event(who, doc_id, Event.SIGNED_FOR)

    async def return_document(self, who, doc_id, reason):
        if not 1 <= len(reason.strip()) <= 500:
            raise NodeError("退回理由 must have 1 to 500 characters", code="DOC_BAD_REASON")
        return self._receiver_event(who, doc_id, Event.RETURNED, reason)

    async def register(self, who, doc_id):
        return self._receiver_event(who, doc_id, Event.REGISTERED)

    async def node_status(self, who):
        who.require_role("operator")
        return {"node_id": "double", "units": sorted(self.units), "queues": {}, "peers": [], "inbound": {},
                "last_errors": []}
