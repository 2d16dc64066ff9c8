"""exchange_protocol.directory and directory_signing: the signed network directory — round trip, openssl's
opinion of the signature, tampering, forged and wrong-purpose signers, rollback, expiry as a status, and
hostile input (malformed JSON, oversized, wrong types, ill-formed trees) refused with typed errors."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import functools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol import errors as E
from exchange_protocol.canonical import canonical_json
from exchange_protocol.directory import (
    MAX_DIRECTORY_BYTES,
    CertificateSet,
    Directory,
    DirectoryStatus,
    UnitEntry,
    check,
    check_certificates,
)
from exchange_protocol.directory_diff import diff, is_empty
from exchange_protocol.directory_signing import signed_parts, verify_directory
from exchange_protocol.supervision import NetworkSupervision, WorkCalendar
from pki import directory_signer
from pki.signer import Signer, SoftwareSigner
from pki.trust import TrustStore
from pki.unit_code import make_unit_code
from tests.exchange_protocol.directory_support import CITY, COUNTY_B, VILLAGE, directory, signed, signed_json
from tests.exchange_protocol.envelope_support import NOW, network
from tests.support import PASSPHRASE, run_openssl


def roots():
    return [network().root.certificate]


def test_a_signed_directory_verifies_and_reads_back_the_same():
    result = verify_directory(signed(3), roots(), NOW)
    assert result.directory == directory(3)
    assert result.status is DirectoryStatus.CURRENT and not result.unchanged
    assert result.directory.unit(VILLAGE).node == "b" and result.directory.node("c").chain
    assert result.signer_certificate == directory_signer.from_ca(network().root).certificate
    again = verify_directory(signed(3), roots(), NOW, current=result.directory)
    assert again.unchanged and again.content_sha256 == result.content_sha256


def test_openssl_verifies_the_detached_signature_with_only_the_root(tmp_path):
    """The signature is plain CMS a tool we did not write accepts; the chain travels inside it."""
    inter_signer = directory_signer.from_ca(network().inter)
    content, signature = signed_parts(signed(signer=inter_signer))
    (tmp_path / "content.json").write_bytes(content)
    (tmp_path / "sig.der").write_bytes(signature)
    proc = run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                       "-content", tmp_path / "content.json", "-CAfile", network().base / "root.pem",
                       "-purpose", "any", "-out", tmp_path / "out", check=False)
    assert proc.returncode == 0, proc.stderr
    assert b"Verification successful" in proc.stderr
    (tmp_path / "content.json").write_bytes(content.replace("某村委会".encode(), "别村委会".encode()))
    proc = run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                       "-content", tmp_path / "content.json", "-CAfile", network().base / "root.pem",
                       "-purpose", "any", "-out", tmp_path / "out", check=False)
    assert proc.returncode != 0


def test_a_tampered_directory_is_refused():
    outer = json.loads(signed())
    outer["directory"]["units"][0]["node"] = "b"  # the city's office moved to a county's node
    with pytest.raises(E.DirectoryBadSignature) as info:
        verify_directory(canonical_json(outer), roots(), NOW)
    assert info.value.details["cause"] == "CMS_DIGEST_MISMATCH"


@pytest.mark.parametrize("who", ["rogue CA's directory signer", "node a's signing key", "the seal maker"])
def test_a_signer_that_is_not_our_directory_signer_is_refused(who):
    net = network()
    if who.startswith("rogue"):
        rogue = directory_signer.from_ca(net.root.__class__.open(net.base / "rogue", PASSPHRASE))
        data, cause = signed(signer=rogue), "PKI_CERT_UNTRUSTED"
    elif who.startswith("node"):
        data, cause = signed_json(directory().to_json(), net.nodes["a"].sender.signer), "PKI_CERT_WRONG_USAGE"
    else:
        data, cause = signed_json(directory().to_json(), net.root.seal_maker_signer()), "PKI_CERT_WRONG_USAGE"
    with pytest.raises(E.DirectorySignerUntrusted) as info:
        verify_directory(data, roots(), NOW)
    assert info.value.details["cause"] == cause


class _Forger(Signer):
    """Signs with its own key while presenting the genuine signer's certificate."""

    def __init__(self, inner: SoftwareSigner, certificate) -> None:
        self.inner, self._certificate = inner, certificate

    algorithm = property(lambda self: self.inner.algorithm)
    public_key = property(lambda self: self.inner.public_key)
    certificate = property(lambda self: self._certificate)

    def sign(self, data: bytes) -> bytes:
        return self.inner.sign(data)


