"""Revocation flows by itself down the tree: the CA operator publishes a CRL into the root node's
crl.pem (``gwx pki crl --out``), the county fetches it from the city over mutual TLS, the township
from the county — all running, none restarted — and a certificate revoked at the CA is refused at
the township. A CRL signed by another CA or older than the one held is refused and the held one
kept. A stale CRL shows in readiness, status and /metrics with its reason, envelopes meanwhile are
"try again" (never bounced), and the node catches up by itself. The root node answers OCSP with a
delegated signer, checked with ``openssl ocsp`` (a tool we did not write)."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
import urllib.error
import urllib.request

import pytest
from cryptography.x509 import ocsp as xocsp

from exchange_protocol.envelope import MessageType
from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.localnet import PASSPHRASE, free_port, send_document, wait_for
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file
from pki.ocsp import make_request
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    RawPeer,
    connect_and_start,
    forge_envelope,
    inbox_item,
    log_text,
    metric,
    new_network,
    notice_meta,
    sender_from,
    tls_context_from,
    tls_context_of,
    units,
)
from tests.support import run_gwx, run_openssl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
REFRESH = 0.5  # seconds between a node's questions to its parent
RETRY = {"min_seconds": 0.2, "max_seconds": 1.0, "window_seconds": 600}
ENV = {"GWX_PASSPHRASE": PASSPHRASE.decode()}
ACK = MessageType.TRANSPORT_ACK  # node-generated: needs no sending unit


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    net = new_network(tmp_path_factory.mktemp("crl-tree"))
    city = net.add_node("city", units(CITY), retry=RETRY,
                       revocation={"port": free_port(), "ocsp_signer": "ocsp"})
    for node_id, code in (("county-a", A1), ("town-a", A2)):
        net.add_node(node_id, units(code), retry=RETRY)
    for child, parent in (("county-a", "city"), ("town-a", "county-a")):
        url = load_config(net.nodes[parent].directory).peer_api.public_url
        edit_config(net.nodes[child].directory, lambda doc, p=parent, u=url: set_section_values(
            doc, "parent", {"node_id": p, "url": u, "refresh_seconds": REFRESH}))
    # The CA operator gives the root node its OCSP signer (the CA key stays with the CA).
    done = run_gwx("pki", "issue-ocsp-signer", "--ca", net.base / "ca", "--out", city.directory / "ocsp", env=ENV,
                   text=True)
    assert done.returncode == 0, done.stderr
    net.publish_crls()  # every node starts with the same CRL
    connect_and_start(net)
    yield net
    net.stop_all()


def crl_of(net, node_id: str) -> bytes:
    return (net.nodes[node_id].directory / "crl.pem").read_bytes()


def publish(net, *, days: int = 7) -> bytes:
    """What the CA operator does: a new CRL straight into the root node's crl.pem."""
    out = net.nodes["city"].directory / "crl.pem"
    done = run_gwx("pki", "crl", "--ca", net.base / "ca", "--out", out, "--next-update-days", str(days), env=ENV,
                   text=True)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def wait_held(net, node_id: str, data: bytes, what: str, timeout: float = 30) -> None:
    wait_for(lambda: crl_of(net, node_id) == data, timeout, interval=0.2, what=what)


def credentials(net, node_id: str):
    out = net.base / "extra" / node_id
    net.ca.issue_node(node_id, "127.0.0.1", out, PASSPHRASE)
    return out


def cert(creds, role: str):
    return load_certificates((creds / f"{role}.crt").read_bytes())[0]


def readiness_check(node, name: str = "revocation") -> tuple[bool, dict]:
    try:
        with urllib.request.urlopen(node.ready["local_url"] + "/readyz", timeout=10) as resp:
            ready = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503 while not ready, with the same report
        ready = json.loads(exc.read())
    return ready["ready"], next(c for c in ready["checks"] if c["name"] == name)


def test_a_revoked_signing_certificate_reaches_the_township_through_the_county_by_itself(tree):
    town = tree.nodes["town-a"]
    pids = {n: node.process.pid for n, node in tree.nodes.items()}
    revoked = credentials(tree, "county-s")
    as_s = RawPeer(town, tls_context_from(revoked))
    _, envelope = forge_envelope(None, town, from_unit=None, to_units=[], type=ACK,
                                 sender=sender_from(revoked, "county-s"))
    status, parsed, raw = as_s.post_envelopes(envelope)
    assert status == 200 and "receipt" in parsed["results"][0], raw[:300]

    tree.ca.revoke(cert(revoked, "sign"), "key_compromise")
    new = publish(tree)
    wait_held(tree, "county-a", new, "the county fetching the new CRL from the city")
    wait_held(tree, "town-a", new, "the township fetching the new CRL from the county")

    _, envelope = forge_envelope(None, town, from_unit=None, to_units=[], type=ACK,
                                 sender=sender_from(revoked, "county-s"))
    status, parsed, raw = as_s.post_envelopes(envelope)
    assert status == 200, raw[:300]
    assert parsed["results"][0]["error"]["code"] == "ENV_SIGNER_UNTRUSTED"
    assert "revoked" in parsed["results"][0]["error"]["message"]
    assert {n: node.process.pid for n, node in tree.nodes.items()} == pids
    assert "CRL installed from county-a" in log_text(town)
    # Nothing new: the next conditional GET is a 304.
    unchanged = metric(town, "gwx_crl_fetches_total", outcome="unchanged")
    wait_for(lambda: metric(town, "gwx_crl_fetches_total", outcome="unchanged") > unchanged, 15,
             what="the township asking again and finding nothing new")


