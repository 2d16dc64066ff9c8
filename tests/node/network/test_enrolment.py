"""Two nodes enrolled by certificate request — their operators never held the CA directory or its
passphrase — run as real processes and exchange sealed documents with each other and with a node
provisioned the PKI admin's way (``gwx node init --ca``), over mutual TLS, exactly as issued nodes do.
County-a's unit keeps its seal key on a PKCS#11 token (softhsm2 playing the unit's UKey): the key is
made there, never leaves it, and the running node seals with it, unlocked by a PIN file.

Each enrolled node is made through the command line (tests/node/enrolment_support.py): ``gwx node
request``, ``gwx pki sign-request``, ``gwx node install-certs``, the same for each unit's seal, then
``gwx node init`` without ``--ca``, with the CA directory moved out of reach while every node-side
command runs, and a node passphrase of its own.
"""

from __future__ import annotations

import stat

import pytest

from node.localnet import PASSPHRASE, free_port, send_document
from pki.certificates import load_certificates
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
from tests.pki.softhsm import softhsm_fixture  # noqa: F401  (the fixture: one token per test process)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NODE_PASSPHRASE = "a county operator's own passphrase"


@pytest.fixture(scope="module")
def net(tmp_path_factory, softhsm):
    base = tmp_path_factory.mktemp("enrolment")
    network = new_network(base)
    parties = Parties(network.ca.directory, PASSPHRASE.decode(), NODE_PASSPHRASE, base / "hand-over")
    pin_file = base / "county-a-ukey.pin"
    pin_file.write_text(softhsm.pin + "\n")
    pin_file.chmod(0o600)
    on_token = {A1: ["--token-module", softhsm.module, "--token", softhsm.token_label,
                     "--key-label", f"enrolment-seal-{A1}", "--pin-file", str(pin_file)]}
    for node_id, codes in (("city", [CITY]), ("county-a", [A1])):
        enrol_node(parties, base / node_id, node_id, units(*codes), peer_port=free_port(), local_port=free_port(),
                   seal_options=on_token)
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


def test_a_seal_key_on_a_token_never_reaches_the_node_s_disk(net):
    seal_dir = net.nodes["county-a"].directory / "units" / A1
    assert not (seal_dir / "seal.key").exists()
    token = (seal_dir / "token.toml").read_text("utf-8")
    assert f'key_label = "enrolment-seal-{A1}"' in token and "pin_file" in token
    assert stat.S_IMODE(seal_dir.stat().st_mode) == 0o700


def test_enrolled_nodes_exchange_sealed_documents_with_each_other_and_with_an_issued_node(net):
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    exchange(city, CITY, {A1: county_a}, net.body)                 # enrolled → enrolled
    exchange(county_a, A1, {CITY: city, B1: county_b}, net.body)   # enrolled → enrolled and issued
    exchange(county_b, B1, {A1: county_a}, net.body)               # issued → enrolled
