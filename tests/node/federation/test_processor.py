"""node.federation.processor over a real node directory, store and CA: what happens after acknowledgement.

A document that fails validation is quarantined and bounced, never offered for 签收; a poisoned
message is set aside and the next one is applied; the same 公文标识 with another package is
refused; a notice that matches nothing we sent moves nothing; notices commit atomically with
the mark that they were applied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import json
import logging
import zipfile

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType, decode_header
from exchange_protocol.ids import new_id
from exchange_protocol.notices import Notice
from node.federation.notice_apply import NoticeNotOurs
from node.federation.processor import Delivery, DocumentConflict
from node.store import InboundEnvelope
from tests.node.federation import processing_support
from tests.node.federation.federation_support import node_context
from tests.node.federation.processing_support import (
    SENDER,
    A,
    B,
    city_envelope,
    city_package,
    close_processor,
    delivery,
    doc_id_in,
    open_processor,
    receive,
)

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)


def test_a_valid_document_reaches_the_inboxes_and_is_acknowledged(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            ref = await store.blobs.put(await asyncio.to_thread(city_package, node_dir, [A, B]))
            d = delivery(ref.digest, [A, B])
            await processor.apply(d)
            rows = [await store.messages.get_inbox(doc_id_in(store, ref.digest), u) for u in (A, B)]
            assert [r.status for r in rows] == ["pending", "pending"] and rows[0].verification["ok"]
            [ack] = await store.drafts.drafts_for("city")
            assert ack.header.type == "transport-ack" and ack.header.in_reply_to == d.header.message_id
            # Applying the same delivery again (a crash before the mark): one inbox row each.
            await processor.apply(d)
            assert (await store.messages.list_inbox()).items.__len__() == 2
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_document_failing_its_pdf_seal_is_quarantined_and_bounced(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            ref = await store.blobs.put(await asyncio.to_thread(city_package, node_dir, [A], tamper_pdf=True))
            env = await store.blobs.put(b"the envelope as received")
            d = delivery(ref.digest, [A])
            message_id = d.header.message_id
            await store.accept_inbound(InboundEnvelope(message_id, env.digest, env.digest, "city", b"receipt",
                                                       "document", 24, ref.digest))
            await processor.apply(d, mark=message_id)
            assert await store.messages.get_inbox(doc_id_in(store, ref.digest), A) is None  # never offered for 签收
            received = await store.messages.get_received(message_id)
            assert received.state == "failed" and received.error_code == "PKG_PDF_SEAL_INVALID"
            [bounce] = await store.drafts.drafts_for("city")
            assert bounce.header.type == "bounce" and bounce.header.in_reply_to == message_id
            # Addressed to the unit that sent the document, so the city node can seal and accept it
            # (with no unit the envelope could never be built and the bounce never left).
            assert bounce.header.to_units == (SENDER,)
            sealed = bounce.header.complete(bounce.payload_size, b"\x00" * 32)
            assert decode_header(sealed.encode()) == sealed
            notice = json.loads(bounce.payload)  # kept in the draft row
            assert "pdf_seal" in notice["reason"] and notice["units"] == [A]
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_the_same_document_id_with_another_package_is_refused(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            first = await store.blobs.put(await asyncio.to_thread(city_package, node_dir, [A]))
            await processor.apply(delivery(first.digest, [A]))
            doc_id = doc_id_in(store, first.digest)
            # Another package claiming the same 公文标识 (a replayed id with other contents).
            with zipfile.ZipFile(store.blobs.path_for(first.digest)) as z:
                members = {i.filename: z.read(i.filename) for i in z.infolist()}
            other = io.BytesIO()
            with zipfile.ZipFile(other, "w") as z:
                for name, data in members.items():
                    z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
            second = await store.blobs.put(other.getvalue())
            assert second.digest != first.digest
            with pytest.raises(DocumentConflict):
                await processor.apply(delivery(second.digest, [A]))
            assert (await store.messages.get_inbox(doc_id, A)).package_digest == first.digest
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_poisoned_message_is_set_aside_and_the_next_is_applied(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            garbage = await store.blobs.put(b"not an envelope at all")
            await store.accept_inbound(InboundEnvelope(new_id(ctx.clock()), garbage.digest, garbage.digest, "city",
                                                       b"receipt", "document", 22, garbage.digest))
            processor.start()
            for _ in range(100):
                if not await store.messages.pending_inbound():
                    break
                await asyncio.sleep(0.05)
            [failure] = await store.messages.inbound_failures()
            assert (await store.messages.inbound_counts(), failure.error_code) == ({"failed": 1}, "ENV_BAD_MAGIC")
        finally:
            await processor.stop()
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_notice_that_matches_nothing_we_sent_moves_nothing_and_leaves_no_trace(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            ref = await store.blobs.put(await asyncio.to_thread(city_package, node_dir, [A]))
            await processor.apply(delivery(ref.digest, [A]))
            doc_id = doc_id_in(store, ref.digest)
            forged = Notice(MessageType.URGE, doc_id, (A,), ctx.clock(), by="冒充者")
            blob = await store.blobs.put(forged.encode())
            now = ctx.clock()
            header = HeaderDraft(new_id(now), MessageType.URGE, "city", "county", SENDER, (A,), now,
                                 now + dt.timedelta(days=1), in_reply_to=new_id(now))  # not the document's message
            d = Delivery(header, blob.digest, now)
            with pytest.raises(NoticeNotOurs):
                async with store.transaction() as tx:
                    await processor.apply_notice(d, forged, tx)
            assert (await store.messages.get_inbox(doc_id, A)).urge_count == 0
            # Rolled back whole: nothing recorded against the document beyond its arrival.
            assert [e.action for e in await store.audit.events(doc_id=doc_id)] == ["inbox.add"]
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_notice_that_overtakes_its_document_waits_for_it(node_dir, tmp_path, caplog):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A])
            doc = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, [A], package)
            doc_row = await receive(store, doc, package)
            with zipfile.ZipFile(io.BytesIO(package)) as z:
                doc_id = json.loads(z.read("metadata.json"))["id"]
            recall = Notice(MessageType.RECALL, doc_id, (A,), ctx.clock(), by="市政府办公室收发员").encode()
            early = await asyncio.to_thread(city_envelope, node_dir, MessageType.RECALL, [A], recall, doc.header.message_id)
            recall_row = await receive(store, early, recall)

            with caplog.at_level(logging.WARNING, logger="gwx"):
                await processor._process(recall_row)  # before the document: deferred, not failed
            [line] = [r for r in caplog.records if r.getMessage().startswith("cannot apply")]
            assert (line.message_id, line.doc_id) == (recall_row.message_id, doc_id)  # the log names the document
            waiting = await store.messages.get_received(recall_row.message_id)
            assert (waiting.state, waiting.attempts, waiting.error_code) == ("new", 1, "NOTICE_EARLY")
            assert recall_row.message_id not in [r.message_id for r in await store.messages.pending_inbound()]

            await processor._process(doc_row)
            await processor._process(waiting)  # its turn again
            assert (await store.messages.get_inbox(doc_id, A)).status == "recalled"
            assert (await store.messages.get_received(recall_row.message_id)).state == "done"
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_stale_crl_after_acknowledgement_defers_and_never_bounces(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            from node.errors import NodeError
            from pki.errors import RevocationStale

            def stale(cert, issuer, at):
                raise RevocationStale("our CRL's nextUpdate has passed")

            processor.ctx = dataclasses.replace(ctx, revocation=stale)
            ref = await store.blobs.put(await asyncio.to_thread(city_package, node_dir, [A]))
            with pytest.raises(NodeError) as err:
                await processor.apply(delivery(ref.digest, [A]))
            assert err.value.code == "NODE_REVOCATION_UNKNOWN"
            assert await store.drafts.drafts_for("city") == []  # no bounce went back
            assert processor.judge.reports.get(ref.digest) is None  # nor was the verdict remembered
            processor.ctx = ctx  # a fresh CRL: the same document goes through
            await processor.apply(delivery(ref.digest, [A]))
            assert (await store.messages.get_inbox(doc_id_in(store, ref.digest), A)).status == "pending"
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_refused_document_sends_a_bounce_back(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A])
            first = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, [A], package)
            await processor._process(await receive(store, first, package))
            # The same 公文标识 again in another package (re-zipped): refused, and the sender told.
            with zipfile.ZipFile(io.BytesIO(package)) as z:
                members = {i.filename: z.read(i.filename) for i in z.infolist()}
            other = io.BytesIO()
            with zipfile.ZipFile(other, "w") as z:
                for name, data in members.items():
                    z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
            second = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, [A], other.getvalue())
            row = await receive(store, second, other.getvalue())
            await processor._process(row)
            refused = await store.messages.get_received(row.message_id)
            assert (refused.state, refused.error_code) == ("failed", "DOC_ID_CONFLICT")
            bounces = [d for d in await store.drafts.drafts_for("city") if d.header.type == "bounce"]
            assert [b.header.in_reply_to for b in bounces] == [second.header.message_id]
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_revoked_seal_after_acknowledgement_fails_the_pdf_seal_too(node_dir, tmp_path):
    """The PAdES validation after acknowledgement asks the node's revocation the same question as the
    manifest signature: a revoked seal certificate fails pdf_seal with the same code, not [ok]."""
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            from pki.errors import CertificateRevoked

            sender_cert = node_context(node_dir / "city").seals[SENDER].certificate

            def revoked(cert, issuer, at):
                if cert == sender_cert:
                    raise CertificateRevoked("the seal certificate is revoked (key_compromise)")

            processor.ctx = dataclasses.replace(ctx, revocation=revoked)
            ref = await store.blobs.put(await asyncio.to_thread(city_package, node_dir, [A]))
            await processor.apply(delivery(ref.digest, [A]))
            assert await store.messages.get_inbox(doc_id_in(store, ref.digest), A) is None
            report = await processor.full_report(ref.digest)
            checks = {c["name"]: (c["status"], c.get("code")) for c in report["checks"]}
            assert checks["pdf_seal"] == ("fail", "PKI_CERT_REVOKED") == checks["manifest_signature"]
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_remembered_verdict_stands_only_while_its_crls_do(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            from pki.errors import CertificateRevoked
            from pki.revocation import CrlChecker

            ref = await store.blobs.put(await asyncio.to_thread(city_package, node_dir, [A]))
            judge = lambda: asyncio.to_thread(processor.judge.report, processor.ctx, ref.digest)  # noqa: E731
            assert (await judge())[1] is True  # validated
            _, validated, meta = await judge()
            assert validated is False  # the same package again, the same CRLs: remembered
            assert meta.title == "关于处理测试的通知"  # with the metadata the check parsed: not read again
            processor.ctx = dataclasses.replace(ctx, revocation=CrlChecker(ctx.revocation.crls()))
            assert (await judge())[1] is True  # other CRL information: judged afresh
            sender_cert = node_context(node_dir / "city").seals[SENDER].certificate

            def revoked(cert, issuer, at):
                if cert == sender_cert:
                    raise CertificateRevoked("the seal certificate is revoked (key_compromise)")

            processor.ctx = dataclasses.replace(ctx, revocation=revoked)
            report, validated, _ = await judge()
            assert validated and not report["ok"]  # never the remembered "valid"
            processor.ctx = dataclasses.replace(ctx, clock=lambda: ctx.clock() + dt.timedelta(days=3650))
            report, validated, _ = await judge()
            assert validated and not report["ok"]  # ten years on: expired, not remembered
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_documents_in_a_row_commit_together_and_nothing_overtakes_them(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            rows, packages = [], []
            for to, tamper in (([A], False), ([A], True), ([B], False)):  # the second's PDF seal is broken
                package = await asyncio.to_thread(city_package, node_dir, to, tamper_pdf=tamper)
                sealed = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, to, package)
                rows.append(await receive(store, sealed, package))
                packages.append(package)
            with zipfile.ZipFile(io.BytesIO(packages[0])) as z:
                first_id = json.loads(z.read("metadata.json"))["id"]
            recall = Notice(MessageType.RECALL, first_id, (A,), ctx.clock(), by="市政府办公室收发员").encode()
            sealed = await asyncio.to_thread(city_envelope, node_dir, MessageType.RECALL, [A], recall,
                                             rows[0].message_id)
            rows.append(await receive(store, sealed, recall))  # right behind the documents, in the same batch
            commits = store.committer.batches
            await processor._process_batch(await store.messages.pending_inbound(50))
            state = [(await store.messages.get_received(r.message_id)) for r in rows]
            assert [(s.state, s.error_code) for s in state] == [("done", None), ("failed", "PKG_PDF_SEAL_INVALID"),
                                                                ("done", None), ("done", None)]
            assert (await store.messages.get_inbox(first_id, A)).status == "recalled"  # not overtaken: applied
            assert (await store.messages.get_inbox(doc_id_in(store, rows[2].payload_digest), B)).status == "pending"
            assert await store.messages.get_inbox(doc_id_in(store, rows[1].payload_digest), A) is None
            assert store.committer.batches - commits == 1  # the two good documents: one commit (one fsync)
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


@pytest.mark.parametrize("kind", ["may pass", "final"])
def test_documents_applied_side_by_side_all_finish_when_one_fails(node_dir, tmp_path, kind):
    """Three documents of one batch are applied side by side; the middle one's apply fails, and then
    the database refuses the write that records its failure. The other two are applied — inbox rows,
    one 已送达 each — before the batch's error reaches the loop (none left half-way, to be taken up
    again); the failed one is then retried or refused as its error's kind says, the others not again."""
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            from node.errors import NodeUnavailable, StoreError

            rows = []
            for to in ([A], [B], [A]):
                package = await asyncio.to_thread(city_package, node_dir, to)
                sealed = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, to, package)
                rows.append(await receive(store, sealed, package))
            failing = rows[1].message_id
            others = [rows[0].message_id, rows[2].message_id]
            error = (NodeUnavailable("our CRL is stale", code="NODE_REVOCATION_UNKNOWN") if kind == "may pass"
                     else DocumentConflict("another package with this id", code="DOC_ID_CONFLICT"))
            recorded = asyncio.Event()  # the failed one's outcome was to be written (and was refused)
            applied: list[str] = []
            real_apply = processor.apply

            async def apply(d, mark=None, read=None):
                if d.header.message_id == failing:
                    raise error
                await recorded.wait()  # the others' commits are slower than the failed one's path
                await real_apply(d, mark=mark, read=read)
                applied.append(d.header.message_id)

            def refused_once(real, recording):
                async def write(message_id, *args, **kwargs):
                    if message_id == failing and recording(*args) and not recorded.is_set():
                        recorded.set()
                        raise StoreError("disk I/O error")
                    return await real(message_id, *args, **kwargs)
                return write

            processor.apply = apply
            messages = store.messages
            if kind == "may pass":
                messages.defer_inbound = refused_once(messages.defer_inbound, lambda *a: True)
            else:
                messages.mark_inbound = refused_once(messages.mark_inbound, lambda state, *a: state == "failed")

            with pytest.raises(StoreError):
                await processor._process_batch(await store.messages.pending_inbound(50))
            assert sorted(applied) == sorted(others)  # all of them, by the time the error is raised

            def acks():
                return [d.header.in_reply_to for d in drafts if d.header.type == "transport-ack"]

            drafts = await store.drafts.drafts_for("city")
            assert sorted(acks()) == sorted(others) and len(drafts) == 2  # no bounce: its write was refused
            assert (await store.messages.get_received(failing)).state == "new"  # to be taken up again
            assert [r.message_id for r in await store.messages.pending_inbound(50)] == [failing]

            await processor._process_batch(await store.messages.pending_inbound(50))  # the loop's next turn
            row = await store.messages.get_received(failing)
            drafts = await store.drafts.drafts_for("city")
            assert sorted(acks()) == sorted(others)  # the others not applied again
            bounces = [d.header.in_reply_to for d in drafts if d.header.type == "bounce"]
            if kind == "may pass":
                assert (row.state, row.error_code, row.attempts) == ("new", "NODE_REVOCATION_UNKNOWN", 1)
                assert await store.messages.pending_inbound(50) == []  # deferred: it waits for its retry time
                assert bounces == []
            else:
                assert (row.state, row.error_code) == ("failed", "DOC_ID_CONFLICT")
                assert bounces == [failing]  # its sender told
            for r in rows:
                doc_id = doc_id_in(store, r.payload_digest)
                unit = B if r is rows[1] else A
                inbox = await store.messages.get_inbox(doc_id, unit)
                assert (inbox is None) == (r.message_id == failing)
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())
