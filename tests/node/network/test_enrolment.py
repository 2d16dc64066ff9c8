"""Two nodes enrolled by certificate request — their operators never held the CA directory or its
passphrase — run as real processes and exchange sealed documents with each other and with a node
provisioned the PKI admin's way (``gwx node init --ca``), over mutual TLS, exactly as issued nodes do.

Each enrolled node is made through the command line (tests/node/enrolment_support.py): ``gwx node
request``, ``gwx pki sign-request``, ``gwx node install-certs``, the same for each unit's seal, then
``gwx node init`` without ``--ca``, with the CA directory moved out of reach while every node-side
command runs, and a node passphrase of its own.
"""

from __future__ import annotations

import pytest

from node.localnet import PASSPHRASE, free_port, send_document
from pki.ca import load_certificates
from tests.node.enrolment_support import Parties, enrol_node
from tests.node.network.network_support import (
    A1,
    B1,
    CITY,
    FAST_RETRY,
    clerk_name,
    connect_and_start,
    inbox_item,
    new_network,
    notice_meta,
    recipients_by_unit,
    units,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NODE_PASSPHRASE = "a county operator's own passphrase"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("enrolment")
    network = new_network(base)
    parties = Parties(network.ca.directory, PASSPHRASE.decode(), NODE_PASSPHRASE, base / "hand-over")
    for node_id, codes in (("city", [CITY]), ("county-a", [A1])):
        enrol_node(parties, base / node_id, node_id, units(*codes), peer_port=free_port(), local_port=free_port())
        network.adopt(node_id, base / node_id, units(*codes), env={"GWX_PASSPHRASE": NODE_PASSPHRASE},
                      retry=FAST_RETRY)
    network.add_node("county-b", units(B1), retry=FAST_RETRY)  # issued by gwx node init --ca
    yield connect_and_start(network)
    network.stop_all()


def exchange(sender, sender_unit, receivers: dict, body) -> None:
    doc_id = send_document(sender, sender_unit, notice_meta(sender_unit, list(receivers)), body)["doc_id"]
    for unit, node in receivers.items():
        item = inbox_item(node, unit, doc_id)
        assert item["verified"] is True and item["from_unit"] == sender_unit
        assert node.clerk(unit).get(f"/api/v1/inbox/{doc_id}")["verification"]["ok"] is True
        assert node.clerk(unit).post(f"/api/v1/inbox/{doc_id}/sign-for")["status"] == "signed_for"
    tracking = wait_status(sender, sender_unit, doc_id, {u: "signed_for" for u in receivers})
    rows = recipients_by_unit(tracking)
    assert all(rows[u]["who"] == clerk_name(u) for u in receivers)


def test_enrolled_nodes_hold_keys_no_ca_operator_saw(net):
    for node_id in ("city", "county-a"):
        creds = net.nodes[node_id].directory / "credentials"
        assert (creds / "request.pem").exists()  # their keys were made there, not at the CA
        leaf = load_certificates((creds / "tls.crt").read_bytes())[0]
        assert leaf.issuer == net.ca.certificate.subject


def test_enrolled_nodes_exchange_sealed_documents_with_each_other_and_with_an_issued_node(net):
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    exchange(city, CITY, {A1: county_a}, net.body)                 # enrolled → enrolled
    exchange(county_a, A1, {CITY: city, B1: county_b}, net.body)   # enrolled → enrolled and issued
    exchange(county_b, B1, {A1: county_a}, net.body)               # issued → enrolled
