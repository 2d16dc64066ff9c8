"""The node's local API: JSON over HTTP for clerks' tools, adapters and operators.

``make_local_app`` builds the aiohttp application around a :class:`DocumentServiceApi`; the
handlers here only translate HTTP into service calls and back. What this layer owns:

* **Authentication and roles.** ``Authorization: Bearer <token>`` becomes a
  :class:`node.api.auth.Principal` stored on the request. ``/healthz`` and the OpenAPI document are
  open; every other route names the roles it admits (:data:`ROUTE_ROLES`), so an operator token
  never reaches a document method and a clerk never sees ``/metrics``. Which *unit* a clerk may act
  for is the service's decision, not ours.
* **Validation of everything that is not the service's business**: query parameters (unknown
  names, repeated names, ``limit`` 1..500, ``overdue`` true/false, statuses from the state tables,
  kinds from the 15, unit codes with their check character), document ids in paths (a safe
  pattern, never a path), JSON bodies (strict: duplicate keys and unknown fields are refused, so
  ``{"unit": …}`` for ``{"units": …}`` cannot silently recall every recipient), and the multipart
  submission (:mod:`node.api.upload`).
* **One error shape.** Every failure is ``{"error": {"code", "message", "details"}}`` with the
  status from :func:`node.error_kinds.http_status_for`; aiohttp's own HTTP errors get API_* codes;
  anything unexpected is a logged 500 ``INTERNAL`` carrying only the request id, never a traceback.
* **An access log** line per request (JSON via :mod:`node.ops.logs`) and request counters/latencies in
  the Prometheus registry, labelled by route template so ids never become label values.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import secrets
import shutil
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from exchange_protocol.canonical import load_json
from exchange_protocol.errors import ProtocolError
from exchange_protocol.kinds import parse_kind
from exchange_protocol.meta_schema import meta_schema
from exchange_protocol.model import check_doc_id
from exchange_protocol.states import ReceiverStatus, SenderStatus
from node.api.archive_routes import Helpers as ArchiveHelpers
from node.api.archive_routes import add_archive_routes
from node.api.auth import AuthError, Principal, TokenStore
from node.api.ledger_routes import AppKeys as LedgerKeys
from node.api.ledger_routes import add_ledger_routes, ledger_roles
from node.api.openapi import build_openapi
from node.api.queue_routes import AppKeys as QueueKeys
from node.api.queue_routes import add_queue_routes, queue_roles
from node.api.upload import TooLarge, UploadLimits, clear_stale_uploads, receive_submission
from node.config import NodeConfig
from node.documents.contract import DocumentServiceApi
from node.error_kinds import http_status_for
from node.errors import ApiError, BadJson, NodeError, NodeUnavailable, NotFound
from node.ops import metrics
from pki.errors import GwxError, InvalidUnitCode
from pki.unit_code import validate_unit_code

__all__ = ["ApiError", "ROUTE_ROLES", "make_local_app", "roles_for"]

LOG = logging.getLogger("gwx.local_api")

SERVICE = web.AppKey("service", DocumentServiceApi)
TOKENS = web.AppKey("tokens", TokenStore)
CONFIG = web.AppKey("config", NodeConfig)
REGISTRY = web.AppKey("registry", metrics.Registry)
UPLOAD_DIR = web.AppKey("upload_dir", Path)
UPLOAD_LIMITS = web.AppKey("upload_limits", UploadLimits)
# Both documents are built at their first request, not at start: a node process that is never asked
# for them (most) does not pay ~25 ms of CPU encoding them (indented JSON is encoded in Python).
OPENAPI = web.AppKey("openapi", Callable[[], bytes])
META_SCHEMA = web.AppKey("meta_schema", Callable[[], bytes])
REQUESTS = web.AppKey("requests", metrics.Counter)
LATENCY = web.AppKey("latency", metrics.Histogram)

# A mounted sub-application that authenticates its own requests (the SOAP endpoint: tokens also in
# WS-Security headers) sets this; _auth leaves its routes to it.
SELF_AUTHENTICATED = web.AppKey("self_authenticated", bool)

PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/schema/meta.json"})
CLERK = ("clerk",)
# Route template → roles admitted. The OpenAPI document states the same (x-gwx-roles); a test checks.
ROUTE_ROLES: dict[str, tuple[str, ...]] = {
    "/metrics": ("operator",),
    "/api/v1/node/status": ("operator",),
    **ledger_roles(),
    **queue_roles(),
}
MAX_LIMIT = 500
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_LIMIT = re.compile(r"[0-9]{1,4}")
_CURSOR = re.compile(r"[0-9]{1,18}")  # an item's ``id`` (a row number); OpenAPI: integer < 10**18
_dumps = functools.partial(json.dumps, ensure_ascii=False)


def make_local_app(service: DocumentServiceApi, tokens: TokenStore, registry: metrics.Registry,
                   config: NodeConfig, *, upload_dir: Path | None = None) -> web.Application:
    """The local API application. ``upload_dir`` (default ``DATA_DIR/uploads``) holds submissions
    while they arrive; it should be on the same file system as the blob store."""
    app = web.Application(middlewares=[_access_log, _errors, _auth],
                          client_max_size=config.limits.max_request_bytes)
    app[SERVICE] = service
    app[TOKENS] = tokens
    app[CONFIG] = config
    app[REGISTRY] = registry
    app[UPLOAD_DIR] = upload_dir or config.data_dir / "uploads"
    app[UPLOAD_LIMITS] = UploadLimits(total=config.limits.max_envelope_bytes, body=config.limits.max_body_pdf_bytes,
                                      attachment=config.limits.max_envelope_bytes,
                                      meta=config.limits.max_request_bytes)
    app[OPENAPI] = functools.cache(lambda: _indented(build_openapi(config.node_id)))
    app[META_SCHEMA] = functools.cache(lambda: _indented(meta_schema()))
    app[REQUESTS] = registry.counter("gwx_local_api_requests_total", "Local API requests by route and status",
                                     labels=("method", "route", "status"))
    app[LATENCY] = registry.histogram("gwx_local_api_request_seconds", "Local API request latency by route",
                                       labels=("route",))
    app.cleanup_ctx.append(_upload_dir_ctx)

    r = app.router
    r.add_get("/healthz", _healthz, allow_head=False)
    r.add_get("/readyz", _readyz, allow_head=False)
    r.add_get("/metrics", _metrics, allow_head=False)
    r.add_get("/api/v1/openapi.json", _openapi, allow_head=False)
    r.add_get("/api/v1/schema/meta.json", _meta_schema, allow_head=False)
    r.add_post("/api/v1/documents", _submit)
    r.add_get("/api/v1/outbox", _outbox, allow_head=False)
    r.add_get("/api/v1/outbox/{doc_id}", _track, allow_head=False)
    r.add_post("/api/v1/outbox/{doc_id}/recall", _recall)
    r.add_post("/api/v1/outbox/{doc_id}/urge", _urge)
    r.add_get("/api/v1/inbox", _inbox, allow_head=False)
    r.add_get("/api/v1/inbox/{doc_id}", _show, allow_head=False)
    r.add_get("/api/v1/inbox/{doc_id}/package", _package, allow_head=False)
    r.add_post("/api/v1/inbox/{doc_id}/sign-for", _sign_for)
    r.add_post("/api/v1/inbox/{doc_id}/return", _return)
    r.add_post("/api/v1/inbox/{doc_id}/register", _register)
    r.add_get("/api/v1/node/status", _node_status, allow_head=False)
    add_ledger_routes(app, LedgerKeys(SERVICE, PRINCIPAL))
    add_archive_routes(app, ArchiveHelpers(SERVICE, PRINCIPAL, doc_id_of, json_body))  # 一键归档 (node.archive)
    add_queue_routes(app, QueueKeys(SERVICE, PRINCIPAL, json_body))  # the operator's send queue
    r.add_get("/api/v1/supervision", _supervision, allow_head=False)  # 督办 items of the clerk's unit
    r.add_post("/api/v1/outbox/{doc_id}/recipients", _add_recipients)  # 补发
    r.add_post("/api/v1/inbox/{doc_id}/forward", _submit)  # 转发: a cover 通知 submitted like a document
    return app


def _indented(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, indent=1).encode()


async def _upload_dir_ctx(app: web.Application):
    app[UPLOAD_DIR].mkdir(parents=True, exist_ok=True, mode=0o700)
    removed = clear_stale_uploads(app[UPLOAD_DIR])
    if removed:
        LOG.warning("removed %d unfinished uploads left by an earlier run", removed)
    yield


# --- middlewares --------------------------------------------------------------------------------
@web.middleware
async def _access_log(request: web.Request, handler):
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    started = time.monotonic()
    response = await handler(request)  # _errors below turns every failure into a response
    elapsed = time.monotonic() - started
    response.headers["X-Request-Id"] = request_id
    principal = request.get(PRINCIPAL)
    # The handler's own time (W3C Server-Timing): what bench/console.py reports as server time. Only
    # for a signed-in principal: to anyone else it would be a precise timing oracle (token checks,
    # sign-in queued behind the password hashing). A streamed download has sent its headers already.
    if principal is not None and not response.prepared:
        response.headers["Server-Timing"] = f"app;dur={elapsed * 1000:.1f}"
    route = _route_label(request)
    request.app[REQUESTS].inc(method=request.method, route=route, status=response.status)
    request.app[LATENCY].observe(elapsed, route=route)
    LOG.info("%s %s %d", request.method, request.path, response.status,
             extra={"request_id": request_id, "method": request.method, "path": request.path,
                    "status": response.status, "elapsed_ms": round(elapsed * 1000, 1),
                    "who": principal.token_id if principal else None,
                    "code": response.headers.get("X-Gwx-Error"),
                    **({"doc_id": request.match_info["doc_id"]} if "doc_id" in request.match_info else {})})
    return response


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except GwxError as exc:
        return _error_response(exc, http_status_for(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_response(_from_http_exception(request, exc), exc.status)
        if "Allow" in exc.headers:  # RFC 9110 §15.5.6: a 405 says which methods the route has
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        LOG.exception("unexpected error in %s %s", request.method, request.path,
                      extra={"request_id": request.get(REQUEST_ID)})
        error = NodeError("internal error; the node's log has the details under this request id",
                          code="INTERNAL", request_id=request.get(REQUEST_ID))
        return _error_response(error, 500)


@web.middleware
async def _auth(request: web.Request, handler):
    if request.path in OPEN_PATHS or request.match_info.apps[-1].get(SELF_AUTHENTICATED):
        return await handler(request)
    principal = request.app[TOKENS].authenticate(request.headers.get("Authorization"))
    request[PRINCIPAL] = principal
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else None
    if template is not None:
        principal.require_role(*ROUTE_ROLES.get(template, CLERK))
    return await handler(request)


def _error_response(exc: GwxError, status: int) -> web.Response:
    body = {"error": {"code": exc.code, "message": exc.message, "details": exc.to_dict().get("details", {})}}
    response = web.json_response(body, status=status, dumps=_dumps)
    response.headers["X-Gwx-Error"] = exc.code
    if isinstance(exc, AuthError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="gwx"'
    if isinstance(exc, TooLarge) or exc.code == "API_BAD_MULTIPART":
        response.force_close()  # the rest of the body is not read; do not reuse the connection
    return response


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> GwxError:
    if exc.status == 404:
        return NotFound(f"no such route: {request.method} {request.path}")
    if exc.status == 405:
        return ApiError(f"{request.method} is not allowed on {request.path}", code="API_METHOD_NOT_ALLOWED")
    if exc.status == 413:
        return TooLarge(f"the request body is more than {request.app[CONFIG].limits.max_request_bytes} bytes",
                        limit=request.app[CONFIG].limits.max_request_bytes)
    return ApiError(exc.reason or "bad request", code=f"API_HTTP_{exc.status}")


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


# --- validation ---------------------------------------------------------------------------------
def doc_id_of(request: web.Request) -> str:
    value = request.match_info["doc_id"]
    try:
        return check_doc_id(value, "doc_id")  # the model's one rule: what it admits, every route can address
    except ProtocolError as exc:
        raise ApiError(f"that is not a document id (公文标识): {exc.message}", code="API_BAD_DOC_ID",
                       value=value[:80]) from None


def list_filters(request: web.Request, statuses: tuple[str, ...],
                 allowed: tuple[str, ...] = ("status", "kind", "overdue", "unit", "limit", "after")) -> dict[str, Any]:
    query = request.query
    for name in query:
        if name not in allowed:
            raise _bad_param(name, f"unknown query parameter {name!r}; known: {', '.join(allowed)}")
        if len(query.getall(name)) > 1:
            raise _bad_param(name, f"query parameter {name!r} is given more than once")
    out: dict[str, Any] = {}
    if "status" in query:
        if query["status"] not in statuses:
            raise _bad_param("status", f"status must be one of {', '.join(statuses)}")
        out["status"] = query["status"]
    if "kind" in query:
        try:
            out["kind"] = parse_kind(query["kind"]).value
        except ProtocolError as exc:
            raise _bad_param("kind", exc.message) from None
    if "overdue" in query:
        if query["overdue"] not in ("true", "false"):
            raise _bad_param("overdue", "overdue must be true or false")
        out["overdue"] = query["overdue"] == "true"
    if "unit" in query:
        try:
            out["unit"] = validate_unit_code(query["unit"])
        except InvalidUnitCode as exc:
            raise _bad_param("unit", exc.message) from None
    if "limit" in query:
        text = query["limit"]
        if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
            raise _bad_param("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
        out["limit"] = int(text)
    if "after" in query:
        after = query["after"]
        if not _CURSOR.fullmatch(after):
            raise _bad_param("after", "after must be the id (a whole number) of the last item of the previous page")
        out["after"] = after
    return out


def _bad_param(name: str, message: str) -> ApiError:
    return ApiError(message, code="API_BAD_PARAMETER", parameter=name)


async def json_body(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``), refusing keys not in ``allowed``."""
    data = await request.read()  # raises 413 past client_max_size
    if not data.strip():
        return {}
    if request.content_type != "application/json":
        raise ApiError(f"the request body must be application/json, not {request.content_type}",
                       code="API_UNSUPPORTED_MEDIA_TYPE")
    value = load_json(data, max_bytes=request.app[CONFIG].limits.max_request_bytes, what="the request body",
                      error=BadJson)
    if not isinstance(value, dict):
        raise BadJson("the request body must be a JSON object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ApiError(f"unknown field {unknown[0]!r}; known: {', '.join(allowed) or 'none'}",
                       code="API_UNKNOWN_FIELD", field=unknown[0])
    return value


