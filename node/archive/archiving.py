"""一键归档 as a clerk's act: who may archive what, when a document counts as finished, the audit record.

A clerk archives a document of their own unit: one it sent (``outbox``: the unit is the sender) or
one it received (``inbox``). Finished means every recipient is settled
(:func:`exchange_protocol.states.is_settled`: 签收/登记, 退回 or 撤回). An unfinished document is refused
with ``ARCHIVE_DOC_NOT_FINISHED`` (409) unless the clerk gives a reason (1–500 characters: why it is
archived now, e.g. a unit that was dissolved), which the index and the audit log keep.

Each archive built is recorded in the audit log (``document.archived``: side, unit, SHA-256, size,
the time-stamp's time and TSA, the reason) — so the node can tell later which archive it made;
the archive itself is handed to the caller, not kept by the node.
"""

from __future__ import annotations

from typing import Any

from exchange_protocol.states import ReceiverStatus, SenderStatus, is_settled
from node.api.auth import Principal
from node.archive.builder import BuiltArchive, Subject, build
from node.archive.time_stamps import TimeStamps
from node.context import NodeContext
from node.errors import ApiError, ArchiveNotFinished, NotFound
from node.store.interfaces import NodeStore

SIDES = ("outbox", "inbox")
MAX_REASON = 500


def check_reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise ApiError(f"reason must be 1–{MAX_REASON} characters: why the document is archived before its "
                       "handling is finished", code="API_BAD_FIELD", field="reason")
    return reason.strip()


async def subject_of(store: NodeStore, read_metadata, who: Principal, side: str, doc_id: str,
                     reason: str | None) -> Subject:
    """The document ``who``'s unit may archive on ``side``, refused while it is unfinished without a reason."""
    who.require_role("clerk")
    if side == "outbox":
        doc = await store.messages.get_outbox(doc_id)
        if doc is None or doc.from_unit != who.unit:
            raise NotFound(f"your unit has sent no document {doc_id}", doc_id=doc_id)
        open_units = [r.unit for r in doc.recipients if not is_settled(SenderStatus(r.status))]
        handling = tuple({"unit": r.unit, "role": r.role, "status": r.status, "who": r.who,
                          "when": r.when.isoformat() if r.when else None, "reason": r.reason}
                         for r in doc.recipients)
        digest, inbox_mid = doc.package_digest, None
    elif side == "inbox":
        row = await store.messages.get_inbox(doc_id, who.unit)
        if row is None:
            raise NotFound(f"your unit has received no document {doc_id}", doc_id=doc_id)
        open_units = [row.unit] if not is_settled(ReceiverStatus(row.status)) else []
        handling = ({"unit": row.unit, "role": row.role, "from_unit": row.from_unit, "status": row.status,
                     "who": row.signed_by, "when": row.signed_at.isoformat() if row.signed_at else None,
                     "reason": row.return_reason},)
        digest, inbox_mid = row.package_digest, row.message_id
    else:
        raise ApiError(f"side must be one of {', '.join(SIDES)}", code="API_BAD_PARAMETER", parameter="side")
    if open_units and reason is None:
        raise ArchiveNotFinished(
            f"document {doc_id} is not finished: {len(open_units)} recipient(s) not settled (签收, 退回 or 撤回), "
            f"e.g. {open_units[0]}; archive it when they are, or give the reason it is archived now",
            doc_id=doc_id, unsettled=len(open_units))
    meta = await read_metadata(digest)
    return Subject(doc_id, side, who.unit, digest, meta, handling, inbox_mid, reason)  # type: ignore[arg-type]


async def archive(ctx: NodeContext, store: NodeStore, stamps: TimeStamps, read_metadata, who: Principal,
                  actor: str, side: str, doc_id: str,
                  reason: str | None = None) -> tuple[BuiltArchive, dict[str, Any]]:
    """Build the archive (a temporary file the caller streams and deletes) and record it; its summary."""
    subject = await subject_of(store, read_metadata, who, side, doc_id, check_reason(reason))
    built = await build(ctx, store, stamps, subject)
    summary = {"doc_id": doc_id, "side": side, "unit": who.unit, "sha256": built.sha256, "size": built.size,
               "files": built.files, "timestamp_time": built.timestamp_time.isoformat(), "tsa": built.tsa,
               "messages": built.messages, "without_envelope": built.without_envelope, "reason": subject.reason}
    try:
        async with store.transaction() as tx:
            await store.audit.append(tx, actor, "document.archived",
                                     {"doc_id": doc_id, "unit": who.unit},
                                     {k: v for k, v in summary.items() if k not in ("doc_id", "unit")})
    except BaseException:
        built.path.unlink(missing_ok=True)
        raise
    return built, summary
