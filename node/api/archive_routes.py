"""The local API's 一键归档 routes: ``POST /api/v1/outbox/{doc_id}/archive`` and
``POST /api/v1/inbox/{doc_id}/archive`` (clerks: a document their unit sent, or received).

The body is empty or ``{"reason": "…"}`` (why a document whose handling is not finished is archived
now; without it such a document is 409 ``ARCHIVE_DOC_NOT_FINISHED``). The answer is the archive
package itself (``application/zip``, ``DOC_ID.gwxa``), streamed from the temporary file the node
built (:mod:`node.archive`) and deleted once sent; ``X-Gwx-Archive-Sha256``,
``X-Gwx-Archive-Timestamp`` (the time-stamp's genTime) and ``X-Gwx-Archive-Files`` describe it.
Everything is checked and built before the first byte is answered, so a failure is one typed error.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from node.errors import ApiError

CHUNK = 256 * 1024


@dataclass(frozen=True)
class Helpers:
    """What the handlers need of :mod:`node.api.local_api` (which owns them)."""

    service: web.AppKey
    principal: web.RequestKey
    doc_id_of: Callable[[web.Request], str]
    json_body: Callable[[web.Request, tuple[str, ...]], Awaitable[dict[str, Any]]]


def add_archive_routes(app: web.Application, helpers: Helpers) -> None:
    for side in ("outbox", "inbox"):
        async def handler(request: web.Request, side: str = side) -> web.StreamResponse:
            return await _archive(request, side, helpers)
        app.router.add_post(f"/api/v1/{side}/{{doc_id}}/archive", handler)


async def _archive(request: web.Request, side: str, h: Helpers) -> web.StreamResponse:
    doc_id = h.doc_id_of(request)
    body = await h.json_body(request, ("reason",))
    if "reason" in body and not isinstance(body["reason"], str):  # null too: left out means no reason
        raise ApiError("reason must be a string (why the document is archived before it is finished)",
                       code="API_BAD_FIELD", field="reason")
    built, summary = await request.app[h.service].archive(request[h.principal], side, doc_id, body.get("reason"))
    try:
        name = f"{doc_id}.gwxa"
        disposition = (f'attachment; filename="{name}"' if name.isascii()
                       else f"attachment; filename*=UTF-8''{urllib.parse.quote(name)}")
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip", "Content-Disposition": disposition,
            "X-Gwx-Archive-Sha256": summary["sha256"], "X-Gwx-Archive-Timestamp": summary["timestamp_time"],
            "X-Gwx-Archive-Files": str(summary["files"])})
        response.content_length = built.size
        await response.prepare(request)
        with built.path.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        built.path.unlink(missing_ok=True)
