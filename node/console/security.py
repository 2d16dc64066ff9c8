"""What stands between a browser and the console's handlers: sessions, CSRF, headers, error pages.

* :func:`guard` (middleware): every route but the sign-in page, the static files and the not-found
  page needs a live session (:meth:`node.console.accounts.Accounts.session`); the session and the
  principal the document service will see are put on the request. Every POST must come from this
  site — its ``Origin`` (else its ``Referer``) names the host the request was sent to, one of the
  node's own names (:func:`allowed_hosts`; every request is checked for that) — and carry
  the form field ``csrf`` equal to the session's token (synchronizer token; the sign-in form,
  before any session, carries the token of a short-lived pre-session cookie instead). A form is
  read here, once, bounded (:data:`MAX_FORM_BYTES`), and handed to the handler as ``request[FORM]``.
* :func:`pages` (middleware, outermost): every failure becomes a page in Chinese with its code —
  the status from :mod:`node.error_kinds`; no session sends the browser to the sign-in page;
  anything unexpected is logged and shown with the request id only.
* :func:`security_headers` (``on_response_prepare``): every response, a streamed download too, gets
  the security headers and its request id: a CSP without inline script or style,
  ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy:
  same-origin``, and ``no-store`` on everything but the static files.

Cookies are ``HttpOnly; Secure; SameSite=Strict; Path=/console/``. Browsers keep Secure cookies
from http://127.0.0.1 and http://localhost (secure contexts); anywhere else the console must be
reached over HTTPS (a reverse proxy in front of the local listener, see README).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from node.api.local_api import PRINCIPAL, REQUEST_ID
from node.config import Listener
from node.console.accounts import Accounts
from node.console.errors import BadForm, CsrfRefused, NoSuchPage, NotSignedIn
from node.console.wording import error_text
from node.documents.contract import DocumentServiceApi
from node.error_kinds import http_status_for
from node.errors import NodeError
from node.store.values import ConsoleSession
from pki.errors import GwxError

LOG = logging.getLogger("gwx.console")

PREFIX = "/console"
COOKIE_PATH = PREFIX + "/"
SESSION_COOKIE = "gwx_console"
PRE_COOKIE = "gwx_console_pre"  # the sign-in form's CSRF token, before there is a session
MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 32
PUBLIC_ROUTES = frozenset({"sign_in", "sign_in_post", "static", "no_such_page"})
MULTIPART_ROUTES = frozenset({"send_post"})  # their handlers check the CSRF token (node.console.send)

ACCOUNTS = web.AppKey("accounts", Accounts)
SERVICE = web.AppKey("service", DocumentServiceApi)
CLOCK = web.AppKey("clock", Callable)
HOSTS = web.AppKey("hosts", frozenset)  # the host names the console answers to; empty: any
TMP = web.AppKey("tmp", Path)  # the node's directory for bodies and attachments being shown
RENDER = web.AppKey("render", Any)  # (request, template, status, **context) -> web.Response
SESSION = web.RequestKey("console_session", ConsoleSession)
FORM = web.RequestKey("console_form", dict)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin"}


def set_cookie(response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, secure=True, samesite="Strict")


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=COOKIE_PATH, secure=True, httponly=True, samesite="Strict")


@web.middleware
async def pages(request: web.Request, handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except NotSignedIn as exc:
        response = _to_sign_in(request, exc)
    except GwxError as exc:
        response = error_page(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_page(request, NoSuchPage(f"no such page: {request.method} {request.path}")
                              if exc.status in (404, 405) else
                              BadForm("the request body is too large", code="CONSOLE_FORM_TOO_LARGE")
                              if exc.status == 413 else
                              BadForm(exc.reason or "bad request"))
    except Exception:
        LOG.exception("unexpected error in %s %s", request.method, request.path,
                      extra={"request_id": request.get(REQUEST_ID)})
        response = error_page(request, NodeError("internal error; the node's log has the details under this "
                                                 "request id", code="INTERNAL", request_id=request.get(REQUEST_ID)))
    return response


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The console's headers on every response (``on_response_prepare``: they are set just before the
    first byte goes out, so a streamed download gets them as well as a page)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    if request.get(REQUEST_ID):
        response.headers.setdefault("X-Request-Id", request[REQUEST_ID])


def error_page(request: web.Request, error: GwxError) -> web.Response:
    status = http_status_for(error)
    response = request.app[RENDER](request, "error.html", status, error=error, text=error_text(error),
                                   request_id=request.get(REQUEST_ID))
    response.headers["X-Gwx-Error"] = error.code
    if error.code in ("CONSOLE_FORM_TOO_LARGE", "CONSOLE_BAD_FORM"):
        response.force_close()  # the rest of the body was not read: the connection cannot be reused
    return response


def _to_sign_in(request: web.Request, error: NotSignedIn) -> web.StreamResponse:
    query = {"why": error.code}
    if request.method == "GET" and request.path != PREFIX + "/":
        query["next"] = request.path_qs
    response = see_other(f"{PREFIX}/sign-in?{urllib.parse.urlencode(query)}")
    clear_cookie(response, SESSION_COOKIE)
    response.headers["X-Gwx-Error"] = error.code
    return response


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site: no open redirect)."""
    # No control characters either: a CR or LF in a Location header would split the response.
    if (value and value.startswith(COOKIE_PATH) and "//" not in value and "\\" not in value
            and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)):
        return value
    return COOKIE_PATH


