"""Serving RFC 3161 time-stamps on the node that holds the network's TSA signer (the root node).

``POST /peer/v1/tsa`` over the peer API's mutual TLS, like ``/peer/v1/ocsp``: only nodes of the
network ask, for their archive packages (:mod:`node.archive.time_stamps`). The body is one DER
``TimeStampReq`` (``application/timestamp-query``, at most :data:`pki.tsa.MAX_REQUEST` bytes: a larger
one is 413 ``API_TSA_TOO_LARGE``, another media type 415); the answer an
``application/timestamp-reply`` signed with ``[archive] tsa_signer`` (:mod:`pki.tsa_signer`) at the
node's clock. Bytes that are no request get the protocol's own typed rejection (badDataFormat …,
:func:`pki.tsa.respond`), not an HTTP error. A node without a signer answers 404 ``NODE_NO_TSA``.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from node.context import NodeContext
from node.errors import ApiError, NoTimeStampService
from pki.tsa import MAX_REQUEST
from pki.tsa_signer import TsaSigner, open_directory

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"


class TimeStampService:
    """The TSA signer of ``[archive] tsa_signer``, loaded once."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._signer: TsaSigner | None = None

    @property
    def configured(self) -> bool:
        return self.ctx.config.archive.tsa_signer is not None

    def load(self) -> TsaSigner:
        directory = self.ctx.config.archive.tsa_signer
        if directory is None:
            raise NoTimeStampService(f"{self.ctx.node_id} time-stamps nothing (no [archive] tsa_signer); "
                                     "ask the root node")
        with self._lock:
            if self._signer is None:
                self._signer = open_directory(directory, self.ctx.passphrase)
            return self._signer

    def answer(self, request_der: bytes) -> bytes:
        return self.load().respond(request_der, self.ctx.clock())


TSA_SERVICE = web.AppKey("tsa_service", TimeStampService)


async def serve_tsa(request: web.Request) -> web.Response:
    service = request.app[TSA_SERVICE]
    if not service.configured:
        service.load()  # raises NODE_NO_TSA
    if request.content_type != QUERY_TYPE:
        raise ApiError(f"time-stamp requests are sent as {QUERY_TYPE}, not {request.content_type or 'nothing'}",
                       code="API_UNSUPPORTED_MEDIA_TYPE")
    if request.content_length is not None and request.content_length > MAX_REQUEST:
        raise ApiError(f"a time-stamp request of {request.content_length} bytes exceeds {MAX_REQUEST}",
                       code="API_TSA_TOO_LARGE")
    body = await request.content.read(MAX_REQUEST + 1)
    if len(body) > MAX_REQUEST:
        raise ApiError(f"a time-stamp request over {MAX_REQUEST} bytes", code="API_TSA_TOO_LARGE")
    answer = await asyncio.to_thread(service.answer, body)
    return web.Response(body=answer, content_type=REPLY_TYPE)


def add_tsa_route(app: web.Application, service: TimeStampService, prefix: str) -> None:
    app[TSA_SERVICE] = service
    app.router.add_post(f"{prefix}/tsa", serve_tsa)