def units_field(body: dict[str, Any]) -> list[str] | None:
    # Left out means "all"; null is refused, so a client bug sending null cannot act on everyone.
    if "units" not in body:
        return None
    units = body["units"]
    if not isinstance(units, list) or not units:
        raise ApiError("units must be a non-empty list of unit codes (or left out for all)",
                       code="API_BAD_FIELD", field="units")
    out: list[str] = []
    for i, unit in enumerate(units):
        try:
            code = validate_unit_code(unit) if isinstance(unit, str) else None
        except InvalidUnitCode as exc:
            raise ApiError(f"units[{i}]: {exc.message}", code="API_BAD_FIELD", field=f"units[{i}]") from None
        if code is None:
            raise ApiError(f"units[{i}] must be a string", code="API_BAD_FIELD", field=f"units[{i}]")
        if code in out:
            raise ApiError(f"units[{i}]: {code} is listed twice", code="API_BAD_FIELD", field=f"units[{i}]")
        out.append(code)
    return out


# --- handlers -----------------------------------------------------------------------------------
async def _healthz(request: web.Request) -> web.Response:
    return _json({"ok": True, "node_id": request.app[CONFIG].node_id})


async def _readyz(request: web.Request) -> web.Response:
    """Readiness, unlike /healthz: 503 with the failing checks when something blocks the node's work."""
    report = await request.app[SERVICE].readiness()
    return _json(report, status=200 if report["ready"] else 503)