def test_a_forged_signature_is_refused():
    """The right certificate with a signature made by another key: the CMS does not verify."""
    net = network()
    genuine = directory_signer.from_ca(net.root)
    forger = _Forger(SoftwareSigner(net.root.algorithm.generate()), genuine.certificate)
    with pytest.raises(E.DirectoryBadSignature):
        verify_directory(signed(signer=dataclasses.replace(genuine, signer=forger)), roots(), NOW)
    outer = json.loads(signed())
    sig = outer["signature"]  # the signature value is the last field of the CMS: change a byte of it
    outer["signature"] = sig[:-20] + ("A" if sig[-20] != "A" else "B") + sig[-19:]
    with pytest.raises(E.DirectoryBadSignature):
        verify_directory(canonical_json(outer), roots(), NOW)
    outer["signature"] = "not base64!"
    with pytest.raises(E.DirectoryMalformed):
        verify_directory(canonical_json(outer), roots(), NOW)


def test_versions_only_grow():
    held = directory(5)
    with pytest.raises(E.DirectoryRollback) as info:
        verify_directory(signed(4), roots(), NOW, current=held)
    assert info.value.details == {"version": 4, "current": 5}
    other_content = signed(5, network="另一个名字")
    with pytest.raises(E.DirectoryVersionReused):
        verify_directory(other_content, roots(), NOW, current=held)
    assert verify_directory(signed(6), roots(), NOW, current=held).directory.version == 6
    assert verify_directory(signed(5), roots(), NOW, current=held).unchanged


def test_an_expired_directory_is_a_status_not_a_refusal():
    data = signed()
    assert verify_directory(data, roots(), NOW + dt.timedelta(days=2)).status is DirectoryStatus.DUE
    late = verify_directory(data, roots(), NOW + dt.timedelta(days=30))
    assert late.status is DirectoryStatus.EXPIRED and late.directory == directory()


# ---- hostile input --------------------------------------------------------------------------------
def mutated(change) -> dict:
    value = copy.deepcopy(directory().to_json())
    change(value)
    return value


def _set(path, new):
    def change(value):
        target = value
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = new
    return change


ILL_FORMED = {
    "version a string": (_set(["version"], "7"), E.DirectoryBadField),
    "version true": (_set(["version"], True), E.DirectoryBadField),
    "version 0": (_set(["version"], 0), E.DirectoryBadField),
    "nodes an object": (_set(["nodes"], {}), E.DirectoryBadField),
    "no nodes": (_set(["nodes"], []), E.DirectoryBadField),
    "unit code a number": (_set(["units", 0, "code"], 914301), E.DirectoryBadField),
    "unknown field": (_set(["owner"], "x"), E.DirectoryBadField),
    "missing field": (lambda v: v.pop("expires"), E.DirectoryBadField),
    "bad time": (_set(["expires"], "tomorrow"), E.DirectoryBadField),
    "times out of order": (_set(["next_update"], "2030-01-01T00:00:00Z"), E.DirectoryBadField),
    "unknown level": (_set(["units", 0, "level"], "galaxy"), E.DirectoryBadField),
    "plain http peer": (_set(["nodes", 1, "urls"], ["http://b.example"]), E.DirectoryBadField),
    "bad check character": (_set(["units", 0, "code"], CITY[:17] + ("0" if CITY[17] != "0" else "1")),
                            E.DirectoryBadUnitCode),
    "duplicate unit code": (_set(["units", 1, "code"], CITY), E.DirectoryDuplicate),
    "duplicate node id": (_set(["nodes", 2, "id"], "b"), E.DirectoryDuplicate),
    "unit on a missing node": (_set(["units", 3, "node"], "nowhere"), E.DirectoryUnknownReference),
    "missing parent unit": (_set(["units", 3, "parent"], make_unit_code("11430700MB0000099")),
                            E.DirectoryUnknownReference),
    "missing parent node": (_set(["nodes", 1, "parent"], "zz"), E.DirectoryUnknownReference),
    "link to a missing node": (_set(["links"], [["a", "zz"]]), E.DirectoryUnknownReference),
    "duplicate link": (_set(["links"], [["b", "c"], ["c", "b"]]), E.DirectoryDuplicate),
    "two roots": (_set(["nodes", 1, "parent"], None), E.DirectoryBadField),
    "node cycle": (lambda v: (v["nodes"][1].update(parent="c"), v["nodes"][2].update(parent="b")), E.DirectoryCycle),
    "unit cycle": (lambda v: v["units"][1].update(parent=VILLAGE), E.DirectoryCycle),
    "certificate of another node": (lambda v: v["nodes"][1]["certificates"].update(
        tls=v["nodes"][2]["certificates"]["tls"]), E.DirectoryBadCertificate),
    "certificate not base64": (_set(["nodes", 0, "certificates", "tls"], "%%%"), E.DirectoryBadCertificate),
    "certificate not DER": (_set(["nodes", 0, "certificates", "tls"], "AAAA"), E.DirectoryBadCertificate),
    "transport root not DER": (_set(["transport_root"], "AAAA"), E.DirectoryBadCertificate),
    "transport root null": (_set(["transport_root"], None), E.DirectoryBadField),
}


