"""Receiving: accept envelopes durably (then acknowledge), and apply them afterwards.

Acceptance (:class:`Acceptor`, the peer API's hot path) — before a signed transport receipt goes
back, the node has: matched the TLS peer to the envelope's origin node; verified the header
signature, the signer's certificate and its revocation; checked the destination, expiry and hop
count; decrypted the payload (GCM tag verified); for a document, checked the package (structure,
manifest signature and certificates, digests, metadata, seal — everything but the PDF's PAdES
validation, done later once per package digest) and that the origin node hosts the issuing unit
and this node hosts every addressee; written the envelope and its decrypted payload as blobs
(fsynced); and committed the ``received`` row (group commit). A duplicate (same id, same bytes)
gets the original receipt back; the same id with other bytes is ``ENV_REPLAYED``.

Application (:class:`Processor`) — after acknowledgement, from the ``received`` rows still
``new`` (so a crash in between only delays it): documents go into the addressed units' inboxes
with their full verification report and a ``transport-ack`` goes back to the sender; notices
(签收, 退回, 撤回, 催办, 答复, bounce) move the rows they concern, but only rows of documents the
notice's origin was actually part of.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import logging
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from exchange_protocol.envelope import EnvelopeHeader, FrameDecoder, MessageType, decode_frame, decode_header
from exchange_protocol.envelope_seal import EnvelopeOpener, open_envelope_bytes
from exchange_protocol.errors import EnvelopeReplayed, EnvelopeTruncated, IllegalTransition
from exchange_protocol.kinds import Role
from exchange_protocol.meta_json import parse_meta
from exchange_protocol.model import DocumentMetadata
from exchange_protocol.notices import Notice, decode_notice
from exchange_protocol.package_reader import PackageReader
from exchange_protocol.package_verify import verify_package
from exchange_protocol.states import Event, ReceiverStatus
from exchange_protocol.transport_receipt import TransportReceipt, sign_receipt
from pki.errors import GwxError

from .context import NodeContext
from .errors import NodeError
from .metrics import Registry
from .store.db import from_db_time
from .store.exchange import Exchange
from .store.messages import InboundEnvelope, InboxRow, ReceivedEnvelope
from .store.store import Store
from .tracking import apply_receiver_event, apply_sender_event

log = logging.getLogger("gwx.inbound")

NOTICE_EVENTS_SENDER = {MessageType.RECEIPT: Event.SIGNED_FOR, MessageType.RETURN: Event.RETURNED,
                        MessageType.TRANSPORT_ACK: Event.DELIVERED, MessageType.BOUNCE: Event.FAILED}
NOTICE_EVENTS_RECEIVER = {MessageType.RECALL: Event.RECALLED, MessageType.URGE: Event.URGED}


class OriginMismatch(NodeError):
    code = "ENV_ORIGIN_MISMATCH"


class UnitNotHosted(NodeError):
    code = "ENV_UNIT_NOT_HOSTED"


class NoticeNotOurs(NodeError):
    code = "NOTICE_NOT_OURS"


@dataclass(frozen=True)
class Delivery:
    """One message to apply, whether it came in an envelope or from a unit on this same node."""

    message_id: str
    type: MessageType
    origin_node: str
    from_unit: str | None
    to_units: tuple[str, ...]
    in_reply_to: str | None
    payload_digest: str
    received_at: dt.datetime

    @classmethod
    def of(cls, header: EnvelopeHeader, payload_digest: str, received_at: dt.datetime) -> Delivery:
        return cls(header.message_id, header.type, header.origin_node, header.from_unit, tuple(header.to_units),
                   header.in_reply_to, payload_digest, received_at)


class Acceptor:
    def __init__(self, ctx: NodeContext, store: Store, registry: Registry, on_accepted=None) -> None:
        self.ctx = ctx
        self.store = store
        self.policy = ctx.trust_policy()
        self.on_accepted = on_accepted or (lambda: None)
        self.accepted = registry.counter("gwx_envelopes_received_total", "Envelopes accepted durably, by type")
        self.duplicates = registry.counter("gwx_envelopes_duplicate_total", "Duplicate envelopes answered again")
        self.refused = registry.counter("gwx_envelopes_refused_total", "Envelopes refused, by code")
        self.accept_seconds = registry.histogram("gwx_accept_seconds", "Time to accept one envelope durably")

    async def accept(self, data: bytes, peer_node: str) -> bytes:
        """Accept one whole envelope held in memory; returns the signed transport receipt."""
        started = asyncio.get_running_loop().time()
        try:
            receipt = await self._accept(data, peer_node)
        except GwxError as exc:
            self.refused.inc(code=exc.code)
            raise
        self.accept_seconds.observe(asyncio.get_running_loop().time() - started)
        return receipt

    async def _accept(self, data: bytes, peer_node: str) -> bytes:
        ctx = self.ctx
        envelope_sha = hashlib.sha256(data).hexdigest()
        head, _, _ = decode_frame(data, self.policy.limits)
        message_id = decode_header(head.header_bytes, self.policy.limits.max_header).message_id
        seen = await self.store.messages.get_received(message_id)
        if seen is not None:  # no crypto for a duplicate: the bytes were verified the first time
            if seen.envelope_digest != envelope_sha:
                raise EnvelopeReplayed(f"message {message_id} was received before with other bytes",
                                       message_id=message_id)
            self.duplicates.inc()
            return seen.receipt
        now = ctx.clock()
        opened, plaintext = await asyncio.to_thread(open_envelope_bytes, data, self.policy, ctx.decryption_key,
                                                    ctx.node_id, now)
        header = opened.header
        self._check_parties(header, peer_node)
        if header.type is MessageType.DOCUMENT:
            await asyncio.to_thread(self.check_package, header, io.BytesIO(plaintext), now)
        else:
            decode_notice(plaintext)  # a malformed notice is refused now, not discovered later
        env_ref, payload_ref = await asyncio.gather(self.store.blobs.put(data), self.store.blobs.put(plaintext))
        receipt = sign_receipt(TransportReceipt(message_id, envelope_sha, now, ctx.node_id), ctx.signer,
                               ctx.intermediates)
        accepted = await self.store.accept_inbound(InboundEnvelope(
            message_id, envelope_sha, env_ref.digest, header.origin_node, receipt, header.type.value, len(data),
            payload_ref.digest))
        if accepted.new:
            self.accepted.inc(type=header.type.value)
            self.on_accepted()
            log.info("accepted %s from %s", header.type.value, header.origin_node,
                     extra={"message_id": message_id, "origin": header.origin_node})
        else:
            self.duplicates.inc()
        return accepted.receipt

    def _check_parties(self, header: EnvelopeHeader, peer_node: str) -> None:
        if header.origin_node != peer_node:
            raise OriginMismatch(f"envelope from node {header.origin_node} arrived over a connection of {peer_node}",
                                 origin=header.origin_node, peer=peer_node)
        if header.from_unit is not None and not self.ctx.router.hosts(header.origin_node, header.from_unit):
            raise UnitNotHosted(f"node {header.origin_node} does not host unit {header.from_unit}",
                                unit=header.from_unit, node=header.origin_node)
        foreign = [u for u in header.to_units if self.ctx.config.unit(u) is None]
        if foreign:
            raise UnitNotHosted(f"this node does not host {', '.join(foreign)}", units=foreign)

    def check_package(self, header: EnvelopeHeader, package, now: dt.datetime) -> None:
        """Everything but the PDF's PAdES validation, before acknowledging (``package``: a seekable file)."""
        report = verify_package(package, self.ctx.trust, now, revocation=self.ctx.revocation, validate_pdf=False)
        if report.failures:
            first = report.failures[0]
            raise GwxError(f"package refused: {first.name}: {first.message}", code=first.code or "PKG_INVALID")
        if not report.issuers or report.issuers[0] != header.from_unit:
            raise UnitNotHosted(f"the package is issued by {report.issuers[:1]}, the envelope says {header.from_unit}",
                                code="ENV_FROM_UNIT_MISMATCH")


