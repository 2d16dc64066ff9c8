"""The track page of a sent document (跟踪): per unit, status, who, when, reason; 催办 and 撤回.

``GET /console/doc/{doc_id}/track?status=&after=`` (route ``track``): the counts by status on top
(each a filter link), then a page of :data:`PAGE` recipients by unit code, then the 转发 of the
document by its recipients that their nodes told us of (转发告知) — a document sent to
3,600 units is read a page at a time from the store (:meth:`DocumentServiceApi.track_page`), never
whole. ``status`` is a recipient status, ``unsigned`` (still in the document's course) or ``overdue``.
The 催办 and 撤回 buttons post to the document's own act routes (:mod:`node.console.pages`) with
``back=track``, one unit or every unit not yet signed, and come back here; 撤回 of every unit not
yet signed first asks on its own page (:func:`recall_confirm_page`). Only the sending unit's
clerk sees it: another unit's document is 404, as everywhere.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from exchange_protocol.states import SenderStatus
from node.api.local_api import PRINCIPAL
from node.console.errors import BadFilter
from node.console.folders import known_filters
from node.console.security import RENDER, SERVICE
from node.documents import track_page as track_pages
from node.errors import ApiError

PAGE = 100
PARAMS = ("status", "after", "done")
# What the notice on top says after an act that came back here; any other ?done= shows nothing.
DONE = {"urge": "已催办。", "recall": "已撤回。"}
# The filter links above the list, in the order a clerk reads a document's course.
FILTERS = {"unsigned": "未签收", "overdue": "超期", **{s.value: s.label for s in SenderStatus}}


def track_path(doc_id: str) -> str:
    return f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/track"


def _query(request: web.Request) -> dict[str, str]:
    out = known_filters(request.query, PARAMS)
    if "status" in out and out["status"] not in FILTERS:
        raise BadFilter("filter 'status' has a value the console does not know", parameter="status")
    return out


async def recall_confirm_page(request: web.Request, doc_id: str) -> web.Response:
    """``GET /console/doc/{doc_id}/recall``: asks before 撤回 of every unit not yet signed (it cannot
    be undone; a misclick on the track page must not recall a whole 通知). Its form posts ``confirm=all``."""
    if request.query:
        raise BadFilter("this page takes no parameters", parameter=next(iter(request.query))[:40])
    tracked = await request.app[SERVICE].track(request[PRINCIPAL], doc_id, recipients=False)
    return request.app[RENDER](request, "recall_confirm.html", 200, doc=tracked["doc"], doc_id=doc_id,
                               unsigned=track_pages.unsigned_count(tracked["doc"]["counts"]), track=track_path(doc_id))


async def track_page(request: web.Request, doc_id: str) -> web.Response:
    query = _query(request)
    try:
        page = await request.app[SERVICE].track_page(request[PRINCIPAL], doc_id, status=query.get("status"),
                                                     after=query.get("after"), limit=PAGE)
    except ApiError as exc:
        if exc.details.get("parameter") not in ("status", "after"):
            raise
        raise BadFilter(exc.message, parameter=exc.details["parameter"]) from None
    counts = page["doc"]["counts"]
    total = sum(counts.values())
    signed = counts.get(SenderStatus.SIGNED_FOR.value, 0)
    unsigned = track_pages.unsigned_count(counts)
    path = track_path(doc_id)
    filters = {k: v for k, v in query.items() if k == "status"}
    return request.app[RENDER](
        request, "track.html", 200, doc=page["doc"], recipients=page["recipients"], counts=counts, total=total,
        signed=signed, unsigned=unsigned, unsigned_statuses=track_pages.UNSIGNED, overdue=page["overdue"], labels=FILTERS, chosen=query.get("status"), path=path,
        filters=filters, next=page["next"], doc_id=doc_id, done=DONE.get(query.get("done", ""), ""),
        forwarded_on=page["forwarded_on"])
