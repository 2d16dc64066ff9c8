"""What a supervisor (督办人员) sees of the units it supervises.

**The supervisor's list** (:func:`supervised`). A console user with the role ``supervisor`` carries
the units it supervises (``gwx user add --role supervisor --unit …``, on the principal as
``units``); it sees, for those units and no other:

* ``late`` — rows of those units hosted on this node past their 办理时限 and not settled (red),
  whether in their grace or already escalated (``escalated_at`` says), oldest deadline first, with
  how many working days late (the node's calendar: :func:`exchange_protocol.supervision.judge`);
* ``open`` / ``settled`` — the 督办 items this node holds about those units (escalated to a
  supervising unit hosted here), newest first, open or settled (签收, 退回 or 撤回 afterwards).

A unit hosted on another node shows only through the 督办 items that reached this node: its grace
days are that node's to see. Naming a unit outside the supervisor's scope is ``API_FORBIDDEN``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from exchange_protocol.errors import ProtocolError
from exchange_protocol.model import check_doc_id
from exchange_protocol.states import ReceiverStatus, is_settled
from node.api.auth import Forbidden, Principal
from node.errors import ApiError
from node.store import NodeStore
from node.store.supervision import LateRow, SupervisionItem

STATES = ("late", "open", "settled")
UNSETTLED = tuple(s.value for s in ReceiverStatus if not is_settled(s))
MAX_PAGE = 500
_LATE_CURSOR = re.compile(r"([0-9T:+.\-]{19,40})~([^~]{1,100})~([0-9A-Z]{18})")


def supervised_units(who: Principal, unit: str | None = None) -> tuple[str, ...]:
    """The units ``who`` (a supervisor) may see; ``unit`` one of them, or another: API_FORBIDDEN."""
    who.require_role("supervisor")
    if not who.units:
        raise Forbidden(f"{who.name} supervises no unit")
    if unit is None:
        return who.units
    if unit not in who.units:
        raise Forbidden(f"{who.name} does not supervise unit {unit}", unit=unit)
    return (unit,)


def page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(f"limit must be 1 to {MAX_PAGE}", code="API_BAD_PARAMETER", parameter="limit")
    return limit


def late_cursor(row: dict[str, Any]) -> str:
    return f"{row['deadline']}~{row['doc_id']}~{row['unit']}"


def _parse_late_cursor(after: str) -> tuple[dt.datetime, str, str]:
    match = _LATE_CURSOR.fullmatch(after)
    try:
        if match is None:
            raise ValueError(after)
        return dt.datetime.fromisoformat(match[1]), check_doc_id(match[2], "after"), match[3]
    except (ValueError, ProtocolError):
        raise ApiError("after is not a cursor this list gave", code="API_BAD_PARAMETER", parameter="after") from None


def _id_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit() or len(after) > 18:
        raise ApiError("after is not a cursor this list gave", code="API_BAD_PARAMETER", parameter="after")
    return int(after)


async def supervised(store: NodeStore, who: Principal, state: str, now: dt.datetime, *,
                     late_view: Callable[[LateRow], dict[str, Any]],
                     item_view: Callable[[SupervisionItem], dict[str, Any]], unit: str | None = None,
                     limit: int = 50, after: str | None = None) -> dict[str, Any]:
    """{"state", "units", "items", "next"}: one page of the supervisor's list in ``state``."""
    units = supervised_units(who, unit)
    if state not in STATES:
        raise ApiError(f"state must be one of {', '.join(STATES)}", code="API_BAD_PARAMETER", parameter="state")
    limit = page_size(limit)
    if state == "late":
        rows = await store.supervision.overdue_rows(units, now, UNSETTLED, limit=limit,
                                                    after=_parse_late_cursor(after) if after else None)
        items = [late_view(r) for r in rows]
        nxt = late_cursor(items[-1]) if len(items) == limit else None
    else:
        found = await store.supervision.items_of_units(units, settled=state == "settled", limit=limit,
                                                       before_id=_id_cursor(after))
        items = [item_view(i) for i in found]
        nxt = str(found[-1].id) if len(found) == limit else None
    return {"state": state, "units": list(units), "items": items, "next": nxt}