@pytest.mark.parametrize("case", ILL_FORMED, ids=list(ILL_FORMED))
def test_an_ill_formed_directory_is_refused_even_when_signed(case):
    change, error = ILL_FORMED[case]
    value = mutated(change)
    with pytest.raises(error):
        Directory.from_json(value)
    if isinstance(value.get("version"), bool) or case == "unit code a number":
        return  # canonical JSON of these still signs; covered above without a signature
    with pytest.raises(error):
        verify_directory(signed_json(value), roots(), NOW)


def test_a_directory_built_in_code_is_checked_too():
    with pytest.raises(E.DirectoryUnknownReference):
        check(directory(units=(UnitEntry(COUNTY_B, "乙县", "county", "nowhere"),)))
    with pytest.raises(E.DirectoryCycle):
        check(directory(units=(UnitEntry(COUNTY_B, "乙县", "county", "b", parent=COUNTY_B),)))
    with pytest.raises(E.DirectoryBadUnitCode):
        check(directory(units=(UnitEntry(COUNTY_B[:17] + "0", "乙县", "county", "b"),)))
    with pytest.raises(E.DirectoryBadField):
        check(directory(units=(UnitEntry(COUNTY_B.lower(), "乙县", "county", "b"),)))
    with pytest.raises(E.DirectoryBadField):
        check(directory(nodes=(dataclasses.replace(directory().nodes[0], level="metropolis"),)))


@pytest.mark.parametrize("data, error", [
    (b"", E.DirectoryMalformed),
    (b"{not json", E.DirectoryMalformed),
    (b"[]", E.DirectoryMalformed),
    (b"\xff\xfe{}", E.DirectoryMalformed),
    (b'{"format":"gwx-signed-directory/1","directory":{},"signature":"","x":1}', E.DirectoryMalformed),
    (b'{"format":"gwx-signed-directory/1","directory":[],"signature":""}', E.DirectoryMalformed),
    (b'{"format":"gwx-signed-directory/1","directory":{"a":1.5},"signature":""}', E.DirectoryMalformed),
    (b'{"format":"gwx-signed-directory/1","directory":{},"signature":"","signature":""}', E.DirectoryMalformed),
    (b'{"format":"other","directory":{},"signature":""}', E.DirectoryBadField),
    (b'{"format":"gwx-signed-directory/1","directory":{},"signature":"AAAA"}', E.DirectoryBadSignature),
])
def test_malformed_files_are_refused(data, error):
    with pytest.raises(error):
        verify_directory(data, roots(), NOW)


def test_an_oversized_file_is_refused_before_parsing():
    with pytest.raises(E.DirectoryTooLarge) as info:
        verify_directory(b" " * (MAX_DIRECTORY_BYTES + 300 * 1024), roots(), NOW)
    assert info.value.code == "DIR_TOO_LARGE"
    with pytest.raises(E.DirectoryTooLarge):
        Directory.from_bytes(b" " * (MAX_DIRECTORY_BYTES + 1))


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_any_changed_byte_is_a_typed_refusal_or_the_same_directory(position, byte):
    data = bytearray(_signed_once())
    position %= len(data)
    data[position] = byte
    try:
        result = verify_directory(bytes(data), roots(), NOW)
    except E.DirectoryError:
        return
    assert result.directory == directory()  # a change JSON does not see (e.g. whitespace)