def test_a_crl_signed_by_another_ca_or_older_is_refused_and_the_held_one_kept(tree):
    county = tree.nodes["county-a"]
    older = crl_pem(build_crl(tree.ca, dt.datetime.now(dt.UTC)))  # a lower number than the next one
    good = publish(tree)
    wait_held(tree, "town-a", good, "the good CRL reaching the township")
    # Another CA under the very same name: only the signature tells them apart.
    stranger = CertificateAuthority.init_root(tree.base / "stranger", tree.ca.name, PASSPHRASE)
    for bad, code in ((older, "PKI_CRL_ROLLBACK"), (crl_pem(build_crl(stranger, dt.datetime.now(dt.UTC))),
                                                    "PKI_CRL_UNTRUSTED")):
        write_public_file(tree.nodes["city"].directory / "crl.pem", bad)
        wait_for(lambda c=code: metric(county, "gwx_crl_fetches_total", outcome="refused", code=c) >= 2, 20,
                 what=f"the county refusing the {code} CRL, again at each refresh")
        assert f"CRL from city refused ({code}); keeping the CRLs we hold" in log_text(county)
        assert crl_of(tree, "county-a") == good and crl_of(tree, "town-a") == good
    fresh = publish(tree)
    wait_held(tree, "town-a", fresh, "a good CRL published after the bad ones reaching the township")


def test_a_stale_crl_is_surfaced_then_refreshed_by_itself(tree):
    city, county, town = tree.nodes["city"], tree.nodes["county-a"], tree.nodes["town-a"]
    town_pid = town.process.pid
    # A CRL that goes stale soon reaches everyone; then the county goes down, and the CA operator's
    # next CRL cannot reach the township.
    now = dt.datetime.now(dt.UTC)
    short = crl_pem(build_crl(tree.ca, now, next_update_in=dt.timedelta(seconds=8)))
    write_public_file(city.directory / "crl.pem", short)
    wait_held(tree, "town-a", short, "the short-lived CRL reaching the township")
    tree.stop(county)
    fresh = publish(tree)
    time.sleep(max(0.0, (now + dt.timedelta(seconds=9) - dt.datetime.now(dt.UTC)).total_seconds()))

    def stale_with_reason():
        ready, check = readiness_check(town)
        return (not ready and check["verdict"] == "fail" and "PEER_UNREACHABLE" in check["message"]) and check
    check = wait_for(stale_with_reason, 20, interval=0.3, what="the township's readiness naming its stale CRL")
    assert check["code"] == "PKI_REVOCATION_STALE"
    assert "next-update passed at" in check["message"]
    assert "last fetch from county-a failed at" in check["message"]
    assert "ENV_REVOCATION_UNKNOWN" in check["message"]
    # The same in gwx node status (from the node directory, no token) and in /metrics.
    status = run_gwx("node", "status", "--dir", town.directory, "--json", text=True)
    checks = {c["name"]: c for c in json.loads(status.stdout)["readiness"]["checks"]}
    assert checks["revocation"]["verdict"] == "fail" and "last fetch from county-a failed" in \
        checks["revocation"]["message"]
    wait_for(lambda: metric(town, "gwx_crl_stale") == 1, 15, what="the township's gauges (refreshed every 5 s)")
    assert metric(town, "gwx_crl_next_update_in") < 0 and metric(town, "gwx_crl_number") > 0

    # Meanwhile the city's 通知 to the township is "try again": kept, not bounced, and the city's
    # operator sees why.
    doc_id = send_document(city, CITY, notice_meta(CITY, [A2]), tree.body)["doc_id"]

    def refusal_seen():
        peers = city.client("operator").get("/api/v1/node/status")["peers"]
        line = next((p for p in peers if p["node_id"] == "town-a"), None)
        return line and (line["last_error"] or "").startswith("ENV_REVOCATION_UNKNOWN: ") and line["last_error"]
    refusal = wait_for(refusal_seen, 30, interval=0.3, what="the city's status naming the township's refusal")
    assert "town-a cannot check revocation right now (the CRL is out of date" in refusal
    assert "fetches a current CRL from its parent county-a by itself — try again later" in refusal
    tracking = city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}")
    assert all(r["status"] not in ("bounced", "failed") for r in tracking["recipients"]), tracking

    # The county comes back with a stale CRL itself: it still fetches the fresh one (its stale CRL
    # does not refuse the city), and the township catches up from it without a restart.
    tree.start(county)
    wait_held(tree, "county-a", fresh, "the restarted county, stale itself, fetching the fresh CRL")
    wait_held(tree, "town-a", fresh, "the township fetching the fresh CRL from the county")
    wait_for(lambda: readiness_check(town)[1]["verdict"] == "ok", 15, what="the township's revocation check ok")
    assert town.process.pid == town_pid
    item = inbox_item(town, A2, doc_id, timeout=60)
    assert item["from_unit"] == CITY
    wait_for(lambda: metric(town, "gwx_crl_stale") == 0, 15, what="the township's gauge clearing")


