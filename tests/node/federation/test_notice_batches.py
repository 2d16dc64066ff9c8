"""Notices batched per destination (issue 8 §4): the county's 签收 for one 通知 from the city leave in
one envelope, and the city applies each of them on its own — real stores, keys and processors.

The county signs for the city's document for each of its units; the drafts waiting for the city
are sealed as one envelope carrying a batch (``exchange_protocol.notices``), under the header of
the oldest, and the other drafts' ids never travel. The city opens it with its own key and its
processor moves one row per 签收, each with its own 签收人 and time, exactly once; a notice in a
batch that its origin may not send is left out (and recorded) while the others apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import open_envelope_bytes, seal_envelope
from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.notices import Notice, decode_notices, encode_notices
from exchange_protocol.states import SenderStatus
from node.federation.destination_queue import DestinationQueue
from node.federation.envelope_builder import DRAFTS_PER_ROUND
from node.federation.outbound import Outbound
from node.federation.processor import Processor
from node.federation.tls import client_context
from node.federation.transport import PeerClient, PeerUnreachable
from node.ops.metrics import Registry
from node.store import InboundEnvelope, OutboxDocument, OutboxRecipient, OutgoingLink
from node.store.opener import open_store
from pki.certificates import load_certificates
from pki.errors import GwxError
from pki.unit_code import make_unit_code
from tests.node.federation.federation_support import node_context, provision_county_and_city
from tests.node.federation.processing_support import know_the_city
from tests.support import PASSPHRASE

UNITS = [make_unit_code(f"54371302MA{1000 + i:07d}") for i in range(6)]  # the county's villages
SENDER = make_unit_code("11371300MB0000071")  # the city government office


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return provision_county_and_city(tmp_path_factory.mktemp("notice-batches"), "批量回执测试CA",
                                     {u: f"第{i}村村民委员会" for i, u in enumerate(UNITS)}, {SENDER: "市政府办公室"})


class Node:
    """One node's context, store, outbound queue and processor, as the running node wires them."""

    @classmethod
    async def open(cls, node_dir, node_id: str, data) -> Node:
        self = cls()
        self.ctx = node_context(node_dir / node_id)
        creds = self.ctx.config.credentials_dir
        self.store = await open_store(data, node_id=node_id)
        self.outbound = Outbound(self.ctx, self.store, PeerClient(client_context(
            creds / "tls.crt", creds / "tls.key", self.ctx.config.trust_root_path, PASSPHRASE)), Registry())
        self.processor = Processor(self.ctx, self.store, Registry(), self.outbound)
        return self

    async def close(self) -> None:
        await self.outbound.stop(1.0)
        await self.outbound.client.close()
        await self.store.close()


async def _sign_for(county: Node, doc_id: str, answered: str, units, at: dt.datetime, type=MessageType.RECEIPT):
    """Each unit's clerk signs for the document: a draft each, written as the service writes it."""
    for i, unit in enumerate(units):
        notice = Notice(type, doc_id, (unit,), at + dt.timedelta(seconds=i), by=f"收发员{i}",
                        reason="不属本单位办理" if type is MessageType.RETURN else None)
        async with county.store.transaction() as tx:
            await county.processor.queue_notice(tx, notice, "city", unit, (SENDER,), answered)


async def _city_sent(city: Node, units, status: SenderStatus = SenderStatus.DELIVERED) -> tuple[str, str]:
    """The city's outbox: a 通知 from SENDER to ``units``, delivered to the county by one message (its
    rows ``status``)."""
    now = city.ctx.clock()
    doc_id, message_id = new_id(now), new_id(now)
    package = await city.store.blobs.put(b"the package")
    await city.store.messages.add_outbox(
        OutboxDocument(doc_id=doc_id, from_unit=SENDER, title="关于批量签收的通知", kind=Kind.NOTICE,
                       package_digest=package.digest, created_at=now),
        [OutboxRecipient(unit=u, role=Role.MAIN, status=status, destination_node="county")
         for u in units], actor="clerk-1")
    async with city.store.transaction() as tx:
        await city.store.links.add_links(tx, [OutgoingLink(message_id, doc_id, "document", "county", tuple(units),
                                                           now)])
    return doc_id, message_id


async def _arrive(city: Node, frame: bytes):
    """``frame`` opened with the city's key and stored as accepted, not yet applied."""
    opened, plaintext = open_envelope_bytes(frame, city.ctx.trust_policy(), city.ctx.decryption_keys, "city",
                                            city.ctx.clock())
    env = await city.store.blobs.put(frame)
    plain = await city.store.blobs.put(plaintext)
    await city.store.accept_inbound(InboundEnvelope(opened.header.message_id, env.digest, env.digest, "county",
                                                    b"receipt", opened.header.type.value, len(frame), plain.digest))
    return await city.store.messages.get_received(opened.header.message_id), plaintext


