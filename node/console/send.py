"""The send page (发文): a form for the metadata, the body PDF and attachments, recipients picked from
the unit tree as 主送 or 抄送; sent through the document service's ``submit``, the same call as the
local API's ``POST /api/v1/documents``, so the metadata is checked by the same rules
(:func:`exchange_protocol.meta_json.parse_meta`) and refused with the same codes.

The form is multipart (it carries files): :mod:`node.console.security` checks its origin but leaves
the body unread; here the first part must be ``csrf`` with the session's token before any other part
is read. Files are streamed to the local API's upload directory under its caps (the helpers of
:mod:`node.api.upload`: one rule for attachment names and sizes) and removed afterwards, sent or
not. A refusal shows the form again, with what was typed, the reason in words and its code.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from exchange_protocol.meta_json import parse_meta
from node.api.local_api import PRINCIPAL, UPLOAD_DIR, UPLOAD_LIMITS
from node.api.upload import Submission, TooLarge, _attachment_name, _read_small, _stream_to_file
from node.console.errors import BadForm, CsrfRefused
from node.console.folders import KINDS, URGENCIES
from node.console.pages import clerk_only, doc_path
from node.console.security import CLOCK, FORM, RENDER, SERVICE, SESSION, same_token, see_other
from node.console.unit_tree import levels_of
from node.console.wording import error_text
from node.error_kinds import http_status_for
from pki.errors import GwxError

TEXT_FIELDS = ("kind", "title", "doc_number", "signers", "written_on", "urgency", "deadline", "printed_by",
               "printed_on")
LIST_FIELDS = ("to", "cc")
MAX_FIELD = 2000
MAX_RECIPIENTS = 5000
_DEADLINE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
UNITS = web.AppKey("units", Callable)  # () -> list[KnownUnit]
_dumps = functools.partial(json.dumps, ensure_ascii=False)


async def send_page(request: web.Request) -> web.Response:
    clerk_only(request)
    return _render(request, {}, None)


async def send(request: web.Request) -> web.Response:
    clerk_only(request)
    who = request[PRINCIPAL]
    fields: dict[str, Any] = {}
    submission = Submission()
    try:
        await _read(request, fields, submission)
        meta = _meta(fields, who.unit, request.app[CLOCK]())
        result = await request.app[SERVICE].submit(who, meta, submission.body, submission.attachments)
    except (CsrfRefused, TooLarge):
        raise  # a forged form or an oversized one: the typed page, not the form again
    except GwxError as exc:
        return _render(request, fields, exc, status=http_status_for(exc))
    finally:
        submission.cleanup()
    return see_other(f"{doc_path(result['doc_id'])}?done=sent")


async def check(request: web.Request) -> web.Response:
    """The metadata as typed so far, checked by the rules ``submit`` applies (``parse_meta``), for the
    send page's script: {"ok", "code", "message", "text", "field"}. Nothing is kept or sent."""
    clerk_only(request)
    form = request[FORM]
    fields: dict[str, Any] = {k: v.strip() for k, v in form.items() if k in TEXT_FIELDS}
    for name in LIST_FIELDS:  # the script sends each list as one comma-separated field
        fields[name] = [u for u in form.get(name, "").split(",") if u]
    try:
        now = request.app[CLOCK]()
        parse_meta(_meta(fields, request[PRINCIPAL].unit, now), now=now)
    except GwxError as exc:
        return web.json_response({"ok": False, "code": exc.code, "message": exc.message, "text": error_text(exc),
                                  "field": str(exc.details.get("field", ""))}, dumps=_dumps)
    return web.json_response({"ok": True}, dumps=_dumps)


def _render(request: web.Request, fields: dict[str, Any], error: GwxError | None, status: int = 200) -> web.Response:
    units = request.app[UNITS]()
    response = request.app[RENDER](request, "send.html", status, fields=fields, error=error,
                                   error_text=error_text(error) if error else "", units=units,
                                   levels=levels_of(units), kinds=KINDS, urgencies=URGENCIES)
    if error is not None:
        response.headers["X-Gwx-Error"] = error.code
    return response


