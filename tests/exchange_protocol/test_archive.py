# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""The archive package: built, verified offline at the time-stamp's time, checked by openssl on its own,
and every hostile change a typed error."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import random
import struct
import zipfile
from pathlib import Path

import pytest
from asn1crypto import tsp

from exchange_protocol import archive as A
from exchange_protocol import digests
from exchange_protocol.archive_verify import ArchiveLimits, verify_archive
from exchange_protocol.audit_chain import GENESIS_HASH
from exchange_protocol.canonical import canonical_json
from exchange_protocol.envelope import HeaderDraft
from exchange_protocol.package import build_package
from exchange_protocol.transport_receipt import TransportReceipt, sign_receipt
from node.localnet import notice_pdf
from pki import cms
from pki.certificates import pem
from pki.crl import build_crl
from pki.keystore import read_private_key
from pki.revocation import CrlCheckerAt
from pki.signer import SoftwareSigner
from tests.exchange_protocol.audit_excerpts import excerpt
from tests.exchange_protocol.ofd_fixtures import needing_zip_version
from tests.exchange_protocol.package_fixtures import (  # noqa: F401
    NOW,
    OTHER_UNIT,
    PASSPHRASE,
    UNIT,
    make_meta,
    make_pki,
    pki_env,
)
from tests.pki.sm_support import openssl_checks_gbt_cms
from tests.support import run_openssl

LATER = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
MID = "019cade2-11c0-7640-8aa8-958c96f2b6f3"


def _node_signer(pki, node_id: str) -> SoftwareSigner:
    out = pki.directory / f"node-{node_id}"
    if not (out / "sign.key").exists():
        pki.ca.issue_node(node_id, f"{node_id}.example", out, PASSPHRASE, now=NOW - dt.timedelta(days=1))
    from pki.certificates import load_certificate
    return SoftwareSigner(read_private_key(out / "sign.key", PASSPHRASE), load_certificate((out / "sign.crt").read_bytes()))


def _excerpt(n: int = 3, first: int = 5, v2_from: int | None = 1) -> dict:
    return excerpt(n, first, v2_from)


def statement(seal, package_sha256: str, /, **overrides) -> bytes:
    """A unit-signed 签收 statement as the ``evidence`` work makes them: CMS, content attached, seal key."""
    content = {"v": 1, "kind": A.STATEMENT_KIND, "type": "receipt", "doc_id": make_meta().id,
               "package_sha256": package_sha256, "unit": seal.seal.unit_code, "unit_name": "某某县财政局",
               "by": "李四", "at": "2026-03-02T09:40:00Z", "reason": None, "sender_unit": UNIT, **overrides}
    return cms.sign_detached(canonical_json(content), seal.signer, encapsulate=True, signing_time=NOW)


def header_of(pki, type_="document", in_reply_to=None) -> tuple[bytes, bytes, str]:
    """An envelope header from sender-node, its CMS, and its message id."""
    draft = HeaderDraft.new(type_, "sender-node", "receiver-node", UNIT, (OTHER_UNIT,), NOW, dt.timedelta(days=1),
                            in_reply_to=in_reply_to)
    header = draft.complete(10, hashlib.sha256(b"x").digest())
    data = header.encode()
    return data, cms.sign_detached(data, _node_signer(pki, "sender-node")), header.message_id


