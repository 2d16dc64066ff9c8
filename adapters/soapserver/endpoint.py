"""The SOAP endpoint as an aiohttp application, mounted on the node's local API listener.

``POST /soap/v1/documents`` takes SOAP 1.1 (``text/xml``, ``SOAPAction``), SOAP 1.2
(``application/soap+xml; action=…``) and either as MTOM (``multipart/related``); ``GET`` on it
(``?wsdl``) answers the WSDL with the address it was asked at, ``GET /soap/v1/gwx-oa.xsd`` the
messages' schema. One request goes, in this order, and stops at the first refusal, which is a
SOAP fault in the request's SOAP version carrying the error's code (:func:`messages.fault`):

1. the media type; the declared Content-Length against the caps (a 2 GB claim is refused before a
   byte is read); an ``Authorization: Bearer`` header, when given, checked; the envelope read under
   :data:`ENVELOPE_MAX` (inline base64 included), its bytes counted against
   :data:`ENVELOPES_IN_MEMORY` for all requests together — past it, a request is refused as
   transient (``NODE_UNAVAILABLE``, a Server fault: send again later), so memory stays bounded
   however many large envelopes arrive at once (inline FetchDocument answers count there too, until
   sent: :class:`HeldAnswer`);
2. hardened parsing (:mod:`adapters.soapserver.envelope`), a few at a time, in a thread; the SOAP
   version is the envelope namespace's;
3. the operation (the Body's element) and every action the request states (the SOAPAction header,
   the action parameters), each of which may be empty but may not name another operation;
4. the caller: a WS-Security UsernameToken whose PasswordText is a clerk's token and/or
   ``Authorization: Bearer`` (both given: the same token), checked by the node's
   :class:`~node.api.auth.TokenStore`; only clerks; their unit is the service's business;
5. the message against ``gwx-oa.xsd``; only then are MTOM parts read to disk;
6. the operation (:mod:`adapters.soapserver.operations`), which calls the document service.

Steps 1–6 are :mod:`adapters.soapserver.calls`, imported with the first request. Temp files are
removed whatever happens. A refusal that leaves part of the request unread closes
the connection. The local API's middlewares log each request and count it in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from importlib import resources
from pathlib import Path

from aiohttp import web

from adapters.soapserver.errors import SoapDisabled
from node.api.auth import TokenStore
from node.api.local_api import SELF_AUTHENTICATED
from node.config import NodeConfig
from node.documents.contract import DocumentServiceApi
from node.errors import NodeUnavailable

LOG = logging.getLogger("gwx.soap")

PREFIX = "/soap/v1"
ENVELOPE_MAX = 8 * 1024 * 1024
PARSING_AT_ONCE = 2  # envelopes parsed and validated at the same time (each tree up to ~3 × its bytes)
ENVELOPES_IN_MEMORY = 48 * 1024 * 1024  # envelope bytes held by all requests together, at most
MULTIPART_OVERHEAD = 1024 * 1024  # part headers and boundaries, beyond the files and the envelope
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")

SERVICE = web.AppKey("soap_service", DocumentServiceApi)
TOKENS = web.AppKey("soap_tokens", TokenStore)
CONFIG = web.AppKey("soap_config", NodeConfig)
SETTINGS = web.AppKey("soap_settings", dict)
PARSING = web.AppKey("soap_parsing", asyncio.Semaphore)
BUDGET = web.AppKey("soap_budget", "EnvelopeBudget")
HELD = web.RequestKey("soap_held", "Held")


class EnvelopeBudget:
    """Envelope bytes held in memory by all requests and inline answers together, refused past ``total``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0

    def take(self, held: Held, n: int, why: str = "too many large SOAP envelopes are arriving at once; send "
             "again shortly (or send large files as MTOM parts)") -> None:
        if self.held + n > self.total:
            raise NodeUnavailable(why, code="NODE_UNAVAILABLE")
        self.held += n
        held.bytes += n

    def give_back(self, held: Held) -> None:
        self.held -= held.bytes
        held.bytes = 0


