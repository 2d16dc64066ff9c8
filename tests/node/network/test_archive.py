"""一键归档 across real nodes: the city node is the network's TSA (a signer issued by the CA, served on
its peer API over mutual TLS), the county asks it; a sent and a received document are archived once
settled, checked offline by ``gwx archive verify`` (also in 2040) and by openssl on their own, and
every bad request is a typed error. The archive scenario runs on a 国密 network too: SM3 manifest, index
and imprint, SM2 (GB/T 35275) signatures, checked by `openssl dgst -sm3` since `openssl ts`/`cms` do not
read that CMS."""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from asn1crypto import tsp

from exchange_protocol import archive as A
from node.cli.api_client import RemoteError
from node.config_edit import edit_config, set_section_values
from node.localnet import PASSPHRASE, send_document
from pki import tsa
from pki.tsa_signer import issue as issue_tsa_signer
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    FAST_RETRY,
    ByProfile,
    RawPeer,
    connect_and_start,
    db_rows,
    db_value,
    every_profile,
    inbox_item,
    new_network,
    notice_meta,
    peer_url,
    tls_context_of,
    token_file,
    units,
    wait_status,
)
from tests.pki.sm_support import openssl_checks_gbt_cms
from tests.support import run_gwx, run_openssl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    def make(profile: str):
        net = new_network(tmp_path_factory.mktemp(f"archive-{profile}"), profile=profile)
        city = net.add_node("city", units(CITY), retry=FAST_RETRY, archive={"tsa_signer": "tsa"})
        county = net.add_node("county", units(A1, A2), retry=FAST_RETRY)
        issue_tsa_signer(net.ca, city.directory / "tsa", PASSPHRASE)  # the CA operator's act; the CA key stays
        edit_config(county.directory, lambda doc: set_section_values(
            doc, "archive", {"tsa_node": "city", "tsa_url": peer_url(city)}))
        return connect_and_start(net)

    made = ByProfile(make)
    yield made
    made.stop_all()


def _settled_document(net) -> str:
    city = net.nodes["city"]
    county = net.nodes["county"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1, A2]), net.body)["doc_id"]
    inbox_item(county, A1, doc_id)
    inbox_item(county, A2, doc_id)
    return doc_id


def _archive(node, unit: str, side: str, doc_id: str, out: Path, *extra: str):
    return run_gwx("archive", "build", doc_id, "--out", out, *(["--inbox"] if side == "inbox" else []), *extra,
                   "--node", node.ready["local_url"], "--token-file", token_file(node, f"clerk-{unit}"), text=True)


