"""The operator's hands on the send queue of a running node: list, hold, release, retry now, purge.

Postfix's ``postqueue -p``, ``postsuper -h/-H``, ``postqueue -i`` and ``postsuper -d`` — through the
running node (the local API's operator routes, ``gwx node queue …``), not beside it: only the node
can wake the destination's loop so a released or retried envelope leaves at once, cut a peer's
backoff short, and seal the bounce a purge owes the sender. Every move is the store's
(:mod:`node.store.queue_states` says which are legal) and is one audit event with the operator
as its actor: ``queue.hold``, ``queue.release``, ``queue.retry``, ``queue.bounce`` (code
``QUEUE_PURGED``).

* **hold** parks a row (queued, deferred or in flight; a receipt for one already on the wire still
  counts). **release** lets it go, due now.
* **retry** makes a waiting row — or every waiting row of a destination — due now, and ends that
  destination's backoff: the operator who knows the peer is back need not wait for the next try.
* **purge** gives up on a row at rest (queued, deferred or held) as a bounce does, with the reason
  the operator gives: the sending unit's recipients turn 发送失败 (failed) with ``QUEUE_PURGED`` and the
  reason (the clerk sees it in the track), a relayed message's origin gets a bounce notice. An
  envelope in flight is refused (hold it first): what is on the wire may yet be delivered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from exchange_protocol.envelope import format_time
from node.api.auth import Principal
from node.errors import ApiError, QueuePurged, StoreConflict, StoreNotFound
from node.store import ErrorInfo, QueueEntry
from node.store.queue_states import ACTIVE, BOUNCED, CORRUPT, DEFERRED, HOLD, INCOMING, QUEUE_STATES, SENT

if TYPE_CHECKING:
    from node.federation.outbound import Outbound

MAX_REASON = 500

# Why an operator's move does not apply, in the words of `gwx node queue list` (the store says only the state).
_IS = {INCOMING: "waiting (never tried)", DEFERRED: "waiting for its next try", ACTIVE: "being sent right now",
       HOLD: "already on hold", SENT: "already sent (the next hop signed its receipt)",
       BOUNCED: "given up (bounced)", CORRUPT: "corrupt (its stored envelope is missing or altered)"}
_ONLY = {"hold": "only a waiting message or one being sent can be held",
         "release": "only a held message can be released (gwx node queue hold parks one)",
         "retry": "only a waiting message can be retried (release a held one)"}


def _time(value: dt.datetime | None) -> str | None:
    return format_time(value) if value is not None else None


@contextlib.contextmanager
def _said(action: str, message_id: str | None) -> Iterator[None]:
    """The store's refusal of an operator's move (the row is in a state the move does not leave),
    said as the operator sees the row: what it is, and what the move needs."""
    try:
        yield
    except StoreConflict as exc:
        state = exc.details.get("state")
        if message_id is None or state not in _IS:
            raise
        raise StoreConflict(f"message {message_id} is {_IS[state]}: {_ONLY[action]}", message_id=message_id,
                            state=state, action=action) from None


class QueueAdmin:
    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound
        self.store = outbound.store

    async def list(self, *, destination: str | None = None, states: list[str] | None = None,
                   after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Unfinished rows (or those of ``states``) oldest first, each with the 公文标识 it carries when
        it is our own message; ``after``: the message id of the previous page's last row."""
        for state in states or ():
            if state not in QUEUE_STATES:
                raise ApiError(f"no queue state {state!r}; the states are {', '.join(QUEUE_STATES)}",
                               code="API_BAD_PARAMETER", parameter="state")
        if after is not None:
            await self.entry(after)
        rows = await self.store.queue.entries(destination=destination, states=states, after=after, limit=limit)
        return [await self.view(e) for e in rows]

    async def view(self, e: QueueEntry) -> dict[str, Any]:
        link = await self.store.links.link(e.message_id)
        return {"message_id": e.message_id, "destination": e.destination, "type": e.type, "state": e.state,
                "attempts": e.attempts, "size": e.size, "doc_id": link.doc_id if link else None,
                "created_at": _time(e.created_at), "next_attempt_at": _time(e.next_attempt_at),
                "expires_at": _time(e.expires_at),
                "last_error": {"code": e.last_error.code, "message": e.last_error.message} if e.last_error else None}

    async def entry(self, message_id: str) -> QueueEntry:
        entry = await self.store.queue.get(message_id)
        if entry is None:
            raise StoreNotFound("no such message in the send queue", message_id=message_id)
        return entry

    async def hold(self, message_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        with _said("hold", message_id):
            await self.store.queue.hold(message_id, actor=actor, reason=reason[:MAX_REASON])
        return await self.view(await self.entry(message_id))

    async def release(self, message_id: str, *, actor: str) -> dict[str, Any]:
        with _said("release", message_id):
            await self.store.queue.release(message_id, actor=actor)
        entry = await self.entry(message_id)
        self.outbound.wake_hop(entry.destination)
        return await self.view(entry)

    async def retry(self, *, actor: str, message_id: str | None = None,
                    destination: str | None = None) -> list[str]:
        """Due now, the destination's backoff ended, its loop woken; returns the ids made due."""
        if message_id is not None:
            destination = (await self.entry(message_id)).destination
        assert destination is not None
        with _said("retry", message_id):
            ids = await self.store.queue.retry_now(actor=actor, message_id=message_id,
                                                   destination=None if message_id else destination)
        queue = self.outbound.queues.get(destination)
        if queue is not None:
            await queue.limiter.try_now()
        self.outbound.wake_hop(destination)
        return ids

    async def purge(self, message_id: str, *, actor: str, reason: str) -> dict[str, Any]:
        """Give up on a row at rest and tell its sender (a bounce with ``QUEUE_PURGED``)."""
        entry = await self.entry(message_id)
        if entry.state == ACTIVE:
            raise StoreConflict("the message is being sent right now; hold it first (gwx node queue hold), "
                                "then purge it", message_id=message_id, state=entry.state, action="purge")
        error = QueuePurged(f"taken out of the send queue by {actor.removeprefix('operator:')}: "
                            f"{reason[:MAX_REASON]}")
        # The destination's own sender bounces it, as when its retry window closes (one place decides
        # what a bounce tells whom); one sent or bounced meanwhile raises StoreConflict there.
        await self.outbound.sender_for(entry.destination).bounce(entry, ErrorInfo.of(error), actor=actor)
        return await self.view(await self.entry(message_id))



class QueueOperations:
    """The service contract's queue methods (:class:`node.documents.contract.DocumentServiceApi`):
    operators only, the token's person the actor of every audit event."""

    outbound: Outbound

    @property
    def _queue_admin(self) -> QueueAdmin:
        admin = self.__dict__.get("_admin")
        if admin is None:
            admin = self.__dict__["_admin"] = QueueAdmin(self.outbound)
        return admin

    async def queue_list(self, who: Principal, *, destination: str | None = None, states: list[str] | None = None,
                         after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        who.require_role("operator")
        return await self._queue_admin.list(destination=destination, states=states, after=after, limit=limit)

    async def queue_action(self, who: Principal, action: str, message_id: str, reason: str = "") -> dict[str, Any]:
        """``hold`` (with an optional reason), ``release``, ``retry`` or ``purge`` (a reason required)."""
        who.require_role("operator")
        admin, actor = self._queue_admin, f"operator:{who.name}"
        if action == "hold":
            return await admin.hold(message_id, actor=actor, reason=reason)
        if action == "release":
            return await admin.release(message_id, actor=actor)
        if action == "retry":
            await admin.retry(actor=actor, message_id=message_id)
            return await admin.view(await admin.entry(message_id))
        if action == "purge":
            if not reason.strip():
                raise ApiError("a purge needs a reason: the sender is told it", code="API_BAD_FIELD", field="reason")
            return await admin.purge(message_id, actor=actor, reason=reason.strip())
        raise ApiError(f"no queue action {action!r}", code="API_BAD_PARAMETER", action=action)

    async def queue_retry_destination(self, who: Principal, destination: str) -> dict[str, Any]:
        who.require_role("operator")
        ids = await self._queue_admin.retry(actor=f"operator:{who.name}", destination=destination)
        return {"destination": destination, "retried": ids}