def allowed_hosts(listener: Listener) -> frozenset[str]:
    """The host names the console answers to: ``[local_api] hosts`` when given, else the listener's
    host and its ``public_url``'s (with the loopback names when it listens on loopback). A listener on
    every address (0.0.0.0, ::) with neither says nothing of its names: then any (see README)."""
    if listener.hosts:
        return frozenset(h.lower() for h in listener.hosts)
    names = set()
    if listener.public_url:
        names.add((urllib.parse.urlsplit(listener.public_url).hostname or "").lower())
    if listener.host in ("127.0.0.1", "::1", "localhost"):
        names |= {"127.0.0.1", "::1", "localhost"}
    elif listener.host not in ("", "0.0.0.0", "::"):
        names.add(listener.host.lower())
    elif not names:
        return frozenset()
    return frozenset(names - {""})


def check_host(request: web.Request) -> None:
    """The request names this node by one of its names: a page whose name was pointed at this node
    (DNS rebinding) sends its own name as Host and as Origin, which the Origin check alone lets by."""
    allowed = request.app[HOSTS]
    name = (urllib.parse.urlsplit("//" + request.host).hostname or "") if request.host else ""
    if allowed and name not in allowed:
        raise CsrfRefused(f"this node is not reached as {request.host[:80]!r}; nothing was done",
                          code="CONSOLE_BAD_ORIGIN")


@web.middleware
async def guard(request: web.Request, handler) -> web.StreamResponse:
    route = request.match_info.route.name
    check_host(request)
    multipart = request.method == "POST" and route in MULTIPART_ROUTES and request.content_type == "multipart/form-data"
    if request.method == "POST":
        check_origin(request)
        # A form with files is read by its handler, whose first part must be the CSRF token.
        request[FORM] = {} if multipart else await read_form(request)
    if route in PUBLIC_ROUTES:
        return await handler(request)
    session = await request.app[ACCOUNTS].session(request.cookies.get(SESSION_COOKIE))
    request[SESSION] = session
    request[PRINCIPAL] = request.app[ACCOUNTS].principal(session.user)
    if request.method == "POST" and not multipart and not same_token(request[FORM].get("csrf", ""), session.csrf_token):
        raise CsrfRefused("the form does not carry this session's CSRF token; nothing was done")
    return await handler(request)


def check_pre_session_token(request: web.Request) -> None:
    """The sign-in form: its ``csrf`` field must equal the pre-session cookie it was served with."""
    cookie = request.cookies.get(PRE_COOKIE, "")
    if not cookie or not same_token(request[FORM].get("csrf", ""), cookie):
        raise CsrfRefused("the sign-in form has expired or was not served by this node; nothing was done")


def same_token(given: str, expected: str) -> bool:
    """A CSRF token check in constant time, on bytes: ``hmac.compare_digest`` refuses a str that is not
    ASCII with a TypeError, and a forged token is a refusal, not an internal error."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def new_pre_session_token() -> str:
    return secrets.token_urlsafe(24)


def check_origin(request: web.Request) -> None:
    """A POST names this host as its Origin (or, without one, its Referer); neither is refused."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        raise CsrfRefused("the request says no Origin or Referer; nothing was done", code="CONSOLE_BAD_ORIGIN")
    if urllib.parse.urlsplit(source).netloc != request.host:
        raise CsrfRefused(f"the request comes from another site ({source[:80]}); nothing was done",
                          code="CONSOLE_BAD_ORIGIN")


async def read_form(request: web.Request) -> dict[str, str]:
    """An urlencoded form of at most :data:`MAX_FORM_BYTES`, each field once."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise BadForm(f"a form must be application/x-www-form-urlencoded, not {request.content_type}")
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise BadForm(f"the form is more than {MAX_FORM_BYTES} bytes", code="CONSOLE_FORM_TOO_LARGE")
    data = bytearray()
    while chunk := await request.content.read(MAX_FORM_BYTES + 1 - len(data)):
        data += chunk
        if len(data) > MAX_FORM_BYTES:
            raise BadForm(f"the form is more than {MAX_FORM_BYTES} bytes", code="CONSOLE_FORM_TOO_LARGE")
    try:
        pairs = urllib.parse.parse_qsl(bytes(data).decode("utf-8"), keep_blank_values=True,
                                       max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm(f"the form cannot be read: {exc}") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise BadForm(f"the form gives {name!r} more than once", field=name[:40])
        form[name] = value
    return form