async def _metrics(request: web.Request) -> web.Response:
    await request.app[REGISTRY].collect()
    return web.Response(text=request.app[REGISTRY].render(), content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"}, charset="utf-8")


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI](), content_type="application/json", charset="utf-8")


async def _meta_schema(request: web.Request) -> web.Response:
    return web.Response(body=request.app[META_SCHEMA](), content_type="application/schema+json", charset="utf-8")


async def _submit(request: web.Request) -> web.Response:
    upload_dir = request.app[UPLOAD_DIR]
    if not upload_dir.is_dir():  # an app used without its cleanup_ctx having run (e.g. mounted)
        upload_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    free = shutil.disk_usage(upload_dir).free
    if request.content_length is not None and request.content_length > free:
        raise NodeUnavailable("not enough disk space for this submission")
    forwarding = doc_id_of(request) if "doc_id" in request.match_info else None
    submission = await receive_submission(request, upload_dir, request.app[UPLOAD_LIMITS])
    try:
        if forwarding is not None:
            result = await request.app[SERVICE].forward(request[PRINCIPAL], forwarding, submission.meta,
                                                        submission.body, submission.attachments)
        else:
            result = await request.app[SERVICE].submit(request[PRINCIPAL], submission.meta, submission.body,
                                                       submission.attachments)
    finally:
        submission.cleanup()
    return _json(result, status=201)


