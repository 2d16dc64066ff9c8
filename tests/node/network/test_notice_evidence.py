"""签收 and 退回 as evidence a third party can check (issue 10 §4), over real node processes and mutual TLS.

A clerk's 签收 at a county node and a 退回 on the sender's own node each leave a statement signed
with the acting unit's seal on both sides; ``gwx doc evidence`` exports them, and ``openssl cms
-verify`` with the network's root alone accepts every exported file. A county node that hosts two
units and forges one unit's 签收 with the other's seal is refused by the city (typed, audited) and
the row stays as it was until the real 签收 arrives. Both run on a 国密 network too: SM2 seals,
statements naming the package by SM3, GB/T 35275 CMS (which ``openssl cms`` does not read: `openssl
dgst -sm3` checks the content's digest and `-verify` the SM2 signature instead).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from exchange_protocol.envelope import MessageType
from exchange_protocol.notices import Notice
from exchange_protocol.statements import Statement
from node.localnet import PASSPHRASE, send_document, wait_for
from pki import cms
from pki.seal_store import load_seal_credential
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    CITY_LOCAL,
    ByProfile,
    RawPeer,
    clerk_name,
    db_rows,
    db_value,
    every_profile,
    forge_envelope,
    gwx,
    inbox_item,
    notice_meta,
    package_digest_by_openssl,
    start_network,
    tls_context_of,
    wait_status,
)
from tests.pki.sm_support import openssl_checks_gbt_cms
from tests.support import run_openssl

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    made = ByProfile(lambda profile: start_network(
        tmp_path_factory.mktemp(f"evidence-{profile}"),
        {"city": ([CITY, CITY_LOCAL], {}), "county-a": ([A1, A2], {})}, profile=profile))
    yield made
    made.stop_all()


def _send(net, to) -> str:
    return send_document(net.nodes["city"], CITY, notice_meta(CITY, to), net.body)["doc_id"]


def _export(node, doc_id: str, out) -> list[dict]:
    done = gwx("doc", "evidence", doc_id, "--dir", str(node.directory), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _openssl_reads(net, file, root, tmp_path) -> dict:
    """The statement in an exported file, as openssl checks and shows it (the CMS verified under ``root``;
    on a 国密 network its SM3 and SM2 signature by openssl dgst)."""
    if net.profile == "sm":
        return json.loads(openssl_checks_gbt_cms(Path(file).read_bytes(), None, tmp_path))
    return json.loads(run_openssl("cms", "-verify", "-inform", "DER", "-in", file, "-CAfile", root).stdout)


@every_profile
def test_each_side_keeps_the_units_signed_statement_and_openssl_accepts_every_export(net, tmp_path):
    city, county = net.nodes["city"], net.nodes["county-a"]
    doc_id = _send(net, [A1, CITY_LOCAL])
    inbox_item(county, A1, doc_id)
    inbox_item(city, CITY_LOCAL, doc_id)
    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    city.clerk(CITY_LOCAL).post(f"/api/v1/inbox/{doc_id}/return", {"reason": "非本单位职责"})
    wait_status(city, CITY, doc_id, {A1: "signed_for", CITY_LOCAL: "returned"})

    at_county = _export(county, doc_id, tmp_path / "county")
    at_city = _export(city, doc_id, tmp_path / "city")
    assert [(r["unit"], r["type"], r["side"]) for r in at_county] == [(A1, "receipt", "receiver")]
    assert sorted((r["unit"], r["type"], r["side"]) for r in at_city) == \
        sorted([(A1, "receipt", "sender"), (CITY_LOCAL, "return", "receiver"), (CITY_LOCAL, "return", "sender")])
    # The statement the county's unit signed is, byte for byte, the one the city keeps.
    assert {r["sha256"] for r in at_county} <= {r["sha256"] for r in at_city}

    key, package = package_digest_by_openssl(net, county.clerk(A1).request("GET", f"/api/v1/inbox/{doc_id}/package")[2])
    root = city.directory / "credentials" / "root.crt"
    for row in at_city + at_county:
        said = _openssl_reads(net, row["file"], root, tmp_path)
        assert (said["doc_id"], said["unit"], said["type"], said[key], said["sender_unit"]) == \
            (doc_id, row["unit"], row["type"], package, CITY)
        assert said["by"] == clerk_name(row["unit"])
        assert said["reason"] == ("非本单位职责" if row["type"] == "return" else None)
    checked = gwx("doc", "check-statement", at_county[0]["file"], "--trust", str(root), "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["ok"] is True

    # A changed byte in an exported file: our checker and openssl both say no.
    forged = tmp_path / "forged.p7m"
    forged.write_bytes(Path(at_county[0]["file"]).read_bytes().replace(A1.encode(), A2.encode()))
    refused = gwx("doc", "check-statement", str(forged), "--trust", str(root), "--json")
    assert refused.returncode == 1 and json.loads(refused.stdout)["ok"] is False
    with pytest.raises(AssertionError):  # openssl refuses it (run_openssl fails) or its SM3 differs
        _openssl_reads(net, forged, root, tmp_path)


@every_profile
def test_a_forged_statement_is_refused_by_the_sender_and_the_real_one_applies_later(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    doc_id = _send(net, [A1, A2])
    inbox_item(county, A2, doc_id)
    wait_status(city, CITY, doc_id, {A1: "delivered", A2: "delivered"})
    [(answered,)] = db_rows(county, "SELECT message_id FROM inbox WHERE doc_id = ? AND unit_code = ?", [doc_id, A2])
    # The package digest this network's statements name (SM3 on a 国密 one): refused for the seal, not the shape.
    key, package = package_digest_by_openssl(net, county.clerk(A2).request("GET", f"/api/v1/inbox/{doc_id}/package")[2])

    # county-a holds A1's seal; it signs a 签收 "by A2" with it (A2's clerk never acted).
    seal = load_seal_credential(county.directory / "units" / A1, PASSPHRASE)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    statement = Statement(MessageType.RECEIPT, doc_id, package, A2, "乙单位", "冒充者", now, None, CITY,
                          key.removeprefix("package_"))
    der = cms.sign_detached(statement.encode(), seal.signer, encapsulate=True, signing_time=now)
    notice = Notice(MessageType.RECEIPT, doc_id, (A2,), now, by="冒充者", evidence=der)
    message_id, frame = forge_envelope(county, city, from_unit=A2, to_units=[CITY], payload=notice.encode(),
                                       type=MessageType.RECEIPT, in_reply_to=answered)
    status, _, body = RawPeer(city, tls_context_of(county)).post_envelopes(frame)
    assert status == 200, body  # accepted (well formed, properly sealed by county-a); judged when applied

    def state():
        rows = db_rows(city, "SELECT state, error_code FROM received WHERE message_id = ?", [message_id])
        return rows[0] if rows and rows[0][0] != "new" else None
    wait_for(state, 30, what="the forged 签收 applied or refused")
    assert tuple(state()) == ("failed", "NOTICE_EVIDENCE_REFUSED")
    assert db_value(city, "SELECT status FROM outbox_recipients WHERE doc_id = ? AND unit_code = ?", [doc_id, A2]) == \
        "delivered"
    assert db_value(city, "SELECT COUNT(*) FROM notice_evidence WHERE doc_id = ?", [doc_id]) == 0
    assert db_value(city, "SELECT COUNT(*) FROM audit WHERE message_id = ? AND action = 'envelope.failed'",
                    [message_id]) == 1

    county.clerk(A2).post(f"/api/v1/inbox/{doc_id}/sign-for")
    tracking = wait_status(city, CITY, doc_id, {A1: "delivered", A2: "signed_for"})
    assert {r["unit"]: r["who"] for r in tracking["recipients"]}[A2] == clerk_name(A2)
    held = db_rows(city, "SELECT unit, side, statement FROM notice_evidence WHERE doc_id = ?", [doc_id])
    assert [(u, s) for u, s, _ in held] == [(A2, "sender")]
    assert hashlib.sha256(held[0][2]).hexdigest() != hashlib.sha256(der).hexdigest()