def build(pki, *, stamp_at=NOW, excerpt=None, extra=None, skip=(), statements=(), message_ids=None,
          hash_name="sha256") -> bytes:
    """An archive as the node writes it; ``hash_name="sha256"`` on an international network (and what
    every archive was before SM3: the format is the same), ``"sm3"`` on a 国密 one."""
    package = io.BytesIO()
    build_package(package, metadata=make_meta(), body=notice_pdf(), seal_key=pki.seal, at=NOW,
                  timestamper=pki.timestamper(NOW))
    receiver = _node_signer(pki, "receiver-node")
    header, header_signature, mid = header_of(pki)
    receipt = sign_receipt(TransportReceipt(mid, "cd" * 32, NOW, "receiver-node"), receiver)
    out = io.BytesIO()
    writer = A.ArchiveWriter(out, hash_name)
    digest = digests.hexdigest(hash_name, package.getvalue())
    index = A.gbt33480_index(make_meta(), package_digest=digest, hash_name=hash_name, side="outbox", units=[UNIT],
                             handling=[], archived_at=NOW, node_id="sender-node")
    index["归档"]["message_ids"] = [mid] if message_ids is None else message_ids(mid)
    parts = {A.INDEX_NAME: json.dumps(index, ensure_ascii=False).encode(), A.PACKAGE_NAME: package.getvalue(),
             A.AUDIT_NAME: json.dumps(excerpt or _excerpt()).encode(), **(extra or {})}
    for name, data in parts.items():
        if name not in skip:
            writer.add(name, data, stored=name == A.PACKAGE_NAME)
    A.add_signed_header(writer, header, header_signature, MID)
    A.add_receipt(writer, receipt, MID)
    for i, (seal, overrides) in enumerate(statements):
        A.add_statement(writer, statement(seal, digest, **overrides), f"{i:04d}.receipt")
    writer.finish(make_meta().id, NOW, pki.timestamper(stamp_at))
    return out.getvalue()


def statuses(report) -> dict:
    return {c.name: (c.status, c.code) for c in report.checks}


