"""Where a message waits: the routing facts each node on its way holds about it, never its content.

``gwx track`` asks, for each recipient not yet delivered, where the envelope that carries its
document is. Each node answers from its own rows (:func:`stop_here`):

- ``drafted`` — here, not sealed yet: the destination's encryption certificate is not to be had;
- ``waiting`` — here, in the queue for the next hop (the row's state, attempts, last error and next
  attempt, and the next hop's own state: backing off or unreachable since when, after how many
  failures);
- ``handed-on`` — here, handed to the next hop at ``since`` (its custody receipt came back);
- ``given-up`` — here, bounced (refused for good or its retry window closed), with the reason;
- ``delivered`` — here, at its destination.

When a message was handed on to a node that is not its destination, the node that handed it asks
that node in turn (``GET /peer/v1/messages/{message_id}/whereabouts?depth=N`` over mutual TLS,
:meth:`Whereabouts.trace`), which answers the same way, so the answer is the chain of stops from
the origin to wherever the envelope is now. The depth is bounded by the hop limit (each node asks
one hop less deep), every question has a short timeout, and a node that cannot be asked — down,
too slow, refusing — is an ``unknown`` stop with the reason, never an error of the whole answer.

Who may ask a node about a message it holds for others: its origin, or a node between this one
and the origin on this node's route (the relay that handed it over and is asked in turn). They
already know the message id and where they sent it; any other node — even an authenticated member
of the network — learns nothing, not even whether the id exists (404, as for an id never seen).
Message ids are random (UUIDv7 with 74 random bits), so an id is not guessable either.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from exchange_protocol.errors import ProtocolError
from exchange_protocol.ids import parse_id
from node.context import NodeContext
from node.errors import ApiError, NotFound
from node.federation.transport import PeerClient
from node.store import PEER_UP, ErrorInfo, NodeStore, QueueEntry, UnreadableDraft
from node.store.queue_states import BOUNCED, CORRUPT, SENT
from pki.errors import GwxError

log = logging.getLogger("gwx.whereabouts")

ASK_SECONDS = 2.0  # per hop still to follow: a question that follows N hops gives up after (N + 1) × this
Stop = dict[str, Any]


def check_message_id(value: str) -> str:
    try:
        parse_id(value)
    except ProtocolError as exc:
        raise ApiError(f"that is not a message id: {exc.message}", code="API_BAD_MESSAGE_ID",
                       value=value[:80]) from None
    return value


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _error(info: ErrorInfo | None) -> dict[str, str] | None:
    return {"code": info.code, "message": info.message} if info else None


class Whereabouts:
    """One per node: answers for the messages it holds and follows them to the next hop."""

    def __init__(self, ctx: NodeContext, store: NodeStore, client: PeerClient) -> None:
        self.ctx = ctx
        self.store = store
        self.client = client

    async def stop_here(self, message_id: str) -> Stop | None:
        """What this node's rows say about ``message_id`` (None: it holds nothing about it)."""
        me, router = self.ctx.node_id, self.ctx.router
        draft = await self.store.drafts.get_draft(message_id)
        if draft is not None and not isinstance(draft, UnreadableDraft):
            destination = draft.header.destination_node
            hop = router.next_hop(destination)
            return {"node": me, "state": "drafted", "next_hop": hop, "destination": destination,
                    "since": _iso(draft.created_at), "next_hop_state": await self._hop_state(hop)}
        entry = await self.store.queue.get(message_id)
        if entry is not None:
            return await self._queued(entry)
        received = await self.store.messages.get_received(message_id)
        if received is not None and received.relayed_to is None:
            return {"node": me, "state": "delivered", "since": _iso(received.received_at)}
        return None

    async def _queued(self, entry: QueueEntry) -> Stop:
        stop: Stop = {"node": self.ctx.node_id, "next_hop": entry.destination, "attempts": entry.attempts,
                      "error": _error(entry.last_error)}
        if entry.state == SENT:
            return {**stop, "state": "handed-on", "since": _iso(entry.updated_at)}
        if entry.state in (BOUNCED, CORRUPT):
            return {**stop, "state": "given-up", "since": _iso(entry.updated_at)}
        return {**stop, "state": "waiting", "queue_state": entry.state, "since": _iso(entry.created_at),
                "next_attempt_at": _iso(entry.next_attempt_at),
                "next_hop_state": await self._hop_state(entry.destination)}

    async def _hop_state(self, hop: str) -> dict[str, Any] | None:
        """The next hop as this node's sender sees it, when it is not up (None: up, or never tried)."""
        peer = await self.store.peers.get_peer(hop)
        if peer is None or peer.state == PEER_UP:
            return None
        return {"state": peer.state, "since": _iso(peer.since), "failures": peer.failures,
                "retry_at": _iso(peer.retry_at), "error": _error(peer.last_error)}

    async def trace(self, message_id: str, depth: int) -> list[Stop]:
        """The stops of ``message_id`` from here on, following it at most ``depth`` hops further."""
        here = await self.stop_here(message_id)
        if here is None:
            return []
        stops = [here]
        hop = here.get("next_hop")
        if here["state"] != "handed-on" or depth < 1 or hop is None:
            return stops
        peer = self.ctx.router.peer(hop)
        if peer is None:
            return [*stops, {"node": hop, "state": "unknown", "error": {"code": "ROUTE_NO_PATH", "message":
                                                                         f"no address known for {hop}"}}]
        try:
            answer = await self.client.fetch_whereabouts(peer, message_id, depth - 1, ASK_SECONDS * (depth + 1))
            further = [s for s in answer["stops"] if isinstance(s, dict)]
        except GwxError as exc:
            log.info("cannot ask %s where %s is: %s", hop, message_id, exc, extra={"message_id": message_id})
            further = [{"node": hop, "state": "unknown", "error": {"code": exc.code, "message": exc.message}}]
        return [*stops, *(further or [{"node": hop, "state": "unknown",
                                       "error": {"code": "API_NOT_FOUND", "message": f"{hop} does not know it"}}])]

    async def answer_peer(self, peer_node: str, message_id: str, depth: int) -> dict[str, Any]:
        """The peer route's answer; 404 for a message this node does not hold for ``peer_node``."""
        received = await self.store.messages.get_received(message_id)
        if received is None or not (peer_node == received.origin_node
                                    or peer_node in self.ctx.router.path(received.origin_node)):
            raise NotFound(f"{self.ctx.node_id} holds no message {message_id} that {peer_node} may ask about",
                           message_id=message_id)
        depth = min(depth, self.ctx.config.limits.max_hops)
        return {"message_id": message_id, "stops": await self.trace(message_id, depth)}

    async def for_message(self, message_id: str, destination: str) -> dict[str, Any]:
        """Our own message for ``destination``: its stops, followed as far as our route to it is long
        (within the hop limit: so a node that hangs costs seconds, not the whole hop limit's), and
        one plain line."""
        depth = min(len(self.ctx.router.path(destination)), self.ctx.config.limits.max_hops)
        stops = await self.trace(message_id, depth)
        return {"message_id": message_id, "stops": stops, "line": describe(stops, self.ctx.node_id)}


