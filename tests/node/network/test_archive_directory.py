"""一键归档 where nodes route by the signed network directory: no node names a TSA in node.toml, the
township asks the directory's root node (two hops up the tree, reached directly over mutual TLS) for
its time-stamp, and its archive verifies offline with the root certificate alone."""

from __future__ import annotations

import json

import pytest

from node.localnet import PASSPHRASE, send_document
from pki.keystore import write_public_file
from pki.tsa_signer import issue as issue_tsa_signer
from pki.unit_code import make_unit_code
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    UNIT_NAMES,
    inbox_item,
    new_network,
    notice_meta,
    signed_directory,
    token_file,
    wait_status,
)
from tests.support import run_gwx

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOWN = make_unit_code("11371302MB0000201")
UNIT_NAMES.setdefault(TOWN, "兰山区某镇人民政府")
TREE = [("city", "city", None), ("county-a", "county", "city"), ("town-a", "township", "county-a")]
UNITS = [{"code": CITY, "name": UNIT_NAMES[CITY], "level": "city", "node": "city"},
         {"code": A1, "name": UNIT_NAMES[A1], "level": "county", "node": "county-a"},
         {"code": TOWN, "name": UNIT_NAMES[TOWN], "level": "township", "node": "town-a", "parent": A1}]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = new_network(tmp_path_factory.mktemp("archive-dir"))
    for node_id, code in (("city", CITY), ("county-a", A1), ("town-a", TOWN)):
        overrides = {"archive": {"tsa_signer": "tsa"}} if node_id == "city" else {}
        net.add_node(node_id, [{"code": code, "name": UNIT_NAMES[code]}], retry=FAST_RETRY, **overrides)
    issue_tsa_signer(net.ca, net.nodes["city"].directory / "tsa", PASSPHRASE)
    directory = signed_directory(net, 1, TREE, UNITS)
    for node in net.nodes.values():
        write_public_file(node.directory / "directory.json", directory)
    try:
        net.start_all()
        yield net
    finally:
        net.stop_all()


def test_the_township_time_stamps_at_the_directory_root(net, tmp_path):
    city, town = net.nodes["city"], net.nodes["town-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [TOWN]), net.body)["doc_id"]
    inbox_item(town, TOWN, doc_id)
    town.clerk(TOWN).post(f"/api/v1/inbox/{doc_id}/sign-for")
    wait_status(city, CITY, doc_id, {TOWN: "signed_for"})
    out = tmp_path / "town.gwxa"
    done = run_gwx("archive", "build", doc_id, "--inbox", "--out", out, "--node", town.ready["local_url"],
                   "--token-file", token_file(town, f"clerk-{TOWN}"), "--json", text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["timestamp_time"]
    checked = run_gwx("archive", "verify", out, "--trust", net.base / "ca" / "root.crt", "--no-revocation",
                      "--json", text=True)
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["ok"], checked.stdout
    tsa = next(c for c in report["checks"] if c["name"] == "timestamp")["details"]["tsa"]
    assert "时间戳服务" in tsa  # the city's TSA signer, not a key of the township's
    # What the township received (relayed by the county) and the 签收 it sent back, with their receipts.
    assert next(c for c in report["checks"] if c["name"] == "envelopes")["details"]["count"] >= 2