class PdfValidationCache:
    """Full verification reports by package digest: a document fanned out to many units of this
    node is validated (PAdES with pyHanko, the slow part) once."""

    def __init__(self, size: int = 256) -> None:
        self._reports: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size

    def get(self, digest: str) -> dict[str, Any] | None:
        report = self._reports.get(digest)
        if report is not None:
            self._reports.move_to_end(digest)
        return report

    def put(self, digest: str, report: dict[str, Any]) -> None:
        self._reports[digest] = report
        while len(self._reports) > self._size:
            self._reports.popitem(last=False)


class Processor:
    """Applies accepted envelopes (and local deliveries) to inbox and outbox rows."""

    def __init__(self, ctx: NodeContext, store: Store, registry: Registry, send_notice) -> None:
        self.ctx = ctx
        self.store = store
        self.exchange = Exchange(store.db)
        self.send_notice = send_notice  # async (notice, destination, from_unit, to_units, in_reply_to)
        self.reports = PdfValidationCache()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.task: asyncio.Task | None = None
        self.validations = registry.counter("gwx_pdf_validations_total", "Full package validations (PAdES)")
        self.applied = registry.counter("gwx_messages_applied_total", "Messages applied, by type and outcome")

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="gwx-inbound")

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self.task:
            await self.task

    async def _run(self) -> None:
        await self.resume_local_deliveries()
        while not self._stopping:
            self._wakeup.clear()
            try:
                while not self._stopping and (batch := await self.store.messages.pending_inbound(50)):
                    for received in batch:
                        await self._process(received)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("inbound processing failed; retrying shortly")
                await asyncio.sleep(2.0)
                continue
            if not self._stopping:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), 30.0)
                except TimeoutError:
                    pass

    async def resume_local_deliveries(self) -> None:
        """Re-apply local deliveries a crash interrupted: outbox rows committed, inbox not reached.

        A document for units of this same node is applied right after its outbox rows commit, in
        the submitting request; a kill -9 in between would leave those recipients 待发送 for ever.
        Applying again is harmless: an inbox row is added once, a second 已送达 is a duplicate.
        """
        try:
            rows = await self.store.db.fetchall(
                "SELECT o.message_id, o.units, o.created_at, b.from_unit, b.package_digest FROM outgoing o"
                " JOIN outbox b ON b.doc_id = o.doc_id WHERE o.destination = ? AND o.type = 'document'"
                " AND EXISTS (SELECT 1 FROM outbox_recipients r WHERE r.doc_id = o.doc_id"
                " AND r.destination_node = ? AND r.status = 'queued')", (self.ctx.node_id, self.ctx.node_id))
        except Exception:
            log.exception("cannot look for interrupted local deliveries")
            return
        for message_id, units, created_at, from_unit, digest in rows:
            log.warning("resuming local delivery %s interrupted by a crash", message_id,
                        extra={"message_id": message_id})
            try:
                await self.apply(Delivery(message_id, MessageType.DOCUMENT, self.ctx.node_id, from_unit,
                                          tuple(json.loads(units)), None, digest, from_db_time(created_at)))
            except GwxError as exc:
                log.error("cannot resume local delivery %s: %s", message_id, exc,
                          extra={"message_id": message_id, "code": exc.code})

    async def _process(self, received: ReceivedEnvelope) -> None:
        try:
            header = await asyncio.to_thread(self._read_header, received.blob_digest)
            delivery = Delivery.of(header, received.payload_digest, received.received_at)
            await self.apply(delivery)
            await self.store.messages.mark_inbound(received.message_id, "done")
            self.applied.inc(type=header.type.value, outcome="done")
        except GwxError as exc:
            log.warning("cannot apply %s: %s", received.message_id, exc,
                        extra={"message_id": received.message_id, "code": exc.code})
            await self.store.messages.mark_inbound(received.message_id, "failed", error=exc)
            self.applied.inc(type=received.type or "?", outcome="failed")

    def _read_header(self, blob_digest: str) -> EnvelopeHeader:
        decoder = FrameDecoder(self.ctx.trust_policy().limits)
        with open(self.store.blobs.path_for(blob_digest), "rb") as f:
            while decoder.head is None and (chunk := f.read(64 * 1024)):
                decoder.feed(chunk)
        if decoder.head is None:
            raise NodeError("stored envelope has no complete header", code="STORE_CORRUPT")
        return decode_header(decoder.head.header_bytes)

    async def apply(self, d: Delivery) -> None:
        if d.type is MessageType.DOCUMENT:
            await self._apply_document(d)
        else:
            notice = decode_notice(await self.store.blobs.read_bytes(d.payload_digest))
            await self.apply_notice(d, notice)

    # --- documents -------------------------------------------------------------------------------
    async def full_report(self, package_digest: str) -> dict[str, Any]:
        report = self.reports.get(package_digest)
        if report is None:
            path = self.store.blobs.path_for(package_digest)
            report = await asyncio.to_thread(self._verify_file, path)
            self.validations.inc()
            self.reports.put(package_digest, report)
        return report

    def _verify_file(self, path) -> dict[str, Any]:
        with open(path, "rb") as f:
            return verify_package(f, self.ctx.trust, self.ctx.clock(), revocation=self.ctx.revocation).to_dict()

    async def read_metadata(self, package_digest: str) -> DocumentMetadata:
        def read() -> DocumentMetadata:
            with open(self.store.blobs.path_for(package_digest), "rb") as f, PackageReader(f) as reader:
                return parse_meta(reader.read_member("metadata.json"),
                                  allow_classified=self.ctx.config.classified_network).metadata
        return await asyncio.to_thread(read)

    async def _apply_document(self, d: Delivery) -> None:
        meta = await self.read_metadata(d.payload_digest)
        report = await self.full_report(d.payload_digest)
        if not report["ok"]:
            log.warning("document %s arrived with failed checks: %s", meta.id,
                        [c["name"] for c in report["checks"] if c["status"] == "fail"],
                        extra={"message_id": d.message_id, "doc_id": meta.id})
        delivered = []
        for unit in d.to_units:
            role = Role.MAIN if unit in meta.to else Role.COPY
            await self.store.messages.add_inbox(InboxRow(
                doc_id=meta.id, unit=unit, role=role.value, from_unit=d.from_unit, title=meta.title,
                kind=meta.kind.value, status=ReceiverStatus.PENDING.value, package_digest=d.payload_digest,
                received_at=d.received_at, urgency=meta.urgency.value if meta.urgency else None,
                deadline=meta.deadline, verification=report, message_id=d.message_id), actor=f"node:{d.origin_node}")
            delivered.append(unit)
        ack = Notice(MessageType.TRANSPORT_ACK, meta.id, tuple(delivered), self.ctx.clock())
        await self.send_notice(ack, d.origin_node, None, (), d.message_id)

    # --- notices ---------------------------------------------------------------------------------
    async def apply_notice(self, d: Delivery, notice: Notice) -> None:
        if notice.type is not d.type:
            raise NoticeNotOurs(f"envelope type {d.type.value} carries a {notice.type.value} notice")
        actor = f"node:{d.origin_node}"
        if notice.type in NOTICE_EVENTS_SENDER:
            link = await self.exchange.outgoing(d.in_reply_to or "")
            if (link is None or link.destination != d.origin_node or link.doc_id != notice.doc_id
                    or not set(notice.units) <= set(link.units)):
                raise NoticeNotOurs(f"{notice.type.value} from {d.origin_node} does not match a message we sent it",
                                    in_reply_to=d.in_reply_to, doc_id=notice.doc_id)
            event = NOTICE_EVENTS_SENDER[notice.type]
            for unit in notice.units:
                await apply_sender_event(self.store, notice.doc_id, unit, event, at=notice.at, actor=actor,
                                         by=notice.by, reason=notice.reason, details={"message_id": d.message_id})
        elif notice.type in NOTICE_EVENTS_RECEIVER:
            event = NOTICE_EVENTS_RECEIVER[notice.type]
            for unit in notice.units:
                row = await self.store.messages.get_inbox(notice.doc_id, unit)
                if row is None or row.message_id != d.in_reply_to or row.from_unit != d.from_unit:
                    raise NoticeNotOurs(f"{notice.type.value} for {notice.doc_id}/{unit} does not match what we hold",
                                        doc_id=notice.doc_id, unit=unit)
                try:
                    await apply_receiver_event(self.store, notice.doc_id, unit, event, at=notice.at, actor=actor,
                                               by=notice.by, reason=notice.reason,
                                               details={"message_id": d.message_id})
                except IllegalTransition as exc:
                    # A recall that arrives after 签收 or 退回 has no effect; the sender already has (or
                    # will get) the receipt, which wins. Recorded, not an error of the envelope.
                    async with self.store.transaction() as tx:
                        await self.store.audit.append(tx, actor, f"inbox.{event.value}.refused",
                                                      {"doc_id": notice.doc_id, "unit": unit},
                                                      {"reason": exc.message, "message_id": d.message_id})
        else:  # reply (答复): recorded against the document
            async with self.store.transaction() as tx:
                await self.store.audit.append(tx, actor, f"notice.{notice.type.value}",
                                              {"doc_id": notice.doc_id, "message_id": d.message_id},
                                              {"units": list(notice.units), "by": notice.by, "text": notice.text})


