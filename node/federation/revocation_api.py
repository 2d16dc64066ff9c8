"""Serving revocation data: the CRL a node holds, and OCSP answers on the root node.

Two places serve the same handlers:

* the peer API, over mutual TLS (``GET /peer/v1/crl``, ``POST /peer/v1/ocsp``): what a child node
  fetches its CRL from (:mod:`node.federation.crl_fetch`);
* with ``[revocation]`` in node.toml, a plain-HTTP listener (``GET /crl``, ``POST /ocsp``) for
  clients that hold no node certificate — ``openssl ocsp``, a document verifier, a browser. Plain
  HTTP is the convention for both (RFC 5280 §4.2.1.13, RFC 6960 Appendix A): what is served is
  signed, and the signature, not the channel, makes it trustworthy.

``GET …/crl`` answers ``NODE_DIR/crl.pem`` as it is (every CA's CRL, PEM), with the SHA-256 of the
file as its ETag: ``If-None-Match`` with it answers 304 and no body. 404 ``NODE_NO_CRL`` while the
node holds none.

``POST …/ocsp`` takes one DER OCSPRequest (``application/ocsp-request``, at most
:data:`pki.ocsp.MAX_REQUEST_BYTES`: a larger body is 413 ``API_OCSP_TOO_LARGE``, another media type
415) and answers an ``application/ocsp-response`` signed by the delegated OCSP signer
(``[revocation] ocsp_signer``, :mod:`pki.ocsp_signer`) — never the CA key, which stays offline.
The answers come from the CRL the node holds (:class:`pki.ocsp.CrlView`): ``revoked`` for what it
lists, ``good`` for a serial of that CA it does not list, ``unknown`` for another CA's. Bytes that
are no OCSP request get the protocol's own typed answer, ``malformedRequest``; while the CRL is past
its next update the answer is ``tryLater`` (a responder must not vouch from stale data). A node
without an OCSP signer answers 404 ``NODE_NO_OCSP``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable

from aiohttp import web
from cryptography import x509

from node.context import NodeContext
from node.errors import ApiError, NoRevocationService
from pki.crl import crl_number
from pki.ocsp import DEFAULT_VALIDITY, MAX_REQUEST_BYTES, CrlView, respond, status_only
from pki.ocsp_signer import OcspSigner, open_directory
from pki.x509_sm2 import signed_by

log = logging.getLogger("gwx.node.revocation")

OCSP_REQUEST_TYPE = "application/ocsp-request"
OCSP_RESPONSE_TYPE = "application/ocsp-response"


class RevocationService:
    """What the revocation routes serve: the node's CRL file, and OCSP answers from it with the
    delegated signer (loaded once)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._signer: OcspSigner | None = None

    @property
    def configured(self) -> bool:
        return self.ctx.config.ocsp_signer_dir is not None

    def load(self) -> OcspSigner:
        """The signer (read at start so a wrong passphrase or a missing directory stops the node then)."""
        directory = self.ctx.config.ocsp_signer_dir
        if directory is None:
            raise NoRevocationService(f"{self.ctx.node_id} answers no OCSP (no [revocation] ocsp_signer); "
                                      "ask the root node", code="NODE_NO_OCSP")
        with self._lock:
            if self._signer is None:
                self._signer = open_directory(directory, self.ctx.passphrase)
            return self._signer

    def answer(self, request_der: bytes, now: dt.datetime) -> bytes:
        signer = self.load()
        crl = self._newest_crl(signer.issuer)
        if crl is None or crl.next_update_utc is None or crl.next_update_utc <= now:
            log.warning("OCSP answered tryLater: the CRL of '%s' held is %s", signer.issuer.subject.rfc4514_string(),
                        "missing" if crl is None else f"past its next update ({crl.next_update_utc})")
            return status_only("try_later")
        validity = min(DEFAULT_VALIDITY, crl.next_update_utc - now)
        return respond(request_der, CrlView(signer.issuer, crl), signer.signer, now, validity=validity)

    def _newest_crl(self, issuer: x509.Certificate) -> x509.CertificateRevocationList | None:
        mine = [c for c in self.ctx.revocation.crls() if signed_by(c, issuer)]
        return max(mine, key=crl_number, default=None)


RESPONDER = web.AppKey("revocation_service", RevocationService)


def etag_of(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def conditional(request: web.Request, data: bytes, content_type: str) -> web.Response:
    """``data`` with its ETag, or 304 when the asker already holds exactly it (If-None-Match)."""
    etag = etag_of(data)
    asked = {tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(",")}
    if etag in asked or "*" in asked:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=data, content_type=content_type, headers={"ETag": etag})


async def serve_crl(request: web.Request) -> web.Response:
    responder = request.app[RESPONDER]
    path = responder.ctx.config.crl_path
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise NoRevocationService(f"{responder.ctx.node_id} holds no CRL yet") from None
    return conditional(request, data, "application/pkix-crl")


async def serve_ocsp(request: web.Request) -> web.Response:
    responder = request.app[RESPONDER]
    if not responder.configured:
        responder.load()  # raises NODE_NO_OCSP
    if request.content_type != OCSP_REQUEST_TYPE:
        raise ApiError(f"OCSP requests are sent as {OCSP_REQUEST_TYPE}, not {request.content_type or 'nothing'}",
                       code="API_UNSUPPORTED_MEDIA_TYPE")
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise ApiError(f"an OCSP request of {request.content_length} bytes exceeds {MAX_REQUEST_BYTES}",
                       code="API_OCSP_TOO_LARGE")
    body = await request.content.read(MAX_REQUEST_BYTES + 1)
    if len(body) > MAX_REQUEST_BYTES:
        raise ApiError(f"an OCSP request over {MAX_REQUEST_BYTES} bytes", code="API_OCSP_TOO_LARGE")
    now = responder.ctx.clock()
    answer = await asyncio.to_thread(responder.answer, body, now)
    return web.Response(body=answer, content_type=OCSP_RESPONSE_TYPE)


def add_routes(app: web.Application, responder: RevocationService, prefix: str) -> None:
    app[RESPONDER] = responder
    app.router.add_get(f"{prefix}/crl", serve_crl)
    app.router.add_post(f"{prefix}/ocsp", serve_ocsp)


def make_revocation_app(responder: RevocationService, errors_middleware: Callable) -> web.Application:
    """The plain-HTTP listener of ``[revocation]``: ``GET /crl`` and ``POST /ocsp``, nothing else."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_REQUEST_BYTES + 1)
    add_routes(app, responder, "")
    return app
