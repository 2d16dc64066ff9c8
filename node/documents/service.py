"""The document service: what clerks and operators can do, as the local API's contract says.

Implements :class:`node.documents.contract.DocumentServiceApi`. Sending (发文, 转发, 补发) is its
half in :mod:`node.documents.sending`; recipients hosted on this same node are delivered through the
same :class:`~node.federation.processor.Processor` path as envelopes from peers, so every rule —
roles, state machine, audit — is applied once, whichever way a message travels. A track a page at a
time is :mod:`node.documents.track_page`, the supervisor's list :mod:`node.documents.supervised`,
the service's refusals :mod:`node.documents.errors`. A clerk's 签收, 退回, 登记, 撤回 or 催办 commits in one
transaction with the notice it sends (a draft, or its effect when the other unit is on this node),
and that transaction is shared with the other clerks' actions arriving meanwhile
(:meth:`~node.store.interfaces.GroupCommit.write_together`: one commit, one fsync for a township's
clerks signing at once); each clerk still gets their own answer or their own error. A 签收 or 退回
carries the unit's statement signed with its seal key (``node.federation.notice_evidence``), kept
here in the same transaction.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import functools
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from exchange_protocol.envelope import MessageType
from exchange_protocol.errors import ProtocolError
from exchange_protocol.manifest import ATTACHMENTS_DIR
from exchange_protocol.meta_json import meta_to_dict
from exchange_protocol.notices import Notice
from exchange_protocol.package_reader import PackageReader
from exchange_protocol.states import Event, ReceiverStatus, SenderStatus, is_overdue
from exchange_protocol.supervision import Lateness, judge
from node.api.auth import Principal
from node.archive import archiving
from node.archive.builder import BuiltArchive
from node.archive.time_stamps import TimeStamps
from node.context import NodeContext
from node.documents import ledger, statistics, supervised
from node.documents import track_page as track_pages
from node.documents.errors import (
    DocumentRecalled,
    NoEligibleRecipient,
    NoSeal,
    NotForwardable,
    check_forwardable,
)
from node.documents.ledger import LedgerExport
from node.documents.sending import Sending, clerk_actor
from node.documents.tracking import apply_receiver_event_as_seen, apply_sender_event
from node.errors import ApiError, NotFound
from node.federation.notice_evidence import evidence_details, make_statement, receiver_evidence, signs_quickly
from node.federation.outbound import Outbound
from node.federation.processor import Processor
from node.federation.queue_admin import QueueOperations
from node.federation.tsa_api import TimeStampService
from node.federation.whereabouts import Whereabouts
from node.ops.metrics import Registry
from node.ops.status import of_running_node, readiness_of_running_node
from node.store import (
    InboxRow,
    ListFilter,
    NodeStore,
    OutboxDocument,
    OutboxRecipient,
    Transaction,
)
from node.store.supervision import LateRow, SupervisionItem, SupervisionMark
from node.supervision.settings import rules_in_force

log = logging.getLogger("gwx.service")
MAX_REASON = 500
_SETTLED_AS = {Event.SIGNED_FOR: "signed_for", Event.RETURNED: "returned"}  # what the unit does that ends a 督办
# (the sender's 撤回 ends it too: Processor.apply_notice, settled_as "recalled")
WHEREABOUTS_AT_ONCE = 8  # messages of one document followed at the same time by a tracking request


class DocumentService(Sending, QueueOperations):
    def __init__(self, ctx: NodeContext, store: NodeStore, outbound: Outbound, registry: Registry) -> None:
        self.ctx = ctx
        self.store = store
        self.outbound = outbound
        self.processor = Processor(ctx, store, registry, outbound)
        self.whereabouts = Whereabouts(ctx, store, outbound.client)
        self.submitted = registry.counter("gwx_documents_submitted_total", "Documents sealed and sent", labels=("unit",))
        for unit in ctx.config.units:  # each hosted unit's series exists from the start, at 0
            self.submitted.declare(unit=unit.code)
        self.tsa = TimeStampService(ctx)  # served on the peer API when [archive] tsa_signer is set
        self.time_stamps = TimeStamps(ctx, outbound.client, self.tsa)

    # ---- the sender's view -------------------------------------------------------------------------
    async def _own_outbox(self, who: Principal, doc_id: str, *, recipients: bool = True) -> OutboxDocument:
        who.require_role("clerk")
        doc = await self.store.messages.get_outbox(doc_id, recipients=recipients)
        if doc is None or doc.from_unit != who.unit:
            raise NotFound(f"your unit has sent no document {doc_id}", doc_id=doc_id)
        return doc

    async def track(self, who: Principal, doc_id: str, *, where: bool = False,
                    recipients: bool = True) -> dict[str, Any]:
        """The document's rows; with ``where``, for each recipient not yet delivered, where the
        envelope carrying it waits (asking the relays on its way: :mod:`node.federation.whereabouts`).
        Without ``recipients``: the document and its counts alone, counted by the store (a few ms
        for 3,600 recipients, where the list with its views costs a hundred times that)."""
        if not recipients:
            doc = await self._own_outbox(who, doc_id, recipients=False)
            counts = await self.store.messages.outbox_counts([doc_id])
            return {"doc": self._outbox_item(doc, self.ctx.clock(), counts[doc_id])}
        doc = await self._own_outbox(who, doc_id)
        now = self.ctx.clock()
        judged: dict[str, dict[str, Any]] = {}  # every recipient shares the deadline: judged once a status
        views = [self._recipient_view(r, doc, now, judged) for r in doc.recipients]
        if where:
            pending = {r.unit: r.destination_node for r in doc.recipients
                       if r.status in (SenderStatus.QUEUED.value, SenderStatus.SENT.value)}
            links = await self.store.links.links_for(doc_id) if pending else []
            carrying = {view["unit"]: next((o for o in links if o.destination == pending.get(view["unit"])
                                            and view["unit"] in o.units and o.destination != self.ctx.node_id), None)
                        for view in views}
            # One envelope carries every unit of its node: each is followed once, a few at a time.
            messages = {o.message_id: o.destination for o in carrying.values() if o is not None}
            limit = asyncio.Semaphore(WHEREABOUTS_AT_ONCE)

            async def follow(message_id: str, destination: str) -> dict[str, Any]:
                async with limit:
                    return await self.whereabouts.for_message(message_id, destination)
            found = await asyncio.gather(*(follow(m, d) for m, d in messages.items()))
            traced = dict(zip(messages, found, strict=True))
            for view in views:
                link = carrying[view["unit"]]
                view["where"] = traced[link.message_id] if link is not None else None
        return {"doc": self._outbox_item(doc, now), "recipients": views, "forwarded": await self._forwarded(doc, now),
                "forwarded_on": await self._forwarded_on(doc_id)}

    async def track_page(self, who: Principal, doc_id: str, *, status: str | None = None, after: str | None = None,
                         limit: int = 100) -> dict[str, Any]:
        """TrackingPage (:func:`node.documents.track_page.track_page`)."""
        doc = await self._own_outbox(who, doc_id, recipients=False)
        now = self.ctx.clock()
        page = await track_pages.track_page(self.store, doc, now, doc_view=lambda c: self._outbox_item(doc, now, c),
                                            recipient_view=lambda r: self._recipient_view(r, doc, now),
                                            status=status, after=after, limit=limit)
        return page | {"forwarded_on": await self._forwarded_on(doc_id)}

    async def _forwarded_on(self, doc_id: str) -> list[dict[str, Any]]:
        """转发 of our document by its recipients, as their nodes told us (转发告知): by whom, to how
        many units, under which cover."""
        return [{"unit": f.forwarding_unit, "unit_name": self._unit_name(f.forwarding_unit),
                 "cover_doc_id": f.cover_doc_id, "units": list(f.units), "count": len(f.units), "by": f.forwarded_by,
                 "at": _iso(f.forwarded_at), "node": f.origin_node} for f in await self.store.forwards.forwarded_on(doc_id)]

    async def _forwarded(self, cover: OutboxDocument, now: dt.datetime) -> dict[str, Any] | None:
        """For a cover 通知: the document it forwarded (转发) and where each copy is."""
        copies = await self.store.forwards.for_cover(cover.doc_id)
        if not copies:
            return None
        original = await self.store.messages.get_inbox(copies[0].doc_id, cover.from_unit)
        return {"doc_id": copies[0].doc_id, "title": original.title if original else None,
                "from_unit": original.from_unit if original else None,
                "recipients": [{"unit": c.unit, "unit_name": self._unit_name(c.unit), "node": c.destination_node,
                                "status": c.status, "status_label": SenderStatus(c.status).label, "who": c.who,
                                "when": _iso(c.when), "reason": c.reason} for c in copies]}

    async def outbox(self, who: Principal, *, status=None, kind=None, overdue=None, unit=None, limit=50,
                     after=None, since=None, until=None, search=None) -> list[dict[str, Any]]:
        who.require_role("clerk")
        page = await self.store.messages.list_outbox(ListFilter(unit=who.unit, status=status, kind=kind,
                                                                overdue=bool(overdue), counterpart=unit,
                                                                before_id=_cursor(after), limit=limit,
                                                                since=since, until=until, search=search or None),
                                                     recipients=False)  # counted by the store instead
        counts = await self.store.messages.outbox_counts([d.doc_id for d in page.items])
        now = self.ctx.clock()
        return [self._outbox_item(d, now, counts[d.doc_id]) for d in page.items]

    async def recall(self, who: Principal, doc_id: str, units: list[str] | None = None) -> dict[str, Any]:
        return await self._to_recipients(who, doc_id, units, Event.RECALLED, MessageType.RECALL)

    async def urge(self, who: Principal, doc_id: str, units: list[str] | None = None) -> dict[str, Any]:
        return await self._to_recipients(who, doc_id, units, Event.URGED, MessageType.URGE)

    async def _to_recipients(self, who: Principal, doc_id: str, units: list[str] | None, event: Event,
                             kind: MessageType) -> dict[str, Any]:
        doc = await self._own_outbox(who, doc_id)
        units = list(dict.fromkeys(units)) if units else None  # the same unit twice is once
        known = {r.unit: r for r in doc.recipients}
        unknown = [u for u in units or () if u not in known]
        if unknown:
            # Like a document id that is not ours: no such recipient here (404), not a malformed request.
            raise NotFound(f"not recipients of {doc_id}: {', '.join(unknown)}", doc_id=doc_id, units=unknown)
        # By default: every recipient still in the document's course (not signed: track_pages.UNSIGNED).
        targets = units or [r.unit for r in doc.recipients if r.status in track_pages.UNSIGNED]
        # After a 补发 a node may have had several messages of this document, each for its own units:
        # a notice answers the one that carried its units (the receiver checks exactly that).
        carried = {(o.destination, unit): o.message_id for o in await self.store.links.links_for(doc_id)
                   for unit in o.units}
        now = self.ctx.clock()

        async def record(tx: Transaction) -> tuple[dict, list[dict[str, str]], list[str | None]]:
            changed: dict[tuple[str, str | None], list[str]] = defaultdict(list)  # (node, message) -> units
            refused: list[dict[str, str]] = []
            wake: list[str] = []
            for unit in targets:
                try:
                    await apply_sender_event(self.store, doc_id, unit, event, at=now, actor=clerk_actor(who),
                                             by=who.name, tx=tx)
                    node = known[unit].destination_node
                    changed[(node, carried.get((node, unit)))].append(unit)
                except ProtocolError as exc:  # e.g. a recall after 签收
                    refused.append({"unit": unit, "code": exc.code, "message": exc.message})
            for (node, message_id), node_units in changed.items():
                notice = Notice(kind, doc_id, tuple(node_units), now, by=who.name)
                wake += await self.processor.queue_notice(tx, notice, node, who.unit, tuple(node_units),
                                                          message_id)
            return changed, refused, wake
        # The notices' queues are woken by the writer once committed: also if this caller is cancelled.
        changed, refused, _ = await self.store.write_together(record, after=lambda done: self._wake(done[2]))
        if not changed:
            act = "撤回" if event is Event.RECALLED else "催办"
            why = "; ".join(f"{r['unit']}: {r['message']}" for r in refused) or \
                "every recipient has already signed for, returned, been recalled or failed"
            raise NoEligibleRecipient(f"{act} not done: no recipient of {doc_id} it applies to ({why})",
                                      doc_id=doc_id, refused=", ".join(f"{r['unit']} {r['code']}" for r in refused))
        result = await self.track(who, doc_id)
        result["refused"] = refused
        return result

    # ---- the receiver's view -----------------------------------------------------------------------
    async def _own_inbox(self, who: Principal, doc_id: str) -> InboxRow:
        who.require_role("clerk")
        row = await self.store.messages.get_inbox(doc_id, who.unit)
        if row is None:
            raise NotFound(f"your unit has received no document {doc_id}", doc_id=doc_id)
        return row

    async def inbox(self, who: Principal, *, status=None, kind=None, overdue=None, unit=None, limit=50,
                    after=None, urgency=None, since=None, until=None, search=None) -> list[dict[str, Any]]:
        who.require_role("clerk")
        page = await self.store.messages.list_inbox(ListFilter(unit=who.unit, status=status, kind=kind,
                                                               overdue=bool(overdue), counterpart=unit,
                                                               before_id=_cursor(after), limit=limit, urgency=urgency,
                                                               since=since, until=until, search=search or None))
        return await self._inbox_views(page.items)

    async def _inbox_views(self, rows: list[InboxRow]) -> list[dict[str, Any]]:
        """InboxItems of ``rows`` with their 督办 marks (one read for the page)."""
        now = self.ctx.clock()
        marks = await self.store.supervision.marks_for([(r.doc_id, r.unit) for r in rows]) if rows else {}
        return [self._inbox_item(r, now, marks.get((r.doc_id, r.unit))) for r in rows]

    async def folder_counts(self, who: Principal) -> dict[str, Any]:
        who.require_role("clerk")
        inbox = await self.store.messages.count_inbox(who.unit)
        overdue = inbox.pop("overdue", 0)
        return {"inbox": inbox, "overdue": overdue, "outbox": await self.store.messages.count_outbox(who.unit)}

    async def _sent_by_us(self, who: Principal, doc_id: str) -> OutboxDocument:
        """A document this unit sent, for show/download when it has not received it either."""
        doc = await self.store.messages.get_outbox(doc_id)
        if doc is None or doc.from_unit != who.unit:
            raise NotFound(f"your unit has neither received nor sent a document {doc_id}", doc_id=doc_id)
        return doc

    async def show(self, who: Principal, doc_id: str, *, recipients: bool = True) -> dict[str, Any]:
        """A received document, or one we sent with its recipients' rows (without ``recipients``:
        its counts alone — the console's document page lists the first rows through track_page)."""
        who.require_role("clerk")
        row = await self.store.messages.get_inbox(doc_id, who.unit)
        if row is None:
            await self._sent_by_us(who, doc_id)
            tracking = await self.track(who, doc_id, recipients=recipients)  # a document we sent
            doc = await self.store.messages.get_outbox(doc_id)
            meta = await self.processor.read_metadata(doc.package_digest)
            attachments = await asyncio.to_thread(lambda: _attachments_in(self.store.blobs.path_for(doc.package_digest)))
            return {**tracking, "metadata": meta_to_dict(meta), "attachments": attachments}
        meta = await self.processor.read_metadata(row.package_digest)
        report = copy.deepcopy(dict(row.verification or {}))  # rows share theirs (InboxRow.verification)
        received = await self.store.forwards.received(doc_id, who.unit)
        forwarded = {"forwarded_by": received[0].forwarded_by, "cover_doc_id": received[1]} if received else {}
        return {**(await self._inbox_views([row]))[0], **forwarded, "metadata": meta_to_dict(meta), "verification": report,
                "attachments": [{"name": a["path"].removeprefix("attachments/"), "size": a["size"]}
                                for a in report.get("attachments", [])]}

    async def package_path(self, who: Principal, doc_id: str) -> Path:
        who.require_role("clerk")
        row = await self.store.messages.get_inbox(doc_id, who.unit)
        if row is not None and row.status == ReceiverStatus.RECALLED.value:
            # 撤回 withdraws the document: the recipient keeps its record (show, 已撤回), not its content.
            raise DocumentRecalled(f"document {doc_id} was recalled (已撤回) by its sender; its body and "
                                   "package are no longer available to your unit", doc_id=doc_id)
        digest = row.package_digest if row else (await self._sent_by_us(who, doc_id)).package_digest
        return await asyncio.to_thread(self.store.blobs.path_for, digest)  # may copy a database-kept blob

    async def sent_package_path(self, who: Principal, doc_id: str) -> Path:
        who.require_role("clerk")
        return await asyncio.to_thread(self.store.blobs.path_for, (await self._sent_by_us(who, doc_id)).package_digest)

    async def sign_for(self, who: Principal, doc_id: str) -> dict[str, Any]:
        return await self._receiver_act(who, doc_id, Event.SIGNED_FOR, MessageType.RECEIPT, None)

    async def return_document(self, who: Principal, doc_id: str, reason: str) -> dict[str, Any]:
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise ApiError(f"退回 needs a reason of 1–{MAX_REASON} characters", field="reason")
        return await self._receiver_act(who, doc_id, Event.RETURNED, MessageType.RETURN, reason.strip())

    async def register(self, who: Principal, doc_id: str) -> dict[str, Any]:
        return await self._receiver_act(who, doc_id, Event.REGISTERED, None, None)

    async def _receiver_act(self, who: Principal, doc_id: str, event: Event, notify: MessageType | None,
                            reason: str | None) -> dict[str, Any]:
        row = await self._own_inbox(who, doc_id)  # outside the writer's lock; decides unless it moves meanwhile
        now = self.ctx.clock()
        notice = destination = None
        if notify is not None:
            destination = self.ctx.router.node_for(row.from_unit)  # before any change: fail cleanly
            seal = self.ctx.seals.get(who.unit)
            statement = None  # a unit hosted without a seal acts as before, with no statement: no other key
            if seal is not None:  # may give the unit's word (readiness counts such units)
                # A software seal key signs in ~0.1 ms: here, on the loop — a worker thread would queue it
                # behind the blob writes and fsyncs of the default pool (measured: +0.1 s per 签收 under
                # load). A token (PKCS#11) may take much longer, and an SM2 seal names the package by its
                # SM3, read and hashed: a thread.
                sign = functools.partial(make_statement, seal, self.store.blobs, row, who.unit, notify, who.name, now,
                                         reason)
                statement = sign() if signs_quickly(seal) else await asyncio.to_thread(sign)
            notice = Notice(notify, doc_id, (who.unit,), now, by=who.name, reason=reason, evidence=statement)

        settled_as = _SETTLED_AS.get(event)

        async def record(tx: Transaction) -> tuple[list[str | None], InboxRow, SupervisionMark | None, bool]:
            """The nodes to wake, the row as changed, its 督办 mark and whether that mark was read."""
            before, after, now_row = await apply_receiver_event_as_seen(
                self.store, row, event, at=now, actor=clerk_actor(who), by=who.name, reason=reason,
                details=evidence_details(notice), tx=tx)
            if after == before:
                return [], now_row, None, False
            wake: list[str | None] = []
            if notice is not None:
                await self.store.evidence.add(tx, receiver_evidence(notice))
                wake += await self.processor.queue_notice(tx, notice, destination, who.unit, (row.from_unit,),
                                                          row.message_id)
            if settled_as is None:
                return wake, now_row, None, False
            # an escalated row's supervisor hears of it
            node, mark = await self.processor.escalator.settle(
                tx, doc_id, who.unit, row.from_unit, row.title, row.deadline, settled_as, who.name)
            return [*wake, node], now_row, mark, True
        # With the node's other clerks' actions: one commit; the notices' queues are woken by the writer
        # once committed (also if this caller is cancelled meanwhile). The row and its mark come back
        # from the transaction: no reads after it.
        wake, changed, mark, marked = await self.store.write_together(record, after=lambda done: self._wake(done[0]))
        if not marked:
            return (await self._inbox_views([changed]))[0]
        return self._inbox_item(changed, self.ctx.clock(), mark)

    # ---- 督办: what a supervising unit was sent ------------------------------------------------------
    async def supervision(self, who: Principal, *, settled: bool | None = None, limit: int = 50,
                          after: str | None = None) -> list[dict[str, Any]]:
        who.require_role("clerk")
        items = await self.store.supervision.items(who.unit, settled=settled, limit=limit,
                                                   before_id=_cursor(after))
        now = self.ctx.clock()
        return [self._supervision_item(i, now) for i in items]

    async def supervised(self, who: Principal, state: str = "late", *, unit: str | None = None, limit: int = 50,
                         after: str | None = None) -> dict[str, Any]:
        now = self.ctx.clock()
        return await supervised.supervised(self.store, who, state, now, late_view=lambda r: self._late_view(r, now),
                                           item_view=lambda i: self._supervision_item(i, now), unit=unit,
                                           limit=limit, after=after)

    def _wake(self, nodes: list[str | None]) -> None:
        """Wake the queues of the nodes a committed clerk action drafted notices for."""
        for node in nodes:
            if node is not None:
                self.outbound.wake(node)

    # ---- the 台账 (node.documents.ledger, .statistics) -------------------------------------------------
    async def ledger(self, who: Principal, side: str, *, unit: str | None = None,
                     **filters: str | None) -> LedgerExport:
        return await ledger.open_export(self.store, who, side, self._unit_name, self.ctx.clock(), unit=unit,
                                        hosted=[u.code for u in self.ctx.config.units], **filters)

    async def ledger_stats(self, who: Principal, side: str, period: str, *, unit: str | None = None,
                           by: str = "unit", **filters: str | None) -> dict[str, Any]:
        hosted = [u.code for u in self.ctx.config.units]
        return await statistics.compute(self.store, who, side, period, hosted, self._unit_name, self.ctx.clock(),
                                        unit=unit, by=by, **filters)

    # ---- 一键归档 (node.archive) -------------------------------------------------------------------------
    async def archive(self, who: Principal, side: str, doc_id: str,
                      reason: str | None = None) -> tuple[BuiltArchive, dict[str, Any]]:
        return await archiving.archive(self.ctx, self.store, self.time_stamps, self.processor.read_metadata, who,
                                       clerk_actor(who), side, doc_id, reason)

    # ---- operators ---------------------------------------------------------------------------------
    async def node_status(self, who: Principal) -> dict[str, Any]:
        who.require_role("operator")
        return await of_running_node(self.ctx.config, self.ctx.clock())

    async def readiness(self) -> dict[str, Any]:
        return await readiness_of_running_node(self.ctx.config, self.ctx.clock())

    # ---- views --------------------------------------------------------------------------------------
    def _unit_name(self, code: str) -> str | None:
        return self.ctx.router.unit_name(code)

    def _outbox_item(self, doc: OutboxDocument, now: dt.datetime,
                     counts: dict[str, int] | None = None) -> dict[str, Any]:
        """``counts`` by status as the store counted them; without them, counted from ``doc.recipients``.
        Overdue depends on a recipient's status alone (and the deadline): the counts decide it."""
        if counts is None:
            counts = defaultdict(int)
            for r in doc.recipients:
                counts[r.status] += 1
        return {"id": doc.id, "doc_id": doc.doc_id, "from_unit": doc.from_unit, "title": doc.title, "kind": doc.kind,
                "doc_number": doc.doc_number, "deadline": _iso(doc.deadline), "created_at": _iso(doc.created_at),
                "counts": dict(counts),
                "overdue": any(n and is_overdue(SenderStatus(status), doc.deadline, now) for status, n in counts.items())}

    def _recipient_view(self, r: OutboxRecipient, doc: OutboxDocument, now: dt.datetime,
                        judged: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """``judged``: the lateness of each status for ``doc``'s deadline (working days counted once,
        not 3,600 times for a 通知 to a city's units: half the tracking list's time)."""
        status = SenderStatus(r.status)
        judged = {} if judged is None else judged
        if r.status not in judged:
            judged[r.status] = self._lateness(status, doc.deadline, now).to_json()
        return {"unit": r.unit, "unit_name": self._unit_name(r.unit), "role": r.role, "node": r.destination_node,
                "status": r.status, "status_label": status.label, "who": r.who, "when": _iso(r.when),
                "reason": r.reason, "urge_count": r.urge_count, "last_urged_at": _iso(r.last_urged_at),
                **judged[r.status]}

    def _lateness(self, status, deadline: dt.datetime | None, now: dt.datetime) -> Lateness:
        rules = rules_in_force(self.ctx)
        return judge(status, deadline, now, rules.calendar, rules.grace_working_days)

    def _supervision_item(self, i: SupervisionItem, now: dt.datetime) -> dict[str, Any]:
        open_ = i.settled_at is None
        return {"id": i.id, "doc_id": i.doc_id, "unit": i.unit, "unit_name": self._unit_name(i.unit),
                "supervisor": i.supervisor, "from_unit": i.sent_by, "title": i.title, "deadline": _iso(i.deadline),
                "escalated_at": _iso(i.escalated_at), "working_days_late": i.working_days_late,
                "overdue_by": int((now - i.deadline).total_seconds()) if open_ else None,
                "status": "open" if open_ else "settled", "status_label": "督办中" if open_ else "已办结",
                "settled_at": _iso(i.settled_at), "settled_by": i.settled_by, "settled_as": i.settled_as,
                "node": i.origin_node, "received_at": _iso(i.received_at)}

    def _late_view(self, r: LateRow, now: dt.datetime) -> dict[str, Any]:
        status = ReceiverStatus(r.status)
        return {**self._lateness(status, r.deadline, now).to_json(), "doc_id": r.doc_id, "unit": r.unit,
                "unit_name": self._unit_name(r.unit), "from_unit": r.from_unit, "title": r.title,
                "deadline": _iso(r.deadline), "status": r.status, "status_label": status.label,
                "escalated_at": _iso(r.escalated_at)}

    def _inbox_item(self, r: InboxRow, now: dt.datetime, mark: SupervisionMark | None = None) -> dict[str, Any]:
        status = ReceiverStatus(r.status)
        lateness = self._lateness(status, r.deadline, now)
        return {**lateness.to_json(), "escalated_at": _iso(mark.escalated_at) if mark else None,
                "escalated_to": mark.supervisor if mark else None, "id": r.id, "doc_id": r.doc_id, "unit": r.unit, "role": r.role, "from_unit": r.from_unit,
                "from_unit_name": self._unit_name(r.from_unit), "title": r.title, "kind": r.kind, "urgency": r.urgency, "deadline": _iso(r.deadline),
                "status": r.status, "status_label": status.label, "signed_by": r.signed_by,
                "signed_at": _iso(r.signed_at), "return_reason": r.return_reason, "urge_count": r.urge_count,
                "received_at": _iso(r.received_at),
                "verified": bool((r.verification or {}).get("ok")),
                "doc_number": (r.verification or {}).get("doc_number")}


def _attachments_in(package: Path) -> list[dict[str, Any]]:
    """A package's attachments as :meth:`DocumentService.show` lists them (names and sizes, from its manifest)."""
    with open(package, "rb") as f, PackageReader(f) as reader:
        return [{"name": e.path.removeprefix(ATTACHMENTS_DIR), "size": e.size} for e in reader.attachments]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _cursor(after: str | None) -> int | None:
    if after in (None, ""):
        return None
    try:
        return int(after)
    except (TypeError, ValueError):
        raise ApiError(f"bad paging cursor {after!r}", field="after") from None


__all__ = ["DocumentService", "DocumentRecalled", "NoEligibleRecipient", "NoSeal", "NotForwardable",
           "check_forwardable", "clerk_actor"]
