"""The supervisor's 督办 list (``GET /console/supervision?state=&unit=&after=``, route ``supervision``).

A supervisor (督办人员) sees, for the units it supervises and no other
(:mod:`node.documents.supervised` decides the scope through the document service):

* 超期 (``late``, the default): those units' documents past their 办理时限 and not signed for, in
  red — in their grace (宽限期内) or already escalated (已督办) —, with how many working days late;
* 督办中 (``open``): the 督办 items this node holds about those units, not settled yet;
* 已办结 (``settled``): the items settled since — 签收, 退回, or the sender's 撤回 — by whom and when.

``unit`` narrows to one supervised unit (another unit is refused: 403 ``API_FORBIDDEN``); pages
follow ``after``. Only supervisors open it (``CONSOLE_WRONG_ROLE`` for clerks and operators).
"""

from __future__ import annotations

from aiohttp import web

from node.api.local_api import PRINCIPAL
from node.console.errors import BadFilter, WrongRole
from node.console.folders import known_filters
from node.console.security import RENDER, SERVICE, SESSION
from node.documents.supervised import STATES
from node.errors import ApiError
from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

PAGE = 50
PARAMS = ("state", "unit", "after")
STATE_LABEL = {"late": "超期", "open": "督办中", "settled": "已办结"}
SETTLED_AS = {"signed_for": "已签收", "returned": "已退回", "recalled": "发文单位已撤回"}


def routes() -> list[web.RouteDef]:
    return [web.get("/supervision", supervision_page, name="supervision", allow_head=False)]


def _query(request: web.Request) -> dict[str, str]:
    out = known_filters(request.query, PARAMS)
    if out.get("state", "late") not in STATES:
        raise BadFilter("filter 'state' has a value the console does not know", parameter="state")
    if "unit" in out:
        try:
            validate_unit_code(out["unit"])
        except InvalidUnitCode:
            raise BadFilter("filter 'unit' is not a unit code", parameter="unit") from None
    return out


async def supervision_page(request: web.Request) -> web.Response:
    user = request[SESSION].user
    if user.role != "supervisor":
        raise WrongRole(f"{user.login} is a {user.role}; this page is a supervisor's", role=user.role)
    query = _query(request)
    state = query.get("state", "late")
    try:
        page = await request.app[SERVICE].supervised(request[PRINCIPAL], state, unit=query.get("unit"),
                                                     limit=PAGE, after=query.get("after"))
    except ApiError as exc:
        if exc.details.get("parameter") != "after":
            raise
        raise BadFilter(exc.message, parameter="after") from None
    filters = {k: v for k, v in query.items() if k != "after"}
    return request.app[RENDER](request, "supervision.html", 200, state=state, items=page["items"],
                               units=page["units"], filters=filters, chosen_unit=query.get("unit", ""),
                               next=page["next"], state_label=STATE_LABEL, settled_as=SETTLED_AS)
