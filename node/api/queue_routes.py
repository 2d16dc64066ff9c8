"""The local API's send-queue routes for operators (``gwx node queue …``, :mod:`node.federation.queue_admin`).

* ``GET /api/v1/node/queue?destination=&state=&after=&limit=`` — the rows, oldest first (``state``
  may repeat; default: the unfinished ones);
* ``POST /api/v1/node/queue/{message_id}/{hold|release|retry|purge}`` — body ``{"reason": …}`` (hold:
  optional; purge: required, the sender is told it); answers the row as it is now;
* ``POST /api/v1/node/queues/{destination}/retry`` — every waiting row for that next hop due now.

The handlers only translate HTTP; what is legal is the store's queue table, who may is the service's.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from aiohttp import web

from node.errors import ApiError
from node.federation.whereabouts import check_message_id
from pki.certificates import NODE_ID_RE

ACTIONS = ("hold", "release", "retry", "purge")
OPERATOR = ("operator",)
MAX_LIMIT = 500
MAX_REASON = 500
_dumps = functools.partial(json.dumps, ensure_ascii=False)


@dataclass(frozen=True)
class AppKeys:
    service: web.AppKey
    principal: web.RequestKey
    json_body: object  # local_api.json_body: the strict JSON body reader


def queue_roles() -> dict[str, tuple[str, ...]]:
    return {"/api/v1/node/queue": OPERATOR, "/api/v1/node/queues/{destination}/retry": OPERATOR,
            **{f"/api/v1/node/queue/{{message_id}}/{action}": OPERATOR for action in ACTIONS}}


def add_queue_routes(app: web.Application, keys: AppKeys) -> None:
    app.router.add_get("/api/v1/node/queue", functools.partial(_list, keys), allow_head=False)
    for action in ACTIONS:
        app.router.add_post(f"/api/v1/node/queue/{{message_id}}/{action}", functools.partial(_act, keys, action))
    app.router.add_post("/api/v1/node/queues/{destination}/retry", functools.partial(_retry_destination, keys))


def _bad(name: str, message: str) -> ApiError:
    return ApiError(message, code="API_BAD_PARAMETER", parameter=name)


def _node_id(value: str) -> str:
    if not NODE_ID_RE.fullmatch(value):
        raise _bad("destination", f"that is not a node id: {value[:80]!r}")
    return value


async def _list(keys: AppKeys, request: web.Request) -> web.Response:
    query = request.query
    allowed = ("destination", "state", "after", "limit")
    for name in query:
        if name not in allowed:
            raise _bad(name, f"unknown query parameter {name!r}; known: {', '.join(allowed)}")
        if name != "state" and len(query.getall(name)) > 1:
            raise _bad(name, f"query parameter {name!r} is given more than once")
    limit = 100
    if "limit" in query:
        text = query["limit"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise _bad("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(text)
    destination = _node_id(query["destination"]) if "destination" in query else None
    after = check_message_id(query["after"]) if "after" in query else None
    rows = await request.app[keys.service].queue_list(request[keys.principal], destination=destination,
                                                      states=query.getall("state", []) or None, after=after,
                                                      limit=limit)
    return web.json_response(rows, dumps=_dumps)


async def _act(keys: AppKeys, action: str, request: web.Request) -> web.Response:
    message_id = check_message_id(request.match_info["message_id"])
    body = await keys.json_body(request, ("reason",) if action in ("hold", "purge") else ())  # type: ignore[operator]
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ApiError(f"reason must be text of at most {MAX_REASON} characters", code="API_BAD_FIELD", field="reason")
    row = await request.app[keys.service].queue_action(request[keys.principal], action, message_id, reason)
    return web.json_response(row, dumps=_dumps)


async def _retry_destination(keys: AppKeys, request: web.Request) -> web.Response:
    destination = _node_id(request.match_info["destination"])
    await keys.json_body(request, ())  # type: ignore[operator]
    result = await request.app[keys.service].queue_retry_destination(request[keys.principal], destination)
    return web.json_response(result, dumps=_dumps)
