"""The clerk's folders: counts on the home page, and the received (收文) and sent (发文) lists.

Folders are views of the unit's inbox by status — 待签收, 已签收, 已登记, 已退回, 已撤回 — and 超期
(past the 办理时限, not settled: red everywhere), plus 发文 (what the unit sent, each recipient's
status beside it). A list can be narrowed by 文种, 紧急程度, dates (Beijing days, inclusive), the
sending unit (click a unit's name) and a search in the title and 发文字号. Every parameter is checked
(:func:`filters_of`): a bad one is a typed error page (``CONSOLE_BAD_FILTER``), never ignored.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from typing import Any

from exchange_protocol.kinds import Kind, Urgency
from exchange_protocol.states import SenderStatus
from node.api.auth import Principal
from node.console.errors import BadFilter
from node.documents.contract import DocumentServiceApi
from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

BEIJING = dt.timezone(dt.timedelta(hours=8))
PAGE = 30
LISTED_UNITS = 10  # a sent document to at most this many units lists them in 发文; more: see its track page
MAX_SEARCH = 100
# folder → (label, what it asks the inbox for)
FOLDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "pending": ("待签收", {"status": "pending"}),
    "signed_for": ("已签收", {"status": "signed_for"}),
    "registered": ("已登记", {"status": "registered"}),
    "returned": ("已退回", {"status": "returned"}),
    "recalled": ("已撤回", {"status": "recalled"}),
    "overdue": ("超期", {"overdue": True}),
    "all": ("全部收文", {}),
}
KINDS = tuple(k.value for k in Kind)
URGENCIES = tuple(u.value for u in Urgency)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURSOR = re.compile(r"[0-9]{1,18}")
INBOX_PARAMS = ("folder", "kind", "urgency", "from", "since", "until", "q", "after")
OUTBOX_PARAMS = ("kind", "to", "since", "until", "q", "after")


def known_filters(query, allowed: tuple[str, ...]) -> dict[str, str]:
    """A console page's query parameters, each one the page knows (``allowed``) and given once, their
    values stripped (empty ones dropped): every list and report page of the console reads its own so."""
    out: dict[str, str] = {}
    for name in query:
        if name not in allowed:
            raise BadFilter(f"unknown filter {name!r}", parameter=name[:40])
        if len(query.getall(name)) > 1:
            raise BadFilter(f"filter {name!r} is given more than once", parameter=name)
        value = query[name].strip()
        if value:
            out[name] = value
    return out


def filters_of(query, allowed: tuple[str, ...]) -> dict[str, str]:
    """The list's query parameters, each known, given once and well-formed (empty ones dropped)."""
    out = known_filters(query, allowed)
    checks = {"folder": lambda v: v in FOLDERS, "kind": lambda v: v in KINDS, "urgency": lambda v: v in URGENCIES,
              "since": _DATE.fullmatch, "until": _DATE.fullmatch, "after": _CURSOR.fullmatch,
              "q": lambda v: len(v) <= MAX_SEARCH, "from": _unit_ok, "to": _unit_ok}
    for name, value in out.items():
        if not checks[name](value):
            raise BadFilter(f"filter {name!r} has a value the console does not know", parameter=name)
    for name in ("since", "until"):
        if name in out:
            try:
                dt.date.fromisoformat(out[name])
            except ValueError:
                raise BadFilter(f"filter {name!r} is not a date", parameter=name) from None
    return out


def _unit_ok(value: str) -> bool:
    try:
        validate_unit_code(value)
    except InvalidUnitCode:
        return False
    return True


def _day_start(text: str | None, days: int = 0) -> dt.datetime | None:
    """A Beijing date as the UTC instant its day starts (``days`` later)."""
    if text is None:
        return None
    day = dt.date.fromisoformat(text) + dt.timedelta(days=days)
    return dt.datetime(day.year, day.month, day.day, tzinfo=BEIJING).astimezone(dt.UTC)


def _common(f: dict[str, str]) -> dict[str, Any]:
    return {"kind": f.get("kind"), "since": _day_start(f.get("since")), "until": _day_start(f.get("until"), 1),
            "search": f.get("q"), "after": f.get("after"), "limit": PAGE}


def link(path: str, filters: dict[str, str], **changes: str | None) -> str:
    """``path`` with the current filters, some changed (None drops one); paging restarts."""
    merged = {k: v for k, v in {**filters, **changes}.items() if v is not None and k != "after"}
    if "after" in changes and changes["after"] is not None:
        merged["after"] = changes["after"]
    return path + ("?" + urllib.parse.urlencode(merged) if merged else "")


async def received(service: DocumentServiceApi, who: Principal, query) -> dict[str, Any]:
    """The 收文 list's page: a folder of the inbox, narrowed by the filters, and the folders' counts."""
    f = filters_of(query, INBOX_PARAMS)
    folder = f.get("folder", "pending")
    items = await service.inbox(who, **FOLDERS[folder][1], unit=f.get("from"), urgency=f.get("urgency"), **_common(f))
    counts = await service.folder_counts(who)
    return {"filters": f, "folder": folder, "items": items, "counts": counts,
            "next": items[-1]["id"] if len(items) == PAGE else None}


async def sent(service: DocumentServiceApi, who: Principal, query) -> dict[str, Any]:
    """The 发文 list's page, each document with its counts by status, and its recipients' status when
    it has at most :data:`LISTED_UNITS` of them (a page of them, never the whole list otherwise)."""
    f = filters_of(query, OUTBOX_PARAMS)
    items = await service.outbox(who, unit=f.get("to"), **_common(f))  # with the store's counts by status
    tracks = []
    for doc in items:
        total = sum(doc["counts"].values())
        # A few units are listed here; a 通知 to 3,600 is its counts and the link to its track page.
        listed = (await service.track_page(who, doc["doc_id"], limit=LISTED_UNITS))["recipients"] \
            if total <= LISTED_UNITS else None
        tracks.append({"doc": doc, "recipients": listed, "total": total,
                       "signed": doc["counts"].get(SenderStatus.SIGNED_FOR.value, 0)})
    counts = await service.folder_counts(who)
    return {"filters": f, "folder": "outbox", "items": tracks, "counts": counts,
            "next": items[-1]["id"] if len(items) == PAGE else None}
