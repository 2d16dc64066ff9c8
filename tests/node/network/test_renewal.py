"""A certificate renewed while the node runs (issue 8 §2): county-a gets new TLS, signing and
encryption credentials from the CA (``gwx pki issue-node --renew``) and installs them with ``gwx node
renew`` while it serves. Without a restart it presents the new TLS certificate, answers ``GET
/peer/v1/node`` with the new certificates and signs with the new key; the city's sends succeed
before, during and after; an envelope the city sealed for the old encryption certificate and held
in its queue across the renewal still opens; when the overlap ends (cut short by hand here, as an
operator may, so that the test need not wait it out) the old key is destroyed and an
envelope sealed for it is refused (ENV_NO_RECIPIENT_INFO) — and a sender still holding the old
certificate then fails that one document and fetches the new certificates at once. On a 国密 network
too: new SM2 signing and encryption keys (SM4 payloads, SM2 key transport), the node TLS P-256 under
the transport root."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import sqlite3

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from exchange_protocol.envelope import format_time
from exchange_protocol.envelope_crypto import DecryptionKey, decrypt_bytes
from exchange_protocol.errors import EnvelopeNotForMe
from exchange_protocol.frame import FrameLimits, decode_frame
from node.config import load_config
from node.localnet import PASSPHRASE, send_document, wait_for
from node.renewal import OVERLAP_FILE
from pki.certificates import load_certificates
from pki.keystore import read_private_key
from tests.node.network.network_support import (
    A1,
    CITY,
    RawPeer,
    db_path,
    db_rows,
    db_value,
    every_profile,
    forge_envelope,
    gwx,
    log_text,
    notice_meta,
    peer_url,
    start_network,
    stored_bytes,
    tls_context_of,
    wait_log,
    wait_status,
)
from tests.support import run_openssl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
OVERLAP_SECONDS = 600  # long enough for the steps during it on a loaded machine; then cut short by hand
OVERLAP_LEFT_SECONDS = 3  # what is left of it once the test has done what it does during the overlap


@pytest.fixture
def net(tmp_path_factory, profile):
    network = start_network(tmp_path_factory.mktemp(f"renewal-{profile}"), {"city": ([CITY], {}), "county-a": ([A1], {})},
                            profile=profile)
    yield network
    network.stop_all()


def leaf(path) -> x509.Certificate:
    return load_certificates(path.read_bytes())[0]


def cached_encryption_cert(node, peer: str) -> x509.Certificate:
    pem = db_value(node, "SELECT encryption_cert FROM peer_credentials WHERE node_id = ?", [peer])
    return load_certificates(pem.encode())[0]


def served_tls_certificate(server, client) -> x509.Certificate:
    """What ``openssl s_client`` is shown by a new connection to ``server``'s peer port (as ``client``,
    trusting its TLS root: the transport root on a 国密 network)."""
    config = load_config(client.directory)
    client_creds = config.credentials_dir
    host, port = peer_url(server).removeprefix("https://").rsplit(":", 1)
    proc = run_openssl("s_client", "-connect", f"{host}:{port}", "-cert", client_creds / "tls.crt",
                       "-key", client_creds / "tls.key", "-pass", f"pass:{PASSPHRASE.decode()}",
                       "-CAfile", config.tls_root_path, input=b"", check=False)
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", proc.stdout, re.S)
    assert pem, proc.stderr
    return x509.load_pem_x509_certificate(pem.group(0))


def send_and_deliver(net, title: str) -> str:
    doc_id = send_document(net.nodes["city"], CITY, notice_meta(CITY, [A1], title=title), net.body)["doc_id"]
    wait_status(net.nodes["city"], CITY, doc_id, {A1: "delivered"}, timeout=60)
    return doc_id


@every_profile
def test_a_certificate_renewed_while_the_node_runs(net, tmp_path):
    city, county = net.nodes["city"], net.nodes["county-a"]
    county_creds = load_config(county.directory).credentials_dir
    old = {role: leaf(county_creds / f"{role}.crt") for role in ("tls", "sign", "enc")}
    old_key = DecryptionKey(read_private_key(county_creds / "enc.key", PASSPHRASE), old["enc"])

    # Before: the city delivers, and caches the county's (old) encryption certificate.
    send_and_deliver(net, "续期之前")
    assert cached_encryption_cert(city, "county-a") == old["enc"]
    # An envelope sealed for the old certificate, held in the city's queue across the renewal: the
    # county is away when it is sent, then the city is stopped with it queued.
    net.stop(county)
    held_doc = send_document(city, CITY, notice_meta(CITY, [A1], title="续期前封装的公文"), net.body)["doc_id"]
    held = wait_for(lambda: db_rows(city, "SELECT message_id, blob_digest FROM queue WHERE destination = ? "
                                          "AND state != 'sent'", ["county-a"]), 30, what="the envelope queued")
    [(held_message, held_digest)] = held
    net.stop(city)
    _, payload, _ = decode_frame(stored_bytes(city, held_digest), FrameLimits())
    assert decrypt_bytes(payload, old_key)  # sealed for the old encryption certificate, not for a new one
    # Two more sealed for the old certificate, posted by hand during and after the overlap.
    during_id, during = forge_envelope(city, county, from_unit=CITY, to_units=[A1])
    after_id, after = forge_envelope(city, county, from_unit=CITY, to_units=[A1])
    net.start(county)

    # The renewal: the CA issues new credentials (the old stay valid), the operator installs them.
    net.ca.issue_node("county-a", "127.0.0.1", tmp_path / "renewed", PASSPHRASE, renew=True)
    (tmp_path / "pass").write_bytes(PASSPHRASE)
    out = gwx("node", "renew", "--dir", str(county.directory), "--from", str(tmp_path / "renewed"),
              "--overlap", f"{OVERLAP_SECONDS}s", "--passphrase-file", str(tmp_path / "pass"))
    assert out.returncode == 0, out.stderr
    assert f"told the running node (pid {county.process.pid})" in out.stdout
    new = {role: leaf(tmp_path / "renewed" / f"{role}.crt") for role in ("tls", "sign", "enc")}
    wait_log(county, "uses its renewed credentials", timeout=30)
    assert county.process.poll() is None  # no restart

    # Without a restart: new connections are shown the new TLS certificate, GET /peer/v1/node
    # answers with the new signing and encryption certificates.
    assert served_tls_certificate(county, city) == new["tls"]
    status, info, raw = RawPeer(county, tls_context_of(city)).request("GET", "/peer/v1/node")
    assert status == 200, raw
    assert load_certificates(info["encryption_cert"].encode())[0] == new["enc"]
    assert load_certificates(info["signing_cert"].encode())[0] == new["sign"]

    # During the overlap: the envelope the city held, sealed for the old certificate, opens.
    net.start(city)
    wait_status(city, CITY, held_doc, {A1: "delivered"}, timeout=60)
    assert db_value(county, "SELECT COUNT(*) FROM received WHERE message_id = ?", [held_message]) == 1
    result = RawPeer(county, tls_context_of(city)).post_envelopes(during)[1]["results"][0]
    assert "receipt" in result and result["message_id"] == during_id, result
    # The county's receipt, signed with its new key, told the city to fetch its certificates again
    # before sealing the next document: that one is sealed for the new encryption certificate.
    send_and_deliver(net, "续期期间")
    assert cached_encryption_cert(city, "county-a") == new["enc"]
    assert "signs with a new certificate" in log_text(city)

    # The overlap is cut short by hand, as an operator may (overlap.json, then SIGHUP): the reload
    # keeps the previous key, and the node's own timer destroys it a few seconds later.
    previous_dir = county_creds / "previous"
    [previous_set] = previous_dir.iterdir()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=OVERLAP_LEFT_SECONDS)
    overlap = json.loads((previous_set / OVERLAP_FILE).read_text("utf-8"))
    (previous_set / OVERLAP_FILE).write_text(json.dumps({**overlap, "until": format_time(soon.replace(microsecond=0))}))
    os.kill(county.process.pid, signal.SIGHUP)
    # After the overlap: the old key is destroyed and no longer loaded; the city's sends go on.
    wait_for(lambda: not any(previous_dir.iterdir()), OVERLAP_LEFT_SECONDS + 60, interval=0.5,
             what="the previous credentials destroyed")
    wait_log(county, "dropped 1 previous encryption key", timeout=30)
    result = RawPeer(county, tls_context_of(city)).post_envelopes(after)[1]["results"][0]
    assert result["message_id"] == after_id and result["error"]["code"] == "ENV_NO_RECIPIENT_INFO", result
    with pytest.raises(EnvelopeNotForMe):  # what the county holds now opens nothing sealed for the old certificate
        decrypt_bytes(payload, DecryptionKey(read_private_key(county_creds / "enc.key", PASSPHRASE), new["enc"]))
    send_and_deliver(net, "续期之后")

    # A sender that still holds the old certificate after the overlap (it saw no receipt since):
    # its next document is refused as not for the county and fails, and it fetches the county's
    # certificates at once, so the one after is delivered.
    net.stop(city)
    with sqlite3.connect(db_path(city)) as db:
        db.execute("UPDATE peer_credentials SET encryption_cert = ?, fetched_at = ? WHERE node_id = 'county-a'",
                   (old["enc"].public_bytes(Encoding.PEM).decode(),
                    db.execute("SELECT fetched_at FROM peer_credentials WHERE node_id = 'county-a'").fetchone()[0]))
    net.start(city)
    stale_doc = send_document(city, CITY, notice_meta(CITY, [A1], title="旧证书封装"), net.body)["doc_id"]
    tracking = wait_status(city, CITY, stale_doc, {A1: "failed"}, timeout=60)
    assert "ENV_NO_RECIPIENT_INFO" in tracking["recipients"][0]["reason"]
    send_and_deliver(net, "重新获取证书之后")
    assert cached_encryption_cert(city, "county-a") == new["enc"]
    assert county.process.poll() is None and city.process.poll() is None
