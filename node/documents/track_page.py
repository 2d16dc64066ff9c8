"""A sent document's track (跟踪) a page at a time, and which of its recipients are still 未签收.

:data:`UNSIGNED` is the one place deciding which sender-side statuses are "not yet signed" (still in
the document's course: neither settled — 签收, 退回, 撤回 — nor failed): the track page's
未签收 tile and filter, its per-unit 催办/撤回 buttons, the 撤回 confirmation's count and the
service's default targets of 催办/撤回 (every unit not yet signed) all read it.

:func:`track_page`: a sent document's recipients by unit code, a page at a time, narrowed to one
status, to the unsigned or to the overdue; the counts come from the store's count
(``DocumentService.track(recipients=False)``), not from reading 3,600 rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from exchange_protocol.states import SenderStatus, is_overdue, is_settled
from node.documents.supervised import page_size
from node.errors import ApiError
from node.store import NodeStore, OutboxDocument, OutboxRecipient

# Still in the document's course: a 催办 or 撤回 applies to them; a failed delivery is not (it is
# sent again, 补发, or given up), a settled one is over.
UNSIGNED = tuple(s.value for s in SenderStatus if not is_settled(s) and s is not SenderStatus.FAILED)
# The track page's filters besides a status of its own: still in the document's course, past the 办理时限.
TRACK_FILTERS = (*(s.value for s in SenderStatus), "unsigned", "overdue")


def unsigned_count(counts: dict[str, int]) -> int:
    """How many of a document's recipients are :data:`UNSIGNED`, from its counts by status."""
    return sum(n for status, n in counts.items() if status in UNSIGNED)


def track_statuses(status: str | None, deadline: dt.datetime | None, now: dt.datetime) -> list[str] | None:
    """The recipient statuses a track filter keeps (None: all)."""
    if status is None:
        return None
    if status not in TRACK_FILTERS:
        raise ApiError(f"status must be one of {', '.join(TRACK_FILTERS)}", code="API_BAD_PARAMETER",
                       parameter="status")
    if status == "unsigned":
        return list(UNSIGNED)
    if status == "overdue":
        return [s.value for s in SenderStatus if is_overdue(s, deadline, now)]
    return [status]


def track_after(after: str | None) -> str | None:
    if after is not None and not re.fullmatch(r"[0-9A-Z]{18}", after):
        raise ApiError("after is not a unit code this list gave", code="API_BAD_PARAMETER", parameter="after")
    return after


async def track_page(store: NodeStore, doc: OutboxDocument, now: dt.datetime, *,
                     doc_view: Callable[[dict[str, int]], dict[str, Any]],
                     recipient_view: Callable[[OutboxRecipient], dict[str, Any]], status: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
    """TrackingPage: ``doc`` (its recipients not read) with its counts, and a page of its recipients by
    unit code narrowed by ``status``; ``next`` the ``after`` of the next page."""
    statuses = track_statuses(status, doc.deadline, now)
    limit = page_size(limit)
    rows = [] if statuses == [] else await store.messages.recipients_page(
        doc.doc_id, statuses=statuses, after_unit=track_after(after), limit=limit)
    counts = (await store.messages.outbox_counts([doc.doc_id]))[doc.doc_id]
    late = track_statuses("overdue", doc.deadline, now) or []
    return {"doc": doc_view(counts), "overdue": sum(counts.get(s, 0) for s in late),
            "recipients": [recipient_view(r) for r in rows], "next": rows[-1].unit if len(rows) == limit else None}