@every_profile
def test_a_sent_and_a_received_document_archived_and_verified_offline(net, tmp_path):
    city, county = net.nodes["city"], net.nodes["county"]
    doc_id = _settled_document(net)
    with pytest.raises(RemoteError) as refused:  # a recipient has not settled: not finished
        city.clerk(CITY).post(f"/api/v1/outbox/{doc_id}/archive")
    assert refused.value.code == "ARCHIVE_DOC_NOT_FINISHED" and refused.value.status == 409
    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    county.clerk(A2).post(f"/api/v1/inbox/{doc_id}/return", {"reason": "非本单位职责"})
    wait_status(city, CITY, doc_id, {A1: "signed_for", A2: "returned"})

    sent = tmp_path / "sent.gwxa"
    done = _archive(city, CITY, "outbox", doc_id, sent)
    assert done.returncode == 0, done.stderr
    assert "time-stamped" in done.stdout
    received = tmp_path / "received.gwxa"
    done = _archive(county, A1, "inbox", doc_id, received)  # its time-stamp comes from the city over mutual TLS
    assert done.returncode == 0, done.stderr

    root = net.base / "ca" / "root.crt"
    digest = "sm3" if net.profile == "sm" else "sha256"  # the network's
    for archive in (sent, received):
        for at in ((), ("--at", "2040-01-01T00:00:00+00:00")):
            checked = run_gwx("archive", "verify", archive, "--trust", root, *at, "--no-revocation", "--json",
                              text=True)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            report = json.loads(checked.stdout)
            assert report["ok"] and report["doc_id"] == doc_id
            checks = {c["name"]: c for c in report["checks"]}
            assert checks["manifest"]["details"]["hash"] == checks["timestamp"]["details"]["imprint"] == digest
            statuses = {c["name"]: c["status"] for c in report["checks"]}
            assert statuses == {"structure": "pass", "manifest": "pass", "timestamp": "pass", "package": "pass",
                                "envelopes": "pass", "receipts": "pass", "statements": "pass", "audit": "pass",
                                "index": "pass"}
            # The 签收 (A1) and the 退回 (A2), each signed with the acting unit's seal, are in and verified.
            statements = next(c for c in report["checks"] if c["name"] == "statements")
            assert statements["details"]["units"] == ([A1, A2] if archive == sent else [A1])
            # A new node's log is hash version 2 from its first event: every link to the head recomputed.
            audit = next(c for c in report["checks"] if c["name"] == "audit")
            assert audit["details"]["links_not_recomputed"] == 0 and audit["details"]["links_recomputed"] > 0
    shown = run_gwx("archive", "verify", sent, "--trust", root, "--no-revocation", text=True).stdout
    named = {"sha256": "SHA-256", "sm3": "SM3"}[digest]
    assert "] manifest (" in shown and f"files, {named})" in shown and f"(imprint {named})" in shown, shown
    with zipfile.ZipFile(sent) as zf:
        names = zf.namelist()
        index = json.loads(zf.read(A.INDEX_NAME))
        package = zf.read(A.PACKAGE_NAME)
        excerpt = json.loads(zf.read(A.AUDIT_NAME))
    # The excerpt's head is the city's live log at that seq (what anchors it), and it carries the
    # document's events only, the others as content hashes.
    assert db_value(city, "SELECT hash FROM audit WHERE seq = ?", (excerpt["head"][0],)) == excerpt["head"][1]
    assert {e["subjects"].get("doc_id") for e in excerpt["events"]} == {doc_id}
    assert len(excerpt["content_hashes"]) == excerpt["head"][0] - excerpt["first_seq"] + 1
    # The sealed package exactly as it travelled: the bytes the county holds.
    assert package == (county.clerk(A1).request("GET", f"/api/v1/inbox/{doc_id}/package")[2])
    assert index["元数据"]["公文标识"] == doc_id and index["未著录"] == ["档号", "保管期限"]
    assert {h["unit"]: h["status"] for h in index["处理"]} == {A1: "signed_for", A2: "returned"}
    assert index["归档"]["statements"] == {"expected": 2, "found": 2, "missing": []}
    with zipfile.ZipFile(received) as zf:  # the received side holds its own unit's statement only
        assert json.loads(zf.read(A.INDEX_NAME))["归档"]["statements"] == {"expected": 1, "found": 1, "missing": []}
    # The document sent to the county and the 签收 and 退回 notices that came back, each with its receipt.
    headers = [n for n in names if n.startswith(A.ENVELOPES_DIR) and n.endswith(".header.json")]
    types = []
    with zipfile.ZipFile(sent) as zf:
        for name in headers:
            types.append(json.loads(zf.read(name))["type"])
    assert {"document", "receipt", "return"} <= set(types), types
    assert any(n.startswith(A.RECEIPTS_DIR) for n in names)

    # Each node's audit log records the archive it built, with the digest of the file handed out.
    for node, archive in ((city, sent), (county, received)):
        recorded = [json.loads(d) for (d,) in db_rows(node, "SELECT details FROM audit WHERE action = ? AND doc_id = ?",
                                                      ("document.archived", doc_id))]
        assert [r["sha256"] for r in recorded] == [hashlib.sha256(archive.read_bytes()).hexdigest()]

    # Tools we did not write: openssl on the manifest's digests, the time-stamp and every signature; on an
    # international network poppler's pdfsig on the body inside the sealed package too.
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(sent) as zf:
        zf.extractall(unpacked)
    manifest = json.loads((unpacked / A.MANIFEST_NAME).read_bytes())
    assert manifest["hash"] == digest
    for entry in manifest["files"]:
        assert _openssl_digest(digest, unpacked / entry["path"]) == entry[digest], entry["path"]
    assert index["归档"][f"package_{digest}"] == _openssl_digest(digest, unpacked / A.PACKAGE_NAME)
    statements = sorted((unpacked / A.STATEMENTS_DIR).glob("*.p7s"))
    assert len(statements) == 2
    detached = set(unpacked.rglob("*.p7s")) - set(statements)
    if net.profile == "sm":  # GB/T 35275 CMS: openssl dgst -sm3 over the content and -verify of the SM2 signature
        imprint = tsp.TSTInfo.load(openssl_checks_gbt_cms((unpacked / A.TOKEN_NAME).read_bytes(), None, tmp_path))
        assert imprint["message_imprint"]["hashed_message"].native.hex() == \
            _openssl_digest("sm3", unpacked / A.MANIFEST_NAME)
        for signature in statements:
            shown = openssl_checks_gbt_cms(signature.read_bytes(), None, tmp_path)
            assert A.STATEMENT_KIND.encode() in shown and doc_id.encode() in shown
        for signature in detached:
            openssl_checks_gbt_cms(signature.read_bytes(), Path(str(signature)[:-4]).read_bytes(), tmp_path)
        return
    with zipfile.ZipFile(unpacked / A.PACKAGE_NAME) as zf:
        (tmp_path / "body.pdf").write_bytes(zf.read("body.pdf"))
    pdfsig = subprocess.run(["pdfsig", str(tmp_path / "body.pdf")], capture_output=True, text=True, timeout=60)
    assert "Signature Validation: Signature is Valid." in pdfsig.stdout, pdfsig.stdout + pdfsig.stderr
    run_openssl("ts", "-verify", "-data", unpacked / A.MANIFEST_NAME, "-in", unpacked / A.TOKEN_NAME, "-token_in",
                "-CAfile", root)
    for signature in statements:  # content attached: openssl prints the statement itself
        shown = run_openssl("cms", "-verify", "-inform", "DER", "-in", signature, "-CAfile", root,
                            "-purpose", "any", text=True)
        assert A.STATEMENT_KIND in shown.stdout and doc_id in shown.stdout
    for signature in detached:
        run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", signature,
                    "-content", Path(str(signature)[:-4]), "-CAfile", root, "-purpose", "any",
                    "-out", tmp_path / "content.bin")