@functools.cache
def _signed_once() -> bytes:
    return signed()


def test_the_unit_entries_say_who_hosts_whom():
    d = directory()
    assert [u.code for u in d.units if u.node == "b"] == [COUNTY_B, VILLAGE]
    assert d.unit(COUNTY_B).supervisor == CITY and d.unit(VILLAGE).parent == COUNTY_B
    assert Directory.from_bytes(d.canonical()) == d


def test_diff_names_what_changed():
    old = directory(1)
    rotated = dataclasses.replace(old.nodes[1], tls=old.nodes[2].tls, urls=("https://b2.example",))
    new = directory(2, nodes=(old.nodes[0], rotated), links=(),
                    units=(dataclasses.replace(old.units[0], name="市政府办"), old.units[1],
                           dataclasses.replace(old.units[3], node="a")))
    changes = diff(old, new)
    assert changes["version"] == {"from": 1, "to": 2}
    assert changes["nodes"] == {"added": [], "removed": ["c"], "changed": {"b": ["urls", "tls"]}}
    assert changes["units"]["removed"] == [old.units[2].code]
    assert changes["units"]["moved"] == {VILLAGE: {"from": "b", "to": "a"}}
    assert changes["units"]["changed"] == {CITY: ["name"]}
    assert changes["links"] == {"added": [], "removed": [["b", "c"]]} and not is_empty(changes)
    assert is_empty(diff(old, directory(2)))


# ---- a node's previous certificates during a renewal's overlap ---------------------------------------
@functools.cache
def renewed_b():
    """Node b renewed: new credentials from the same CA (the earlier stay valid), and the directory
    listing the new ones with the earlier beside them."""
    net = network()
    creds = net.root.issue_node("b", "b.example", net.base / "b-renewed", PASSPHRASE, renew=True,
                                now=NOW - dt.timedelta(hours=2))
    old = directory().node("b")
    entry = dataclasses.replace(old, tls=creds.tls_certificate, signing=creds.signing_certificate,
                                encryption=creds.encryption_certificate,
                                previous=(CertificateSet(old.tls, old.signing, old.encryption),))
    return old, entry, directory(2, nodes=tuple(entry if n.id == "b" else n for n in directory().nodes))


def test_a_renewed_node_is_listed_with_its_previous_certificates_and_reads_back_the_same():
    old, entry, renewed = renewed_b()
    result = verify_directory(signed(2, nodes=renewed.nodes), roots(), NOW)
    b = result.directory.node("b")
    assert b == entry and b.certificates("encryption") == (entry.encryption, old.encryption)
    assert b.certificates("signing") == (entry.signing, old.signing)
    check_certificates(result.directory, TrustStore.of(roots()), NOW)  # both sets valid now, for their roles
    assert diff(directory(1), result.directory)["nodes"]["changed"] == {
        "b": ["tls", "signing", "encryption", "previous"]}


def test_a_directory_without_previous_certificates_is_byte_for_byte_the_old_format():
    # Nodes without a renewal carry no "previous" key: a directory signed before the key existed
    # verifies and reads the same, and older nodes can read what is published without renewals.
    content = json.loads(signed_parts(signed())[0])
    assert all("previous" not in n for n in content["nodes"]) and content["format"] == "gwx-directory/1"
    assert Directory.from_json(content) == directory()
    _, _, renewed = renewed_b()
    nodes = renewed.to_json()["nodes"]
    assert [("previous" in n) for n in nodes] == [False, True, False]