def rezip(data: bytes, change) -> bytes:
    """The archive's members through ``change(dict)``, written back as a ZIP."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    change(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return out.getvalue()


@pytest.fixture(scope="module")
def archived(pki_env) -> bytes:
    return build(pki_env)


def test_an_archive_verifies_offline_and_years_later_at_its_time_stamps_time(pki_env, archived):
    for at in (NOW + dt.timedelta(minutes=5), LATER):  # in 2040 every certificate has long expired
        report = verify_archive(io.BytesIO(archived), [pki_env.root], at)
        assert report.ok, report.to_dict()
        assert report.judged_at == NOW and report.doc_id == make_meta().id
        assert statuses(report)["envelopes"] == ("pass", None) and statuses(report)["receipts"] == ("pass", None)
        assert report.check("audit").details == {"events": 3, "links_recomputed": 5, "links_not_recomputed": 0,
                                                 "head_seq": 9}


def test_revoked_after_the_time_stamp_is_fine_before_it_is_not(tmp_path):
    pki = make_pki(tmp_path)
    data = build(pki)
    pki.ca.revoke(pki.seal.certificate, "key_compromise", now=NOW + dt.timedelta(days=30))
    crls = CrlCheckerAt([build_crl(pki.ca, NOW + dt.timedelta(days=31))])
    assert verify_archive(io.BytesIO(data), [pki.root], LATER, crls_at=crls).ok
    pki2 = make_pki(tmp_path / "2")
    data = build(pki2)
    pki2.ca.revoke(pki2.seal.certificate, "key_compromise", now=NOW - dt.timedelta(minutes=10))
    report = verify_archive(io.BytesIO(data), [pki2.root], LATER,
                            crls_at=CrlCheckerAt([build_crl(pki2.ca, NOW + dt.timedelta(days=1))]))
    assert statuses(report)["package"][0] == "fail" and not report.ok


def test_openssl_checks_the_time_stamp_and_every_signature_on_its_own(pki_env, archived, tmp_path):
    with zipfile.ZipFile(io.BytesIO(archived)) as zf:
        zf.extractall(tmp_path)
    root = pki_env.root_pem
    run_openssl("ts", "-verify", "-data", tmp_path / A.MANIFEST_NAME, "-in", tmp_path / A.TOKEN_NAME,
                "-token_in", "-CAfile", root)
    signed = sorted(p for p in tmp_path.rglob("*.p7s"))
    assert len(signed) == 2
    for sig in signed:
        content = Path(str(sig)[: -len(".p7s")])
        run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", content,
                    "-CAfile", root, "-purpose", "any", "-out", tmp_path / "out.bin")
    manifest = json.loads((tmp_path / A.MANIFEST_NAME).read_bytes())
    for entry in manifest["files"]:  # what sha256sum -c would do
        assert hashlib.sha256((tmp_path / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    # The time-stamp covers this manifest only: openssl refuses it over another file.
    bad = run_openssl("ts", "-verify", "-data", tmp_path / A.INDEX_NAME, "-in", tmp_path / A.TOKEN_NAME,
                      "-token_in", "-CAfile", root, check=False)
    assert bad.returncode != 0


def _hostile(pki_env, archived, change) -> dict:
    return statuses(verify_archive(io.BytesIO(rezip(archived, change)), [pki_env.root], LATER))


def test_a_changed_file_is_a_digest_mismatch(pki_env, archived):
    def change(m):
        m[A.INDEX_NAME] = m[A.INDEX_NAME].replace("关于".encode(), "有关".encode())
    assert _hostile(pki_env, archived, change)["manifest"] == ("fail", "ARCHIVE_DIGEST_MISMATCH")


def test_a_removed_or_added_file_is_named(pki_env, archived):
    assert _hostile(pki_env, archived, lambda m: m.pop(A.AUDIT_NAME))["manifest"] == ("fail", "ARCHIVE_FILE_MISSING")
    assert _hostile(pki_env, archived, lambda m: m.update({"evidence/extra.txt": b"x"}))["manifest"] == \
        ("fail", "ARCHIVE_FILE_UNLISTED")


def test_a_swapped_time_stamp_or_manifest_fails(pki_env, archived):
    other = build(pki_env, stamp_at=NOW + dt.timedelta(hours=1), excerpt=_excerpt(5))
    with zipfile.ZipFile(io.BytesIO(other)) as zf:
        token, manifest = zf.read(A.TOKEN_NAME), zf.read(A.MANIFEST_NAME)
    assert _hostile(pki_env, archived, lambda m: m.update({A.TOKEN_NAME: token}))["timestamp"] == \
        ("fail", "TSA_DIGEST_MISMATCH")
    # The other archive's manifest (and its genuine token) over these files: the audit excerpt differs.
    s = _hostile(pki_env, archived, lambda m: m.update({A.TOKEN_NAME: token, A.MANIFEST_NAME: manifest}))
    assert s["manifest"] == ("fail", "ARCHIVE_DIGEST_MISMATCH")


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/passwd", "evidence\\..\\x", "a/../../b", "C:/x"])
def test_path_traversal_is_refused(pki_env, archived, name):
    assert _hostile(pki_env, archived, lambda m: m.update({name: b"x"}))["structure"] == ("fail", "ARCHIVE_UNSAFE_NAME")


def test_a_zip_bomb_is_refused_before_and_while_inflating(pki_env, archived):
    bomb = b"\0" * (64 * 1024 * 1024)
    s = _hostile(pki_env, archived, lambda m: m.update({"evidence/bomb.bin": bomb}))
    assert s["structure"] == ("fail", "ARCHIVE_ZIP_BOMB")
    # Headers that lie: a listed member replaced by the bomb, its sizes patched down to look harmless.
    # What comes out is counted (and zipfile stops at the declared size, the CRC then fails): typed.
    data = bytearray(rezip(archived, lambda m: m.update({A.AUDIT_NAME: bomb})))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo(A.AUDIT_NAME)
    fake = (1000).to_bytes(4, "little")
    data[info.header_offset + 22:info.header_offset + 26] = fake  # local header: uncompressed size
    patched = 0
    for offset in range(len(data) - 46):  # the central directory entry naming the member
        if data[offset:offset + 4] == b"PK\x01\x02" and data[offset + 46:offset + 46 + len(A.AUDIT_NAME)] == \
                A.AUDIT_NAME.encode():
            data[offset + 24:offset + 28] = fake
            patched += 1
    assert patched == 1
    report = verify_archive(io.BytesIO(bytes(data)), [pki_env.root], LATER)
    assert statuses(report)["manifest"][1] in ("ARCHIVE_MALFORMED", "ARCHIVE_ZIP_BOMB", "ARCHIVE_DIGEST_MISMATCH")
    assert not report.ok
    # Members within the ratio but over the size an evidence file may have: refused by size.
    big = verify_archive(io.BytesIO(rezip(archived, lambda m: m.update({"evidence/big.bin": random.Random(1).randbytes(2 * 1024 * 1024)}))),
                         [pki_env.root], LATER, limits=ArchiveLimits(max_member_bytes=1024 * 1024))
    assert statuses(big)["structure"] == ("fail", "ARCHIVE_TOO_LARGE")


def test_not_a_zip_and_forged_evidence(pki_env, archived):
    assert statuses(verify_archive(io.BytesIO(b"PK\x03\x04 not really"), [pki_env.root], LATER))["structure"] == \
        ("fail", "ARCHIVE_MALFORMED")
    # a directory entry needing ZIP 6.4: zipfile's NotImplementedError, not BadZipFile
    assert statuses(verify_archive(io.BytesIO(needing_zip_version(archived)), [pki_env.root], LATER))[
        "structure"] == ("fail", "ARCHIVE_MALFORMED")
    bad = _excerpt()
    bad["events"][1]["details"] = {"n": 999}  # an event rewritten after the fact
    report = verify_archive(io.BytesIO(build(pki_env, excerpt=bad)), [pki_env.root], LATER)
    assert statuses(report)["audit"] == ("fail", "ARCHIVE_AUDIT_CHAIN_BROKEN")
    gap = _excerpt()
    gap["content_hashes"][1] = "ef" * 32  # an event between replaced: the links no longer reach the head
    report = verify_archive(io.BytesIO(build(pki_env, excerpt=gap)), [pki_env.root], LATER)
    assert statuses(report)["audit"] == ("fail", "ARCHIVE_AUDIT_CHAIN_BROKEN")


def test_an_archive_under_another_root_is_untrusted(pki_env, archived, tmp_path):
    other = make_pki(tmp_path)
    report = verify_archive(io.BytesIO(archived), [other.root], LATER)
    assert statuses(report)["timestamp"] == ("fail", "TSA_UNTRUSTED")


def test_the_writer_refuses_unsafe_names_and_duplicates():
    writer = A.ArchiveWriter(io.BytesIO())
    writer.add("index.json", b"{}")
    for name in ("../x", "index.json", "META-INF/manifest.json"):
        with pytest.raises(Exception) as info:
            writer.add(name, b"x")
        assert info.value.code == "ARCHIVE_INPUT_INVALID"
    writer.close()
    assert GENESIS_HASH == "0" * 64 and pem  # the shared definitions are what the node uses


def test_a_tsa_key_revoked_before_it_stamped_fails_the_time_stamp(tmp_path):
    # Superseded after the stamp: fine. Before it, or for keyCompromise whatever the date (the thief could
    # back-date tokens): the time-stamp proves nothing.
    for when, reason, good in ((NOW + dt.timedelta(days=3), "superseded", True),
                               (NOW - dt.timedelta(minutes=30), "superseded", False),
                               (NOW + dt.timedelta(days=3), "key_compromise", False)):
        pki = make_pki(tmp_path / f"{reason}-{good}")
        data = build(pki)
        pki.ca.revoke(pki.ca.tsa_signer().certificate, reason, now=when)
        crls = CrlCheckerAt([build_crl(pki.ca, NOW + dt.timedelta(days=4))])
        report = verify_archive(io.BytesIO(data), [pki.root], LATER, crls_at=crls)
        if good:
            assert report.ok, report.to_dict()
        else:
            assert statuses(report)["timestamp"] == ("fail", "TSA_UNTRUSTED")
            assert report.check("timestamp").details["cause"] == "PKI_CERT_REVOKED"


def test_unit_signed_statements_are_checked_against_the_archived_document(pki_env, tmp_path):
    good = verify_archive(io.BytesIO(build(pki_env, statements=[(pki_env.other_seal, {})])), [pki_env.root], LATER)
    assert good.ok and good.check("statements").details == {"count": 1, "units": [OTHER_UNIT]}
    for overrides, field in (({"package_sha256": "ab" * 32}, "package_sha256"), ({"doc_id": "019cade2-11c0-7640-8aa8-958c96f2b6f9"},
                                                                  "doc_id")):  # another package or document
        report = verify_archive(io.BytesIO(build(pki_env, statements=[(pki_env.other_seal, overrides)])),
                                [pki_env.root], LATER)
        assert statuses(report)["statements"] == ("fail", "ARCHIVE_EVIDENCE_INVALID")
        assert report.check("statements").details["field"] == field
    # The evidence work's own verifier decides: a unit the seal is not, a type that is no 签收/退回, a
    # statement without its person, or one not in canonical form are each refused with its reason.
    for overrides, cause in (({"unit": UNIT}, "STATEMENT_WRONG_SIGNER"), ({"type": "forwarded"}, "STATEMENT_INVALID"),
                             ({"by": None}, "STATEMENT_INVALID"), ({"extra": 1}, "STATEMENT_INVALID")):
        report = verify_archive(io.BytesIO(build(pki_env, statements=[(pki_env.other_seal, overrides)])),
                                [pki_env.root], LATER)
        assert statuses(report)["statements"] == ("fail", "ARCHIVE_EVIDENCE_INVALID"), overrides
        assert report.check("statements").details["cause"] == cause, report.check("statements")
    # openssl checks a statement on its own and prints what it says.
    data = build(pki_env, statements=[(pki_env.other_seal, {})])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        (tmp_path / "s.p7s").write_bytes(zf.read(f"{A.STATEMENTS_DIR}0000.receipt.p7s"))
    shown = run_openssl("cms", "-verify", "-inform", "DER", "-in", tmp_path / "s.p7s", "-CAfile", pki_env.root_pem,
                        "-purpose", "any", text=True)
    assert A.STATEMENT_KIND in shown.stdout


def test_members_overlapping_in_the_zip_are_a_bomb(pki_env, archived):
    # The last central entry pointed at the first member's local data: two names, one set of bytes.
    data = bytearray(rezip(archived, lambda m: m.update({"evidence/extra.txt": b"x"})))
    central = [i for i in range(len(data) - 4) if data[i:i + 4] == b"PK\x01\x02"]
    first_local = struct.unpack_from("<I", data, central[0] + 42)[0]
    struct.pack_into("<I", data, central[-1] + 42, first_local)
    report = verify_archive(io.BytesIO(bytes(data)), [pki_env.root], LATER)
    assert statuses(report)["structure"] == ("fail", "ARCHIVE_ZIP_BOMB")
    assert "overlap" in report.check("structure").message


@pytest.mark.parametrize("body", [b"[]", b"[" * 200_000, b'"a string"', b"\xff\xfe"],
                         ids=["list", "deep", "string", "not-utf8"])
def test_hostile_json_in_the_index_or_the_audit_excerpt_is_a_typed_failure(pki_env, body):
    for name, check, code in ((A.INDEX_NAME, "index", "ARCHIVE_MALFORMED"),
                              (A.AUDIT_NAME, "audit", "ARCHIVE_AUDIT_CHAIN_BROKEN")):
        report = verify_archive(io.BytesIO(build(pki_env, extra={name: body})), [pki_env.root], LATER)
        assert statuses(report)[check] == ("fail", code), (name, report.to_dict())


def test_the_audit_check_says_which_links_it_could_not_recompute(pki_env):
    """An archive made before the log's hash version 2 (a version 1 excerpt) still verifies, and says
    what it cannot show: only seq 3 of links 2..5 is in full, the others are hashes only (other
    documents' events stay on the node), so the report must not read as "none removed between them"."""
    full = _excerpt(n=2, first=2, v2_from=None)  # seqs 2..5, events at 3 and 5
    full["events"] = [e for e in full["events"] if e["seq"] == 3]
    invented = dict(full, links=[*full["links"][:2], "cd" * 32, full["links"][3]])  # seq 4 replaced: unseen
    for given in (full, invented):
        report = verify_archive(io.BytesIO(build(pki_env, excerpt=given)), [pki_env.root], LATER)
        audit = next(c for c in report.checks if c.name == "audit")
        assert audit.status == "pass"
        assert audit.details["events"] == 1 and audit.details["links_not_recomputed"] == 3
        assert "not" in audit.message and "removed" in audit.message


def test_envelopes_and_receipts_must_be_about_this_documents_messages(pki_env):
    """The file name is not signed: the header's own message id must be one the index lists, a notice must
    answer a message of the archive, and a receipt must acknowledge a header in it."""
    other, other_signature, other_mid = header_of(pki_env)  # another document's message, validly signed
    report = verify_archive(io.BytesIO(build(pki_env, extra={
        f"{A.ENVELOPES_DIR}X.header.json": other, f"{A.ENVELOPES_DIR}X.header.json.p7s": other_signature})),
        [pki_env.root], LATER)
    assert statuses(report)["envelopes"] == ("fail", "ARCHIVE_EVIDENCE_INVALID")
    assert other_mid in report.check("envelopes").message
    # Listed in the index, but a notice answering a message the archive does not hold.
    notice, notice_signature, notice_mid = header_of(pki_env, "receipt", in_reply_to=other_mid)
    report = verify_archive(io.BytesIO(build(pki_env, message_ids=lambda mid: [mid, notice_mid], extra={
        f"{A.ENVELOPES_DIR}N.header.json": notice, f"{A.ENVELOPES_DIR}N.header.json.p7s": notice_signature})),
        [pki_env.root], LATER)
    assert statuses(report)["envelopes"] == ("fail", "ARCHIVE_EVIDENCE_INVALID")
    # A receipt for another message.
    wire = sign_receipt(TransportReceipt(other_mid, "cd" * 32, NOW, "receiver-node"),
                        _node_signer(pki_env, "receiver-node"))
    from exchange_protocol.transport_receipt import parse_receipt
    _, body, signature = parse_receipt(wire)
    report = verify_archive(io.BytesIO(build(pki_env, extra={
        f"{A.RECEIPTS_DIR}X.json": body, f"{A.RECEIPTS_DIR}X.json.p7s": signature})), [pki_env.root], LATER)
    assert statuses(report)["receipts"] == ("fail", "ARCHIVE_EVIDENCE_INVALID")


def test_fifty_thousand_members_are_judged_in_seconds(pki_env):
    """The member limit's worth of names: the duplicate and overlap checks are one pass each (a set rebuilt per
    member took ~10 minutes here), whether the duplicate is the last name or there is none."""
    import time

    names = [f"evidence/m{i}" for i in range(ArchiveLimits().max_members - 1)]
    for last, code in (("evidence/M0", "ARCHIVE_UNSAFE_NAME"), ("evidence/m-last", None)):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for name in (*names, last):
                zf.writestr(name, b"")
        started = time.monotonic()
        report = verify_archive(io.BytesIO(out.getvalue()), [pki_env.root], LATER)
        assert time.monotonic() - started < 15
        assert not report.ok
        if code:
            assert statuses(report)["structure"] == ("fail", code)


def test_an_unreadable_chain_pem_is_a_warning_in_the_report(pki_env, archived):
    """certs/chain.pem that does not parse is not silently dropped: a later "does not chain" would point the
    wrong way, so the report says the carried chain was unusable."""
    assert verify_archive(io.BytesIO(archived), [pki_env.root], LATER).warnings == ()
    report = verify_archive(io.BytesIO(build(pki_env, extra={A.CHAIN_NAME: b"-----BEGIN CERTIFICATE-----\nxx\n"})),
                            [pki_env.root], LATER)
    assert any(A.CHAIN_NAME in w for w in report.warnings) and report.to_dict()["warnings"] == list(report.warnings)


@pytest.fixture(scope="module")
def sm_archived(tmp_path_factory):
    """A 国密 network's archive: SM2 root, seal and TSA; the manifest, the index and the imprint SM3."""
    pki = make_pki(tmp_path_factory.mktemp("sm-archive"), "sm2-sm3")
    return pki, build(pki, hash_name="sm3")


def _openssl_sm3(path: Path) -> str:
    return run_openssl("dgst", "-sm3", "-r", path).stdout.decode().split()[0]


def test_a_national_networks_archive_is_sm3_throughout_checked_by_openssl(sm_archived, pki_env, archived, tmp_path):
    pki, data = sm_archived
    report = verify_archive(io.BytesIO(data), [pki.root], LATER)
    assert report.ok, report.to_dict()
    assert report.check("manifest").details["hash"] == "sm3" and report.check("timestamp").details["imprint"] == "sm3"
    # An archive made before (SHA-256 on every network, the same format) still verifies, and says so: an
    # international one, and a 国密 network's (SM2 seals and token, SHA-256 manifest and imprint).
    for root, data_before in ((pki_env.root, archived), (pki.root, build(pki))):
        before = verify_archive(io.BytesIO(data_before), [root], LATER)
        assert before.ok, before.to_dict()
        assert before.check("manifest").details["hash"] == before.check("timestamp").details["imprint"] == "sha256"

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(tmp_path)
    manifest = json.loads((tmp_path / A.MANIFEST_NAME).read_bytes())
    assert manifest["hash"] == "sm3" and len(manifest["files"]) == 7
    for entry in manifest["files"]:  # `openssl dgst -sm3` over each archived file, as the manifest lists it
        assert set(entry) == {"path", "sm3", "size"}
        assert _openssl_sm3(tmp_path / entry["path"]) == entry["sm3"], entry["path"]
    archived_as = json.loads((tmp_path / A.INDEX_NAME).read_bytes())["归档"]
    assert archived_as["package_sm3"] == _openssl_sm3(tmp_path / A.PACKAGE_NAME) and "package_sha256" not in archived_as
    # The token (GB/T 35275 CMS, which `openssl ts` does not read): the TSA's SM2 signature checked by
    # openssl alone, and the imprint it signs is the manifest's SM3 by openssl.
    tst = openssl_checks_gbt_cms((tmp_path / A.TOKEN_NAME).read_bytes(), None, tmp_path)
    imprint = tsp.TSTInfo.load(tst)["message_imprint"]
    assert imprint["hash_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"  # SM3
    assert imprint["hashed_message"].native.hex() == _openssl_sm3(tmp_path / A.MANIFEST_NAME)
    # The other signatures inside (GB/T 35275 too): the envelope header's and the receipt's, by openssl.
    signatures = sorted(tmp_path.rglob("*.p7s"))
    assert len(signatures) == 2
    for signature in signatures:
        openssl_checks_gbt_cms(signature.read_bytes(), Path(str(signature)[:-4]).read_bytes(), tmp_path)


def test_a_national_networks_archive_refuses_a_changed_file_and_a_relabelled_manifest(sm_archived):
    pki, data = sm_archived

    def verdict(change) -> dict:
        return statuses(verify_archive(io.BytesIO(rezip(data, change)), [pki.root], LATER))

    def changed_index(m):
        m[A.INDEX_NAME] = m[A.INDEX_NAME].replace("关于".encode(), "有关".encode())
    assert verdict(changed_index)["manifest"] == ("fail", "ARCHIVE_DIGEST_MISMATCH")

    def relabelled(m):  # the manifest rewritten in SHA-256, every digest right: the SM3 token no longer covers it
        manifest = json.loads(m[A.MANIFEST_NAME])
        manifest["hash"] = "sha256"
        manifest["files"] = [{"path": f["path"], "sha256": hashlib.sha256(m[f["path"]]).hexdigest(), "size": f["size"]}
                             for f in manifest["files"]]
        m[A.MANIFEST_NAME] = canonical_json(manifest)
    s = verdict(relabelled)
    assert s["manifest"] == ("pass", None) and s["timestamp"] == ("fail", "TSA_DIGEST_MISMATCH")

    def mixed(m):  # the algorithm named is not the one the entries carry
        m[A.MANIFEST_NAME] = m[A.MANIFEST_NAME].replace(b'"hash":"sm3"', b'"hash":"sha256"')
    assert verdict(mixed)["structure"] == ("fail", "ARCHIVE_MALFORMED")
