"""The 督办 sweep, the settlement of an escalated row, and applying a 督办 that arrived.

:class:`Escalator` runs every ``[supervision] sweep_seconds`` while the node runs (a ``cleanup_ctx``
of the local app, like housekeeping). Each round reads the inbox rows past their deadline and not
settled (:meth:`SupervisionStore.late_rows`), asks :func:`exchange_protocol.supervision.judge` about
each, and

* notes a newly overdue row once (audit ``inbox.overdue`` → adapter event ``document.overdue``);
* escalates a row whose grace has run out once: in ONE transaction the mark (a compare-and-set that
  also checks the row is still unsettled, under the writer lock, so a 签收 committed first wins),
  its audit event (``inbox.escalated``) and either the supervising unit's item (hosted here:
  ``supervision.escalated`` → ``document.escalated`` for the supervisor) or a signed 督办 notice
  (``exchange_protocol.notices.Escalation``) queued to the supervisor's node. A crash leaves all or
  nothing; a restart finds the mark and does not escalate again.

When an escalated unit signs for or returns the document (``DocumentService._receiver_act``),
:meth:`Escalator.settled` records it in the same transaction and tells the supervisor (its item
shows as settled, by whom and when). :meth:`Escalator.apply` is the supervisor node's side: the
notice must come from the node hosting the late unit (the acceptor checked the header's ``from``)
and name the unit's supervisor as the directory says it as its only addressee, else it is refused
(``NOTICE_ESCALATION_NOT_OURS``; ``supervisors.may_supervise``); the same 督办 again — a replay in a new envelope — changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.notices import Escalation, decode_escalation
from exchange_protocol.states import ReceiverStatus, is_settled
from exchange_protocol.supervision import judge
from node.context import NodeContext
from node.errors import NodeError
from node.federation.outbound import NewMessage, Outbound
from node.store import NodeStore
from node.store.supervision import LateRow, SupervisionItem, SupervisionMark
from node.supervision.settings import rules_in_force
from node.supervision.supervisors import may_supervise, supervisor_of
from pki.errors import ErrorKind, GwxError

log = logging.getLogger("gwx.supervision")

UNSETTLED = tuple(s.value for s in ReceiverStatus if not is_settled(s))
SWEEP_BATCH = 500


class EscalationNotOurs(NodeError):
    """A 督办 whose sender or addressee does not match the directory: not applied."""

    code = "NOTICE_ESCALATION_NOT_OURS"
    kind = ErrorKind.FORBIDDEN


class Escalator:
    def __init__(self, ctx: NodeContext, store: NodeStore, outbound: Outbound) -> None:
        self.ctx = ctx
        self.store = store
        self.outbound = outbound
        self.settings = ctx.config.supervision
        self.page = SWEEP_BATCH  # late rows read at a time; a round pages through all of them

    # --- the sweep -------------------------------------------------------------------------------
    async def sweep(self) -> dict[str, int]:
        """One round; returns how many rows were noted overdue and escalated (for tests and logs)."""
        now = self.ctx.clock()
        noted = escalated = 0
        after = None
        rules = rules_in_force(self.ctx)  # the held directory's, else node.toml's: one reading per round
        while True:  # every late row each round: rows that wait (grace, no route) never hide later ones
            page = await self.store.supervision.late_rows(now, UNSETTLED, self.page, after)
            for row in page:
                lateness = judge(ReceiverStatus(row.status), row.deadline, now, rules.calendar,
                                 rules.grace_working_days)
                if not lateness.overdue:
                    continue
                if row.overdue_noted_at is None:
                    async with self.store.transaction() as tx:
                        noted += await self.store.supervision.note_overdue(
                            tx, row.doc_id, row.unit, now, {"deadline": row.deadline.isoformat(),
                                                            "from_unit": row.from_unit})
                if lateness.escalation_due:
                    try:
                        escalated += await self._escalate(row, lateness.working_days_late)
                    except GwxError as exc:  # a supervisor no route reaches: this row waits, the others go on
                        log.warning("cannot escalate %s of %s yet: %s", row.doc_id, row.unit, exc,
                                    extra={"doc_id": row.doc_id, "code": exc.code})
            if len(page) < self.page:
                break
            after = (page[-1].deadline, page[-1].doc_id, page[-1].unit)
        await self._send_owed()
        return {"noted": noted, "escalated": escalated}

    async def _escalate(self, row: LateRow, working_days_late: int) -> bool:
        now = self.ctx.clock()
        supervisor = supervisor_of(self.ctx, row.unit)
        if supervisor is None:  # nobody to tell: not escalated (no event), tried again every round
            async with self.store.transaction() as tx:
                first = await self.store.supervision.note_no_supervisor(tx, row.doc_id, row.unit, now)
            if first:
                log.warning("%s of %s is overdue past the grace but no supervising unit is known for %s; "
                            "not escalated until the directory names one", row.doc_id, row.unit, row.unit,
                            extra={"doc_id": row.doc_id})
            return False
        destination = self.ctx.router.node_for(supervisor)
        escalation = Escalation(row.doc_id, row.unit, supervisor, row.from_unit, row.title, row.deadline, now,
                                working_days_late)
        ref = await self.store.blobs.put(escalation.encode()) if destination != self.ctx.node_id else None
        details = {"deadline": row.deadline.isoformat(), "from_unit": row.from_unit}
        async with self.store.transaction() as tx:
            if not await self.store.supervision.mark_escalated(tx, row.doc_id, row.unit, now, supervisor,
                                                               working_days_late, UNSETTLED, details):
                return False  # escalated already, or settled meanwhile
            if ref is None:
                await self._record(tx, escalation, self.ctx.node_id)
            else:
                await self._queue(tx, escalation, ref, destination, now)
        if ref is not None:
            self.outbound.wake(destination)
        log.info("escalated %s of %s to %s (%d working days late)", row.doc_id, row.unit, supervisor,
                 working_days_late, extra={"doc_id": row.doc_id})
        return True

    async def _queue(self, tx: Any, escalation: Escalation, ref: Any, destination: str, now) -> None:
        header = self.outbound.header(MessageType.ESCALATE, destination, escalation.unit, (escalation.supervisor,),
                                      now)
        await self.outbound.add(tx, [NewMessage(header, ref.digest, ref.size, escalation.doc_id)], now)

    async def _record(self, tx: Any, e: Escalation, origin: str) -> None:
        """The supervisor is hosted here: its item (and, for a settlement, the item's end)."""
        actor = f"node:{origin}"
        # Added open, then settled: a settlement that arrives before its escalation still fires both
        # supervision.escalated and supervision.settled.
        await self.store.supervision.add_item(tx, SupervisionItem(
            e.doc_id, e.unit, e.supervisor, e.sent_by, e.title, e.deadline, e.escalated_at, e.working_days_late,
            origin, self.ctx.clock()), actor)
        if e.settled:
            await self.store.supervision.settle_item(tx, e.doc_id, e.unit, e.supervisor, e.settled_at, e.settled_by,
                                                     e.settled_as, actor)

    # --- the late unit acts ----------------------------------------------------------------------------
    async def settled(self, tx: Any, doc_id: str, unit: str, from_unit: str, title: str, deadline,
                      settled_as: str, by: str) -> str | None:
        """Inside the 签收/退回 transaction of ``unit``: if the row was escalated, tell its supervisor.
        Returns the node to wake after commit (None: nothing queued)."""
        return (await self.settle(tx, doc_id, unit, from_unit, title, deadline, settled_as, by))[0]

    async def settle(self, tx: Any, doc_id: str, unit: str, from_unit: str, title: str, deadline,
                     settled_as: str, by: str) -> tuple[str | None, SupervisionMark | None]:
        """:meth:`settled`, and the row's 督办 mark if it was escalated (None: it was not), which is
        what the clerk's view of the row shows of it."""
        now = self.ctx.clock()
        mark = await self.store.supervision.mark_settled(tx, doc_id, unit, now)
        if mark is None or mark.supervisor is None or mark.settled_at is not None:
            return None, mark
        e = Escalation(doc_id, unit, mark.supervisor, from_unit, title, deadline, mark.escalated_at,
                       mark.working_days_late or 0, now, by, settled_as)
        try:
            return await self._tell(tx, e), mark
        except GwxError as exc:  # the supervisor's route is gone: the 签收 goes on, the sweep tells it later
            await self.store.supervision.owe_settlement(tx, doc_id, unit, e.encode())
            log.warning("settlement of the 督办 of %s for %s kept to send later: %s", doc_id, unit, exc,
                        extra={"doc_id": doc_id, "code": exc.code})
            return None, mark

    async def _tell(self, tx: Any, e: Escalation) -> str | None:
        """Inside ``tx``: the settlement ``e`` recorded (supervisor here) or queued to the supervisor's
        node (raises the router's GwxError when no route reaches it); returns the node to wake."""
        destination = self.ctx.router.node_for(e.supervisor)
        if destination == self.ctx.node_id:
            await self._record(tx, e, self.ctx.node_id)
            return None
        ref = await self.store.blobs.put(e.encode())  # a blob before a row names it, as for every draft
        await self._queue(tx, e, ref, destination, self.ctx.clock())
        return destination

    async def _send_owed(self) -> None:
        """Settlements kept while no route reached their supervisor: each goes once a route does."""
        for payload in await self.store.supervision.owed_settlements(SWEEP_BATCH):
            e = decode_escalation(payload)
            try:
                async with self.store.transaction() as tx:
                    wake = await self._tell(tx, e)
                    await self.store.supervision.settlement_sent(tx, e.doc_id, e.unit)
            except GwxError as exc:
                log.info("settlement of the 督办 of %s for %s still waits: %s", e.doc_id, e.unit, exc,
                         extra={"doc_id": e.doc_id, "code": exc.code})
                continue
            if wake is not None:
                self.outbound.wake(wake)

    # --- a 督办 arrived ----------------------------------------------------------------------------
    async def apply(self, header: HeaderDraft, payload: bytes, tx: Any) -> None:
        """Apply a 督办 from ``header.origin_node`` inside ``tx`` (refused: :class:`EscalationNotOurs`)."""
        e = decode_escalation(payload)
        e.check_header(header)
        if not may_supervise(self.ctx, e.unit, e.supervisor):
            raise EscalationNotOurs(f"督办 of {e.doc_id} names {e.supervisor} as the supervisor of {e.unit}; the "
                                    f"directory says {supervisor_of(self.ctx, e.unit)}", doc_id=e.doc_id, unit=e.unit)
        if self.ctx.config.unit(e.supervisor) is None:
            raise EscalationNotOurs(f"this node does not host {e.supervisor}", doc_id=e.doc_id, unit=e.supervisor)
        await self._record(tx, e, header.origin_node)

    # --- running ---------------------------------------------------------------------------------
    def running(self, app: Any):
        """An aiohttp ``cleanup_ctx`` running :meth:`sweep` every ``sweep_seconds``."""
        async def loop() -> None:
            while True:
                try:
                    await self.sweep()
                except Exception:  # never let the sweep stop the node; the next round tries again
                    log.exception("督办 sweep failed")
                await asyncio.sleep(self.settings.sweep_seconds)

        async def ctx(app: Any):
            task = asyncio.get_running_loop().create_task(loop(), name="gwx-supervision")
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return ctx(app)

