"""node.store.sqlite.received: exactly-once inbound with the original receipt, replay refusal, the
processing state of each accepted envelope."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from exchange_protocol.errors import EnvelopeReplayed
from node.errors import StoreNotFound
from tests.node.store.conftest import open_store, put_envelope


def test_concurrent_identical_envelopes_one_row_one_receipt(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            env = await put_envelope(store, "m-1")
            # each with its own freshly signed receipt, as two request handlers would make
            copies = [replace(env, receipt=f"receipt-{i}".encode()) for i in range(8)]
            direct = await asyncio.gather(*(store.messages.accept_inbound(c) for c in copies[:4]))
            grouped = await asyncio.gather(*(store.accept_inbound(c) for c in copies[4:]))
            results = direct + grouped
            assert sum(r.new for r in results) == 1
            first = next(r for r in results if r.new)
            assert {r.receipt for r in results} == {first.receipt}
            rows = await store.db.fetchall("SELECT COUNT(*) FROM received WHERE message_id = 'm-1'")
            assert rows[0][0] == 1
            assert [e.action for e in await store.audit.events(message_id="m-1")] == ["envelope.received"]
    asyncio.run(main())


def test_same_id_other_bytes_is_env_replayed_both_paths(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            env = await put_envelope(store, "m-1")
            assert (await store.accept_inbound(env)).new
            forged = await put_envelope(store, "m-1")  # same id, other bytes
            with pytest.raises(EnvelopeReplayed) as info:
                await store.messages.accept_inbound(forged)
            assert info.value.code == "ENV_REPLAYED"
            assert info.value.details["stored_digest"] == env.envelope_digest
            # in a group-commit batch the replay fails alone; its batch-mates are accepted
            other = await put_envelope(store, "m-2")
            results = await asyncio.gather(store.accept_inbound(forged), store.accept_inbound(other),
                                           return_exceptions=True)
            assert isinstance(results[0], EnvelopeReplayed) and results[1].new
            stored = await store.messages.get_received("m-1")
            assert stored.envelope_digest == env.envelope_digest and stored.receipt == env.receipt
    asyncio.run(main())


def test_copies_racing_in_with_other_hop_counts_are_one_envelope_both_paths(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            env = replace(await put_envelope(store, "m-1"), identity_digest="1d" * 32)
            relayed = replace(await put_envelope(store, "m-1"), identity_digest="1d" * 32)  # other frame bytes
            assert (await store.messages.accept_inbound(env)).new
            again = await store.messages.accept_inbound(relayed)
            assert not again.new and again.receipt == env.receipt
            [grouped] = await asyncio.gather(store.accept_inbound(relayed))
            assert not grouped.new and grouped.receipt == env.receipt
            with pytest.raises(EnvelopeReplayed):
                await store.messages.accept_inbound(replace(relayed, identity_digest="2e" * 32))
            assert (await store.messages.get_received("m-1")).identity_digest == "1d" * 32
    asyncio.run(main())


def test_pending_inbound_until_marked(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            for m in ("m-1", "m-2"):
                await store.accept_inbound(await put_envelope(store, m))
            assert [r.message_id for r in await store.messages.pending_inbound()] == ["m-1", "m-2"]
            await store.messages.mark_inbound("m-1", "done")
            await store.messages.mark_inbound("m-2", "failed", error=EnvelopeReplayed("x"))
            assert await store.messages.pending_inbound() == []
            assert (await store.messages.get_received("m-2")).error_code == "ENV_REPLAYED"
            with pytest.raises(StoreNotFound):
                await store.messages.mark_inbound("m-9", "done")
    asyncio.run(main())
