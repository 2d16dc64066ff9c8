"""The console application: built once per node and mounted on the local API's listener at ``/console/``.

Why the local listener and not one of its own: it is already the node's door for clerks (the JSON
API, SOAP), bound to the address the operator chose for them, with its access log and metrics; the
console adds pages beside them and needs no second port to open or secure. The local API's token
check leaves ``/console/`` to the console (``SELF_AUTHENTICATED``): its users sign in with a
password and carry a session cookie (:mod:`node.console.security`).

Handlers are thin: they read the form, call the document service's contract
(:class:`node.documents.contract.DocumentServiceApi`) with the signed-in user as principal — the
same calls the local API makes, never the store — and render a template. Templates are Jinja2 with
autoescaping; pages are in Chinese; static files are a fixed set shipped in ``static/`` (no CDN).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from node.api.local_api import PRINCIPAL, SELF_AUTHENTICATED, UPLOAD_DIR
from node.console import body_pages, folders, pages, security, send, stats_page, supervision_page
from node.console.accounts import Accounts, SignedIn
from node.console.errors import NoSuchPage
from node.console.security import (
    ACCOUNTS,
    CLOCK,
    FORM,
    HOSTS,
    PRE_COOKIE,
    PREFIX,
    RENDER,
    SERVICE,
    SESSION,
    SESSION_COOKIE,
    TMP,
    clear_cookie,
    safe_next,
    see_other,
    set_cookie,
)
from node.console.unit_tree import KnownUnit
from node.console.wording import ERROR_TEXT, ROLE_LABEL, error_text
from node.documents.contract import DocumentServiceApi
from node.error_kinds import http_status_for
from pki.errors import GwxError

UNIT_NAME = web.AppKey("unit_name", Callable)
NODE_ID = web.AppKey("node_id", str)
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png", ".svg": "image/svg+xml"}
BEIJING = dt.timezone(dt.timedelta(hours=8))


def make_console_app(service: DocumentServiceApi, accounts: Accounts, *, node_id: str,
                     unit_name: Callable[[str], str | None], clock: Callable[[], dt.datetime],
                     tmp: Path, units: Callable[[], list[KnownUnit]] = list,
                     hosts: frozenset[str] = frozenset()) -> web.Application:
    """``units``: the units one can send to (:func:`node.console.unit_tree.known_units`); ``tmp``: the
    node's directory for the bodies and attachments being shown (cleared at start)."""
    app = web.Application(middlewares=[security.pages, security.guard])
    app.on_response_prepare.append(security.security_headers)
    app[TMP] = tmp
    app[HOSTS] = hosts
    app.on_startup.append(_clear_tmp)
    app[SELF_AUTHENTICATED] = True
    app[SERVICE] = service
    app[ACCOUNTS] = accounts
    app[UNIT_NAME] = unit_name
    app[NODE_ID] = node_id
    app[CLOCK] = clock
    app[send.UNITS] = units
    app[RENDER] = _renderer(unit_name)
    r = app.router
    r.add_get("/sign-in", _sign_in_page, name="sign_in", allow_head=False)
    r.add_post("/sign-in", _sign_in, name="sign_in_post")
    r.add_post("/sign-out", _sign_out, name="sign_out")
    r.add_get("/", _home, name="home", allow_head=False)
    r.add_get("/static/{name}", _static, name="static", allow_head=False)
    r.add_routes(pages.routes())
    r.add_routes(supervision_page.routes())
    r.add_routes(stats_page.routes())
    r.add_get("/send", send.send_page, name="send", allow_head=False)
    r.add_post("/send", send.send, name="send_post")
    r.add_post("/send/check", send.check, name="send_check")
    r.add_route("*", "/{tail:.*}", _no_such_page, name="no_such_page")  # last: a typed page, not the API's JSON
    return app


def mount_console(local_app: web.Application, service: DocumentServiceApi, accounts: Accounts, *, node_id: str,
                  unit_name: Callable[[str], str | None], clock: Callable[[], dt.datetime],
                  units: Callable[[], list[KnownUnit]] = list, hosts: frozenset[str] = frozenset()) -> None:
    """``hosts``: :func:`node.console.security.allowed_hosts` of the local listener (empty: any)."""
    local_app.add_subapp(PREFIX, make_console_app(service, accounts, node_id=node_id, unit_name=unit_name,
                                                  clock=clock, tmp=local_app[UPLOAD_DIR] / "console", units=units,
                                                  hosts=hosts))


