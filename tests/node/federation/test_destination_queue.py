"""The per-destination loop's round (:meth:`DestinationQueue._round`) over a real store and certificates.

An envelope whose retry window closed is given up in every round, also when what comes before it
in the round fails on an error of ours: a draft given its one attempt at a restart cannot be sealed
while our HSM is away, and the expired envelope beside it is still given up, its sender told. A
notice held as a draft behind an envelope for a peer that is away, its window over while the node
runs, is given up as held for that peer — not as one whose peer's certificate could not be had.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_bundle
from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.notices import Notice
from exchange_protocol.states import SenderStatus
from node.federation.destination_queue import DestinationQueue
from node.federation.transport import PeerUnreachable
from node.store import (
    Draft,
    OutboundItem,
    OutboxDocument,
    OutboxRecipient,
    OutgoingLink,
)
from pki.certificates import load_certificates
from pki.errors import HsmError
from pki.pkcs11 import Pkcs11Signer
from tests.node.federation import processing_support
from tests.node.federation.processing_support import (
    SENDER,
    A,
    B,
    close_processor,
    know_the_city,
    open_processor,
)
from tests.support import FakeClock

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)


async def _sent_document(store, doc_id: str, message_id: str, now: dt.datetime) -> None:
    """A document of unit A to the city's SENDER, carried by ``message_id`` (draft or envelope)."""
    package = await store.blobs.put(f"the package of {doc_id}".encode())
    await store.messages.add_outbox(
        OutboxDocument(doc_id=doc_id, from_unit=A, title="关于测试的通知", kind=Kind.NOTICE,
                       package_digest=package.digest, created_at=now),
        [OutboxRecipient(unit=SENDER, role=Role.MAIN, status=SenderStatus.QUEUED, destination_node="city")],
        actor="clerk-1")
    async with store.transaction() as tx:
        await store.links.add_links(tx, [OutgoingLink(message_id, doc_id, "document", "city", (SENDER,), now)])


def test_expired_envelopes_are_given_up_while_a_draft_waits_on_an_error_of_ours(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, _ = await open_processor(node_dir, tmp_path)
        try:
            now = ctx.clock()
            await know_the_city(node_dir, store, now)
            outbound.started_at = now - dt.timedelta(minutes=10)  # this node started ten minutes ago
            header_life = dt.timedelta(days=1, hours=1)
            # An envelope sealed for the city, its retry window over while the node ran.
            enc = load_certificates((node_dir / "city" / "credentials" / "enc.crt").read_bytes())[0]
            sealed = HeaderDraft.new(MessageType.DOCUMENT, ctx.node_id, "city", A, (SENDER,),
                                     now - dt.timedelta(hours=1), header_life)
            frame = await store.blobs.put(seal_bundle([sealed], b"a package", ctx.sender, [Recipient(enc)]).data)
            await store.queue.enqueue(OutboundItem(sealed.message_id, "city", frame.digest, frame.size, "document",
                                                   expires_at=now - dt.timedelta(minutes=1)))
            await _sent_document(store, "doc-sealed", sealed.message_id, now)
            # A draft whose window ended while the node was stopped, its header alive: it is sealed at
            # this start for its one attempt — but the node's signing key is on a token whose module
            # cannot be loaded now (an HSM away), an error of ours that the draft waits out.
            waiting = HeaderDraft.new(MessageType.DOCUMENT, ctx.node_id, "city", A, (SENDER,),
                                      now - dt.timedelta(hours=1), header_life)
            payload = await store.blobs.put(b"another package")
            async with store.transaction() as tx:
                await store.drafts.add_draft(tx, Draft(waiting, payload.digest, payload.size,
                                                       now - dt.timedelta(hours=1), now - dt.timedelta(minutes=20)))
            await _sent_document(store, "doc-waiting", waiting.message_id, now)
            ctx.signer = Pkcs11Signer(tmp_path / "no-such-pkcs11.so", "gwx", "pin", "sign",
                                      certificate=ctx.signer.certificate)

            with pytest.raises(HsmError):
                await DestinationQueue(outbound, "city")._round()

            entry = await store.queue.get(sealed.message_id)
            assert entry is not None and entry.state == "bounced"  # given up all the same
            [given_up] = (await store.messages.get_outbox("doc-sealed")).recipients
            assert given_up.status == SenderStatus.FAILED.value, given_up
            assert given_up.reason.startswith("QUEUE_EXPIRED: retry window closed before delivery"), given_up.reason
            [draft] = await store.drafts.drafts_for("city")  # the draft waits for the HSM, its document too
            assert draft.header.message_id == waiting.message_id
            [queued] = (await store.messages.get_outbox("doc-waiting")).recipients
            assert queued.status == SenderStatus.QUEUED.value
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())


def test_a_notice_held_for_a_peer_that_was_away_is_given_up_as_held(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            clock = FakeClock(ctx.clock().replace(microsecond=0))
            ctx.clock = clock  # the node's (and its queues') clock, moved by the test
            await know_the_city(node_dir, store, clock())
            queue = DestinationQueue(outbound, "city")

            async def sign_for(unit: str, clerk: str) -> None:
                notice = Notice(MessageType.RECEIPT, new_id(clock()), (unit,), clock(), by=clerk)
                async with store.transaction() as tx:
                    await processor.queue_notice(tx, notice, "city", unit, (SENDER,), new_id(clock()))

            # The city is away (nothing listens at its address): A's 签收 is sealed, its attempt fails.
            await sign_for(A, "收发员甲")
            with pytest.raises(PeerUnreachable) as away:
                await queue._round()
            await queue.limiter.failed(away.value)  # what the loop does with the round's error
            [(sealed_id, _)] = await store.queue.at_rest()
            # B's 签收 of another document, a minute later: held as a draft behind the sealed envelope
            # (the notices that could share an envelope wait for the peer with it).
            clock.advance(minutes=1)
            await sign_for(B, "收发员乙")
            [held] = await store.drafts.drafts_for("city")

            clock.advance(days=2, hours=1)  # both windows close while the node runs; the city never came back
            await queue._round()

            assert await store.drafts.drafts_for("city") == []
            [event] = await store.audit.events(message_id=held.header.message_id)
            reason = event.details["message"]
            assert (event.action, event.details["error"]) == ("draft.failed", "QUEUE_EXPIRED")
            assert reason.startswith("retry window closed while it was held for a peer that was away"), reason
            assert "(1 attempt(s), the last: PEER_UNREACHABLE" in reason, reason  # the peer's attempt
            assert "certificate" not in reason, reason
            entry = await store.queue.get(sealed_id)  # the envelope before it, given up in the same round
            assert entry.state == "bounced" and "the peer did not take it" in entry.last_error.message
        finally:
            await close_processor(store, outbound)

    asyncio.run(run())
