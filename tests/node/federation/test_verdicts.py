"""node.federation.verdicts: the acceptor's verdict on a package carried to the processor of its process.

A real county node accepts real envelopes from the city (real seal, keys, SQLite store) and
applies them. What a clerk would notice must not change: the report in the inbox is the one a
full check gives; a PDF seal broken after sealing is still refused with its code although the
acceptor never looked at the PDF; a seal revoked between acceptance and processing is refused
(the revocation information changed, so the package is judged in full again); a moment past
the verdict's validity, or a worker that did not accept the package, judges in full.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io

from exchange_protocol.envelope import MessageType
from exchange_protocol.package_verify import PASS, SKIPPED, judge_pdf_later, verify_package
from node.federation.acceptor import Acceptor, revocation_token
from node.federation.verdicts import AcceptedPackages
from node.ops.metrics import Registry
from pki.errors import CertificateRevoked
from pki.unit_code import make_unit_code
from tests.node.federation import processing_support
from tests.node.federation.federation_support import node_context
from tests.node.federation.processing_support import (
    SENDER,
    A,
    city_envelope,
    city_package,
    close_processor,
    doc_id_in,
    open_processor,
)

FORGER = make_unit_code("11371300MB0000093")  # a unit of the hostile sender, not the document's issuer
node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)
checks = processing_support.checks  # each test that judges runs with the checks in this process and in a child


async def accept(node_dir, ctx, store, processor, package: bytes):
    """The city's document with ``package`` accepted by the county's acceptor, which hands its
    verdicts to ``processor``; returns the received row, not yet applied."""
    sealed = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, (A,), package)
    acceptor = Acceptor(ctx, store, Registry(), verdicts=processor.accepted)
    await acceptor.accept(sealed.data, "city")
    return await store.messages.get_received(sealed.header.message_id)


def test_the_processor_judges_only_the_pdf_seal_and_the_clerk_sees_the_full_report(node_dir, tmp_path, checks):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path, checks)
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A])
            received = await accept(node_dir, ctx, store, processor, package)
            assert len(processor.accepted) == 1  # the acceptor's verdict, waiting for the processor
            await processor._process(received)
            assert len(processor.accepted) == 0  # taken
            assert processor.validations.value() == 1  # the PDF seal was judged, once
            row = await store.messages.get_inbox(doc_id_in(store, received.payload_digest), A)
            assert row.status == "pending"
            full = verify_package(io.BytesIO(package), ctx.trust, ctx.clock(), revocation=ctx.revocation,
                                  lean_pdf=True).to_dict()
            shown = row.verification
            for moment in ("checked_at", "judged_at"):
                full.pop(moment), shown.pop(moment)
            assert shown == full and shown["ok"]
            assert {c["name"]: c["status"] for c in shown["checks"]}["pdf_seal"] == PASS
            assert checks is None or len(checks.pids()) == 1  # with the pool, a check process judged it
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_package_arriving_again_leaves_no_verdict_behind(node_dir, tmp_path, checks):
    """The same package in a second envelope (补发, a 转发 of what is held) is answered from the
    processor's cache of reports; the acceptor's verdict held for it is taken all the same, so no
    PDF body stays in memory until pushed out."""
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path, checks)
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A])
            await processor._process(await accept(node_dir, ctx, store, processor, package))
            again = await accept(node_dir, ctx, store, processor, package)
            assert len(processor.accepted) == 1
            await processor._process(again)
            assert len(processor.accepted) == 0
            assert processor.validations.value() == 1  # the second came from the cache
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_the_header_the_acceptor_decoded_is_applied_and_another_envelope_s_is_read_from_the_store(node_dir,
                                                                                                  tmp_path):
    """A document this process accepted is applied under the header the acceptor decoded, held with
    its verdict: the stored frame is not read back to decode it again. When a later envelope carried
    the same package before the first was applied, the first is applied under its own header, read
    from the store: each message under its own id."""
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        reads, read_header = [], processor._read_header

        def counted(blob_digest, message_id):
            reads.append(message_id)
            return read_header(blob_digest, message_id)
        processor._read_header = counted
        try:
            received = await accept(node_dir, ctx, store, processor, await asyncio.to_thread(city_package, node_dir, [A]))
            await processor._process(received)
            assert reads == []  # the acceptor's header
            row = await store.messages.get_inbox(doc_id_in(store, received.payload_digest), A)
            assert (row.message_id, row.from_unit, row.status) == (received.message_id, SENDER, "pending")

            package = await asyncio.to_thread(city_package, node_dir, [A])
            first = await accept(node_dir, ctx, store, processor, package)
            second = await accept(node_dir, ctx, store, processor, package)  # the verdict now held with its header
            await processor._process(first)
            assert reads == [first.message_id]
            row = await store.messages.get_inbox(doc_id_in(store, first.payload_digest), A)
            assert (row.message_id, row.status) == (first.message_id, "pending")
            await processor._process(second)  # the same package again: a duplicate, its own header
            assert (await store.messages.get_received(second.message_id)).state == "done"
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_header_held_for_another_envelope_of_the_same_message_id_is_never_applied(node_dir, tmp_path):
    """Two envelopes naming one message id (a hostile relay that knows it and the package's bytes)
    may both pass their checks before the store refuses the second as a replay; the verdict is then
    held with the second's header — another sender, other addressees. The document is applied under
    the header of the envelope the store kept (matched by its identity digest), never the held one."""
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A])
            received = await accept(node_dir, ctx, store, processor, package)
            stored = processor._read_header(received.blob_digest, received.message_id)
            forged = dataclasses.replace(stored, type=MessageType.FORWARD, from_unit=FORGER, in_reply_to=stored.message_id)
            report = verify_package(io.BytesIO(package), ctx.trust, ctx.clock(), revocation=ctx.revocation,
                                    validate_pdf=False)
            processor.accepted.hold(received.payload_digest, report, ctx.trust, revocation_token(ctx.revocation),
                                    header=forged, identity="f" * 64)  # the second envelope's, held last
            assert processor.accepted.header(received.payload_digest, received.message_id, "f" * 64) is forged
            await processor._process(received)
            row = await store.messages.get_inbox(doc_id_in(store, received.payload_digest), A)
            assert row is not None, "the document was not applied under the stored envelope's header"
            assert (row.message_id, row.from_unit, row.status) == (received.message_id, SENDER, "pending")
            assert (await store.messages.get_received(received.message_id)).state == "done"
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_broken_pdf_seal_is_still_refused_with_its_code(node_dir, tmp_path, checks):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path, checks)
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A], tamper_pdf=True)
            received = await accept(node_dir, ctx, store, processor, package)  # the acceptor does not judge the PDF
            assert len(processor.accepted) == 1
            await processor._process(received)
            done = await store.messages.get_received(received.message_id)
            assert done.state == "failed" and done.error_code == "PKG_PDF_SEAL_INVALID"
            assert await store.messages.get_inbox(doc_id_in(store, received.payload_digest), A) is None
            [bounce] = await store.drafts.drafts_for("city")
            assert bounce.header.type == "bounce"
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_seal_revoked_between_acceptance_and_processing_is_refused(node_dir, tmp_path, checks):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path, checks)
        try:
            package = await asyncio.to_thread(city_package, node_dir, [A])
            received = await accept(node_dir, ctx, store, processor, package)

            def revoked(cert, issuer, at):  # new revocation information: the seal's certificate revoked
                raise CertificateRevoked("revoked after the envelope was accepted")

            processor.ctx = dataclasses.replace(ctx, revocation=revoked)
            await processor._process(received)
            done = await store.messages.get_received(received.message_id)
            assert done.state == "failed" and done.error_code == "PKI_CERT_REVOKED"
            assert await store.messages.get_inbox(doc_id_in(store, received.payload_digest), A) is None
        finally:
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_verdict_stands_only_under_the_same_trust_revocation_and_validity(node_dir):
    ctx = node_context(node_dir / "county")
    package = city_package(node_dir, [A])
    now = ctx.clock()
    report = verify_package(io.BytesIO(package), ctx.trust, now, revocation=ctx.revocation, validate_pdf=False)
    assert report.check("pdf_seal").status == SKIPPED and report.pdf_to_judge is not None
    token = (object(), now - dt.timedelta(days=1), now + dt.timedelta(days=1))  # a CRL set in force for two days
    verdicts = AcceptedPackages()
    later = now + dt.timedelta(minutes=5)
    for trust, held_token, at in ((object(), token, later),  # the roots reloaded
                                  (ctx.trust, (object(), *token[1:]), later),  # another CRL file
                                  (ctx.trust, None, later),  # a check that offers no token (OCSP)
                                  (ctx.trust, token, now + dt.timedelta(days=2)),  # past the CRL's nextUpdate
                                  (ctx.trust, token, report.valid_until + dt.timedelta(seconds=1))):
        verdicts.hold("d", report, ctx.trust, token)
        assert verdicts.take("d", trust, held_token, at) is None
        assert len(verdicts) == 0  # taken either way
    verdicts.hold("d", report, ctx.trust, token)
    held = verdicts.take("d", ctx.trust, token, later)
    assert held is report
    judged = judge_pdf_later(held, later, revocation=ctx.revocation)
    assert judged.ok and judged.checked_at == later and judged.pdf_to_judge is None
    assert judged.check("pdf_seal").details["check"] == "lean"


def test_failures_are_never_carried_and_memory_is_bounded(node_dir):
    ctx = node_context(node_dir / "county")
    now = ctx.clock()
    token = (object(), now - dt.timedelta(days=1), now + dt.timedelta(days=1))
    good = verify_package(io.BytesIO(city_package(node_dir, [A])), ctx.trust, now, validate_pdf=False)
    broken = verify_package(io.BytesIO(b"not a zip"), ctx.trust, now, validate_pdf=False)
    verdicts = AcceptedPackages(max_entries=2, max_bytes=10 * len(good.pdf_to_judge.body))
    verdicts.hold("broken", broken, ctx.trust, token)
    assert len(verdicts) == 0
    for name in ("a", "b", "c"):
        verdicts.hold(name, good, ctx.trust, token)
    assert len(verdicts) == 2 and verdicts.take("a", ctx.trust, token, now) is None  # the oldest dropped
    small = AcceptedPackages(max_bytes=8 * len(good.pdf_to_judge.body) - 1)
    small.hold("big", good, ctx.trust, token)  # a body over an eighth of the budget is not held
    assert len(small) == 0
