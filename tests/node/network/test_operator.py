"""What a node operator runs against live nodes: one node per directory, `gwx node stop`, readiness,
and `gwx node status` from the node directory alone (no token file).

Real `gwx node run` processes on loopback; the operator's commands run as separate processes too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.error
import urllib.request

import pytest

from node.config import load_config
from node.errors import NodeAlreadyRunning
from node.localnet import PASSPHRASE, send_document, wait_for
from node.runner import ready_path, serve
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file
from tests.node.network.network_support import (
    A1,
    CITY,
    RawPeer,
    inbox_item,
    notice_meta,
    start_network,
    tls_context_of,
)
from tests.support import run_gwx

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("operator")
    network = start_network(base, {"city": ([CITY], {}), "county-a": ([A1], {})})
    # The docs tell the operator to delete the initial token files once handed out.
    for node in network.nodes.values():
        (node.directory / "tokens" / "operator.token").unlink()
    yield network
    network.stop_all()


def status(node) -> dict:
    out = run_gwx("node", "status", "--dir", node.directory, "--json")
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def readyz(node) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(node.ready["local_url"] + "/readyz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_a_second_run_on_a_live_directory_is_refused_and_leaves_the_live_node_alone(net):
    node = net.nodes["county-a"]
    pid = node.process.pid
    out = run_gwx("node", "run", "--dir", node.directory, env={"GWX_PASSPHRASE": PASSPHRASE.decode()})
    err = out.stderr.decode()
    assert out.returncode != 0 and "gwx: NODE_ALREADY_RUNNING: " in err and f"pid {pid}" in err, err
    assert "gwx node stop" in err and "Traceback" not in err
    # The live node still serves and still announces itself.
    assert json.loads(ready_path(load_config(node.directory)).read_text())["pid"] == pid
    assert readyz(node)[0] == 200
    # The lock is taken by serve() itself, before the store is opened: any caller is refused.
    with pytest.raises(NodeAlreadyRunning) as exc:
        asyncio.run(serve(load_config(node.directory), PASSPHRASE))
    assert exc.value.details["pid"] == pid
    assert node.running


def test_status_works_from_the_node_directory_without_a_token(net):
    node = net.nodes["city"]
    assert not (node.directory / "tokens" / "operator.token").exists()
    report = status(node)
    assert report["running"]["pid"] == node.process.pid
    assert report["running"]["local_url"] == node.ready["local_url"]
    assert report["readiness"]["ready"] is True
    assert {c["name"] for c in report["readiness"]["checks"]} == {"revocation", "certificates", "seals", "directory",
                                                                  "store", "disk"}
    text = run_gwx("node", "status", "--dir", node.directory)
    assert text.returncode == 0 and f"running (pid {node.process.pid})" in text.stdout.decode()
    assert "ready: yes" in text.stdout.decode()


def test_a_stale_crl_makes_the_receiver_not_ready_and_the_sender_names_the_refusal(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    # The two have exchanged documents before (the sender knows the receiver's certificates).
    first = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    assert inbox_item(county, A1, first, timeout=60)["verified"] is True
    fresh = county.directory.joinpath("crl.pem").read_bytes()
    stale = build_crl(net.ca, dt.datetime.now(dt.UTC) - dt.timedelta(days=10), dt.timedelta(days=3))
    write_public_file(county.directory / "crl.pem", crl_pem(stale))
    try:
        # Liveness is unchanged; readiness says what blocks the node, over HTTP and in `gwx node status`.
        assert json.loads(urllib.request.urlopen(county.ready["local_url"] + "/healthz", timeout=10).read())["ok"]
        code, report = readyz(county)
        assert code == 503 and report["ready"] is False
        revocation = check(report, "revocation")
        assert revocation["verdict"] == "fail" and "out of date" in revocation["message"]
        assert "ENV_REVOCATION_UNKNOWN" in revocation["message"]
        assert check(report, "certificates")["verdict"] == "ok"
        text = run_gwx("node", "status", "--dir", county.directory).stdout.decode()
        assert "ready: NO" in text and "FAIL revocation" in text
        # At its door the receiver says it is its own CRL (transient, 503), not the peer's certificate.
        as_city = RawPeer(county, tls_context_of(city))
        door = wait_for(lambda: (lambda r: r[0] == 503 and r[1])(as_city.request("GET", "/peer/v1/health")), 30,
                        interval=0.5, what="the stale CRL in force at the receiver")
        assert door["error"]["code"] == "ENV_REVOCATION_UNKNOWN" and "CRL" in door["error"]["message"]

        # The sender keeps the envelope and shows why this peer does not take it.
        doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]

        def refusal():
            peer = next((p for p in status(city)["peers"] if p["node_id"] == "county-a"), None)
            return peer and peer["refusal"] and peer
        peer = wait_for(refusal, 60, interval=0.5, what="the refusal in the sender's status")
        assert peer["refusal"]["code"] == "ENV_REVOCATION_UNKNOWN", peer
        assert "CRL" in peer["refusal"]["message"] and peer["refusal"]["envelopes"] >= 1
        assert peer["last_error"].startswith("ENV_REVOCATION_UNKNOWN: ") and peer["state"] != "up"
        text = run_gwx("node", "status", "--dir", city.directory).stdout.decode()
        assert "ENV_REVOCATION_UNKNOWN" in text and "waiting" in text
    finally:
        write_public_file(county.directory / "crl.pem", fresh)
    # A current CRL in place: ready again, and the waiting document arrives.
    wait_for(lambda: readyz(county)[0] == 200, 30, interval=0.5, what="ready again")
    assert inbox_item(county, A1, doc_id, timeout=60)["verified"] is True
    wait_for(lambda: all(p["refusal"] is None for p in status(city)["peers"]), 30, interval=0.5,
             what="no refusal left")


def test_stop_drains_the_node_and_says_so(net):
    node = net.nodes["county-a"]
    process = node.process
    out = run_gwx("node", "stop", "--dir", node.directory)
    text = out.stdout.decode()
    assert out.returncode == 0, out.stderr.decode()
    assert f"stopping node county-a (pid {process.pid})" in text and "node county-a stopped" in text
    assert process.poll() == 0  # exited by itself, cleanly, before `stop` returned
    assert not ready_path(load_config(node.directory)).exists()
    assert status(node)["running"] is None
    again = run_gwx("node", "stop", "--dir", node.directory)
    assert again.returncode == 0 and "not running" in again.stdout.decode()
    net.start(node)  # the directory is free again
    assert status(node)["running"]["pid"] == node.process.pid
