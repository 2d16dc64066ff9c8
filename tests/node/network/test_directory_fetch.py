"""A new directory travels down the tree by itself: the city publishes, the county fetches it from the
city over mutual TLS, the township from the county — all running, none restarted. A rolled-back,
tampered or wrongly signed copy is refused with its code and the good copy stays; a stale CRL on the
fetching side is try-again, and the node catches up by itself once its CRL is fresh again."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.localnet import send_document, wait_for
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    FAST_RETRY,
    connect_and_start,
    inbox_item,
    log_text,
    metric,
    new_network,
    notice_meta,
    sender_from,
    signed_directory,
    units,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
REFRESH = 0.5  # seconds between a node's questions to its parent


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    net = new_network(tmp_path_factory.mktemp("directory-tree"))
    for node_id, code in (("city", CITY), ("county-a", A1), ("town-a", A2)):
        net.add_node(node_id, units(code), retry=FAST_RETRY)
    for child, parent in (("county-a", "city"), ("town-a", "county-a")):
        url = load_config(net.nodes[parent].directory).peer_api.public_url
        edit_config(net.nodes[child].directory, lambda doc, p=parent, u=url: set_section_values(
            doc, "parent", {"node_id": p, "url": u, "refresh_seconds": REFRESH}))
    connect_and_start(net)
    yield net
    net.stop_all()


def build(net, version: int, *, issued: dt.datetime | None = None, signer=None) -> bytes:
    """The root operator's directory of the three running nodes, signed (by the directory signer
    unless another ``signer`` is given)."""
    return signed_directory(
        net, version, [("city", "city", None), ("county-a", "county", "city"), ("town-a", "township", "county-a")],
        [{"code": CITY, "name": "临沂市人民政府办公室", "level": "city", "node": "city"},
         {"code": A1, "name": "兰山区人民政府办公室", "level": "county", "node": "county-a"},
         {"code": A2, "name": "兰山区枣园镇人民政府", "level": "township", "node": "town-a", "parent": A1}],
        issued=issued, signer=signer)


def held(net, node_id: str) -> bytes | None:
    path = net.nodes[node_id].directory / "directory.json"
    return path.read_bytes() if path.exists() else None


def publish_on_city(net, data: bytes) -> None:
    write_public_file(net.nodes["city"].directory / "directory.json", data)


def wait_held(net, node_id: str, data: bytes, what: str) -> None:
    wait_for(lambda: held(net, node_id) == data, 30, interval=0.2, what=what)


def test_a_new_version_reaches_the_grandchild_without_restarts(tree):
    pids = {n: node.process.pid for n, node in tree.nodes.items()}
    v1 = build(tree, 1)
    publish_on_city(tree, v1)
    wait_held(tree, "county-a", v1, "the county fetching version 1 from the city")
    wait_held(tree, "town-a", v1, "the township fetching version 1 from the county")
    v2 = build(tree, 2)
    publish_on_city(tree, v2)
    wait_held(tree, "town-a", v2, "version 2 reaching the township through the county")
    assert held(tree, "county-a") == v2
    assert {n: node.process.pid for n, node in tree.nodes.items()} == pids
    assert all(node.process.poll() is None for node in tree.nodes.values())
    assert "network directory version 2 (current) installed from county-a, replacing version 1" in \
        log_text(tree.nodes["town-a"])
    # Nothing new: the county's conditional GET gets a 304 and installs nothing.
    unchanged = metric(tree.nodes["county-a"], "gwx_directory_fetches_total", outcome="unchanged")
    wait_for(lambda: metric(tree.nodes["county-a"], "gwx_directory_fetches_total", outcome="unchanged")
             > unchanged, 15, what="the county asking again and finding nothing new")


@pytest.mark.parametrize("case, code, version", [("rollback", "DIR_ROLLBACK", 10),
                                                 ("tampered", "DIR_BAD_SIGNATURE", 30),
                                                 ("node key", "DIR_SIGNER_UNTRUSTED", 50)])
def test_a_bad_copy_is_refused_and_the_good_one_stays(tree, case, code, version):
    good = build(tree, version)
    publish_on_city(tree, good)
    wait_held(tree, "town-a", good, f"the good version {version} reaching the township")
    county = tree.nodes["county-a"]
    bad = {"rollback": lambda: build(tree, version - 1),
           "tampered": lambda: build(tree, version + 1).replace("枣园镇".encode(), "柳青街道".encode()),
           "node key": lambda: build(tree, version + 1, signer=sender_from(
               tree.nodes["city"].directory / "credentials", "city").signer)}[case]()
    publish_on_city(tree, bad)
    wait_for(lambda: metric(county, "gwx_directory_fetches_total", outcome="refused", code=code) >= 2, 20,
             what=f"the county refusing the {case} copy, again at each refresh")
    assert f"network directory from city refused ({code}); keeping the copy we hold" in log_text(county)
    assert held(tree, "county-a") == good and held(tree, "town-a") == good


def test_a_stale_crl_is_try_again_and_the_node_catches_up_by_itself(tree):
    county = tree.nodes["county-a"]
    now = dt.datetime.now(dt.UTC)
    refused = metric(county, "gwx_directory_fetches_total", outcome="refused", code="DIR_SIGNER_UNTRUSTED")
    v100 = build(tree, 100)
    publish_on_city(tree, v100)
    wait_held(tree, "county-a", v100, "version 100 reaching the county")
    write_public_file(county.directory / "crl.pem",
                      crl_pem(build_crl(tree.ca, now - dt.timedelta(days=10), next_update_in=dt.timedelta(days=1))))
    time.sleep(6)  # the node looks at crl.pem again at most every 5 s (node.context.ReloadingCrlChecker)
    v101 = build(tree, 101)
    publish_on_city(tree, v101)
    wait_for(lambda: metric(county, "gwx_directory_fetches_total", outcome="try-again",
                            code="PKI_REVOCATION_STALE") >= 1, 30, what="the county's stale CRL making it wait")
    # No verdict on version 101: the county waits for a fresh CRL rather than refusing the signer.
    assert held(tree, "county-a") == v100
    assert metric(county, "gwx_directory_fetches_total", outcome="refused", code="DIR_SIGNER_UNTRUSTED") == refused
    write_public_file(county.directory / "crl.pem", crl_pem(build_crl(tree.ca, dt.datetime.now(dt.UTC))))
    wait_held(tree, "town-a", v101, "version 101 reaching the township once the county's CRL is fresh")


def test_an_expired_directory_is_still_taken_and_never_stops_the_exchange(tree):
    city, county = tree.nodes["city"], tree.nodes["county-a"]
    expired = build(tree, 200, issued=dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    publish_on_city(tree, expired)
    wait_held(tree, "town-a", expired, "the expired version 200 reaching the township (newer than what it held)")
    wait_for(lambda: metric(county, "gwx_directory_version") == 200 and metric(county, "gwx_directory_expired") == 1,
             20, what="the county's /metrics naming the expired directory")
    assert metric(county, "gwx_directory_expires_in") < -86400 + 1
    assert metric(county, "gwx_directory_age") > 31 * 86400 - 60
    ready = county.client("operator").get("/readyz")
    check = next(c for c in ready["checks"] if c["name"] == "directory")
    assert ready["ready"] is True and check["verdict"] == "warn"
    assert "version 200" in check["message"] and "EXPIRED" in check["message"]
    # The exchange goes on: the city's 通知 reaches the county's unit.
    result = send_document(city, CITY, notice_meta(CITY, [A1]), tree.body)
    item = inbox_item(county, A1, result["doc_id"])
    assert item["from_unit"] == CITY and item["status"] == "pending"
