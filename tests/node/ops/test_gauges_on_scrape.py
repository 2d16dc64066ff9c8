"""The store's gauges are read when /metrics is fetched, not every 5 s by every node.

163 nodes on one machine each read their queue depths, drafts, peers, inbound and adapter counts
(six queries) and the directory and CRL files every 5 s for a page nobody fetched: more round trips
through the shared event loops than a fifth of the clerks' 签收. Now :meth:`Registry.collect` runs
the node's gauges (``node.runner._gauges``) just before /metrics renders them.
"""

from __future__ import annotations

import asyncio
import logging

from node.ops.metrics import Registry
from node.runner import _gauges
from tests.node.api.local_api_support import make_env, run


def test_a_collector_runs_at_each_collect_and_one_that_fails_leaves_the_others(caplog):
    registry = Registry()
    gauge = registry.gauge("gwx_test_value", "a value")
    calls: list[str] = []

    async def good():
        calls.append("good")
        gauge.replace({(): float(len(calls))})

    async def bad():
        calls.append("bad")
        raise RuntimeError("the store is closing")
    registry.on_collect(bad)
    registry.on_collect(good)
    assert "gwx_test_value 2" not in registry.render()
    with caplog.at_level(logging.ERROR, logger="gwx.metrics"):
        asyncio.run(registry.collect())
    assert calls == ["bad", "good"] and "gwx_test_value 2" in registry.render()
    assert "cannot refresh gauges" in caplog.text


def test_the_node_reads_its_gauges_only_when_metrics_are_fetched(tmp_path):
    env = make_env(tmp_path)

    async def scenario(client):
        store = env.store
        asked: list[str] = []
        real = store.queue.depth

        async def depth():
            asked.append("depth")
            return await real()
        store.queue.depth = depth
        _gauges(env.config, env.ctx.clock, store, env.service.outbound, env.registry)
        await asyncio.sleep(0.3)
        assert asked == [], "nobody looked: nothing read"

        response = await client.get("/metrics", headers=env.auth(env.operator))
        text = await response.text()
        assert response.status == 200 and asked == ["depth"]
        assert "gwx_crl_number{" in text and "gwx_crl_stale{" in text  # read from the node's files, now
    run(env, scenario)