def test_the_signatures_of_one_document_leave_in_one_envelope_and_move_one_row_each(node_dir, tmp_path):
    async def run():
        county = await Node.open(node_dir, "county", tmp_path / "county")
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            await know_the_city(node_dir, county.store, county.ctx.clock())
            doc_id, answered = await _city_sent(city, UNITS)
            at = county.ctx.clock().replace(microsecond=0)
            await _sign_for(county, doc_id, answered, UNITS, at)
            drafts = await county.store.drafts.drafts_for("city")
            ids = sorted(d.header.message_id for d in drafts)
            assert len(ids) == len(UNITS)

            await DestinationQueue(county.outbound, "city").builder.build_drafts()

            [row] = await county.store.queue.load_active_window("city", 100)
            assert row.message_id == ids[0] and row.type == "receipt"  # the oldest draft's header
            assert await county.store.drafts.drafts_for("city") == []
            assert await county.store.links.link(ids[0]) is not None
            assert [await county.store.links.link(i) for i in ids[1:]] == [None] * (len(ids) - 1)  # never travel

            received, plaintext = await _arrive(city, county.store.blobs.path_for(row.blob_digest).read_bytes())
            notices = decode_notices(plaintext)
            assert [(n.units, n.by, n.at) for n in notices] == \
                [((u,), f"收发员{i}", at + dt.timedelta(seconds=i)) for i, u in enumerate(UNITS)]

            await city.processor._process(received)
            assert (await city.store.messages.get_received(received.message_id)).state == "done"
            rows = {r.unit: r for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert [(rows[u].status, rows[u].who, rows[u].when) for u in UNITS] == \
                [("signed_for", f"收发员{i}", at + dt.timedelta(seconds=i)) for i in range(len(UNITS))]
            signed = [e for e in await city.store.audit.events(doc_id=doc_id) if e.action == "recipient.signed_for"]
            assert len(signed) == len(UNITS)

            # Applied again (a crash before the mark, a duplicate): nothing moves twice.
            await city.processor._process(received)
            again = [e for e in await city.store.audit.events(doc_id=doc_id) if e.action == "recipient.signed_for"]
            assert len(again) == len(UNITS)
        finally:
            await county.close()
            await city.close()
    asyncio.run(run())


def test_only_notices_answering_the_same_message_share_an_envelope(node_dir, tmp_path):
    """Two documents' 签收, a 退回 and a 催办-like notice that never batches: one envelope per kind
    and message; a draft whose payload was altered is dropped on its own and the rest still leave."""
    async def run():
        county = await Node.open(node_dir, "county", tmp_path / "county")
        try:
            await know_the_city(node_dir, county.store, county.ctx.clock())
            now = county.ctx.clock()
            first, second = (new_id(now), new_id(now)), (new_id(now), new_id(now))
            await _sign_for(county, *first, UNITS[:3], now)
            await _sign_for(county, *second, UNITS[:4], now)
            await _sign_for(county, *first, UNITS[3:5], now, type=MessageType.RETURN)
            await _sign_for(county, *first, UNITS[5:], now)  # a batch of one more: still the same envelope
            [altered] = [d for d in await county.store.drafts.drafts_for("city")
                         if d.header.in_reply_to == second[1]][:1]
            async with county.store.transaction() as tx:  # damaged on disk
                await tx.execute("UPDATE drafts SET payload = ? WHERE message_id = ?",
                                 (b"{}", altered.header.message_id))

            await DestinationQueue(county.outbound, "city").builder.build_drafts()

            rows = await county.store.queue.load_active_window("city", 100)
            kinds = sorted((r.type, len(decode_notices(_opened(node_dir, county, r)))) for r in rows)
            assert kinds == [("receipt", 3), ("receipt", 4), ("return", 2)]
            assert await county.store.drafts.drafts_for("city") == []
            failed = [e for e in await county.store.audit.events(message_id=altered.header.message_id)
                      if e.action == "draft.failed"]
            assert len(failed) == 1
        finally:
            await county.close()
    asyncio.run(run())


def _opened(node_dir, county: Node, row) -> bytes:
    city = node_context(node_dir / "city")
    frame = county.store.blobs.path_for(row.blob_digest).read_bytes()
    return open_envelope_bytes(frame, city.trust_policy(), city.decryption_keys, "city", city.clock())[1]


def _batch_from_county(node_dir, answered: str, notices: list[Notice]) -> bytes:
    """A batch envelope as the county seals it (its signing key, the city's encryption certificate)."""
    county = node_context(node_dir / "county")
    enc = load_certificates((node_dir / "city" / "credentials" / "enc.crt").read_bytes())[0]
    draft = HeaderDraft.new(notices[0].type, "county", "city", notices[0].units[0], (SENDER,), county.clock(),
                            dt.timedelta(days=1), in_reply_to=answered)
    return seal_envelope(draft, encode_notices(notices), county.sender, Recipient(enc)).data


def test_a_notice_its_origin_may_not_send_is_left_out_of_a_batch_and_the_others_apply(node_dir, tmp_path):
    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS[:3])  # UNITS[3] was never sent this document
            now = city.ctx.clock()
            notices = [Notice(MessageType.RECEIPT, doc_id, (u,), now, by="收发员") for u in UNITS[:4]]
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, notices))
            await city.processor._process(received)
            assert (await city.store.messages.get_received(received.message_id)).state == "done"
            rows = {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert rows == {u: "signed_for" for u in UNITS[:3]}
            [refused] = [e for e in await city.store.audit.events(doc_id=doc_id) if e.action == "notice.receipt.refused"]
            assert refused.details["units"] == [UNITS[3]] and refused.details["error"] == "NOTICE_NOT_OURS"

            # A batch with nothing its origin may say is refused whole, as a single notice would be.
            forged = [Notice(MessageType.RECEIPT, doc_id, (u,), now, by="冒充者") for u in UNITS[3:]]
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, forged))
            await city.processor._process(received)
            refused_row = await city.store.messages.get_received(received.message_id)
            assert (refused_row.state, refused_row.error_code) == ("failed", "NOTICE_NOT_OURS")
            assert {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients} == rows
        finally:
            await city.close()
    asyncio.run(run())



