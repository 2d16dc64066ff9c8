"""The clerk's pages: the folders (收文, 发文) and the document page with its acts.

Each handler reads what the request names, calls the document service's contract as the signed-in
user (:data:`node.api.local_api.PRINCIPAL`, set by :mod:`node.console.security`) and renders. What
a clerk may see or do is the service's decision: another unit's document is 404, as through the
API, so a guessed id tells nothing. An act (签收, 退回 with its reason, 登记, 催办, 撤回) is a POST
whose form :mod:`node.console.security` has already checked (CSRF, origin, size); afterwards the
browser is sent back to the document page (303) — or to the track page (:mod:`node.console.track`)
when the form says ``back=track`` — which says what was done; 归档 answers with the archive package itself,
downloaded. 撤回 of every unit not yet signed (no ``unit``) cannot be undone: the track page's button
opens ``GET /console/doc/{id}/recall``, which asks, and only its form (``confirm=all``) does it; a
post without ``confirm`` is refused.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from aiohttp import web

from exchange_protocol.errors import ProtocolError
from exchange_protocol.model import check_doc_id
from node.api.local_api import PRINCIPAL
from node.console import body_pages, folders, track
from node.console.errors import BadForm, NoSuchPage, WrongRole
from node.console.security import FORM, RENDER, SERVICE, SESSION, TMP, see_other
from node.console.wording import report_lines
from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

# A sent document's page lists its first units; the track page has them all, filtered and paged.
DOCUMENT_PAGE_RECIPIENTS = 50
DONE = {"sign_for": "已签收。", "return": "已退回，退回理由已告知发文单位。", "register": "已登记。",
        "urge": "已催办。", "recall": "已撤回。", "sent": "已盖章发送。"}


def routes() -> list[web.RouteDef]:
    def with_service(handler):
        async def bound(request: web.Request) -> web.StreamResponse:
            clerk_only(request)
            return await handler(request, request.app[SERVICE])
        bound.__name__ = handler.__name__
        return bound

    return [
        web.get("/inbox", with_service(_inbox), name="inbox", allow_head=False),
        web.get("/outbox", with_service(_outbox), name="outbox", allow_head=False),
        web.get("/doc/{doc_id}", with_service(_document), name="document", allow_head=False),
        web.get("/doc/{doc_id}/page/{number:[0-9]{1,3}}.png", with_service(_page), name="page", allow_head=False),
        web.get("/doc/{doc_id}/attachment", with_service(_attachment), name="attachment", allow_head=False),
        web.get("/doc/{doc_id}/body.ofd", with_service(_ofd_body), name="ofd_body", allow_head=False),
        web.get("/doc/{doc_id}/track", with_service(_track), name="track", allow_head=False),
        web.get("/doc/{doc_id}/recall", with_service(_recall_confirm), name="recall_confirm", allow_head=False),
        *[web.post(f"/doc/{{doc_id}}/{act}", with_service(_act(act)), name=f"act_{act.replace('-', '_')}")
          for act in ("sign-for", "return", "register", "urge", "recall")],
        web.post("/doc/{doc_id}/archive", with_service(_archive), name="act_archive"),  # 一键归档 (node.archive)
    ]


def render(request: web.Request, template: str, **context) -> web.Response:
    return request.app[RENDER](request, template, 200, **context)


def clerk_only(request: web.Request) -> None:
    user = request[SESSION].user
    if user.role != "clerk":
        raise WrongRole(f"{user.login} is a {user.role}; this page is a clerk's", role=user.role)


def _doc_id(request: web.Request) -> str:
    value = request.match_info["doc_id"]
    try:
        return check_doc_id(value, "doc_id")
    except ProtocolError:
        raise NoSuchPage(f"no document {value[:80]!r}") from None


def doc_path(doc_id: str) -> str:
    return f"/console/doc/{urllib.parse.quote(doc_id, safe='')}"


async def _inbox(request: web.Request, service) -> web.Response:
    context = await folders.received(service, request[PRINCIPAL], request.query)
    return render(request, "inbox.html", **context)


async def _outbox(request: web.Request, service) -> web.Response:
    context = await folders.sent(service, request[PRINCIPAL], request.query)
    return render(request, "outbox.html", **context)


async def _document(request: web.Request, service) -> web.Response:
    doc_id = _doc_id(request)
    who = request[PRINCIPAL]
    shown = await service.show(who, doc_id, recipients=False)
    received = "verification" in shown
    listed = total = 0
    if not received:  # the first units here; all of them (3,600 for a wide 通知) a page at a time on the track page
        first = await service.track_page(who, doc_id, limit=DOCUMENT_PAGE_RECIPIENTS)
        shown["recipients"] = first["recipients"]
        listed, total = len(first["recipients"]), sum(first["doc"]["counts"].values())
    pages = total_pages = 0
    ofd = False
    if not received or shown["status"] != "recalled":
        info = await body_pages.body_info(await service.package_path(who, doc_id), request.app[TMP])
        pages, total_pages, ofd = info.pages, info.total, info.ofd
    report = shown.get("verification") or {}
    return render(
        request, "document.html", doc=shown, doc_id=doc_id, received=received, pages=pages, ofd=ofd,
        total_pages=total_pages, listed=listed, total=total,
        report=report, lines=report_lines(report), done=DONE.get(request.query.get("done", ""), ""),
        path=doc_path(doc_id))


async def _track(request: web.Request, service) -> web.Response:
    return await track.track_page(request, _doc_id(request))


async def _recall_confirm(request: web.Request, service) -> web.Response:
    return await track.recall_confirm_page(request, _doc_id(request))


async def _page(request: web.Request, service) -> web.Response:
    doc_id = _doc_id(request)
    number = int(request.match_info["number"])
    png = await body_pages.page_png(await service.package_path(request[PRINCIPAL], doc_id), number, request.app[TMP])
    if png is None:
        raise NoSuchPage(f"the body of {doc_id} has no page {number}")
    return web.Response(body=png, content_type="image/png")


async def _attachment(request: web.Request, service) -> web.StreamResponse:
    doc_id = _doc_id(request)
    who = request[PRINCIPAL]
    if list(request.query) != ["name"]:
        raise NoSuchPage("an attachment is asked for by ?name= alone")
    shown = await service.show(who, doc_id)
    listed = [a["name"] for a in shown.get("attachments", [])]
    async with body_pages.attachment_file(await service.package_path(who, doc_id), request.query["name"],
                                          listed, request.app[TMP]) as path:
        return await _download(request, path, "application/octet-stream", request.query["name"])


async def _ofd_body(request: web.Request, service) -> web.StreamResponse:
    """An OFD 正文 as a download (the console does not draw OFD: see node.console.body_pages)."""
    doc_id = _doc_id(request)
    package = await service.package_path(request[PRINCIPAL], doc_id)
    async with body_pages.body_file(package, request.app[TMP]) as path:
        if path.suffix != ".ofd":
            raise NoSuchPage(f"the body of {doc_id} is not an OFD")
        return await _download(request, path, "application/ofd", f"{doc_id}.ofd")


async def _download(request: web.Request, path: Path, content_type: str, filename: str) -> web.StreamResponse:
    """A file of the package's, sent as a download named ``filename``, streamed (never whole in memory)."""
    response = web.StreamResponse(headers={
        "Content-Type": content_type,
        "Content-Disposition": f"attachment; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"})
    response.content_length = path.stat().st_size
    await response.prepare(request)
    with open(path, "rb") as f:
        while chunk := f.read(256 * 1024):
            await response.write(chunk)
    await response.write_eof()
    return response