async def _outbox(request: web.Request) -> web.Response:
    filters = list_filters(request, tuple(s.value for s in SenderStatus))
    return _json(await request.app[SERVICE].outbox(request[PRINCIPAL], **filters))


async def _track(request: web.Request) -> web.Response:
    """``?recipients=false``: the document and its counts only (what a sender polling a 通知 to
    thousands of units needs), without each recipient's view and without asking the relays."""
    wanted = request.query.get("recipients", "true")
    if wanted not in ("true", "false"):
        raise _bad_param("recipients", "recipients must be true or false")
    if wanted == "false":
        return _json(await request.app[SERVICE].track(request[PRINCIPAL], doc_id_of(request), recipients=False))
    return _json(await request.app[SERVICE].track(request[PRINCIPAL], doc_id_of(request), where=True))


async def _recall(request: web.Request) -> web.Response:
    doc_id = doc_id_of(request)
    units = units_field(await json_body(request, ("units",)))
    return _json(await request.app[SERVICE].recall(request[PRINCIPAL], doc_id, units))


async def _urge(request: web.Request) -> web.Response:
    doc_id = doc_id_of(request)
    units = units_field(await json_body(request, ("units",)))
    return _json(await request.app[SERVICE].urge(request[PRINCIPAL], doc_id, units))