@pytest.mark.parametrize("case", ["another node's", "the current one again", "not an object", "unknown role"])
def test_ill_formed_previous_certificates_are_refused(case):
    _, _, renewed = renewed_b()
    value = renewed.to_json()
    b = value["nodes"][1]
    if case == "another node's":
        b["previous"][0]["encryption"] = value["nodes"][2]["certificates"]["encryption"]
        error = E.DirectoryBadCertificate
    elif case == "the current one again":
        b["previous"][0]["signing"] = b["certificates"]["signing"]
        error = E.DirectoryDuplicate
    elif case == "not an object":
        b["previous"] = [b["previous"][0]["tls"]]
        error = E.DirectoryBadField
    else:
        b["previous"][0]["seal"] = b["previous"][0]["tls"]
        error = E.DirectoryBadField
    with pytest.raises(error) as info:
        Directory.from_json(value)
    assert "previous" in info.value.details.get("path", "") or "previous" in info.value.message
    with pytest.raises(error):
        verify_directory(signed_json(value), roots(), NOW)


def test_the_build_refuses_previous_certificates_past_their_validity():
    _, entry, renewed = renewed_b()
    net = network()
    expired = net.root.issue_node("b", "b.example", net.base / "b-short", PASSPHRASE, renew=True, valid_days=1,
                                  now=NOW - dt.timedelta(days=5))
    stale = dataclasses.replace(entry, previous=(CertificateSet(expired.tls_certificate, expired.signing_certificate,
                                                                expired.encryption_certificate),))
    with pytest.raises(E.DirectoryBadCertificate) as info:
        check_certificates(directory(2, nodes=(renewed.nodes[0], stale, renewed.nodes[2])), TrustStore.of(roots()),
                           NOW)
    assert "previous" in info.value.message and info.value.details["previous"] is True


# ---- the network's 督办 rules ----------------------------------------------------------------------
HOLIDAYS = WorkCalendar(frozenset({dt.date(2026, 10, 1), dt.date(2026, 10, 2)}), frozenset({dt.date(2026, 9, 27)}))


def test_a_directory_carries_the_networks_grace_and_calendar_and_reads_them_back():
    rules = NetworkSupervision(grace_working_days=5, calendar=HOLIDAYS)
    result = verify_directory(signed(2, supervision=rules), roots(), NOW).directory
    assert result.supervision == rules and result.supervision.calendar.is_working_day(dt.date(2026, 9, 27))
    content = json.loads(signed_parts(signed(2, supervision=rules))[0])
    assert content["supervision"] == {"grace_working_days": 5, "calendar": {
        "holidays": ["2026-10-01", "2026-10-02"], "workdays": ["2026-09-27"]}}
    # Either alone: what the directory leaves out stays each node's own.
    only_grace = verify_directory(signed(2, supervision=NetworkSupervision(grace_working_days=0)), roots(), NOW)
    assert only_grace.directory.supervision == NetworkSupervision(0, None)


def test_a_directory_without_supervision_rules_is_byte_for_byte_the_old_format():
    content = json.loads(signed_parts(signed())[0])
    assert set(content) == {"format", "network", "version", "issued_at", "next_update", "expires", "nodes",
                            "units", "links", "revocation"}
    assert directory().canonical() == canonical_json(content) and Directory.from_json(content).supervision is None


@pytest.mark.parametrize("value, where", [
    ({}, "$.supervision"),
    ({"grace": 3}, "$.supervision"),
    ({"grace_working_days": -1}, "$.supervision.grace_working_days"),
    ({"grace_working_days": True}, "$.supervision.grace_working_days"),
    ({"grace_working_days": 61}, "$.supervision.grace_working_days"),
    ({"calendar": {"holidays": []}}, "$.supervision.calendar"),
    ({"calendar": {"holidays": "2026-10-01", "workdays": []}}, "$.supervision.calendar.holidays"),
    ({"calendar": {"holidays": ["2026-10-32"], "workdays": []}}, "$.supervision.calendar.holidays[0]"),
    ({"calendar": {"holidays": [], "workdays": ["2026-10-09"]}}, "$.supervision.calendar"),  # a Friday
    ({"calendar": {"holidays": ["2026-10-10"], "workdays": ["2026-10-10"]}}, "$.supervision.calendar"),
])
def test_ill_formed_supervision_rules_are_refused_naming_the_place(value, where):
    content = directory().to_json() | {"supervision": value}
    with pytest.raises(E.DirectoryBadField) as info:
        Directory.from_json(content)
    assert info.value.details["path"] == where
    with pytest.raises(E.DirectoryBadField):
        verify_directory(signed_json(content), roots(), NOW)