def _when(value: Any) -> str:
    try:
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return "?"


def _where(node: Any, me: str) -> str:
    return "本节点" if node == me else str(node)


def describe(stops: list[Stop], me: str) -> str:
    """One plain line (Chinese, as ``gwx track`` prints) for the last stop that says something."""
    if not stops:
        return "去向不明：本节点没有这份报文的记录"
    last = stops[-1]
    where, hop, state = _where(last.get("node"), me), last.get("next_hop"), last.get("state")
    error = last.get("error") or {}
    reason = f"{error.get('code')}: {error.get('message')}" if error else ""
    hop_state = last.get("next_hop_state")
    unreachable = ""
    if hop_state:
        unreachable = f"{hop} 自 {_when(hop_state.get('since'))} 起无法连接"
        unreachable += f"，下次重试 {_when(hop_state.get('retry_at'))}" if hop_state.get("retry_at") else ""
    if state == "drafted":
        line = f"在{where}等待封装：尚未取得 {last.get('destination')} 的加密证书（自 {_when(last.get('since'))}"
        return line + (f"；{unreachable}）" if unreachable else "）")
    if state == "waiting":
        line = f"在{where}等待转交 {hop}（自 {_when(last.get('since'))}，已尝试 {last.get('attempts', 0)} 次"
        if unreachable:
            line += f"；{unreachable}"
        elif reason:
            line += f"；上次失败：{reason}"
        return line + "）"
    if state == "handed-on":
        return f"已由{where}于 {_when(last.get('since'))} 交给 {hop}"
    if state == "given-up":
        return f"在{where}被放弃：{reason}"
    if state == "delivered":
        return f"已到达 {last.get('node')}（{_when(last.get('since'))}）"
    previous = stops[-2] if len(stops) > 1 else None
    handed = f"已由{_where(previous.get('node'), me)}交给 {last.get('node')}，" if previous else ""
    return f"{handed}此后去向不明（无法询问 {last.get('node')}：{reason}）"


__all__ = ["ASK_SECONDS", "Whereabouts", "check_message_id", "describe"]
