"""A network whose CA has intermediates per level: nodes issued by the root and by intermediates
exchange documents both ways, and revocations by any CA in the chain are honoured.

The city node is issued by the root (临沂市电子政务CA); county-a by 兰山区CA, an intermediate under
the root; county-b by 罗庄区CA, under 临沂市区县CA, under the root (two levels). Every node trusts the
root alone: the intermediates reach it in the TLS handshake, in signatures, in the peer
credentials of ``GET /peer/v1/node`` and in the packages. Each node's ``crl.pem`` holds every CA's
CRL (``LocalNetwork.publish_crls``). The exchange both ways and a package sealed under an
intermediate run on a 国密 network too: SM2 intermediates under the SM2 root in every signature.
"""

from __future__ import annotations

import json

import pytest

from node.localnet import PASSPHRASE, send_document, wait_for
from pki.certificates import load_certificates
from tests.node.network.network_support import (
    A1,
    B1,
    CITY,
    FAST_RETRY,
    ByProfile,
    RawPeer,
    clerk_name,
    connect_and_start,
    every_profile,
    gwx,
    inbox_item,
    new_network,
    notice_meta,
    recipients_by_unit,
    tls_context_from,
    units,
    wait_status,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    def make(profile: str):
        network = new_network(tmp_path_factory.mktemp(f"intermediates-{profile}"), profile=profile)
        network.lanshan = network.add_intermediate("ca-lanshan", "兰山区CA")
        counties = network.add_intermediate("ca-counties", "临沂市区县CA", levels_below=1)
        network.luozhuang = network.add_intermediate("ca-luozhuang", "罗庄区CA", parent=counties)
        network.add_node("city", units(CITY), retry=FAST_RETRY)
        network.add_node("county-a", units(A1), ca=network.lanshan, retry=FAST_RETRY)
        network.add_node("county-b", units(B1), ca=network.luozhuang, retry=FAST_RETRY)
        return connect_and_start(network)

    made = ByProfile(make)
    yield made
    made.stop_all()


def issued_by(node) -> str:
    chain = load_certificates((node.directory / "credentials" / "tls.crt").read_bytes())
    return chain[0].issuer.rfc4514_string()


def exchange(sender, sender_unit, receivers: dict, body) -> str:
    """``sender_unit`` sends to every unit of ``receivers`` (unit → node); each signs for it (签收)
    and the sender sees who did."""
    doc_id = send_document(sender, sender_unit, notice_meta(sender_unit, list(receivers)), body)["doc_id"]
    for unit, node in receivers.items():
        item = inbox_item(node, unit, doc_id)
        assert item["verified"] is True and item["from_unit"] == sender_unit
        report = node.clerk(unit).get(f"/api/v1/inbox/{doc_id}")["verification"]
        assert report["ok"] is True, report
        assert node.clerk(unit).post(f"/api/v1/inbox/{doc_id}/sign-for")["status"] == "signed_for"
    tracking = wait_status(sender, sender_unit, doc_id, {u: "signed_for" for u in receivers})
    rows = recipients_by_unit(tracking)
    assert all(rows[u]["who"] == clerk_name(u) for u in receivers)
    return doc_id


def test_the_nodes_really_are_issued_at_three_levels(net):
    assert "临沂市电子政务CA" in issued_by(net.nodes["city"])
    assert "兰山区CA" in issued_by(net.nodes["county-a"])
    assert "罗庄区CA" in issued_by(net.nodes["county-b"])


@every_profile
def test_root_issued_and_intermediate_issued_nodes_exchange_both_ways(net):
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    exchange(city, CITY, {A1: county_a, B1: county_b}, net.body)   # root → both intermediates
    exchange(county_a, A1, {CITY: city}, net.body)                 # intermediate → root
    exchange(county_b, B1, {CITY: city, A1: county_a}, net.body)   # two levels down → root and a sibling


@every_profile
def test_a_package_sealed_under_an_intermediate_verifies_with_the_root_alone(net, tmp_path):
    city, county_b = net.nodes["city"], net.nodes["county-b"]
    doc_id = send_document(county_b, B1, notice_meta(B1, [CITY]), net.body)["doc_id"]
    inbox_item(city, CITY, doc_id)
    package = tmp_path / "pkg.zip"
    package.write_bytes(city.clerk(CITY).get(f"/api/v1/inbox/{doc_id}/package"))
    root = city.directory / "credentials" / "root.crt"
    out = gwx("doc", "verify", str(package), "--trust", str(root), "--crl", str(city.directory / "crl.pem"),
              "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True and report["revocation"]["checked"] is True


def extra_credentials(net, ca, node_id: str):
    """Credentials for a node that is not running (only its TLS key matters here)."""
    out = net.base / "extra" / node_id
    ca.issue_node(node_id, "127.0.0.1", out, PASSPHRASE)
    return out


def refused_with_revocation(peer: RawPeer):
    status, parsed, _ = peer.request("GET", "/peer/v1/health")
    return status == 401 and parsed  # PEER_IDENTITY: the peer is not authenticated


def test_a_revocation_by_an_intermediate_is_checked(net):
    city = net.nodes["city"]
    creds = extra_credentials(net, net.lanshan, "county-x")
    peer = RawPeer(city, tls_context_from(creds))
    assert peer.health()["ok"] is True  # a member in good standing, issued by 兰山区CA
    net.lanshan.revoke(load_certificates((creds / "tls.crt").read_bytes())[0], "key_compromise")
    net.publish_crls()
    refusal = wait_for(lambda: refused_with_revocation(peer), 15, interval=0.5,
                       what="the certificate 兰山区CA revoked refused")
    assert refusal["error"]["code"] == "PEER_IDENTITY" and "revoked" in refusal["error"]["message"].lower()


def test_a_revoked_intermediate_takes_what_it_issued_with_it(net):
    city = net.nodes["city"]
    hedong = net.add_intermediate("ca-hedong", "河东区CA")
    creds = extra_credentials(net, hedong, "county-h")
    net.publish_crls()
    peer = RawPeer(city, tls_context_from(creds))
    assert wait_for(lambda: peer.request("GET", "/peer/v1/health")[0] == 200, 15, interval=0.5,
                    what="a node under a new intermediate admitted")
    net.ca.revoke(hedong.certificate, "ca_compromise")
    net.publish_crls()
    refusal = wait_for(lambda: refused_with_revocation(peer), 15, interval=0.5,
                       what="a node under a revoked intermediate refused")
    assert refusal["error"]["code"] == "PEER_IDENTITY" and "revoked" in refusal["error"]["message"].lower()
    # The other nodes, under intermediates in good standing, are unaffected.
    exchange(net.nodes["county-a"], A1, {CITY: city}, net.body)
