"""Applying what was accepted: documents into inboxes, notices onto the rows they concern.

Runs after acknowledgement, from the ``received`` rows still ``new`` (so a crash in between only
delays it). Each message is applied in ONE transaction (consecutive documents: each in a savepoint
of one shared commit, ``write_together``) together with the mark that it was applied and with the
notices it causes (drafts, or — for this same node — their effect): a crash leaves either nothing
or everything, so nothing is lost and nothing (not even a 催办 count) happens twice. One bad
message is marked failed and never blocks the ones behind it; nothing overtakes what is before it.

* A document is validated in full (the PDF seal by the lean PAdES check,
  :mod:`exchange_protocol.pades_lean`) by :class:`~node.federation.verdicts.PackageJudge`: what
  this process's acceptor checked before its receipt is not judged again while its verdict stands
  (only the PDF seal is left), nor a package arriving again. If anything fails it is quarantined —
  no inbox row — and a ``bounce`` with the failed check goes back, so the sender's rows turn
  failed with the reason. Otherwise it goes into the addressed units'
  inboxes with its report and a ``transport-ack`` goes back (sender: delivered). The same
  公文标识 arriving again with another package or from another unit is refused.
* A 督办 (escalate) is applied by ``node.supervision.escalation`` (checked against the directory:
  only the late unit's node may escalate it, only to its supervising unit).
* Notices (签收, 退回, transport-ack, bounce, 答复, 撤回, 催办) are applied by
  ``node.federation.notice_apply`` (which rows each may move, batches notice by notice). A batch
  of 签收 (``exchange_protocol.notices``) is applied in one transaction; the unit-signed statements
  they carry (``node.federation.notice_evidence``) are verified in the worker thread before it.
Recipients on this same node are delivered through the same functions, without an envelope.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from exchange_protocol.envelope import EnvelopeHeader, HeaderDraft, MessageType, decode_header
from exchange_protocol.frame import read_head
from exchange_protocol.kinds import Role
from exchange_protocol.meta_json import parse_meta
from exchange_protocol.model import DocumentMetadata
from exchange_protocol.notices import Notice, decode_notices
from exchange_protocol.package_reader import PackageReader
from exchange_protocol.retry import GIVE_UP, next_attempt
from exchange_protocol.states import ReceiverStatus
from node.context import NodeContext
from node.documents.ledger import register_facts
from node.error_kinds import Disposition, disposition, kind_of_code
from node.errors import NodeError, NodeUnavailable, StoreConflict, StoreCorrupt
from node.federation.notice_apply import Delivery, NoticeApplier
from node.federation.notice_evidence import EvidenceChecker
from node.federation.outbound import NewMessage, Outbound
from node.federation.retry_limiter import retry_policy
from node.federation.verdicts import AcceptedPackages, PackageJudge
from node.ops.metrics import Registry
from node.store import InboxRow, NodeStore, ReceivedEnvelope, Transaction
from node.store.forwards import ForwardedIn
from node.supervision.escalation import Escalator
from pki.errors import ErrorKind, GwxError, error_for_code

log = logging.getLogger("gwx.processing")

PACKAGES = (MessageType.DOCUMENT, MessageType.FORWARD)  # a sealed package: a document, or one forwarded (转发)
DOCUMENTS_TOGETHER = 32  # documents applied side by side, their rows in one commit (the writer is held meanwhile)


# Applying an acknowledged message is retried (with backoff) after errors whose kind may pass (the
# database busy, a disk error, our stale CRL, a notice that overtook its document: node.error_kinds).
# Anything else typed is a verdict on the message itself and is final. When to retry, and when to
# stop (the retry window, counted from acknowledgement), is exchange_protocol.retry's, with the
# node's one policy.


class DocumentConflict(NodeError):
    """The same 公文标识 again with another package or from another unit."""

    code = "DOC_ID_CONFLICT"
    kind = ErrorKind.CONFLICT


class ForwardWithoutCover(NodeError):
    """A 转发 whose addressee holds no cover 通知 from the same forwarding unit in the message it answers."""

    code = "DOC_FORWARD_NO_COVER"
    kind = ErrorKind.FORBIDDEN


@dataclass(frozen=True)
class _Read:
    """What applying a document reads from its package, in the worker thread."""

    meta: DocumentMetadata
    report: dict[str, Any]
    validated: bool  # validated now (not from the cache)


class Processor:
    """Applies accepted envelopes (and local deliveries) to inbox and outbox rows."""

    def __init__(self, ctx: NodeContext, store: NodeStore, registry: Registry, outbound: Outbound,
                 rand: Callable[[], float] = random.random) -> None:
        self.ctx = ctx
        self.store = store
        self.outbound = outbound
        self.escalator = Escalator(ctx, store, outbound)  # 督办: the sweep, and applying one that arrived
        self.evidence = EvidenceChecker(ctx, store)  # 签收/退回 statements that come back with notices
        self.notices = NoticeApplier(store, outbound, self.escalator, self.evidence)
        self.policy = retry_policy(ctx.config.retry)
        self.rand = rand
        self.judge = PackageJudge(store.blobs)  # the package judgement, with both verdict caches
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.task: asyncio.Task | None = None
        # Its own worker thread: delivery keeps moving while acceptance (the default pool) is busy.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwx-processing")
        self.validations = registry.counter("gwx_pdf_validations_total", "Full package validations (PAdES)")
        self.applied = registry.counter("gwx_messages_applied_total", "Messages applied, by type and outcome",
                                        labels=("type", "outcome"))
        for kind in MessageType:  # every series an alert may watch exists from the start, at 0
            for outcome in ("done", "deferred", "failed"):
                self.applied.declare(type=kind.value, outcome=outcome)

    @property
    def accepted(self) -> AcceptedPackages:
        """Where this process's acceptor leaves its verdicts for this processor (node.runner)."""
        return self.judge.accepted

    # --- the loop ----------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="gwx-processing")

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self.task:
            await self.task
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _run(self) -> None:
        try:
            await self.resume_local_deliveries()
        except Exception:
            log.exception("cannot resume interrupted local deliveries")
        while not self._stopping:
            self._wakeup.clear()
            try:
                while not self._stopping and (batch := await self.store.messages.pending_inbound(50)):
                    await self._process_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database itself failing: wait and try again
                log.exception("inbound processing failed; retrying shortly")
                await asyncio.sleep(2.0)
                continue
            if not self._stopping:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), await self._idle_seconds())
                except TimeoutError:
                    pass

    async def _process_batch(self, batch: list[ReceivedEnvelope]) -> None:
        """Apply ``batch`` in its order; consecutive documents side by side, so that their rows commit
        together (one fsync, :meth:`apply`). Anything else — a notice, a 转发 (which reads its cover's
        row) — waits for what is before it, and what is after it waits for it: a notice never
        overtakes the document it concerns."""
        run: list[ReceivedEnvelope] = []
        for received in batch:
            if received.type == MessageType.DOCUMENT.value:
                run.append(received)
                if len(run) == DOCUMENTS_TOGETHER:
                    await self._apply_run(run)
                    run = []
            else:
                await self._apply_run(run)
                run = []
                await self._process(received)
        await self._apply_run(run)

    async def _apply_run(self, run: list[ReceivedEnvelope]) -> None:
        """Documents side by side: one job in the worker thread reads them all, then their rows are
        written together. All run to their end before an error is raised: none is left half-way, to
        be taken up again and applied twice."""
        if not run:
            return
        read = await self._in_thread(self._read_all, run)
        done = await asyncio.gather(*(self._process(r, pre) for r, pre in zip(run, read, strict=True)),
                                    return_exceptions=True)
        if errors := [o for o in done if isinstance(o, BaseException)]:
            raise errors[0]

    async def _idle_seconds(self) -> float:
        retry = await self.store.messages.next_inbound_retry()
        if retry is None:
            return 30.0
        return min(30.0, max(0.05, (retry - self.ctx.clock()).total_seconds()))

    def _read_all(self, run: list[ReceivedEnvelope]) -> list[tuple[EnvelopeHeader, _Read | NodeError | None] | Exception]:
        """In the worker thread: :meth:`_read_envelope` of each, or the error reading it."""
        out: list[tuple[EnvelopeHeader, _Read | NodeError | None] | Exception] = []
        for received in run:
            try:
                out.append(self._read_envelope(received))
            except Exception as exc:  # that message's own failure, handled by _process
                out.append(exc)
        return out

    async def _process(self, received: ReceivedEnvelope,
                       pre: tuple[EnvelopeHeader, _Read | NodeError | None] | Exception | None = None) -> None:
        """Apply ``received`` (``pre``: what :meth:`_read_envelope` gave for it, already read)."""
        header = None
        try:
            # One job in the worker thread reads the header and, for a document, its metadata and
            # its verification report: one hand-off per envelope rather than three.
            if isinstance(pre, Exception):
                raise pre
            header, read = pre if pre is not None else await self._in_thread(self._read_envelope, received)
            if isinstance(read, NodeError):
                raise read
            await self.apply(Delivery(header, received.payload_digest, received.received_at),
                             mark=received.message_id, read=read)
            self.applied.inc(type=header.type.value, outcome="done")
        except Exception as exc:  # one bad message must not block the ones behind it
            if isinstance(exc, StoreConflict) and await self._processed_elsewhere(received.message_id):
                log.info("%s was applied by another worker of this node", received.message_id,
                         extra={"message_id": received.message_id})
                return
            doc_id = await self._doc_id_of(received, header)  # every line about a document names it
            if not isinstance(exc, GwxError):
                log.exception("cannot apply %s", received.message_id,
                              extra={"message_id": received.message_id, "doc_id": doc_id})
            error = exc if isinstance(exc, GwxError) else NodeError(f"internal error: {exc!r}", code="INTERNAL")
            now = self.ctx.clock()
            retry_at = (next_attempt(received.attempts + 1, received.received_at, now, self.policy, self.rand())
                        if disposition(error) is Disposition.RETRY else GIVE_UP)
            if retry_at is not GIVE_UP:
                log.warning("cannot apply %s yet (%s); retrying in %.0f s", received.message_id, error,
                            (retry_at - now).total_seconds(),
                            extra={"message_id": received.message_id, "code": error.code, "doc_id": doc_id})
                await self.store.messages.defer_inbound(received.message_id, retry_at, error)
                self.applied.inc(type=received.type or "?", outcome="deferred")
                return
            log.warning("cannot apply %s: %s", received.message_id, error,
                        extra={"message_id": received.message_id, "code": error.code, "doc_id": doc_id})
            await self._refuse(received, header, error)
            self.applied.inc(type=received.type or "?", outcome="failed")

    async def _doc_id_of(self, received: ReceivedEnvelope, header: EnvelopeHeader | None) -> str | None:
        """The 公文标识 a message that could not be applied concerns, for its log lines (None when its
        payload cannot say: read only on this failure path)."""
        try:
            if header is not None and header.type in PACKAGES:
                return (await self.read_metadata(received.payload_digest)).id
            payload = await self.store.blobs.read_bytes(received.payload_digest)
            return decode_notices(payload)[0].doc_id
        except Exception:  # an unreadable payload is this message's problem already logged; no id
            return None

    async def _processed_elsewhere(self, message_id: str) -> bool:
        """Whether another worker sharing this node's database applied (or refused) ``message_id``
        meanwhile: its transaction committed first and ours, applying it again, rolled back."""
        row = await self.store.messages.get_received(message_id)
        return row is not None and row.state != "new"

    async def _refuse(self, received: ReceivedEnvelope, header: EnvelopeHeader | None, error: GwxError) -> None:
        """Mark ``received`` failed; a refused document also sends a bounce back, in the same
        transaction, so its sender does not wait on 已发送 for ever."""
        notice = None
        if header is not None and header.type in PACKAGES and received.payload_digest:
            try:
                meta = await self.read_metadata(received.payload_digest)
                notice = Notice(MessageType.BOUNCE, meta.id, tuple(header.to_units), self.ctx.clock(),
                                reason=f"{error.code}: {error.message}"[:1900])
            except Exception:  # no readable document id: nothing the sender could match
                log.warning("refused %s without a bounce (no readable 公文标识)", received.message_id,
                            extra={"message_id": received.message_id})
        wake: tuple[str, ...] = ()
        async with self.store.transaction() as tx:
            if notice is not None:
                # Addressed to the unit that sent the document: the only one its node must host.
                wake = await self.queue_notice(tx, notice, header.origin_node, None, (header.from_unit,),
                                               header.message_id)
            await self.store.messages.mark_inbound(received.message_id, "failed", error=error, tx=tx)
        self._wake(wake)

    def _read_envelope(self, received: ReceivedEnvelope) -> tuple[EnvelopeHeader, _Read | NodeError | None]:
        """In the worker thread: the header of ``received`` and, for a package, what applying it reads
        (or the node's error judging it)."""
        # A package this process accepted: its header as the acceptor decoded it, not read back.
        header = ((received.payload_digest and self.judge.accepted.header(received.payload_digest, received.message_id,
                                                                           received.identity_digest))
                  or self._read_header(received.blob_digest, received.message_id))
        if header.type not in PACKAGES or not received.payload_digest:
            return header, None
        try:
            report, validated, meta = self.judge.report(self.ctx, received.payload_digest)
            if meta is None:  # the metadata check failed: applying reports it (read here, it raises)
                meta = self._read_metadata(received.payload_digest)
            return header, _Read(meta, report, validated)
        except NodeError as exc:  # the judgement's own answer (a check process's timeout, a refusal):
            return header, exc    # applying raises it with the header known, not judges again
        except Exception:  # applying reads it again and fails with the header known (bounce, log)
            return header, None

    def _read_header(self, blob_digest: str, message_id: str) -> EnvelopeHeader:
        """The header of ``message_id`` in the stored frame (a bundle carries several)."""
        limits = self.ctx.trust_policy().limits
        with self.store.blobs.open(blob_digest) as f:
            head = read_head(f, limits)
        if head is None:
            raise StoreCorrupt("stored envelope has no complete header")
        for signed in head.signed:
            # The acceptor's limit: the same bytes and limit find the header it decoded (a cache).
            header = decode_header(signed.header_bytes, limits.max_header)
            if header.message_id == message_id:
                return header
        raise StoreCorrupt(f"stored envelope has no header for {message_id}", message_id=message_id)

    async def resume_local_deliveries(self) -> None:
        """Re-apply local deliveries a crash interrupted: outbox rows committed, inbox not reached.

        A document for units of this same node is applied right after its outbox rows commit, in
        the submitting request; a kill -9 in between would leave those recipients 待发送 for ever.
        The same holds for a 转发's copies (its 转发 rows queued), resumed after the documents so that
        each finds its cover 通知 applied. Applying again is harmless: an inbox row is added once, a
        second 已送达 is a duplicate.
        """
        documents = await self.store.links.interrupted_local_deliveries(self.ctx.node_id)
        forwards = await self.store.links.interrupted_local_forwards(self.ctx.node_id)
        for interrupted, type_ in [*((d, MessageType.DOCUMENT) for d in documents),
                                   *((f, MessageType.FORWARD) for f in forwards)]:
            message_id = interrupted.message_id
            log.warning("resuming local delivery %s interrupted by a crash", message_id,
                        extra={"message_id": message_id})
            created = interrupted.created_at
            try:  # never sealed: its lifetime only makes it a valid header
                header = HeaderDraft(message_id, type_, self.ctx.node_id, self.ctx.node_id, interrupted.from_unit,
                                     interrupted.units, created, created + dt.timedelta(days=1),
                                     in_reply_to=interrupted.cover_message_id)
                await self.apply(Delivery(header, interrupted.package_digest, created))
            except GwxError as exc:
                log.error("cannot resume local delivery %s: %s", message_id, exc,
                          extra={"message_id": message_id, "code": exc.code})

    # --- applying ----------------------------------------------------------------------------------
    async def apply(self, d: Delivery, mark: str | None = None, read: _Read | None = None) -> None:
        """Apply ``d``; with ``mark`` (a received message id) it is marked done in the same transaction.
        ``read``: its package's metadata and report, already read in the worker thread."""
        if d.header.type in PACKAGES:
            await self._apply_document(d, mark, read)
            return
        if d.header.type is MessageType.ESCALATE:  # 督办: node.supervision.escalation
            payload = await self.store.blobs.read_bytes(d.payload_digest)
            async with self.store.transaction() as tx:
                await self.escalator.apply(d.header, payload, tx)
                if mark:
                    await self.store.messages.mark_inbound(mark, "done", tx=tx)
            return
        notices = decode_notices(await self.store.blobs.read_bytes(d.payload_digest))
        verdicts = (await self._in_thread(self.evidence.verify_all, notices)
                    if any(n.evidence is not None for n in notices) else None)
        async with self.store.transaction() as tx:
            resent_to = await self.notices.apply_all(d, notices, tx, verdicts)
            if mark:
                await self.store.messages.mark_inbound(mark, "done", tx=tx)
        self._wake(tuple(resent_to))

    async def queue_notice(self, tx: Transaction, notice: Notice, destination: str,
                           from_unit: str | None, to_units: tuple[str, ...], in_reply_to: str | None) -> tuple[str, ...]:
        """Inside ``tx``: apply ``notice`` here (this node) or record it as a draft for ``destination``,
        its few hundred bytes in the draft row (committed with ``tx``: no blob, no fsync of its own).

        Returns the destinations whose queues to wake once ``tx`` has committed (applied here: those
        its effect queued to, e.g. a 督办's settlement for a supervisor elsewhere).
        """
        now = self.ctx.clock()
        header = self.outbound.header(notice.type, destination, from_unit, to_units, now, in_reply_to)
        message = NewMessage.inline(header, notice.encode(), notice.doc_id)
        if destination == self.ctx.node_id:
            return await self.notices.apply(Delivery(header, message.payload_digest, now), notice, tx)
        await self.outbound.add(tx, [message], now)
        return (destination,)

    async def full_report(self, package_digest: str) -> dict[str, Any]:
        report, validated, _ = await self._in_thread(self.judge.report, self.ctx, package_digest)
        if validated:
            self.validations.inc()
        return report

    async def read_metadata(self, package_digest: str) -> DocumentMetadata:
        return await self._in_thread(self._read_metadata, package_digest)

    def _read_metadata(self, package_digest: str) -> DocumentMetadata:
        with self.store.blobs.open(package_digest) as f, PackageReader(f) as reader:
            return parse_meta(reader.read_member("metadata.json"),
                              allow_classified=self.ctx.config.classified_network).metadata

    async def _apply_document(self, d: Delivery, mark: str | None, read: _Read | None = None) -> None:
        if read is None:
            meta, report = await self.read_metadata(d.payload_digest), None
        else:
            meta, report = read.meta, read.report
            if read.validated:
                self.validations.inc()
        deadline = await self._cover_deadline(d) if d.header.type is MessageType.FORWARD else meta.deadline
        if report is None:
            report = await self.full_report(d.payload_digest)
        now = self.ctx.clock()
        failed = [c for c in report["checks"] if c["status"] == "fail"]
        unknown = [c for c in failed if kind_of_code(c.get("code") or "") is ErrorKind.TRANSIENT]
        if unknown:
            # Our CRL is stale or missing (a check whose kind is transient): our problem, not the
            # document's. Try again later.
            raise NodeUnavailable(f"cannot check revocation for {meta.id}: {unknown[0].get('message')}",
                                  code="NODE_REVOCATION_UNKNOWN", doc_id=meta.id)
        if failed:
            # Quarantined: never offered for 签收. The sender learns which check failed.
            reason = "; ".join(f"{c['name']}: {c.get('code')} {c.get('message') or ''}".strip() for c in failed)
            notice = Notice(MessageType.BOUNCE, meta.id, d.header.to_units, now, reason=reason[:1900])
            error = error_for_code(failed[0].get("code") or "PKG_INVALID",
                                   f"document {meta.id} refused after acknowledgement: {reason}", doc_id=meta.id)
            async with self.store.transaction() as tx:
                wake = await self.queue_notice(tx, notice, d.header.origin_node, None, (d.header.from_unit,),
                                               d.header.message_id)
                if mark:
                    await self.store.messages.mark_inbound(mark, "failed", error=error, tx=tx)
            self._wake(wake)
            log.warning("quarantined document %s: %s", meta.id, reason,
                        extra={"message_id": d.header.message_id, "doc_id": meta.id, "code": error.code})
            return
        ack = Notice(MessageType.TRANSPORT_ACK, meta.id, d.header.to_units, now)

        async def record(tx: Transaction) -> tuple[str, ...]:
            for unit in d.header.to_units:
                role = Role.MAIN if unit in meta.to else Role.COPY
                inserted = await self.store.messages.add_inbox(InboxRow(
                    doc_id=meta.id, unit=unit, role=role.value, from_unit=d.header.from_unit, title=meta.title,
                    kind=meta.kind.value, status=ReceiverStatus.PENDING.value, package_digest=d.payload_digest,
                    received_at=d.received_at, urgency=meta.urgency.value if meta.urgency else None,
                    deadline=deadline, verification=report, message_id=d.header.message_id,
                    facts=register_facts(meta)),
                    actor=f"node:{d.header.origin_node}", tx=tx)
                if not inserted:
                    # The same package again is a duplicate, whoever sent it: a copy forwarded (转发) to a
                    # unit that has it, or the issuer's own after a forwarded one — the issuer's
                    # delivery takes the row over, so its 撤回/催办 match it. Another package is a conflict.
                    held = await self.store.messages.get_inbox(meta.id, unit, tx=tx)  # an earlier one of this commit
                    if held and held.package_digest != d.payload_digest:
                        raise DocumentConflict(f"{unit} already holds a different document with id {meta.id}",
                                               doc_id=meta.id, unit=unit)
                    if held and d.header.type is MessageType.DOCUMENT and held.from_unit != d.header.from_unit:
                        await self.store.messages.adopt_inbox(meta.id, unit, d.header.from_unit or "",
                                                              d.header.message_id,
                                                              actor=f"node:{d.header.origin_node}", tx=tx)
                if d.header.type is MessageType.FORWARD:  # 转发: who forwarded it, with which cover
                    await self.store.forwards.note_received(tx, ForwardedIn(meta.id, unit, d.header.from_unit,
                                                                            d.header.in_reply_to or ""))
            wake = await self.queue_notice(tx, ack, d.header.origin_node, None, (), d.header.message_id)
            if mark:
                await self.store.messages.mark_inbound(mark, "done", tx=tx)
            return wake

        # One commit shared with whatever else is being written (the documents applied beside it,
        # acceptances), each document in a savepoint of its own: all of it or nothing of it.
        await self.store.write_together(record, after=self._wake)

    async def _cover_deadline(self, d: Delivery) -> dt.datetime | None:
        """转发: each addressee must hold the cover 通知 the forward answers, from the same forwarding
        unit. Until it does the forward waits, retried like an early notice (the cover travels in its
        own envelope and may come later; one that never comes ends with the retry window, unapplied);
        a cover from another unit refuses it. The copy's 办理时限
        is the cover's: the forwarded document's own deadline was the issuer's, to its own recipients —
        taken over, any node could make a unit overdue with an old package."""
        deadline = None
        for unit in d.header.to_units:
            cover = await self.store.messages.inbox_for_message(d.header.in_reply_to or "", unit)
            if cover is None:
                raise NodeUnavailable(f"转发 {d.header.message_id} arrived before its cover was applied",
                                      code="NOTICE_EARLY", message_id=d.header.message_id)
            if cover.from_unit != d.header.from_unit:
                raise ForwardWithoutCover(f"转发 {d.header.message_id} to {unit} answers no cover 通知 "
                                          f"{unit} received from {d.header.from_unit}", unit=unit)
            deadline = cover.deadline
        return deadline

    def _wake(self, destinations: tuple[str, ...] | None) -> None:
        for destination in destinations or ():
            self.outbound.wake(destination)

    async def apply_notice(self, d: Delivery, notice: Notice, tx: Transaction,
                           verdicts: dict | None = None) -> tuple[str, ...]:
        """:meth:`NoticeApplier.apply` (one notice, inside ``tx``)."""
        return await self.notices.apply(d, notice, tx, verdicts)
