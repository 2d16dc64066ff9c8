"""End to end over a real network: a city node and two county nodes, separate processes, mutual TLS.

The nodes keep their rows in SQLite, then (the same tests) in PostgreSQL. A sealed 通知 from the city's office reaches units on both county nodes (主送 and 抄送) and a unit
hosted on the city node itself; each clerk's action (签收, 退回, 登记, 撤回, 催办) shows on the other
side. The package a clerk downloads is checked with tools we did not write (pdfsig, qpdf) and with
the ``gwx doc verify`` command; the sender's ``gwx track`` prints its table in Chinese. Delivery and
签收/退回 run on a 国密 network too (SM2 seals and headers, SM4 payloads, an OFD body, statements naming
the package by SM3), on SQLite.
"""

from __future__ import annotations

import io
import json
import subprocess
import zipfile

import pytest

from node.cli.api_client import RemoteError
from node.localnet import send_document, wait_for
from tests.node.network import network_support
from tests.node.network.network_support import (
    A1,
    A2,
    B1,
    CITY,
    CITY_LOCAL,
    clerk_name,
    db_rows,
    db_value,
    every_profile_by_store,
    gwx,
    inbox_item,
    kept_statements,
    networks_by_store,
    notice_meta,
    package_digest_by_openssl,
    recipients_by_unit,
    token_file,
    wait_status,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

networks = networks_by_store("exchange", {"city": ([CITY, CITY_LOCAL], {}), "county-a": ([A1, A2], {}),
                                          "county-b": ([B1], {})})
store, net = network_support.store, network_support.net_by_store


# The PostgreSQL copy of a scenario is worth its ~10 s where the store's SQL takes part in what is
# checked (delivery, the clerks' actions and their rows on both sides). What a scenario below checks
# is past the store: the package's bytes with outside tools, an OFD body's seal (the envelope and its
# rows go the way the PDF scenarios above take on PostgreSQL), the track command's table (the same API
# answer the sign-for scenario reads on PostgreSQL). It runs on the SQLite network only.
past_the_store = pytest.mark.parametrize("store", ["sqlite"])
# A scenario whose behaviour involves the profile's algorithms (sealing, signing and encrypting the
# document, the 签收/退回 notices and their statements) runs on a 国密 network too
# (network_support.every_profile_by_store).
every_profile = every_profile_by_store


@pytest.fixture
def nodes(net):
    return net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]


def send(net, to, cc=(), **kw) -> str:
    result = send_document(net.nodes["city"], CITY, notice_meta(CITY, to, cc, **kw), net.body)
    assert {r["unit"] for r in result["recipients"]} == {*to, *cc}
    return result["doc_id"]


@every_profile
def test_a_sealed_notice_reaches_units_on_two_counties_and_on_its_own_node(net, nodes):
    city, county_a, county_b = nodes
    doc_id = send(net, to=[A1, B1], cc=[A2, CITY_LOCAL])
    expected_roles = {A1: ("county-a", "主送"), B1: ("county-b", "主送"), A2: ("county-a", "抄送"),
                      CITY_LOCAL: ("city", "抄送")}
    hosts = {"city": city, "county-a": county_a, "county-b": county_b}
    for unit, (host, role) in expected_roles.items():
        item = inbox_item(hosts[host], unit, doc_id)
        assert item["role"] == role and item["from_unit"] == CITY and item["status"] == "pending"
        assert item["kind"] == "通知" and item["title"].startswith("关于做好冬季安全生产工作的通知")
        assert item["verified"] is True
        shown = hosts[host].clerk(unit).get(f"/api/v1/inbox/{doc_id}")
        report = shown["verification"]
        assert report["ok"] is True
        assert report["checks"] and all(c["status"] != "fail" for c in report["checks"])
        assert shown["metadata"]["doc_number"].startswith("临政办发〔2026〕")
    tracking = wait_status(city, CITY, doc_id, {u: "delivered" for u in expected_roles})
    assert {r["unit"]: r["node"] for r in tracking["recipients"]} == {u: h for u, (h, _) in expected_roles.items()}
    # The sender's rows and the receivers' rows each appear once.
    assert db_value(county_a, "SELECT COUNT(*) FROM inbox WHERE doc_id = ?", [doc_id]) == 2
    assert db_value(county_b, "SELECT COUNT(*) FROM inbox WHERE doc_id = ?", [doc_id]) == 1
    assert db_value(city, "SELECT COUNT(*) FROM inbox WHERE doc_id = ?", [doc_id]) == 1


