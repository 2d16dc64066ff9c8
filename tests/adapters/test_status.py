"""`gwx node status` counts each adapter consumer's outbox rows by state and names its last dead letter."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from adapters.outbox import Outbox
from exchange_protocol.retry import RetryPolicy
from node.provision import init_node
from node.store.sqlite import Store
from pki.ca import CertificateAuthority
from pki.errors import ErrorKind, GwxError
from tests.adapters.support import U_A, Recorder, receive
from tests.support import PASSPHRASE, FakeClock, run_gwx


class OaRefuses(GwxError):
    code = "TEST_OA_REFUSES"
    kind = ErrorKind.INVALID_INPUT


def test_status_counts_rows_per_consumer_and_names_the_last_dead_letter(tmp_path):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "适配器测试CA", PASSPHRASE)
    config, _ = init_node(tmp_path / "node", "county-s", ca, [{"code": U_A, "name": "兰山区人民政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)

    async def fill():
        clock = FakeClock()
        store = await Store.open(config.data_dir, clock=clock)
        try:
            outbox = Outbox(store, "county-s", clock)
            await outbox.add(Recorder("oa:demo", fail=lambda e: OaRefuses("未知的文种") if e.doc_id == "D2" else None),
                             RetryPolicy(max_age=timedelta(minutes=1)))
            await outbox.add(Recorder("folder:idle", wants=lambda e: False))  # another unit's folder
            for doc_id in ("D1", "D2", "D3"):
                await receive(store, doc_id)
            await outbox.step("oa:demo")
        finally:
            await store.close()

    asyncio.run(fill())
    out = run_gwx("node", "status", "--dir", config.directory, "--json")
    assert out.returncode == 0, out.stderr.decode()
    adapters = json.loads(out.stdout)["adapters"]
    assert {k: {s: v[s] for s in ("pending", "done", "dead")} for k, v in adapters.items()} == {
        "oa:demo": {"pending": 0, "done": 2, "dead": 1}, "folder:idle": {"pending": 0, "done": 0, "dead": 0}}
    assert adapters["oa:demo"]["last_dead"]["code"] == "TEST_OA_REFUSES"
    text = run_gwx("node", "status", "--dir", config.directory).stdout.decode()
    assert "oa:demo: pending 0, done 2, dead 1" in text and "TEST_OA_REFUSES 未知的文种" in text