class StreamAcceptor:
    """Acceptance of an envelope too large to hold in memory (streamed to temp files).

    The header is judged (signature, trust, parties) as soon as it has arrived, before the payload
    is decrypted; plaintext and raw frame go to temporary files, become blobs only once the GCM tag
    and the payload digest have verified, and the package is checked from its file.
    """

    CHUNK = 256 * 1024

    def __init__(self, acceptor: Acceptor) -> None:
        self.a = acceptor
        self.consumed = 0  # frame bytes taken from the stream (the caller drains the rest on error)

    async def accept(self, prefix: bytes, content, length: int, peer_node: str) -> bytes:
        a, ctx = self.a, self.a.ctx
        now = ctx.clock()
        opener = EnvelopeOpener(a.policy, ctx.decryption_key, ctx.node_id, now)
        sha = hashlib.sha256()
        checked = False
        with tempfile.TemporaryFile(dir=a.store.blobs.tmp_dir) as raw, \
                tempfile.TemporaryFile(dir=a.store.blobs.tmp_dir) as plain:
            chunk, remaining = prefix, length
            while True:
                self.consumed += len(chunk)
                sha.update(chunk)
                raw.write(chunk)
                plain.write(opener.feed(chunk))
                if not checked and opener.verified is not None:
                    a._check_parties(opener.verified.header, peer_node)
                    checked = True
                remaining -= len(chunk)
                if remaining <= 0:
                    break
                chunk = await content.read(min(self.CHUNK, remaining))
                if not chunk:
                    raise EnvelopeTruncated("the connection ended inside an envelope", missing=remaining)
            opened = opener.close()
            header = opened.header
            envelope_sha = sha.hexdigest()
            seen = await a.store.messages.get_received(header.message_id)
            if seen is not None:
                if seen.envelope_digest != envelope_sha:
                    raise EnvelopeReplayed(f"message {header.message_id} was received before with other bytes",
                                           message_id=header.message_id)
                a.duplicates.inc()
                return seen.receipt
            plain.seek(0)
            if header.type is MessageType.DOCUMENT:
                await asyncio.to_thread(a.check_package, header, plain, now)
            else:
                decode_notice(plain.read(64 * 1024 + 1))
            raw.seek(0)
            plain.seek(0)
            env_ref = await asyncio.to_thread(a.store.blobs.put_sync, raw)
            payload_ref = await asyncio.to_thread(a.store.blobs.put_sync, plain)
        receipt = sign_receipt(TransportReceipt(header.message_id, envelope_sha, now, ctx.node_id), ctx.signer,
                               ctx.intermediates)
        accepted = await a.store.accept_inbound(InboundEnvelope(
            header.message_id, envelope_sha, env_ref.digest, header.origin_node, receipt, header.type.value, length,
            payload_ref.digest))
        if accepted.new:
            a.accepted.inc(type=header.type.value)
            a.on_accepted()
        return accepted.receipt