@every_profile
def test_sign_for_return_and_register_show_on_the_senders_side(net, nodes, tmp_path):
    city, county_a, county_b = nodes
    doc_id = send(net, to=[A1, B1], cc=[CITY_LOCAL])
    inbox_item(county_a, A1, doc_id)
    inbox_item(county_b, B1, doc_id)
    inbox_item(city, CITY_LOCAL, doc_id)

    signed = county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    assert signed["status"] == "signed_for" and signed["signed_by"] == clerk_name(A1) and signed["signed_at"]
    returned = county_b.clerk(B1).post(f"/api/v1/inbox/{doc_id}/return", {"reason": "非本单位职责，请转交市应急局"})
    assert returned["status"] == "returned" and returned["return_reason"] == "非本单位职责，请转交市应急局"
    local = city.clerk(CITY_LOCAL).post(f"/api/v1/inbox/{doc_id}/sign-for")
    assert local["signed_by"] == clerk_name(CITY_LOCAL)

    tracking = wait_status(city, CITY, doc_id, {A1: "signed_for", B1: "returned", CITY_LOCAL: "signed_for"})
    rows = recipients_by_unit(tracking)
    assert rows[A1]["who"] == clerk_name(A1) and rows[A1]["when"][:19] == signed["signed_at"][:19]  # notices carry seconds
    assert rows[B1]["who"] == clerk_name(B1) and rows[B1]["reason"] == "非本单位职责，请转交市应急局"
    assert rows[CITY_LOCAL]["who"] == clerk_name(CITY_LOCAL)
    assert tracking["doc"]["counts"] == {"signed_for": 2, "returned": 1}
    # Each came with its unit's signed statement, kept by the county that made it and by the city that
    # checked it: naming the package by the network's digest (SM3 on a 国密 network), the one openssl
    # computes over the package the clerk received.
    key, digest = package_digest_by_openssl(net, county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}/package"))
    at_city = kept_statements(city, doc_id, "sender")
    for unit, host in ((A1, county_a), (B1, county_b)):
        made = kept_statements(host, doc_id, "receiver")[unit]
        assert made == at_city[unit] and made[key] == digest and made["by"] == clerk_name(unit)
    assert at_city[B1]["type"] == "return" and at_city[B1]["reason"] == "非本单位职责，请转交市应急局"
    statement = tmp_path / "a1.cms"  # and `gwx doc check-statement`, offline, with the root alone, reads it
    statement.write_bytes(bytes(db_rows(county_a, "SELECT statement FROM notice_evidence WHERE doc_id = ? AND unit = ?"
                                                  " AND side = 'receiver'", [doc_id, A1])[0][0]))
    checked = gwx("doc", "check-statement", str(statement), "--trust",
                  str(county_a.directory / "credentials" / "root.crt"), "--json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)[key] == digest

    registered = county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/register")
    assert registered["status"] == "registered" and registered["signed_by"] == clerk_name(A1)
    # 登记 is the receiver's own business: the sender still sees 已签收.
    assert recipients_by_unit(city.clerk(CITY).get(f"/api/v1/outbox/{doc_id}"))[A1]["status"] == "signed_for"
    # A late 签收 of a registered document changes nothing; 退回 after 签收 is refused.
    assert county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")["status"] == "registered"
    with pytest.raises(RemoteError) as refused:
        county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/return", {"reason": "太晚了"})
    assert refused.value.code == "STATE_ILLEGAL_TRANSITION" and refused.value.status == 409
    assert county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["status"] == "registered"


def test_recall_works_before_sign_for_and_is_refused_after(net, nodes):
    city, county_a, county_b = nodes
    doc_id = send(net, to=[A1, B1], cc=[CITY_LOCAL])
    inbox_item(county_a, A1, doc_id)
    inbox_item(county_b, B1, doc_id)
    county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    wait_status(city, CITY, doc_id, {A1: "signed_for", B1: "delivered", CITY_LOCAL: "delivered"})

    result = city.clerk(CITY).post(f"/api/v1/outbox/{doc_id}/recall", {"units": [A1, B1, CITY_LOCAL]})
    assert [r["unit"] for r in result["refused"]] == [A1]
    assert result["refused"][0]["code"] == "STATE_ILLEGAL_TRANSITION"
    rows = recipients_by_unit(result)
    assert rows[A1]["status"] == "signed_for"
    assert rows[B1]["status"] == "recalled" and rows[CITY_LOCAL]["status"] == "recalled"

    def receiver_status(node, unit):
        return node.clerk(unit).get(f"/api/v1/inbox/{doc_id}")["status"]

    wait_for(lambda: receiver_status(county_b, B1) == "recalled", 30, what="recall at county-b")
    assert receiver_status(city, CITY_LOCAL) == "recalled"
    assert receiver_status(county_a, A1) == "signed_for"
    # A recalled document cannot be signed for any more.
    with pytest.raises(RemoteError) as refused:
        county_b.clerk(B1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    assert refused.value.code == "STATE_ILLEGAL_TRANSITION"


def test_urge_increments_the_counts_on_both_sides(net, nodes):
    city, county_a, county_b = nodes
    doc_id = send(net, to=[A1], cc=[A2, CITY_LOCAL])
    inbox_item(county_a, A2, doc_id)
    county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    wait_status(city, CITY, doc_id, {A1: "signed_for", A2: "delivered", CITY_LOCAL: "delivered"})

    for n in (1, 2):
        result = city.clerk(CITY).post(f"/api/v1/outbox/{doc_id}/urge")  # all recipients not yet settled
        rows = recipients_by_unit(result)
        assert rows[A2]["urge_count"] == n and rows[CITY_LOCAL]["urge_count"] == n and rows[A2]["last_urged_at"]
        assert rows[A1]["urge_count"] == 0
        wait_for(lambda n=n: county_a.clerk(A2).get(f"/api/v1/inbox/{doc_id}")["urge_count"] == n, 30,
                 what=f"urge {n} at county-a")
        assert city.clerk(CITY_LOCAL).get(f"/api/v1/inbox/{doc_id}")["urge_count"] == n
    assert county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["urge_count"] == 0


@past_the_store
def test_downloaded_package_verifies_with_independent_tools(net, nodes, tmp_path):
    city, county_a, _ = nodes
    doc_id = send(net, to=[A1])
    inbox_item(county_a, A1, doc_id)
    data = county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}/package")
    assert isinstance(data, bytes) and data[:2] == b"PK"
    package = tmp_path / "pkg.zip"
    package.write_bytes(data)

    root = county_a.directory / "credentials" / "root.crt"
    verified = gwx("doc", "verify", str(package), "--trust", str(root), "--crl", str(county_a.directory / "crl.pem"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VALID" in verified.stdout and doc_id in verified.stdout
    as_json = json.loads(gwx("doc", "verify", str(package), "--trust", str(root), "--json").stdout)
    assert as_json["ok"] is True

    with zipfile.ZipFile(package) as z:
        body = tmp_path / "body.pdf"
        body.write_bytes(z.read("body.pdf"))
    pdfsig = subprocess.run(["pdfsig", str(body)], capture_output=True, text=True, timeout=60)
    assert "Signature Validation: Signature is Valid." in pdfsig.stdout, pdfsig.stdout + pdfsig.stderr
    qpdf = subprocess.run(["qpdf", "--check", str(body)], capture_output=True, text=True, timeout=60)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr

    # A package altered on the clerk's disk no longer verifies.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "metadata.json":
                content = content.replace("通知".encode(), "通报".encode(), 1)
            dst.writestr(info, content)
    assert gwx("doc", "verify", str(tampered), "--trust", str(root)).returncode != 0


@past_the_store
def test_an_ofd_body_crosses_the_network_and_is_verified_on_arrival(net, nodes, tmp_path):
    from cryptography import x509

    from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
    from tests.exchange_protocol.ofd_fixtures import make_ofd

    _, county_a, _ = nodes
    body = tmp_path / "正文.ofd"
    body.write_bytes(make_ofd())
    doc_id = send_document(net.nodes["city"], CITY, notice_meta(CITY, [A1], []), body)["doc_id"]
    assert inbox_item(county_a, A1, doc_id)["verified"] is True
    checks = {c["name"]: c["status"] for c in county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["verification"]["checks"]}
    assert checks["ofd_seal"] == "pass" and "pdf_seal" not in checks
    with zipfile.ZipFile(io.BytesIO(county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}/package"))) as z:
        sealed = z.read("body.ofd")
    root = x509.load_pem_x509_certificate((county_a.directory / "credentials" / "root.crt").read_bytes())
    assert verify_sealed_ofd(sealed, revocation=NO_REVOCATION_CHECK, trust_roots=[root]).first.verification.signature.seal.unit_code == CITY


@past_the_store
def test_track_command_prints_the_table_in_chinese(net, nodes):
    city, county_a, county_b = nodes
    doc_id = send(net, to=[A1], cc=[B1], title="关于开展安全生产大检查的通知")
    inbox_item(county_a, A1, doc_id)
    inbox_item(county_b, B1, doc_id)
    county_a.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    county_b.clerk(B1).post(f"/api/v1/inbox/{doc_id}/return", {"reason": "请改送罗庄区应急局"})
    wait_status(city, CITY, doc_id, {A1: "signed_for", B1: "returned"})

    out = gwx("track", doc_id, "--node", city.ready["local_url"], "--token-file", str(token_file(city, f"clerk-{CITY}")))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "关于开展安全生产大检查的通知" in text and "[通知]" in text
    assert "单位代码" in text and "经办人" in text
    lines = text.splitlines()
    a1_line = next(line for line in lines if line.startswith(A1))
    assert "主送" in a1_line and "已签收" in a1_line and f"{clerk_name(A1)}（签收）" in a1_line
    b1_line = next(line for line in lines if line.startswith(B1))
    assert "抄送" in b1_line and "已退回" in b1_line and "请改送罗庄区应急局" in b1_line
    assert f"{clerk_name(B1)}（退回）" in b1_line
    assert "已签收 1" in text and "已退回 1" in text

    as_json = json.loads(gwx("track", doc_id, "--json", "--node", city.ready["local_url"], "--token-file",
                             str(token_file(city, f"clerk-{CITY}"))).stdout)
    assert recipients_by_unit(as_json)[A1]["who"] == clerk_name(A1)