def _act(act: str):
    async def handler(request: web.Request, service) -> web.Response:
        doc_id = _doc_id(request)
        who = request[PRINCIPAL]
        form = request[FORM]
        if act == "sign-for":
            await service.sign_for(who, doc_id)
        elif act == "register":
            await service.register(who, doc_id)
        elif act == "return":
            reason = form.get("reason", "")
            if not reason.strip():
                raise BadForm("退回 needs a reason (退回理由); nothing was done", field="reason")
            await service.return_document(who, doc_id, reason)
        else:
            units = [_unit(form["unit"])] if form.get("unit") else None
            if act == "recall" and units is None and form.get("confirm") != "all":
                # 撤回 of every unit not yet signed cannot be undone: only from its confirmation page
                raise BadForm("撤回 of every unit not yet signed is confirmed on its own page; nothing was done",
                              field="confirm")
            await (service.urge if act == "urge" else service.recall)(who, doc_id, units)
        # The track page's buttons come back to it (a fixed choice: never a URL from the form).
        back = track.track_path(doc_id) if form.get("back") == "track" else doc_path(doc_id)
        return see_other(f"{back}?done={act.replace('-', '_')}")
    handler.__name__ = f"_act_{act.replace('-', '_')}"
    return handler


async def _archive(request: web.Request, service) -> web.StreamResponse:
    """一键归档: the archive package as a download (``DOC_ID.gwxa``); an unfinished document without a
    reason is refused on the error page like any act (ARCHIVE_DOC_NOT_FINISHED)."""
    doc_id = _doc_id(request)
    form = request[FORM]
    side = form.get("side", "")
    if side not in ("outbox", "inbox"):
        raise BadForm("归档 needs side=outbox or side=inbox", field="side")
    reason = form.get("reason", "").strip() or None
    built, summary = await service.archive(request[PRINCIPAL], side, doc_id, reason)
    try:
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f"attachment; filename*=UTF-8''{urllib.parse.quote(doc_id, safe='')}.gwxa",
            "X-Gwx-Archive-Sha256": summary["sha256"]})
        response.content_length = built.size
        await response.prepare(request)
        with open(built.path, "rb") as f:
            while chunk := f.read(256 * 1024):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        built.path.unlink(missing_ok=True)


def _unit(value: str) -> str:
    try:
        return validate_unit_code(value)
    except InvalidUnitCode as exc:
        raise BadForm(f"unit: {exc.message}", field="unit") from None
