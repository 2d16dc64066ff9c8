"""转发 survives a kill -9: a node killed in the middle of a local 转发 — its transaction committed, the
cover 通知 or the forwarded copy not yet applied to the unit on the same node — resumes it after the
restart, and the unit gets the cover and the forwarded document exactly once.

Real processes: the county node runs as ``gwx node run`` (tests.node.network.forward_crash_child) and
SIGKILLs itself at that moment; it is restarted as plain ``gwx node run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.cli.api_client import NodeUnreachable
from node.config import load_config
from node.localnet import PASSPHRASE, LocalNetwork, LocalNode, send_document, wait_for
from node.runner import ready_path
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    db_rows,
    inbox_item,
    notice_meta,
    start_network,
)
from tests.node.network.test_forward_and_add import forward

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = start_network(tmp_path_factory.mktemp("forward-crash"), {"city": ([CITY], {}), "county": ([A1, A2], {})})
    yield network
    network.stop_all()


def start_armed(net: LocalNetwork, node: LocalNode, at: int) -> None:
    """Restart ``node`` as the child that dies at local delivery ``at`` of the next 转发."""
    net.stop(node)
    ready = ready_path(load_config(node.directory))
    ready.unlink(missing_ok=True)
    with open(node.directory / "node.log", "ab") as log:
        node.process = subprocess.Popen(
            [sys.executable, "-m", "tests.node.network.forward_crash_child", str(at), "node", "run", "--dir",
             str(node.directory)], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "GWX_PASSPHRASE": PASSPHRASE.decode(), **net.env, **node.env},
            cwd=Path(__file__).resolve().parents[3])
    deadline = time.monotonic() + 60
    while not (ready.exists() and json.loads(ready.read_text()).get("pid") == node.process.pid):
        assert node.process.poll() is None and time.monotonic() < deadline, net.log_tail(node)
        time.sleep(0.05)
    node.ready = json.loads(ready.read_text())


@pytest.mark.parametrize("at", [1, 2], ids=["before-the-cover", "before-the-copy"])
def test_a_local_forward_cut_by_kill_9_is_resumed_after_restart_exactly_once(net, at):
    city, county = net.nodes["city"], net.nodes["county"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1], title=f"关于转发测试{at}的通知"), net.body)["doc_id"]
    inbox_item(county, A1, doc_id)
    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")  # a unit forwards what it has signed for
    start_armed(net, county, at)

    cover_meta = notice_meta(A1, [A2], title=f"关于转发《关于转发测试{at}的通知》的通知")
    with pytest.raises(NodeUnreachable):  # the node died answering: the clerk saw no answer
        forward(county, A1, doc_id, cover_meta, net.body)
    assert county.process.wait(30) == -9
    [(cover_id,)] = db_rows(county, "SELECT doc_id FROM outbox WHERE title = ?", [cover_meta["title"]])
    held = {d for (d,) in db_rows(county, "SELECT doc_id FROM inbox WHERE unit_code = ?", [A2])}
    assert doc_id not in held and (cover_id in held) == (at == 2)  # cut where it was meant to be
    assert db_rows(county, "SELECT status FROM forwarded WHERE doc_id = ? AND unit = ?", [doc_id, A2]) == \
        [("queued",)]

    net.start(county)  # plain gwx node run
    cover = inbox_item(county, A2, cover_id)
    copy = inbox_item(county, A2, doc_id)
    assert (cover["from_unit"], copy["from_unit"], copy["verified"]) == (A1, A1, True)
    shown = county.clerk(A2).get(f"/api/v1/inbox/{doc_id}")
    assert (shown["forwarded_by"], shown["cover_doc_id"]) == (A1, cover_id)

    def copies() -> dict:
        return {r["unit"]: r["status"] for r in county.clerk(A1).get(f"/api/v1/outbox/{cover_id}")["forwarded"]
                ["recipients"]}
    wait_for(lambda: copies() == {A2: "delivered"}, 60, what="the forwarded copy delivered in A1's track")

    net.stop(county)  # and once more: nothing is applied twice
    net.start(county)
    for doc in (cover_id, doc_id):
        assert db_rows(county, "SELECT COUNT(*) FROM inbox WHERE doc_id = ? AND unit_code = ?", [doc, A2]) == [(1,)]
        added = db_rows(county, "SELECT COUNT(*) FROM audit WHERE doc_id = ? AND action = 'inbox.add'"
                                " AND json_extract(subjects, '$.unit') = ?", [doc, A2])
        assert added == [(1,)], doc
    assert db_rows(county, "SELECT COUNT(*) FROM forwarded_in WHERE doc_id = ? AND unit = ?", [doc_id, A2]) == [(1,)]
    assert copies() == {A2: "delivered"}
