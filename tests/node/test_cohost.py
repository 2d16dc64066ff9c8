"""Several nodes in one process (node.cohost): each its own node, all stopped together.

Nodes hosted together answer on their own listeners with their own identity; when one of them
cannot start, the others stop and the process exits non-zero, so whoever waits for them sees a
failure instead of a hang; SIGTERM stops them all and frees every node directory.
"""

from __future__ import annotations

import socket

import pytest

from node.config import load_config
from node.localnet import LocalNetwork
from node.run_lock import holder
from pki.unit_code import make_unit_code

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _network(tmp_path) -> LocalNetwork:
    net = LocalNetwork(tmp_path / "net")
    for i, node_id in enumerate(("county-a", "county-b")):
        net.add_node(node_id, [{"code": make_unit_code(f"1137130{i + 2}MB0000001"), "name": f"第{i + 1}区人民政府办公室"}])
    return net


def test_nodes_in_one_process_serve_as_themselves_and_stop_together(tmp_path):
    net = _network(tmp_path)
    a, b = net.nodes["county-a"], net.nodes["county-b"]
    [process] = net.start_cohosted([[a, b]])
    try:
        assert a.process is b.process is process
        for node in (a, b):
            assert node.client("operator").get("/api/v1/node/status")["node_id"] == node.node_id
            assert holder(node.directory) == process.pid
    finally:
        net.stop(a)
    assert process.returncode == 0
    assert holder(a.directory) is None and holder(b.directory) is None
    assert not (a.directory / "run" / "ready.json").exists() and not (b.directory / "run" / "ready.json").exists()


def test_a_node_that_cannot_start_stops_the_others_and_the_process_fails(tmp_path):
    net = _network(tmp_path)
    a, b = net.nodes["county-a"], net.nodes["county-b"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", load_config(b.directory).peer_api.port))
        taken.listen()
        with pytest.raises(RuntimeError, match="exited with 1"):
            net.start_cohosted([[a, b]], timeout=60)
    assert "address already in use" in a.log_path.read_text()
    assert holder(a.directory) is None  # county-a was stopped, not left serving
