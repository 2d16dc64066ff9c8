"""The local API's 台账 routes: the sent and received ledgers as CSV or XLSX, and their statistics.

* ``GET /api/v1/ledger/{sent,received}?format=csv|xlsx&from=&to=&kind=&status=&unit=&counterpart=``
  (clerks: their own unit's). CSV is streamed as it is read from the store, a page at a time
  (chunked); so is XLSX (:mod:`node.documents.ledger_xlsx_stream`: the sheet's XML deflated into
  the ZIP as rows are appended, the ZIP written into the answer after every page, no file on disk),
  so its first bytes come after the first page, not after the whole workbook. A client that leaves
  stops the build at the next page (:func:`_send_xlsx`).
  ``X-Gwx-Ledger-Rows`` says how many rows follow, for a progress indicator (the export is pinned
  to the documents stored when it starts, so documents arriving meanwhile do not add rows). Every filter is
  checked before the answer starts; a failure after it (the store gone mid-way) cuts the
  connection, so a client never takes a truncated file for a whole one.
* ``GET /api/v1/ledger/{sent,received}/stats?period=day|week|month&by=unit|counterpart&…`` (clerks and
  operators): JSON.

The handlers only translate HTTP; what a ledger is, whose, and what is refused is
:mod:`node.documents.ledger` through the service contract.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from exchange_protocol.model import BEIJING
from node.documents.ledger import LedgerExport, LedgerFilterError
from node.documents.ledger_files import csv_chunks, sheet_title
from node.errors import ApiError

LOG = logging.getLogger("gwx.local_api")

SIDES = ("sent", "received")
FILTERS = ("from", "to", "kind", "status", "unit", "counterpart")
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
STATS_ROLES = ("clerk", "operator")


@dataclass(frozen=True)
class AppKeys:
    """The local API's keys the handlers read (``node.api.local_api`` owns them)."""

    service: web.AppKey
    principal: web.RequestKey


def ledger_roles() -> dict[str, tuple[str, ...]]:
    """Route → roles admitted, for the local API's role table (and the OpenAPI's x-gwx-roles)."""
    return {path: roles for side in SIDES
            for path, roles in ((f"/api/v1/ledger/{side}", ("clerk",)), (f"/api/v1/ledger/{side}/stats", STATS_ROLES))}


def add_ledger_routes(app: web.Application, keys: AppKeys) -> None:
    for side in SIDES:
        app.router.add_get(f"/api/v1/ledger/{side}", _export_handler(side, keys), allow_head=False)
        app.router.add_get(f"/api/v1/ledger/{side}/stats", _stats_handler(side, keys), allow_head=False)


def _query(request: web.Request, extra: tuple[str, ...]) -> dict[str, str]:
    allowed = FILTERS + extra
    for name in request.query:
        if name not in allowed:
            raise ApiError(f"unknown query parameter {name!r}; known: {', '.join(allowed)}",
                           code="API_BAD_PARAMETER", parameter=name)
        if len(request.query.getall(name)) > 1:
            raise ApiError(f"query parameter {name!r} is given more than once", code="API_BAD_PARAMETER",
                           parameter=name)
        if not request.query[name]:  # left out means "any"; given empty is a client's mistake
            raise ApiError(f"query parameter {name!r} is empty; leave it out for any", code="API_BAD_PARAMETER",
                           parameter=name)
    return dict(request.query)


def _service_filters(query: dict[str, str]) -> dict[str, str | None]:
    return {"unit": query.get("unit"), "date_from": query.get("from"), "date_to": query.get("to"),
            "kind": query.get("kind"), "status": query.get("status"), "counterpart": query.get("counterpart")}


def _export_handler(side: str, keys: AppKeys):
    async def handler(request: web.Request) -> web.StreamResponse:
        query = _query(request, ("format",))
        fmt = query.get("format", "csv")
        if fmt not in FORMATS:
            raise LedgerFilterError(f"format must be csv or xlsx, not {fmt[:20]!r}", code="LEDGER_BAD_FORMAT",
                                    parameter="format")
        export = await request.app[keys.service].ledger(request[keys.principal], side, **_service_filters(query))
        if fmt == "csv":
            return await _send_csv(request, export)
        return await _send_xlsx(request, export)
    handler.__name__ = f"ledger_{side}"
    return handler


def _stats_handler(side: str, keys: AppKeys):
    async def handler(request: web.Request) -> web.Response:
        query = _query(request, ("period", "by"))
        stats = await request.app[keys.service].ledger_stats(request[keys.principal], side,
                                                             query.get("period", "month"), by=query.get("by", "unit"),
                                                             **_service_filters(query))
        return web.json_response(stats, dumps=functools.partial(json.dumps, ensure_ascii=False))
    handler.__name__ = f"ledger_{side}_stats"
    return handler


def file_name(export: LedgerExport, fmt: str) -> str:
    today = export.now.astimezone(BEIJING).date().isoformat()  # the node's clock, as everything else
    return f"{sheet_title(export)}-{export.unit}-{today}.{fmt}"


def _headers(export: LedgerExport, fmt: str) -> dict[str, str]:
    name = file_name(export, fmt)
    fallback = f"ledger-{export.side}-{export.unit}.{fmt}"
    return {"Content-Type": FORMATS[fmt], "X-Gwx-Ledger-Rows": str(export.rows), "Cache-Control": "no-store",
            "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name)}"}


async def _send_csv(request: web.Request, export: LedgerExport) -> web.StreamResponse:
    return await _stream(request, export, "csv", csv_chunks(export))


async def _send_xlsx(request: web.Request, export: LedgerExport) -> web.StreamResponse:
    def stop_if_gone(done: int) -> None:  # after each page: a client that left stops the build there
        if request.transport is None or request.transport.is_closing():
            LOG.info("ledger XLSX of %s abandoned after %d of %d rows: the client has gone", export.unit, done,
                     export.rows)
            raise ConnectionResetError("the client has gone")

    # imported here, not at the top: openpyxl is ~8 % of a node's start-up imports, and most nodes never
    # write an XLSX
    from node.documents.ledger_xlsx_stream import xlsx_chunks

    return await _stream(request, export, "xlsx", xlsx_chunks(export, stop_if_gone))


async def _stream(request: web.Request, export: LedgerExport, fmt: str,
                  chunks: AsyncIterator[bytes]) -> web.StreamResponse:
    """The export's bytes as they are made (chunked): never the whole file in memory."""
    response = web.StreamResponse(headers=_headers(export, fmt))
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:  # the answer has started: only a cut connection can say it is incomplete
        LOG.error("ledger export of %s cut off: %r", export.unit, exc)
        _cut(request)
        return response
    await response.write_eof()
    return response


def _cut(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def send_export(request: web.Request, export: LedgerExport, fmt: str,
                      directory: Path | None = None) -> web.StreamResponse:
    """``export`` as ``fmt`` (csv|xlsx), streamed as this API streams it: for the console's 台账 button.
    ``directory`` is no longer used (the XLSX is streamed, no file is built); kept for the caller."""
    if fmt == "csv":
        return await _send_csv(request, export)
    return await _send_xlsx(request, export)
