"""The envelope builder over a real store and real certificates: a drafts row an older gwx wrote,
which the header check now refuses, is set aside on its own (deleted, audited, logged with its id
and code) and never stops the destination's other drafts from being sealed and queued."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

from exchange_protocol.envelope import MessageType
from exchange_protocol.ids import new_id
from node.config import load_config
from node.context import NodeContext
from node.federation.destination_queue import DestinationQueue
from node.federation.outbound import NewMessage
from node.store import Draft, StoredPeerCredentials
from node.store.sqlite.db import to_db_time
from pki.ca import pem
from tests.node.federation import test_processor as processing
from tests.node.federation.test_processor import PASS, SENDER, A, _close, _open

node_dir = processing.node_dir  # the county and city nodes of the processor's tests (a fixture)


async def _old_bounce_row(store, expires_at: dt.datetime | None, now: dt.datetime) -> str:
    """A bounce notice queued with no recipient unit, exactly as the old processor wrote it."""
    message_id = new_id(now)
    header = {"message_id": message_id, "type": "bounce", "from_unit": None, "to_units": [],
              "created": now.isoformat(), "expires": (now + dt.timedelta(days=8)).isoformat(),
              "in_reply_to": new_id(now), "max_hops": 8}
    ref = await store.blobs.put(b"an old bounce notice")
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO drafts (message_id, destination, type, header, payload_digest, payload_size,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, "city", "bounce", json.dumps(header), ref.digest, ref.size, to_db_time(now),
             to_db_time(expires_at) if expires_at else None))
    return message_id


async def _know_the_city(node_dir, store, now) -> None:
    """The city's certificates as a first contact would have cached them (no network needed)."""
    city = NodeContext.load(load_config(node_dir / "city"), PASS)
    await store.peer_credentials.save(StoredPeerCredentials(
        "city", pem(city.signer.certificate).decode(), pem(city.decryption_key.certificate).decode(),
        b"".join(pem(c) for c in city.intermediates).decode(), now))


def test_an_old_draft_the_header_check_refuses_is_set_aside_and_the_others_are_built(node_dir, tmp_path,
                                                                                     caplog):
    async def run():
        ctx, store, outbound, _ = await _open(node_dir, tmp_path)
        try:
            now = ctx.clock()
            await _know_the_city(node_dir, store, now)
            expired = await _old_bounce_row(store, now - dt.timedelta(seconds=1), now)
            waiting = await _old_bounce_row(store, None, now)
            payload = await store.blobs.put(b"a receipt for the city")
            async with store.transaction() as tx:
                header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now,
                                         in_reply_to=new_id(now))
                [good] = await outbound.add(tx, [NewMessage(header, payload.digest, payload.size, "doc-1")],
                                            now)

            queue = DestinationQueue(outbound, "city")
            with caplog.at_level(logging.ERROR, logger="gwx.outbound"):
                await queue.builder.drop_expired(now)
                assert await queue.builder.has_drafts()
                await queue.builder.build_drafts()

            assert await store.drafts.drafts_for("city") == []
            window = await store.queue.load_active_window("city", 10)
            assert [e.message_id for e in window] == [good]  # the good draft was sealed and queued
            for bad in (expired, waiting):
                [event] = await store.audit.events(message_id=bad)
                assert (event.action, event.details["error"]) == ("draft.failed", "ENV_INVALID_FIELD")
                assert any(r.message_id == bad and r.code == "ENV_INVALID_FIELD" for r in caplog.records)
            await store.audit.verify_chain()
        finally:
            await _close(store, outbound)

    asyncio.run(run())


def test_an_unreadable_row_comes_back_in_its_place_not_as_an_error(node_dir, tmp_path):
    async def run():
        ctx, store, outbound, _ = await _open(node_dir, tmp_path)
        try:
            now = ctx.clock()
            bad = await _old_bounce_row(store, None, now)
            payload = await store.blobs.put(b"a receipt")
            header = outbound.header(MessageType.RECEIPT, "city", A, (SENDER,), now, in_reply_to=new_id(now))
            async with store.transaction() as tx:
                await store.drafts.add_draft(tx, Draft(header, payload.digest, payload.size, now, None))
            rows = await store.drafts.drafts_for("city")
            unreadable = [r for r in rows if not isinstance(r, Draft)]
            assert [r.message_id for r in unreadable] == [bad]
            assert unreadable[0].error.code == "ENV_INVALID_FIELD"
            assert [r.header for r in rows if isinstance(r, Draft)] == [header]
        finally:
            await _close(store, outbound)

    asyncio.run(run())