def openssl_ocsp(tree, issuer, target, *extra) -> str:
    url = json.loads((tree.nodes["city"].directory / "run" / "ready.json").read_text())["revocation_url"]
    done = run_openssl("ocsp", "-issuer", issuer, "-cert", target, "-url", f"{url}/ocsp", *extra, text=True)
    return done.stdout + done.stderr


def test_the_root_node_answers_ocsp_checked_with_openssl(tree):
    root = tree.base / "ca" / "root.crt"
    county_tls = load_config(tree.nodes["county-a"].directory).credentials_dir / "tls.crt"
    out = openssl_ocsp(tree, root, county_tls, "-CAfile", root)
    assert f"{county_tls}: good" in out and "Response verify OK" in out

    revoked = credentials(tree, "county-o")
    tree.ca.revoke(cert(revoked, "tls"), "key_compromise")
    publish(tree)
    out = wait_for(lambda: (o := openssl_ocsp(tree, root, revoked / "tls.crt", "-CAfile", root))
                   and ": revoked" in o and o, 20, interval=0.5, what="the root node's OCSP answering revoked")
    assert "Reason: keyCompromise" in out and "Response verify OK" in out

    # A certificate of another CA: the responder does not answer for it (its signer is ours, so
    # openssl is told to trust it as a responder).
    stranger = CertificateAuthority.init_root(tree.base / "stranger-ocsp", "另一个CA", PASSPHRASE)
    foreign = tree.base / "extra" / "foreign"
    stranger.issue_node("foreign", "127.0.0.1", foreign, PASSPHRASE)
    out = openssl_ocsp(tree, tree.base / "stranger-ocsp" / "root.crt", foreign / "tls.crt",
                       "-VAfile", tree.nodes["city"].directory / "ocsp" / "signer.crt")
    assert f"{foreign / 'tls.crt'}: unknown" in out


def post(url: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes, str]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type", "")
    finally:
        conn.close()


def test_bad_input_on_the_revocation_routes_gets_typed_errors(tree):
    city, county = tree.nodes["city"], tree.nodes["county-a"]
    url = json.loads((city.directory / "run" / "ready.json").read_text())["revocation_url"]
    status, body, ctype = post(url, "/ocsp", b"\x30\x03junk", "application/ocsp-request")
    assert status == 200 and ctype == "application/ocsp-response"
    assert xocsp.load_der_ocsp_response(body).response_status is xocsp.OCSPResponseStatus.MALFORMED_REQUEST
    status, body, _ = post(url, "/ocsp", b"\x30" * (65 * 1024), "application/ocsp-request")
    assert status == 413 and json.loads(body)["error"]["code"] == "API_OCSP_TOO_LARGE"
    county_tls = cert(load_config(county.directory).credentials_dir, "tls")
    request = make_request(county_tls, tree.ca.certificate)
    status, body, _ = post(url, "/ocsp", request, "application/json")
    assert status == 415 and json.loads(body)["error"]["code"] == "API_UNSUPPORTED_MEDIA_TYPE"
    status, body, _ = post(url, "/envelopes", b"x", "application/octet-stream")
    assert status == 404 and json.loads(body)["error"]["code"] == "API_HTTP_404"
    # The same request over mutual TLS: the city answers it, the county (no OCSP signer) says so.
    status, _, raw = RawPeer(city, tls_context_of(county)).request(
        "POST", "/peer/v1/ocsp", request, {"Content-Type": "application/ocsp-request"})
    assert status == 200 and xocsp.load_der_ocsp_response(raw).certificate_status is xocsp.OCSPCertStatus.GOOD
    status, parsed, _ = RawPeer(county, tls_context_of(city)).request(
        "POST", "/peer/v1/ocsp", request, {"Content-Type": "application/ocsp-request"})
    assert status == 404 and parsed["error"]["code"] == "NODE_NO_OCSP"
    # The CRL over plain HTTP, conditionally.
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/crl")
    resp = conn.getresponse()
    data, etag = resp.read(), resp.getheader("ETag")
    assert resp.status == 200 and data == crl_of(tree, "city")
    conn.request("GET", "/crl", headers={"If-None-Match": etag})
    resp = conn.getresponse()
    assert resp.status == 304 and resp.read() == b""
    conn.close()
