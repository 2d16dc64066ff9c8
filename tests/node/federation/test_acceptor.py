"""Acceptance dedupe: an envelope is the same envelope whatever hop count it arrives with.

A real county node (its keys, its SQLite store) accepts envelopes sealed with the real city node's
signing key. The same envelope arriving again with another hop count — as a relay would forward it
— is a duplicate answered with the original receipt; other bytes under the same message id are
``ENV_REPLAYED``; rows accepted before the identity was recorded still recognise their duplicates.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import replace

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_bundle, seal_envelope
from exchange_protocol.errors import (
    EnvelopePayloadDigestMismatch,
    EnvelopeReplayed,
)
from exchange_protocol.frame import decode_frame, read_layout
from exchange_protocol.ids import new_id
from exchange_protocol.notices import Notice
from exchange_protocol.transport_receipt import parse_receipt
from node.config import StoreSettings
from node.federation.acceptor import Acceptor, StreamAcceptor
from node.federation.routing import RouteLoop
from node.ops.metrics import Registry
from node.store.opener import open_store
from pki.certificates import load_certificates
from pki.unit_code import make_unit_code
from tests.node.federation.federation_support import node_context, provision_county_and_city

A = make_unit_code("11371302MB0000071")
SENDER = make_unit_code("11371300MB0000071")  # a unit of the city node


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return provision_county_and_city(tmp_path_factory.mktemp("acceptor"), "接收测试CA", {A: "甲单位"},
                                     {SENDER: "市政府办公室"})


class County:
    """The receiving node: its context, store and acceptor."""

    def __init__(self, node_dir, tmp_path, settings: StoreSettings | None = None) -> None:
        self.settings = settings
        self.ctx = node_context(node_dir / "county")
        self.tmp_path = tmp_path
        self.city = node_context(node_dir / "city")
        enc = load_certificates((node_dir / "county" / "credentials" / "enc.crt").read_bytes())[0]
        self.recipient = Recipient(enc)

    async def __aenter__(self) -> County:
        self.store = await open_store(self.tmp_path / "data", settings=self.settings)
        self.acceptor = Acceptor(self.ctx, self.store, Registry())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.store.close()

    def seal(self, draft: HeaderDraft) -> bytes:
        payload = Notice(draft.type, "doc-1", draft.to_units, draft.created).encode()
        return seal_envelope(draft, payload, self.city.sender, self.recipient).data

    def draft(self) -> HeaderDraft:
        now = self.ctx.clock()
        return HeaderDraft.new(MessageType.URGE, "city", "county", SENDER, (A,), now, dt.timedelta(days=1),
                               in_reply_to=new_id(now))

    async def received_count(self) -> int:
        return sum((await self.store.messages.inbound_counts()).values())


def with_hops(frame: bytes, hops: int) -> bytes:
    """The same envelope as a relay forwards it: only the frame's hop count differs."""
    head, payload, _ = decode_frame(frame)
    return head.prefix(hops) + payload


async def stream_accept(county: County, frame: bytes, prefix_len: int = 24) -> bytes:  # fixed part + one table row
    content = asyncio.StreamReader()
    content.feed_data(frame[prefix_len:])
    content.feed_eof()
    receipts = await StreamAcceptor(county.acceptor).accept(frame[:prefix_len], content, len(frame), "city")
    assert len(receipts) == 1  # one header: one receipt
    return next(iter(receipts.values()))


async def stream_accept_head(county: County, frame: bytes) -> dict[str, bytes]:
    """As the peer API streams a frame: its whole head first, then the payload from the stream."""
    head_len = read_layout(frame).head_length
    content = asyncio.StreamReader()
    content.feed_data(frame[head_len:])
    content.feed_eof()
    return await StreamAcceptor(county.acceptor).accept(frame[:head_len], content, len(frame), "city")


def test_the_same_envelope_with_another_hop_count_is_a_duplicate_receipted_for_those_bytes(node_dir, tmp_path):
    """A copy that came another way (another hop count) is the same envelope: stored once. Its receipt
    binds the bytes the sender holds — a receipt for other bytes would be refused by the sender
    (TRANSPORT_RECEIPT_MISMATCH), which would then give up on a message we have. The exact bytes
    again get the original receipt."""
    async def run():
        async with County(node_dir, tmp_path) as county:
            frame = county.seal(county.draft())
            receipt = await county.acceptor.accept(frame, "city")
            copies = [with_hops(frame, 1), with_hops(frame, 3)]
            answers = [await county.acceptor.accept(copies[0], "city"), await stream_accept(county, copies[1])]
            assert await county.received_count() == 1
            for copy, answer in zip([frame, *copies], [receipt, *answers], strict=True):
                parsed = parse_receipt(answer)[0]
                assert parsed.envelope_digest == decode_frame(copy)[2] and parsed.receiver_node == "county"
            assert await county.acceptor.accept(frame, "city") == receipt
    asyncio.run(run())


def test_other_bytes_under_the_same_message_id_are_replayed(node_dir, tmp_path):
    async def run():
        async with County(node_dir, tmp_path) as county:
            draft = county.draft()
            first = county.seal(draft)
            await county.acceptor.accept(first, "city")
            resealed = county.seal(draft)  # same id, fresh key and signature: other bytes
            for attempt in (county.acceptor.accept(resealed, "city"),
                            county.acceptor.accept(with_hops(resealed, 1), "city"), stream_accept(county, resealed)):
                with pytest.raises(EnvelopeReplayed):
                    await attempt
            # The signed head of the first envelope over another payload is not that envelope either.
            head, payload, _ = decode_frame(first)
            forged = head.prefix(1) + payload[:-1] + bytes([payload[-1] ^ 1])
            with pytest.raises(EnvelopePayloadDigestMismatch):
                await county.acceptor.accept(forged, "city")
            assert await county.received_count() == 1
    asyncio.run(run())


