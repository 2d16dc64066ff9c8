"""Revoked and expired node certificates, judged by a running node.

The PKI admin revokes a node's certificate and publishes a CRL; the operator drops it into
``NODE_DIR/crl.pem`` and the running node picks it up within seconds, without a restart. From then
on a peer whose TLS certificate is revoked is refused at the door (PEER_IDENTITY, logged), and
envelopes signed with a revoked signing certificate are refused (ENV_SIGNER_UNTRUSTED); nothing they
send is stored. A node certificate that has already expired cannot even complete the TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import ssl

import pytest

from exchange_protocol.envelope import MessageType
from node.localnet import PASSPHRASE, send_document, wait_for
from pki.certificates import load_certificates
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file
from tests.node.network.network_support import (
    A1,
    CITY,
    RawPeer,
    city_and_county,
    db_value,
    every_profile,
    forge_envelope,
    inbox_item,
    log_text,
    metric,
    notice_meta,
    recipients_by_unit,
    sender_from,
    tls_context_from,
    tls_context_of,
    wait_status,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ACK = MessageType.TRANSPORT_ACK  # node-generated: needs no sending unit, so any node may send one


networks = city_and_county("revocation")


def credentials(net, node_id: str, **kwargs):
    """Node credentials issued by the network CA for a node that is not running (only its keys matter)."""
    out = net.base / "extra" / node_id
    net.ca.issue_node(node_id, "127.0.0.1", out, PASSPHRASE, **kwargs)
    return out


def cert(creds, role: str):
    return load_certificates((creds / f"{role}.crt").read_bytes())[0]


def received_count(node) -> int:
    return db_value(node, "SELECT COUNT(*) FROM received")


@every_profile
def test_revoked_tls_and_signing_certificates_are_refused_once_the_new_crl_is_in_place(net):
    county = net.nodes["county-a"]
    tls_revoked = credentials(net, "county-t")     # its TLS certificate will be revoked
    sign_revoked = credentials(net, "county-s")    # its signing certificate will be revoked
    as_t = RawPeer(county, tls_context_from(tls_revoked))
    as_s = RawPeer(county, tls_context_from(sign_revoked))
    # Before the revocation both are ordinary members of the network.
    assert as_t.health()["ok"] is True
    _, envelope = forge_envelope(None, county, from_unit=None, to_units=[], type=ACK,
                                 sender=sender_from(sign_revoked, "county-s"))
    status, parsed, raw = as_s.post_envelopes(envelope)
    assert status == 200 and "receipt" in parsed["results"][0], raw[:300]

    net.ca.revoke(cert(tls_revoked, "tls"), "key_compromise")
    net.ca.revoke(cert(sign_revoked, "sign"), "key_compromise")
    write_public_file(county.directory / "crl.pem", net.crl_bundle())  # a 国密 network's: the transport CA's too

    def tls_refused():
        status, parsed, _ = as_t.request("GET", "/peer/v1/health")
        return status == 401 and parsed
    refusal = wait_for(tls_refused, 15, interval=0.5, what="the revoked TLS certificate refused")
    assert refusal["error"]["code"] == "PEER_IDENTITY"
    assert "revoked" in refusal["error"]["message"].lower() or "吊销" in refusal["error"]["message"]

    before = received_count(county)
    message_id, envelope = forge_envelope(None, county, from_unit=None, to_units=[], type=ACK,
                                          sender=sender_from(tls_revoked, "county-t"))
    status, parsed, _ = as_t.post_envelopes(envelope)
    assert status == 401 and parsed["error"]["code"] == "PEER_IDENTITY"
    assert db_value(county, "SELECT COUNT(*) FROM received WHERE message_id = ?", [message_id]) == 0

    message_id, envelope = forge_envelope(None, county, from_unit=None, to_units=[], type=ACK,
                                          sender=sender_from(sign_revoked, "county-s"))
    status, parsed, raw = as_s.post_envelopes(envelope)
    assert status == 200, raw[:300]
    assert parsed["results"][0]["error"]["code"] == "ENV_SIGNER_UNTRUSTED"
    assert db_value(county, "SELECT COUNT(*) FROM received WHERE message_id = ?", [message_id]) == 0
    assert received_count(county) == before

    # Both refusals are in the node's log, with their codes (and the refused envelope's id).
    assert wait_for(lambda: "peer request refused" in log_text(county) and "PEER_IDENTITY" in log_text(county), 10)
    refused_line = wait_for(lambda: next((line for line in log_text(county).splitlines()
                                          if message_id in line and "refused" in line), None), 10)
    assert "ENV_SIGNER_UNTRUSTED" in refused_line and "county-s" in refused_line


@every_profile
def test_nodes_in_good_standing_are_unaffected_by_a_crl_listing_others(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    other = credentials(net, "county-o")
    net.ca.revoke(cert(other, "tls"), "key_compromise")
    net.ca.revoke(cert(other, "sign"), "key_compromise")
    write_public_file(county.directory / "crl.pem", net.crl_bundle())
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    assert inbox_item(county, A1, doc_id)["verified"] is True


@every_profile
def test_an_expired_node_certificate_cannot_connect_or_sign(net):
    county = net.nodes["county-a"]
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = credentials(net, "county-x", valid_days=2, now=long_ago)
    assert cert(expired, "tls").not_valid_after_utc < dt.datetime.now(dt.UTC)

    with pytest.raises((ssl.SSLError, ConnectionError)):
        RawPeer(county, tls_context_from(expired)).request("GET", "/peer/v1/health")

    # Its expired signing key, carried over a valid connection, is no better.
    before = received_count(county)
    valid_peer = RawPeer(county, tls_context_of(net.nodes["city"]))
    message_id, envelope = forge_envelope(None, county, from_unit=None, to_units=[], type=ACK,
                                          sender=sender_from(expired, "county-x"))
    status, parsed, raw = valid_peer.post_envelopes(envelope)
    assert status == 200, raw[:300]
    assert parsed["results"][0]["error"]["code"] == "ENV_SIGNER_UNTRUSTED"
    assert received_count(county) == before
    assert valid_peer.health()["ok"] is True


def test_a_receiver_whose_crl_is_stale_makes_the_sender_wait_never_bounce(net):
    """Not knowing whether a peer is revoked is transient and the receiver's own problem: it answers
    ENV_REVOCATION_UNKNOWN (503, not an identity refusal that blames the sender) until its CRL is fresh
    again, and the sender keeps the document queued, records that code and retries meanwhile."""
    city, county = net.nodes["city"], net.nodes["county-a"]
    now = dt.datetime.now(dt.UTC)
    write_public_file(county.directory / "crl.pem",
                      crl_pem(build_crl(net.ca, now - dt.timedelta(days=10), next_update_in=dt.timedelta(days=1))))
    as_city = RawPeer(county, tls_context_of(city))

    def stale_refused():
        status, parsed, _ = as_city.request("GET", "/peer/v1/health")
        return status == 503 and parsed
    refusal = wait_for(stale_refused, 15, interval=0.5, what="the county refusing while its CRL is stale")
    assert refusal["error"]["code"] == "ENV_REVOCATION_UNKNOWN" and "CRL" in refusal["error"]["message"]

    failures = metric(city, "gwx_send_failures_total", destination="county-a", code="ENV_REVOCATION_UNKNOWN")
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    wait_for(lambda: metric(city, "gwx_send_failures_total", destination="county-a",
                            code="ENV_REVOCATION_UNKNOWN") >= failures + 2, 15, interval=0.2,
                     what="the city retrying")
    tracking = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")
    assert recipients_by_unit(tracking)[A1]["status"] == "queued"  # waiting, not failed

    write_public_file(county.directory / "crl.pem", crl_pem(build_crl(net.ca, dt.datetime.now(dt.UTC))))
    wait_status(city, CITY, doc_id, {A1: "delivered"}, timeout=25)
    assert inbox_item(county, A1, doc_id)["verified"] is True