async def _inbox(request: web.Request) -> web.Response:
    filters = list_filters(request, tuple(s.value for s in ReceiverStatus))
    return _json(await request.app[SERVICE].inbox(request[PRINCIPAL], **filters))


async def _add_recipients(request: web.Request) -> web.Response:
    doc_id = doc_id_of(request)
    units = units_field(await json_body(request, ("units",)))
    if not units:
        raise ApiError("补发 needs units: the unit codes to send the document to", code="API_BAD_FIELD", field="units")
    return _json(await request.app[SERVICE].add_recipients(request[PRINCIPAL], doc_id, units))


async def _supervision(request: web.Request) -> web.Response:
    filters = list_filters(request, ("open", "settled"), allowed=("status", "limit", "after"))
    status = filters.pop("status", None)
    settled = None if status is None else status == "settled"
    return _json(await request.app[SERVICE].supervision(request[PRINCIPAL], settled=settled, **filters))


async def _show(request: web.Request) -> web.Response:
    return _json(await request.app[SERVICE].show(request[PRINCIPAL], doc_id_of(request)))


async def _package(request: web.Request) -> web.StreamResponse:
    doc_id = doc_id_of(request)
    path = await request.app[SERVICE].package_path(request[PRINCIPAL], doc_id)
    # The id passed check_doc_id (no quotes, no separators); non-ASCII ids go in RFC 6266's filename*.
    disposition = (f'attachment; filename="{doc_id}.zip"' if doc_id.isascii()
                   else f"attachment; filename*=UTF-8''{urllib.parse.quote(doc_id)}.zip")
    return web.FileResponse(path, headers={"Content-Type": "application/zip",
                                           "Content-Disposition": disposition})


async def _sign_for(request: web.Request) -> web.Response:
    doc_id = doc_id_of(request)
    await json_body(request, ())
    return _json(await request.app[SERVICE].sign_for(request[PRINCIPAL], doc_id))


async def _return(request: web.Request) -> web.Response:
    doc_id = doc_id_of(request)
    body = await json_body(request, ("reason",))
    reason = body.get("reason")
    if not isinstance(reason, str):
        raise ApiError("reason (退回理由) is required and must be a string", code="API_BAD_FIELD", field="reason")
    return _json(await request.app[SERVICE].return_document(request[PRINCIPAL], doc_id, reason))


async def _register(request: web.Request) -> web.Response:
    doc_id = doc_id_of(request)
    await json_body(request, ())
    return _json(await request.app[SERVICE].register(request[PRINCIPAL], doc_id))


async def _node_status(request: web.Request) -> web.Response:
    return _json(await request.app[SERVICE].node_status(request[PRINCIPAL]))


def roles_for(template: str) -> tuple[str, ...]:
    """The roles a route admits (empty for the open ones)."""
    return () if template in OPEN_PATHS else ROUTE_ROLES.get(template, CLERK)