def test_rows_accepted_before_the_identity_was_recorded_still_recognise_their_duplicates(node_dir, tmp_path):
    async def run():
        async with County(node_dir, tmp_path) as county:
            draft = county.draft()
            frame, other = county.seal(draft), county.seal(county.draft())
            receipts = [await county.acceptor.accept(f, "city") for f in (frame, other)]
            # As a node that received them before migration 4 holds them: no identity digest.
            async with county.store.transaction() as tx:
                await tx.execute("UPDATE received SET identity_digest = NULL")
            assert await county.acceptor.accept(frame, "city") == receipts[0]
            copy = with_hops(other, 2)
            answer = parse_receipt(await county.acceptor.accept(copy, "city"))[0]  # a duplicate, receipted
            assert (answer.message_id, answer.envelope_digest) == (parse_receipt(receipts[1])[0].message_id,
                                                                    decode_frame(copy)[2])
            assert await county.received_count() == 2
            with pytest.raises(EnvelopeReplayed):
                await county.acceptor.accept(county.seal(draft), "city")
    asyncio.run(run())


def test_a_header_that_would_go_back_where_it_came_from_is_refused_alone(node_dir, tmp_path):
    """A bundle from the city carrying the county's header and one for the city itself: forwarding
    the second would send it straight back. That header alone is refused (ROUTE_LOOP) — in memory
    and streamed —, the county's own is accepted, and nothing is relayed."""
    async def run():
        async with County(node_dir, tmp_path) as county:
            city_enc = load_certificates((node_dir / "city" / "credentials" / "enc.crt").read_bytes())[0]

            def bundle() -> tuple[str, str, bytes]:
                draft = county.draft()
                to_city = HeaderDraft.new(MessageType.URGE, "city", "city", SENDER, (SENDER,), draft.created,
                                          dt.timedelta(days=1), in_reply_to=draft.in_reply_to)
                payload = Notice(draft.type, "doc-1", draft.to_units, draft.created).encode()
                return draft.message_id, to_city.message_id, seal_bundle(
                    [draft, to_city], payload, county.city.sender, [county.recipient, Recipient(city_enc)]).data

            for accept in (lambda data: county.acceptor.accept_frame(data, "city"),
                           lambda data: stream_accept_head(county, data)):
                mine, looping, data = bundle()
                outcomes = await accept(data)
                assert parse_receipt(outcomes[mine])[0].message_id == mine
                assert isinstance(outcomes[looping], RouteLoop) and outcomes[looping].code == "ROUTE_LOOP"
            assert await county.received_count() == 2  # the county's own two; nothing relayed
    asyncio.run(run())


def test_a_small_envelope_keeps_its_bytes_in_the_database_and_a_larger_one_its_fsynced_files(node_dir, tmp_path):
    """Up to ``[store] inline_max_bytes`` (the default) the envelope and its payload are in the
    database when the receipt comes back, and no file is written for them; above it, and when
    streamed, they are files, fsynced before the row. Either way the blobs read back the same."""
    async def run():
        async with County(node_dir, tmp_path) as county:
            blob_file = county.store.blobs._path
            frame = county.seal(county.draft())
            await county.acceptor.accept(frame, "city")
            kept = {r[0]: r[1] for r in await county.store.db.fetchall("SELECT digest, size FROM inline_blobs")}
            assert decode_frame(frame)[2] in kept and len(kept) == 2  # the envelope and its payload
            assert kept[decode_frame(frame)[2]] == len(frame) and not any(blob_file(d).exists() for d in kept)
            county.ctx.config = replace(county.ctx.config, store=StoreSettings(inline_max_bytes=len(frame) // 2))
            larger = county.seal(county.draft())
            await county.acceptor.accept(larger, "city")
            await stream_accept(county, county.seal(county.draft()))
            assert await county.store.inline.count() == 2
            assert blob_file(decode_frame(larger)[2]).exists()
            for sent in (frame, larger):
                digest = decode_frame(sent)[2]
                assert await county.store.blobs.read_bytes(digest) == sent
    asyncio.run(run())


def test_the_stored_blobs_are_named_by_the_sha256_of_what_they_hold(node_dir, tmp_path):
    """An accepted envelope's row names two blobs: the frame as received and its decrypted payload.
    Each is found under the SHA-256 of its own bytes (the payload's signed digest is the ciphertext's,
    not the name of the decrypted bytes), small ones kept in the database as large ones on disk."""
    async def run():
        for inline in (64 * 1024, 0):
            async with County(node_dir, tmp_path / str(inline)) as county:
                county.ctx.config = replace(county.ctx.config, store=StoreSettings(inline_max_bytes=inline))
                draft = county.draft()
                payload = Notice(draft.type, "doc-1", draft.to_units, draft.created).encode()
                frame = seal_envelope(draft, payload, county.city.sender, county.recipient).data
                await county.acceptor.accept(frame, "city")
                row = await county.store.messages.get_received(draft.message_id)
                assert row.blob_digest == hashlib.sha256(frame).hexdigest()
                assert row.payload_digest == hashlib.sha256(payload).hexdigest()
                assert await county.store.blobs.read_bytes(row.blob_digest) == frame
                assert await county.store.blobs.read_bytes(row.payload_digest) == payload
    asyncio.run(run())