class Held:
    bytes = 0


class HeldAnswer(web.Response):
    """An answer whose bytes stay counted in the budget until it is sent (``write_eof`` returns once
    the kernel has taken all but a little of it) or, if it never is, until it is dropped. Once sent,
    its bytes are let go: aiohttp's server keeps a keep-alive connection's last response until the
    next request on it (up to the keep-alive timeout), and an answer's bytes held there by every idle
    OA connection would be memory the budget no longer counts."""

    def hold_until_sent(self, budget: EnvelopeBudget, held: Held) -> None:
        self._release = weakref.finalize(self, budget.give_back, held)

    async def write_eof(self, data: bytes = b"") -> None:
        try:
            await super().write_eof(data)
        finally:
            self.body = None  # sent (or never to be): nothing reads it again
            self._release()


def make_soap_app(service: DocumentServiceApi, tokens: TokenStore, config: NodeConfig, *,
                  upload_dir: Path | None = None, envelope_max: int = ENVELOPE_MAX,
                  envelopes_in_memory: int = ENVELOPES_IN_MEMORY) -> web.Application:
    app = web.Application()
    app[SELF_AUTHENTICATED] = True
    app[SERVICE], app[TOKENS], app[CONFIG] = service, tokens, config
    app[SETTINGS] = {"upload_dir": upload_dir or config.data_dir / "uploads", "envelope_max": envelope_max}
    app[PARSING] = asyncio.Semaphore(PARSING_AT_ONCE)
    app[BUDGET] = EnvelopeBudget(envelopes_in_memory)
    app.router.add_post("/documents", _post)
    app.router.add_get("/documents", _wsdl, allow_head=False)
    app.router.add_get("/gwx-oa.xsd", _xsd, allow_head=False)
    return app


def mount_soap(local_app: web.Application, service: DocumentServiceApi, tokens: TokenStore,
               config: NodeConfig, **settings: int) -> None:
    """Serve the endpoint at ``/soap/v1/documents`` on the local API's listener (``settings``: the
    caps of :func:`make_soap_app`) — unless the operator turned it off (``[soap] enabled = false``):
    then every ``/soap/v1/…`` path, the WSDL's included, answers 404 ``SOAP_DISABLED``, token or not
    (an OA is told the endpoint is off, not that its token is wrong)."""
    if config.soap.enabled:
        local_app.add_subapp(PREFIX, make_soap_app(service, tokens, config, **settings))
        return
    LOG.info("the SOAP endpoint is off ([soap] enabled = false): %s answers 404", PREFIX)
    off = web.Application()
    off[SELF_AUTHENTICATED] = True
    off.router.add_route("*", "/{tail:.*}", _disabled)
    local_app.add_subapp(PREFIX, off)


async def _disabled(request: web.Request) -> web.Response:
    raise SoapDisabled("the SOAP endpoint is turned off on this node ([soap] enabled = false in node.toml)")


def _resource(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


async def _wsdl(request: web.Request) -> web.Response:
    host = request.host if _HOST.fullmatch(request.host or "") else \
        f"{request.app[CONFIG].local_api.host}:{request.app[CONFIG].local_api.port}"
    address = f"{request.scheme}://{host}{PREFIX}/documents"
    body = _resource("gwx-oa.wsdl").replace(b"http://GWX-NODE/soap/v1/documents", address.encode())
    return web.Response(body=body, content_type="text/xml", charset="utf-8")


async def _xsd(request: web.Request) -> web.Response:
    return web.Response(body=_resource("gwx-oa.xsd"), content_type="text/xml", charset="utf-8")


async def _post(request: web.Request) -> web.StreamResponse:
    # The request's handling (lxml, the schema, the operations) is loaded with the first SOAP request,
    # not at the node's start: most nodes' OA systems never call them (~20 ms of CPU each start).
    from adapters.soapserver.calls import post

    return await post(request)