def _openssl_digest(name: str, path: Path) -> str:
    return run_openssl("dgst", f"-{name}", "-r", path).stdout.decode().split()[0]


def test_an_unfinished_document_with_a_reason_and_bad_requests(net, tmp_path):
    city, county = net.nodes["city"], net.nodes["county"]
    doc_id = _settled_document(net)
    done = _archive(city, CITY, "outbox", doc_id, tmp_path / "early.gwxa", "--reason", "收文单位已撤并，提前归档")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "early.gwxa") as zf:
        assert json.loads(zf.read(A.INDEX_NAME))["归档"]["reason"] == "收文单位已撤并，提前归档"
    refused = _archive(city, CITY, "outbox", doc_id, tmp_path / "early.gwxa")
    assert refused.returncode == 2 and "exists" in refused.stderr  # never overwritten
    for path, body, code in (
            (f"/api/v1/outbox/{doc_id}/archive", {"reason": ""}, "API_BAD_FIELD"),
            (f"/api/v1/outbox/{doc_id}/archive", {"why": "x"}, "API_UNKNOWN_FIELD"),
            ("/api/v1/outbox/no-such-doc/archive", None, "API_NOT_FOUND")):
        with pytest.raises(RemoteError) as info:
            city.clerk(CITY).post(path, body)
        assert info.value.code == code
    with pytest.raises(RemoteError) as info:  # another unit's document: not found for it
        county.clerk(A1).post(f"/api/v1/outbox/{doc_id}/archive")
    assert info.value.code == "API_NOT_FOUND"
    assert not list((city.directory / "data" / "archives").glob("*"))  # nothing left behind


def test_the_tsa_endpoint_over_mutual_tls(net):
    city, county = net.nodes["city"], net.nodes["county"]
    peer = RawPeer(city, tls_context_of(county))
    request = tsa.make_request(b"archive manifest", nonce=7)
    status, _, answer = peer.request("POST", "/peer/v1/tsa", request, {"Content-Type": "application/timestamp-query"})
    assert status == 200
    stamp = tsa.verify_response(answer, b"archive manifest", trust_roots=[net.ca.root_certificate], nonce=7)
    assert "时间戳服务" in stamp.tsa_certificate.subject.rfc4514_string()
    status, _, answer = peer.request("POST", "/peer/v1/tsa", b"not a request",
                                     {"Content-Type": "application/timestamp-query"})
    assert status == 200
    with pytest.raises(Exception) as rejected:  # the protocol's own answer: a rejection, badDataFormat
        tsa.token_from_response(answer)
    assert rejected.value.code == "TSA_REJECTED"
    status, parsed, _ = peer.request("POST", "/peer/v1/tsa", request, {"Content-Type": "application/json"})
    assert status == 415 and parsed["error"]["code"] == "API_UNSUPPORTED_MEDIA_TYPE"
    status, parsed, _ = peer.request("POST", "/peer/v1/tsa", b"x" * (tsa.MAX_REQUEST + 1),
                                     {"Content-Type": "application/timestamp-query"})
    assert status == 413 and parsed["error"]["code"] == "API_TSA_TOO_LARGE"
    status, parsed, _ = RawPeer(county, tls_context_of(city)).request(
        "POST", "/peer/v1/tsa", request, {"Content-Type": "application/timestamp-query"})
    assert status == 404 and parsed["error"]["code"] == "NODE_NO_TSA"
