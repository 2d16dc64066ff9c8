"""Sending (发文, 转发, 补发): what :class:`~node.documents.service.DocumentService` does to seal a
document and put it on its way.

:class:`Sending` is the service's sending half (a mixin: the service is one object, its parts one
module each). Sending a document seals it with the unit's seal, stores the package once, writes the
outbox rows and one draft per destination node in one transaction, then wakes those destinations'
queues; recipients hosted on this same node are delivered through the same
:class:`~node.federation.processor.Processor` path as envelopes from peers (with an outgoing link
whose destination is this node). A 转发 sends the cover 通知 with the received package, unchanged;
a 补发 sends the same sealed package to more units.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.kinds import Role
from exchange_protocol.meta_json import parse_meta
from exchange_protocol.notices import Notice
from exchange_protocol.package import Attachment, build_package
from exchange_protocol.states import SenderStatus
from node.api.auth import Forbidden, Principal
from node.context import NodeContext
from node.documents.errors import NoSeal, check_forwardable
from node.documents.ledger import register_facts
from node.errors import ApiError, StoreDuplicate
from node.federation.notice_apply import NoticeNotOurs
from node.federation.outbound import NewMessage, Outbound
from node.federation.processor import Delivery, Processor
from node.ops.metrics import Counter
from node.store import InboxRow, NodeStore, OutboxDocument, OutboxRecipient, OutgoingLink
from node.store.forwards import ForwardedCopy
from pki.errors import GwxError

log = logging.getLogger("gwx.service")


def clerk_actor(who: Principal) -> str:
    """Who acted, in the audit log: the token id (``console:LOGIN`` for a console user), which is
    unique, then the name (签收人), which two users may share; once when they are the same."""
    return f"clerk:{who.token_id}" if who.name == who.token_id else f"clerk:{who.token_id} ({who.name})"


class Sending:
    """The service's sending acts; :class:`~node.documents.service.DocumentService` gives them its
    context, store, outbound queues, processor, ``submitted`` counter and its own ``track``,
    ``_own_outbox`` and ``_own_inbox``."""

    ctx: NodeContext
    store: NodeStore
    outbound: Outbound
    processor: Processor
    submitted: Counter

    async def submit(self, who: Principal, meta: dict[str, Any], body_pdf: Path,
                     attachments: list[tuple[str, Path]], *, forwarding: InboxRow | None = None) -> dict[str, Any]:
        """Seal and send; with ``forwarding`` (a document ``who``'s unit received), the document is the
        cover 通知 of a 转发 and that document's package goes, unchanged, to the same units with it."""
        who.require_role("clerk")
        now = self.ctx.clock()
        parsed = parse_meta(meta, allow_classified=self.ctx.config.classified_network, now=now)
        doc = parsed.metadata
        if doc.issuers[0] != who.unit:
            raise Forbidden(f"the first issuer (发文机关) must be your unit {who.unit}, not {doc.issuers[0]}")
        if await self.store.messages.get_outbox(doc.id):
            raise StoreDuplicate(f"document {doc.id} was already sent", doc_id=doc.id)
        routes = {unit: self.ctx.router.node_for(unit) for unit, _ in doc.recipients()}  # refuse unknown units now
        seal = self.ctx.seals.get(who.unit)
        if seal is None:
            raise NoSeal(f"this node holds no seal for unit {who.unit}", unit=who.unit)
        package = await asyncio.to_thread(self._build, doc, body_pdf, attachments, seal, now)
        digest, size = package.digest, package.size
        recipients = [OutboxRecipient(unit=unit, role=role.value, status=SenderStatus.QUEUED.value,
                                      destination_node=routes[unit]) for unit, role in doc.recipients()]
        by_node: dict[str, list[str]] = defaultdict(list)
        for unit, _ in doc.recipients():
            by_node[routes[unit]].append(unit)
        if forwarding is not None and who.unit in routes:
            raise ApiError(f"a unit does not forward (转发) a document to itself ({who.unit})", field="to")
        forwarded_size = (await asyncio.to_thread(self.store.blobs.size_of, forwarding.package_digest)
                          if forwarding is not None else 0)
        forwards: dict[str, HeaderDraft] = {}
        told = (await self._issuer_to_tell(who, forwarding, doc.id, tuple(routes), now)
                if forwarding is not None else None)
        wake: tuple[str, ...] = ()
        async with self.store.transaction() as tx:
            await self.store.messages.add_outbox(OutboxDocument(
                doc_id=doc.id, from_unit=who.unit, title=doc.title, kind=doc.kind.value, package_digest=digest,
                created_at=now, doc_number=doc.doc_number.format() if doc.doc_number else None,
                deadline=doc.deadline, facts=register_facts(doc)), recipients, actor=clerk_actor(who), tx=tx)
            covers = await self._queue_copies(tx, doc.id, who.unit, digest, size, by_node, now)
            if forwarding is not None:
                now_held = await self.store.messages.get_inbox(forwarding.doc_id, who.unit, tx=tx)
                check_forwardable(now_held or forwarding)
                await self.store.forwards.add(tx, [
                    ForwardedCopy(forwarding.doc_id, unit, doc.id, who.unit, routes[unit], SenderStatus.QUEUED.value,
                                  created_at=now) for unit, _ in doc.recipients()], clerk_actor(who))
                forwards = await self._queue_copies(tx, forwarding.doc_id, who.unit, forwarding.package_digest,
                                                    forwarded_size, by_node, now, MessageType.FORWARD,
                                                    {node: h.message_id for node, h in covers.items()})
                if told is not None:  # 转发告知: the issuer's track shows the forward
                    notice, destination = told
                    try:
                        wake = await self.processor.queue_notice(tx, notice, destination, who.unit,
                                                                 (forwarding.from_unit,), forwarding.message_id)
                    except NoticeNotOurs as exc:  # an issuer on this node that has no record of it: refused
                        log.warning("转发 of %s: its issuer here refused the 转发告知: %s", forwarding.doc_id, exc,
                                    extra={"doc_id": forwarding.doc_id, "code": exc.code})  # before any write
        for node in wake:
            self.outbound.wake(node)
        await self._deliver_copies(doc.id, digest, by_node, covers.get(self.ctx.node_id), now)
        if forwarding is not None:  # after its cover, so a local unit finds the cover first
            await self._deliver_copies(forwarding.doc_id, forwarding.package_digest, {},
                                       forwards.get(self.ctx.node_id), now)
        self.submitted.inc(unit=who.unit)
        log.info("sent %s %s to %d units", doc.kind.value, doc.id, len(recipients), extra={"doc_id": doc.id})
        tracking = await self.track(who, doc.id)
        return {"doc_id": doc.id, "warnings": [w.message for w in parsed.warnings],
                "recipients": tracking["recipients"]}

    async def _issuer_to_tell(self, who: Principal, row: InboxRow, cover_doc_id: str, units: tuple[str, ...],
                              now: dt.datetime) -> tuple[Notice, str] | None:
        """The 转发告知 for the issuer of ``row`` and its node, or None: a copy that came to us by 转发
        was not delivered by its issuer, whose node would not know the message it answers (the unit
        that forwarded it to us sees our forward on its own track); an issuer no route reaches now is
        not told (logged) — the forward itself goes on."""
        came_in = await self.store.forwards.received(row.doc_id, who.unit)
        if came_in is not None and came_in[0].forwarded_by == row.from_unit:
            return None
        try:
            destination = self.ctx.router.node_for(row.from_unit)
        except GwxError as exc:
            log.warning("转发 of %s: its issuer %s is not told, no route reaches it: %s", row.doc_id, row.from_unit,
                        exc, extra={"doc_id": row.doc_id, "code": exc.code})
            return None
        return Notice(MessageType.FORWARDED, row.doc_id, units, now, by=who.name, text=cover_doc_id), destination

    async def _queue_copies(self, tx, doc_id: str, from_unit: str, digest: str, size: int,
                            by_node: dict[str, list[str]], now: dt.datetime, type: MessageType = MessageType.DOCUMENT,
                            in_reply_to: dict[str, str] | None = None) -> dict[str, HeaderDraft]:
        """Inside ``tx``: one message of ``type`` per destination node (a draft; for this node, the
        link of a local delivery, for :meth:`_deliver_copies`); returns their headers by node."""
        headers = {node: self.outbound.header(type, node, from_unit, tuple(units), now,
                                              (in_reply_to or {}).get(node))
                   for node, units in by_node.items()}
        await self.outbound.add(tx, [NewMessage(h, digest, size, doc_id) for node, h in headers.items()
                                     if node != self.ctx.node_id], now)
        local = headers.get(self.ctx.node_id)
        if local is not None:
            await self.store.links.add_links(tx, [OutgoingLink(local.message_id, doc_id, type.value,
                                                               self.ctx.node_id, local.to_units, now)])
        return headers

    async def _deliver_copies(self, doc_id: str, digest: str, by_node: dict[str, list[str]],
                              local: HeaderDraft | None, now: dt.datetime) -> None:
        """After commit: wake the destinations' queues and deliver to this node's units."""
        for node in by_node:
            if node != self.ctx.node_id:
                self.outbound.wake(node)
        if local is not None:
            try:
                await self.processor.apply(Delivery(local, digest, now))
            except Exception as exc:  # the document is sent; its local part is retried at the next start
                log.error("local delivery of %s failed: %r", doc_id, exc, extra={"doc_id": doc_id},
                          exc_info=not isinstance(exc, GwxError))

    async def forward(self, who: Principal, doc_id: str, meta: dict[str, Any], body_pdf: Path,
                      attachments: list[tuple[str, Path]]) -> dict[str, Any]:
        """转发 a document ``who``'s unit received: ``meta``/``body_pdf`` are the cover 通知 (its 主送/抄送
        are the units forwarded to); the received package goes with it, unchanged."""
        row = await self._own_inbox(who, doc_id)
        check_forwardable(row)  # and again inside the sending transaction: a 撤回 may arrive meanwhile
        result = await self.submit(who, meta, body_pdf, attachments, forwarding=row)
        result["forwarded"] = (await self.track(who, result["doc_id"]))["forwarded"]
        return result

    async def add_recipients(self, who: Principal, doc_id: str, units: list[str]) -> dict[str, Any]:
        """补发: the same sealed package to units the document did not go to; they appear in the
        track like the others (as 抄送: the document's own 主送 are what it names)."""
        doc = await self._own_outbox(who, doc_id)
        if not units:
            raise ApiError("补发 needs at least one unit", field="units")
        held = sorted({r.unit for r in doc.recipients} & set(units))
        if held:
            raise StoreDuplicate(f"{held[0]} is already a recipient of {doc_id}", doc_id=doc_id, unit=held[0])
        routes = {unit: self.ctx.router.node_for(unit) for unit in units}  # unknown units refused now
        now = self.ctx.clock()
        size = await asyncio.to_thread(self.store.blobs.size_of, doc.package_digest)
        by_node: dict[str, list[str]] = defaultdict(list)
        for unit in units:
            by_node[routes[unit]].append(unit)
        added = [OutboxRecipient(unit=u, role=Role.COPY.value, status=SenderStatus.QUEUED.value,
                                 destination_node=routes[u]) for u in units]
        async with self.store.transaction() as tx:
            await self.store.messages.add_recipients(doc_id, added, actor=clerk_actor(who), tx=tx)
            headers = await self._queue_copies(tx, doc_id, who.unit, doc.package_digest, size, by_node, now)
        await self._deliver_copies(doc_id, doc.package_digest, by_node, headers.get(self.ctx.node_id), now)
        log.info("补发 %s to %d more units", doc_id, len(units), extra={"doc_id": doc_id})
        return await self.track(who, doc_id)

    def _build(self, doc, body_pdf: Path, attachments: list[tuple[str, Path]], seal, now):
        files = [open(path, "rb") for _, path in attachments]  # noqa: SIM115 — closed below
        try:
            with open(body_pdf, "rb") as body, tempfile.TemporaryFile(dir=self.store.blobs.tmp_dir) as out:
                build_package(out, metadata=doc, body=body, seal_key=seal, at=now,
                              attachments=[Attachment(name, f) for (name, _), f in zip(attachments, files, strict=True)],
                              chain=self.ctx.intermediates)
                out.seek(0)
                return self.store.blobs.put_sync(out)
        finally:
            for f in files:
                f.close()