def _store_calls(store) -> list[tuple[str, list[str]]]:
    """The recipient rows ``store``'s messages read and write from now on, one entry a call (each call
    is one statement): ("read", units), ("write", units) together, ("write one", [unit]) alone."""
    calls: list[tuple[str, list[str]]] = []
    messages = store.messages
    read, write, write_one = messages.get_outbox_recipients, messages.update_recipients, messages.update_recipient

    async def get_outbox_recipients(doc_id, units, **kw):
        calls.append(("read", sorted(units)))
        return await read(doc_id, units, **kw)

    async def update_recipients(doc_id, updates, **kw):
        calls.append(("write", sorted(u.unit for u in updates)))
        return await write(doc_id, updates, **kw)

    async def update_recipient(doc_id, unit, *args, **kw):
        calls.append(("write one", [unit]))
        return await write_one(doc_id, unit, *args, **kw)

    messages.get_outbox_recipients = get_outbox_recipients
    messages.update_recipients = update_recipients
    messages.update_recipient = update_recipient
    return calls


def test_a_batch_moves_its_rows_together_and_leaves_a_row_signed_before_as_it_was(node_dir, tmp_path):
    """The rows a batch moves are read in one call and written in one, each with its own audit event;
    a row a notice before it signed stays as that one left it (not written again, no second event)."""
    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS[:4])
            now = city.ctx.clock().replace(microsecond=0)
            first = [Notice(MessageType.RECEIPT, doc_id, (UNITS[0],), now, by="先签者")]
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, first))
            await city.processor._process(received)
            later = now + dt.timedelta(minutes=1)
            notices = [*first, *(Notice(MessageType.RECEIPT, doc_id, (u,), later, by=f"收发员{i}")
                                 for i, u in enumerate(UNITS[1:3], 1))]  # the first one again: its duplicate
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, notices))
            calls = _store_calls(city.store)
            await city.processor._process(received)
            assert calls == [("read", sorted(UNITS[:3])), ("write", sorted(UNITS[1:3]))]  # not a call a unit
            assert (await city.store.messages.get_received(received.message_id)).state == "done"
            rows = {r.unit: (r.status, r.who, r.when) for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert rows == {UNITS[0]: ("signed_for", "先签者", now), UNITS[1]: ("signed_for", "收发员1", later),
                            UNITS[2]: ("signed_for", "收发员2", later), UNITS[3]: ("delivered", None, None)}
            signed = [e.subjects["unit"] for e in await city.store.audit.events(doc_id=doc_id)
                      if e.action == "recipient.signed_for"]
            assert sorted(signed) == sorted(UNITS[:3])
        finally:
            await city.close()
    asyncio.run(run())


@contextlib.asynccontextmanager
async def _county_answering(node_dir, tmp_path):
    """The county knowing the city (not running), its queue for the city, a document's id and the
    message its 签收 answer, and the time they are signed at."""
    county = await Node.open(node_dir, "county", tmp_path / "county")
    try:
        await know_the_city(node_dir, county.store, county.ctx.clock())
        at = county.ctx.clock().replace(microsecond=0)
        yield county, DestinationQueue(county.outbound, "city"), new_id(at), new_id(at), at
    finally:
        await county.close()


def test_drafts_wait_while_the_envelope_sealed_before_them_waits_for_a_peer_that_was_away(node_dir, tmp_path):
    """Nagle's rule holds when the peer's backoff ends before the sealed envelope's own retry time:
    the round the backoff's end allows finds nothing due to send, and must not seal the drafts
    written meanwhile into a second envelope (the network test saw three envelopes for twelve 签收
    that way: one more each time the peer's retry came before the row's)."""
    async def run():
        async with _county_answering(node_dir, tmp_path) as (county, queue, doc_id, answered, at):
            await _sign_for(county, doc_id, answered, UNITS[:1], at)
            with pytest.raises(GwxError) as away:  # the city is not running: the first 签收 is sealed, not sent
                await queue._round()
            assert away.value.code.startswith("PEER_"), away.value
            await queue.limiter.failed(PeerUnreachable("the city is away", peer="city"))
            [(sealed_id, _)] = await county.store.queue.at_rest()

            await _sign_for(county, doc_id, answered, UNITS[1:], at)  # the other clerks sign meanwhile
            now = county.ctx.clock()
            sealed = await county.store.queue.get(sealed_id)
            queue.limiter.retry_at = now - dt.timedelta(seconds=1)  # the peer's backoff is over …
            assert sealed.next_attempt_at > now  # … before the sealed envelope's own retry time
            with contextlib.suppress(PeerUnreachable):  # (a second envelope would be tried, and fail)
                await queue._round()
            assert [m for m, _ in await county.store.queue.at_rest()] == [sealed_id]  # no second envelope
            assert len(await county.store.drafts.drafts_for("city")) == len(UNITS) - 1  # they wait, to leave together
    asyncio.run(run())


def test_a_round_reads_the_destinations_of_its_drafts_once(node_dir, tmp_path):
    """A destination's round asked the store for its drafts' destinations (a scan of the drafts on the
    reader's thread) three times — to give up expired drafts, to know whether any wait, to seal them —
    ~110 rounds a 签收 phase of the medium city's 54-node process: once now; outside a round, each ask
    reads again (drafts written since are seen)."""
    async def run():
        async with _county_answering(node_dir, tmp_path) as (county, queue, doc_id, answered, at):
            await _sign_for(county, doc_id, answered, UNITS, at)
            reads = []
            draft_destinations = county.store.drafts.draft_destinations

            async def counted():
                reads.append(1)
                return await draft_destinations()
            county.store.drafts.draft_destinations = counted
            with pytest.raises(GwxError) as away:  # the city is not running: sealed, not sent
                await queue._round()
            assert away.value.code.startswith("PEER_"), away.value
            assert len(reads) == 1
            assert len(await county.store.queue.at_rest()) == 1  # the six 签收 sealed into one envelope
            assert await county.store.drafts.drafts_for("city") == []
            await _sign_for(county, doc_id, new_id(at), UNITS[:1], at)  # another answer, after the round
            assert await queue.builder.has_drafts() and len(reads) == 2  # outside a round: read again
    asyncio.run(run())


def test_a_peer_whose_backoff_ended_is_tried_with_the_waiting_envelope_and_the_queue_then_sleeps(node_dir, tmp_path):
    """The peer's backoff ends a minute before the sealed envelope's own retry time (a row with many
    attempts behind it, a peer whose count was reset): the queue tries the peer at once with that
    envelope — the 签收 waiting behind it leave as soon as the line is up — and, the peer still away,
    sleeps until its next backoff ends. It used to find nothing due, send nothing, and start the next
    round at once until the row was due: hundreds of rounds a second, the peer never tried."""
    async def run():
        async with _county_answering(node_dir, tmp_path) as (county, queue, doc_id, answered, at):
            await _sign_for(county, doc_id, answered, UNITS[:1], at)
            with pytest.raises(GwxError):  # the city is not running: the first 签收 is sealed, not sent
                await queue._round()
            await queue.limiter.failed(PeerUnreachable("the city is away", peer="city"))
            [(sealed_id, _)] = await county.store.queue.at_rest()
            await _sign_for(county, doc_id, answered, UNITS[1:], at)  # the other clerks sign meanwhile

            now = county.ctx.clock()
            await county.store.queue.defer(sealed_id, now + dt.timedelta(seconds=60),
                                           PeerUnreachable("the city is away", peer="city"))
            attempts = (await county.store.queue.get(sealed_id)).attempts
            queue.limiter.retry_at = now - dt.timedelta(seconds=1)  # the peer's backoff is over

            rounds = 0
            real_round = queue._round

            async def counted_round():
                nonlocal rounds
                rounds += 1
                await real_round()
            queue._round = counted_round
            loop = asyncio.create_task(queue.run())
            await asyncio.sleep(1.5)
            queue.stop()
            await asyncio.wait_for(loop, 10)

            assert rounds <= 4, f"{rounds} rounds in 1.5 s: the queue spins while the row is not due"
            probes = (await county.store.queue.get(sealed_id)).attempts - attempts
            assert probes >= 1  # the peer was tried at once (once more if its next backoff, ≥ 0.5 s, ended too)
            assert queue.limiter.failures == 1 + probes and queue.limiter.retry_at > now  # … and backed off again
            assert [m for m, _ in await county.store.queue.at_rest()] == [sealed_id]  # no second envelope
            assert len(await county.store.drafts.drafts_for("city")) == len(UNITS) - 1
    asyncio.run(run())


def test_a_draft_that_travels_alone_is_sealed_behind_a_full_page_of_held_notices(node_dir, tmp_path):
    """Held notices stay drafts, but what travels alone (a document, a 催办) is sealed meanwhile as
    before — also when more than a page (DRAFTS_PER_ROUND) of held notices is ahead of it: the
    hold used to filter the first page only, found nothing to seal on it, and stopped there."""
    async def run():
        county = await Node.open(node_dir, "county", tmp_path / "county")
        try:
            await know_the_city(node_dir, county.store, county.ctx.clock())
            at = county.ctx.clock().replace(microsecond=0)
            queue = DestinationQueue(county.outbound, "city")
            await _sign_for(county, new_id(at), new_id(at), UNITS[:1], at)
            with pytest.raises(GwxError):  # the city is away: the first 签收 is sealed and waits
                await queue._round()
            [(sealed_id, _)] = await county.store.queue.at_rest()

            held = DRAFTS_PER_ROUND + 6
            for _ in range(held):  # 签收 of as many other documents, written meanwhile
                await _sign_for(county, new_id(at), new_id(at), UNITS[:1], at)
            await _sign_for(county, new_id(at), new_id(at), UNITS[1:2], at, type=MessageType.URGE)
            await queue.builder.build_drafts(hold_notices=True)

            rest = [m for m, _ in await county.store.queue.at_rest()]
            assert len(rest) == 2 and rest[0] == sealed_id  # the 催办 is sealed, in its own envelope
            assert (await county.store.queue.get(rest[1])).type == "urge"
            assert len(await county.store.drafts.drafts_for("city", 1000)) == held  # the 签收 still wait
        finally:
            await county.close()
    asyncio.run(run())


def test_a_transport_ack_for_several_units_moves_their_rows_together_once(node_dir, tmp_path):
    """A node's transport-ack names all its units of the document (a township: twenty): their rows
    are read in one call and written in one, each with its own ``recipient.delivered`` event; the
    same ack again moves nothing and writes nothing."""
    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS[:5], status=SenderStatus.SENT)
            ack = [Notice(MessageType.TRANSPORT_ACK, doc_id, tuple(UNITS[:4]), city.ctx.clock())]
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, ack))
            calls = _store_calls(city.store)
            await city.processor._process(received)
            assert calls == [("read", sorted(UNITS[:4])), ("write", sorted(UNITS[:4]))]
            assert (await city.store.messages.get_received(received.message_id)).state == "done"
            rows = {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert rows == {**{u: "delivered" for u in UNITS[:4]}, UNITS[4]: "sent"}
            delivered = [e.subjects["unit"] for e in await city.store.audit.events(doc_id=doc_id)
                         if e.action == "recipient.delivered"]
            assert sorted(delivered) == sorted(UNITS[:4])

            again, _ = await _arrive(city, _batch_from_county(node_dir, answered, ack))  # another envelope, same ack
            calls.clear()
            await city.processor._process(again)
            assert calls == [("read", sorted(UNITS[:4])), ("write", [])]  # no row to write (no statement: none)
            assert {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients} == rows
            assert len([e for e in await city.store.audit.events(doc_id=doc_id)
                        if e.action == "recipient.delivered"]) == 4
        finally:
            await city.close()
    asyncio.run(run())
