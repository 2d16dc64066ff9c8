"""Running nodes whose TLS certificates chain to a transport root of their own (``tls-root.crt``).

That is how nodes of a 国密 network talk (docs/architecture.md, "TLS on a 国密 network"): SM2 for every
signature, seal and envelope, P-256 for node TLS under the CA's transport root. The node's side of it —
TLS contexts and the peer judge built on ``tls-root.crt``, the transport CA's CRL read with the
others — is the same whatever the network root signs with, so it is shown here with real processes on
a P-256 network whose node TLS was moved under a separate root, exactly as the 国密 CA issues it
(``issue_node_certificate`` of the transport CA, ``certificate_file``, ``tls-root.crt``).
"""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node.config import load_config
from node.federation.tls import client_context
from node.localnet import PASSPHRASE, send_document, wait_for
from pki.ca import TRANSPORT_ROOT_FILE, CertificateAuthority, load_certificates, pem
from pki.crl import build_crl, crl_pem
from pki.keystore import write_private_key, write_public_file
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    RawPeer,
    connect_and_start,
    inbox_item,
    new_network,
    notice_meta,
    tls_context_of,
    units,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def move_tls_under(net, transport: CertificateAuthority) -> None:
    """Each node's TLS key and certificate made again under ``transport``; its root beside root.crt."""
    for node in net.nodes.values():
        creds = load_config(node.directory).credentials_dir
        key = ec.generate_private_key(ec.SECP256R1())
        cert = transport.issue_node_certificate(node.node_id, "127.0.0.1", "tls", key.public_key())
        write_private_key(creds / "tls.key", key, PASSPHRASE)
        write_public_file(creds / "tls.crt", transport.certificate_file(cert))
        write_public_file(creds / TRANSPORT_ROOT_FILE, pem(transport.root_certificate))


def publish_crls(net, transport: CertificateAuthority) -> None:
    now = dt.datetime.now(dt.UTC)
    bundle = crl_pem(build_crl(net.ca, now)) + crl_pem(build_crl(transport, now))
    for node in net.nodes.values():
        write_public_file(node.directory / "crl.pem", bundle)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("transport-root")
    network = new_network(base)
    network.transport = CertificateAuthority.init_root(base / "transport", "传输层根CA", PASSPHRASE)
    for node_id, codes in (("city", [CITY]), ("county-a", [A1])):
        network.add_node(node_id, units(*codes), retry=FAST_RETRY)
    move_tls_under(network, network.transport)
    publish_crls(network, network.transport)
    connect_and_start(network)
    yield network
    network.stop_all()


def test_nodes_exchange_and_sign_for_over_tls_under_the_transport_root(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    assert inbox_item(county, A1, doc_id)["verified"] is True
    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    wait_status(city, CITY, doc_id, {A1: "signed_for"})


def test_a_tls_certificate_from_the_network_root_is_not_a_transport_one(net):
    """The network root vouches for signatures; for TLS the node trusts the transport root alone."""
    county = net.nodes["county-a"]
    other = net.base / "extra" / "county-z"
    net.ca.issue_node("county-z", "127.0.0.1", other, PASSPHRASE)  # TLS under the network root
    context = client_context(other / "tls.crt", other / "tls.key", other.parent.parent / "transport" / "root.crt",
                             PASSPHRASE)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        RawPeer(county, context).request("GET", "/peer/v1/health")
    assert RawPeer(county, tls_context_of(net.nodes["city"])).health()["ok"] is True


def test_a_revoked_transport_certificate_is_refused_once_the_transport_crl_lists_it(net):
    county = net.nodes["county-a"]
    transport: CertificateAuthority = net.transport
    creds = net.base / "extra" / "county-r"
    creds.mkdir(parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = transport.issue_node_certificate("county-r", "127.0.0.1", "tls", key.public_key())
    write_private_key(creds / "tls.key", key, PASSPHRASE)
    write_public_file(creds / "tls.crt", transport.certificate_file(cert))
    peer = RawPeer(county, client_context(creds / "tls.crt", creds / "tls.key",
                                          transport.directory / "root.crt", PASSPHRASE))
    assert peer.health()["ok"] is True
    transport.revoke(load_certificates((creds / "tls.crt").read_bytes())[0], "key_compromise")
    publish_crls(net, transport)

    def refused():
        status, parsed, _ = peer.request("GET", "/peer/v1/health")
        return status == 401 and parsed
    refusal = wait_for(refused, 15, interval=0.5, what="the revoked transport certificate refused")
    assert refusal["error"]["code"] == "PEER_IDENTITY" and "revoked" in refusal["error"]["message"].lower()
    assert RawPeer(county, tls_context_of(net.nodes["city"])).health()["ok"] is True