async def _read(request: web.Request, fields: dict[str, Any], submission: Submission) -> None:
    if request.content_type != "multipart/form-data":
        raise BadForm(f"the send form is multipart/form-data, not {request.content_type}")
    limits = request.config_dict[UPLOAD_LIMITS]
    directory = request.config_dict[UPLOAD_DIR]
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if request.content_length is not None and request.content_length > limits.total:
        raise TooLarge(f"the form is more than {limits.total} bytes", limit=limits.total)
    try:
        reader = await request.multipart()
        first = True
        total = 0
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadForm("nested multipart parts are not accepted")
            name = part.name or ""
            if first:  # nothing is read or written before the form has shown this session's token
                token = (await _read_small(part, 200)).decode("utf-8", "replace") if name == "csrf" else ""
                if not same_token(token, request[SESSION].csrf_token):
                    raise CsrfRefused("the form does not carry this session's CSRF token; nothing was done")
                first = False
            elif name in TEXT_FIELDS or name in LIST_FIELDS:
                value = (await _read_small(part, MAX_FIELD)).decode("utf-8").strip()
                total += len(value)
                if name in LIST_FIELDS:
                    fields.setdefault(name, []).append(value)
                    if len(fields[name]) > MAX_RECIPIENTS:
                        raise BadForm(f"more than {MAX_RECIPIENTS} recipients", field=name)
                elif name in fields:
                    raise BadForm(f"the form gives {name!r} more than once", field=name)
                else:
                    fields[name] = value
            elif name == "body":
                if not part.filename:
                    await part.release()
                    continue
                if submission.body is not None:
                    raise BadForm("the form gives more than one body (正文)", field="body")
                submission.body, size = await _stream_to_file(part, directory, submission, limits.body, total,
                                                              limits.total)
                total += size
            elif name == "attachment":
                if not part.filename:  # the browser sends an empty part when no file was chosen
                    await part.release()
                    continue
                display = _attachment_name(part.filename, part.headers.get("Content-Disposition", ""))
                if any(n == display for n, _ in submission.attachments):
                    raise BadForm(f"two attachments are called {display!r}", field="attachment")
                path, size = await _stream_to_file(part, directory, submission, limits.attachment, total,
                                                   limits.total)
                total += size
                submission.attachments.append((display, path))
            else:
                raise BadForm(f"unknown field {name[:40]!r}", field=name[:40])
        if first:
            raise CsrfRefused("the form does not carry this session's CSRF token; nothing was done")
    except (ValueError, AssertionError, UnicodeDecodeError, HttpProcessingError) as exc:
        raise BadForm(f"the form cannot be read: {' '.join(str(exc).split())[:200]}") from None
    if submission.body is None:
        raise BadForm("choose the body (正文) PDF", field="body")


def _meta(fields: dict[str, Any], unit: str, now: dt.datetime) -> dict[str, Any]:
    """META.json from the form: what the clerk left empty is null (成文日期: ``now``'s day in Beijing);
    the clerk's unit issues it."""
    deadline = fields.get("deadline") or None
    if deadline is not None:
        if not _DEADLINE.fullmatch(deadline):
            raise BadForm("办理时限 is a date and a time", field="deadline")
        deadline = f"{deadline}:00+08:00"
    today = now.astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    return {"kind": fields.get("kind", ""), "title": fields.get("title", ""),
            "doc_number": fields.get("doc_number") or None, "issuers": [unit],
            "signers": [n.strip() for n in re.split(r"[、,，]", fields.get("signers", "")) if n.strip()],
            "to": fields.get("to", []), "cc": fields.get("cc", []),
            "written_on": fields.get("written_on") or today, "urgency": fields.get("urgency") or None,
            "classification": "非密", "deadline": deadline, "copy_number": None,
            "printed_by": fields.get("printed_by") or None, "printed_on": fields.get("printed_on") or None,
            "note": None, "attachments_note": None, "id": None}