async def _clear_tmp(app: web.Application) -> None:
    await asyncio.to_thread(body_pages.clear_leftovers, app[TMP])


def _renderer(unit_name: Callable[[str], str | None]):
    @functools.cache
    def environment():
        # Jinja is loaded with the first page, not at the node's start: most node processes (an
        # exchange's, the tests') never serve one, and loading it cost each ~17 ms of CPU.
        import jinja2

        env = jinja2.Environment(loader=jinja2.PackageLoader("node.console", "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                 lstrip_blocks=True)
        env.globals.update(role_label=ROLE_LABEL, prefix=PREFIX)
        env.filters["unit"] = lambda code: f"{unit_name(code) or code}" if code else ""
        env.filters["when"] = _beijing
        env.filters["doc_path"] = pages.doc_path
        env.globals.update(link=folders.link, folders=folders.FOLDERS, kinds=folders.KINDS,
                           urgencies=folders.URGENCIES)
        return env

    def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
        session = request.get(SESSION)
        principal = request.get(PRINCIPAL)
        page = environment().get_template(template).render(user=session.user if session else None,
                                                 supervised=principal.units if principal else (),
                                                 csrf=session.csrf_token if session else "",
                                                 node_id=request.app[NODE_ID], **context)
        return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
    return render


def _beijing(value: str | dt.datetime | None) -> str:
    """An ISO time as clerks read it: Beijing time to the minute."""
    if not value:
        return ""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return request.app[RENDER](request, template, status, **context)


# --- signing in and out ---------------------------------------------------------------------------
async def _sign_in_page(request: web.Request, *, error: GwxError | None = None, status: int = 200) -> web.Response:
    why = request.query.get("why", "")
    notice = ERROR_TEXT[why] if why in ("CONSOLE_SESSION_EXPIRED", "CONSOLE_SIGN_IN_NEEDED") else ""
    token = security.new_pre_session_token()
    response = render(request, "sign_in.html", status, pre_token=token, notice=notice,
                      error=error, error_text=error_text(error) if error else "",
                      next=safe_next(request.query.get("next")), login=request.get(FORM, {}).get("login", ""))
    set_cookie(response, PRE_COOKIE, token)
    return response


async def _sign_in(request: web.Request) -> web.Response:
    security.check_pre_session_token(request)
    form = request[FORM]
    try:
        signed_in: SignedIn = await request.app[ACCOUNTS].sign_in(form.get("login", ""), form.get("password", ""),
                                                                  client=request.remote or "")
    except GwxError as exc:
        if exc.code not in ("CONSOLE_SIGN_IN_REFUSED", "CONSOLE_ACCOUNT_LOCKED", "CONSOLE_ACCOUNT_DISABLED"):
            raise
        response = await _sign_in_page(request, error=exc, status=http_status_for(exc))
        response.headers["X-Gwx-Error"] = exc.code
        return response
    await request.app[ACCOUNTS].replaced(request.cookies.get(SESSION_COOKIE))
    response = see_other(safe_next(form.get("next")))
    set_cookie(response, SESSION_COOKIE, signed_in.cookie)
    clear_cookie(response, PRE_COOKIE)
    return response


async def _sign_out(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].sign_out(request[SESSION])
    response = see_other(f"{PREFIX}/sign-in")
    clear_cookie(response, SESSION_COOKIE)
    return response


# --- pages --------------------------------------------------------------------------------------------
async def _home(request: web.Request) -> web.Response:
    user = request[SESSION].user
    context: dict[str, Any] = {"pending": [], "readiness": None, "counts": None}
    if user.role == "clerk":
        context["pending"] = await request.app[SERVICE].inbox(request[PRINCIPAL], status="pending", limit=20)
        context["counts"] = await request.app[SERVICE].folder_counts(request[PRINCIPAL])
    elif user.role == "operator":
        context["readiness"] = await request.app[SERVICE].readiness()
    return render(request, "home.html", **context)


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    suffix = name[name.rfind("."):] if "." in name else ""
    # Only names of the shipped files: a name with a separator or dots in front is never looked up.
    if suffix not in STATIC_TYPES or "/" in name or "\\" in name or name.startswith("."):
        raise NoSuchPage(f"no static file {name[:80]}")
    try:
        body = resources.files("node.console").joinpath("static", name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NoSuchPage(f"no static file {name[:80]}") from None
    return web.Response(body=body, content_type=STATIC_TYPES[suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


async def _no_such_page(request: web.Request) -> web.Response:
    raise NoSuchPage(f"no such page: {request.method} {request.path}")
