"""Every other signed format on a 国密 network: transport receipts, the network directory, the unit-signed
签收/退回 statements notices carry, OCSP answers and time-stamp tokens are SM2/SM3 (GB/T 35275 CMS where
they are CMS), our verifiers accept them, and a tool we did not write checks each signature over the
bytes it covers: `openssl dgst -sm3` with the default distinguishing id, and gmalg."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

import gmalg
import pytest
from asn1crypto import cms as acms
from asn1crypto import ocsp as aocsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from exchange_protocol import errors as E
from exchange_protocol.directory import Directory, NodeEntry, UnitEntry
from exchange_protocol.directory_signing import sign_directory, signed_parts, verify_directory
from exchange_protocol.envelope import MessageType
from exchange_protocol.statements import (
    Statement,
    StatementError,
    check_statement,
    sign_statement,
    verify_statement,
)
from exchange_protocol.transport_receipt import ReceiptStatus, TransportReceipt, sign_receipt, verify_receipt
from pki import cms, directory_signer, ocsp, tsa
from pki.seal_store import issue_seal
from pki.sm2 import DEFAULT_ID
from pki.trust import TrustStore
from pki.unit_code import make_unit_code
from pki.x509_sm2 import public_key_of
from tests.exchange_protocol.envelope_support import NOW, network, sm_network
from tests.pki.sm_support import openssl_verifies_signature, signature_rs
from tests.support import PASSPHRASE, run_openssl

GBT_SIGNED_DATA, GBT_DATA = "1.2.156.10197.6.1.4.2.2", "1.2.156.10197.6.1.4.2.1"
SM2_WITH_SM3, SM3 = "1.2.156.10197.1.501", "1.2.156.10197.1.401"
CITY, COUNTY = make_unit_code("11370000MB0000001"), make_unit_code("11371300MB0000002")
MESSAGE_ID = "019cade2-11c0-7640-8aa8-958c96f2b6f2"


@pytest.fixture(scope="module")
def sm():
    return sm_network()


def _checked_by_others(cert: x509.Certificate, signed: bytes, signature: bytes, tmp_path) -> None:
    """`openssl dgst -sm3 -verify` with the default id, and gmalg, verify ``signature`` over ``signed``;
    neither accepts it over other bytes."""
    pub = public_key_of(cert)
    done = openssl_verifies_signature(pub.public_bytes(serialization.Encoding.PEM), signed, signature, tmp_path)
    assert done.returncode == 0 and b"Verified OK" in done.stdout, done.stderr
    r, s = (v.to_bytes(32, "big") for v in signature_rs(signature))
    assert gmalg.SM2(pk=pub.point(), uid=DEFAULT_ID).verify(signed, r, s)
    assert not gmalg.SM2(pk=pub.point(), uid=DEFAULT_ID).verify(signed + b"\0", r, s)


def _cms_signature(der: bytes, content: bytes | None) -> tuple[bytes, bytes]:
    """(signed attributes as signed, signature) of a GB/T 35275 SignedData, read by asn1crypto; the
    messageDigest attribute is SM3 of ``content`` (gmalg's SM3) when the content is detached."""
    info = acms.ContentInfo.load(der)
    assert info["content_type"].dotted == GBT_SIGNED_DATA
    si = info["content"]["signer_infos"][0]
    assert si["digest_algorithm"]["algorithm"].dotted == SM3
    attrs = {a["type"].dotted: a["values"][0] for a in si["signed_attrs"]}
    if content is None:
        content = info["content"]["encap_content_info"]["content"].native
        assert info["content"]["encap_content_info"]["content_type"].dotted == GBT_DATA
    digest = gmalg.SM3()
    digest.update(content)
    assert attrs["1.2.840.113549.1.9.4"].native == digest.value()
    return b"\x31" + si["signed_attrs"].dump()[1:], si["signature"].native


def test_a_transport_receipt_is_sm2_signed_and_verified(sm, tmp_path):
    b = sm.nodes["b"]
    receipt = TransportReceipt(MESSAGE_ID, "ab" * 32, NOW, "b", ReceiptStatus.ACCEPTED)
    wire = sign_receipt(receipt, b.sender.signer)
    verified = verify_receipt(wire, trust=sm.policy.trust, now=NOW, message_id=MESSAGE_ID,
                              envelope_digest="ab" * 32, receiver_node="b")
    assert verified.signer_certificate == b.creds.signing_certificate
    _checked_by_others(b.creds.signing_certificate, *_cms_signature(verified.signature, verified.signed_bytes),
                       tmp_path)
    with pytest.raises(E.TransportReceiptBadSignature):  # an international network's root does not take it
        verify_receipt(wire, trust=network().policy.trust, now=NOW, message_id=MESSAGE_ID,
                       envelope_digest="ab" * 32, receiver_node="b")


def _sm_directory() -> Directory:
    net = sm_network()

    def entry(node_id, parent, level):
        node = net.nodes[node_id]
        c = node.creds
        return NodeEntry(node_id, (f"https://{node_id}.example:7443",), level, parent, c.tls_certificate,
                         c.signing_certificate, c.encryption_certificate, chain=tuple(node.sender.extra_certs))

    return Directory("国密测试网", 1, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(days=1),
                     NOW + dt.timedelta(days=7), (entry("a", None, "city"), entry("b", "a", "county")),
                     (UnitEntry(CITY, "市政府办公室", "city", "a"),
                      UnitEntry(COUNTY, "县政府办公室", "county", "b", supervisor=CITY)),
                     links=(), crl_urls=("https://a.example:7443/crl.pem",), ocsp_urls=())


def test_the_network_directory_is_sm2_signed_and_verified(sm, tmp_path):
    signer = directory_signer.from_ca(sm.root)
    assert signer.certificate.signature_algorithm_oid.dotted_string == SM2_WITH_SM3
    data = sign_directory(_sm_directory(), signer.signer, signer.chain, signing_time=NOW)
    verified = verify_directory(data, sm.policy.trust, NOW)
    assert verified.directory.nodes[1].id == "b"
    content, signature = signed_parts(data)
    _checked_by_others(signer.certificate, *_cms_signature(signature, content), tmp_path)
    changed = data.replace("县政府办公室".encode(), "乡政府办公室".encode())
    with pytest.raises(E.DirectoryBadSignature):
        verify_directory(changed, sm.policy.trust, NOW)


def test_a_units_signed_statement_is_sm2_and_verified(sm, tmp_path):
    """The 签收 statement a notice carries as its evidence: signed with the unit's SM2 seal key."""
    seal = issue_seal(sm.root, COUNTY, "县政府办公室", tmp_path / "seal", PASSPHRASE, now=NOW - dt.timedelta(days=1))
    package = "国密公文 sealed package".encode() * 100
    sm3 = run_openssl("dgst", "-sm3", "-r", input=package).stdout.decode().split()[0]
    statement = Statement(MessageType.RECEIPT, MESSAGE_ID, sm3, COUNTY, "县政府办公室", "张三", NOW, None, CITY, "sm3")
    der = sign_statement(statement, seal.signer)
    verified = verify_statement(der, TrustStore.of([sm.root.certificate]), now=NOW)
    assert verified.statement == statement
    content = acms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native
    assert json.loads(content)["package_sm3"] == sm3 and b"package_sha256" not in content
    _checked_by_others(seal.certificate, *_cms_signature(der, None), tmp_path)
    check_statement(verified.statement, type=MessageType.RECEIPT, doc_id=MESSAGE_ID, unit=COUNTY, by="张三", at=NOW,
                    reason=None, package_digest=sm3, sender_unit=CITY, digest_algorithm="sm3")
    for digest, algorithm in ((hashlib.sha256(package).hexdigest(), "sha256"), ("00" * 32, "sm3")):
        with pytest.raises(StatementError) as info:  # the package's SHA-256, or another package's SM3
            check_statement(verified.statement, type=MessageType.RECEIPT, doc_id=MESSAGE_ID, unit=COUNTY, by="张三",
                            at=NOW, reason=None, package_digest=digest, sender_unit=CITY, digest_algorithm=algorithm)
        assert info.value.code == "STATEMENT_MISMATCH" and info.value.details["field"] == "package_sm3"
    # The other profile's key under an SM2 seal: our signer will not write it, our verifier refuses it.
    sha = dataclasses.replace(statement, package_digest=hashlib.sha256(package).hexdigest(), digest_algorithm="sha256")
    with pytest.raises(StatementError) as info:
        sign_statement(sha, seal.signer)
    assert info.value.code == "STATEMENT_INVALID"
    forged = cms.sign_detached(sha.encode(), seal.signer, encapsulate=True, signing_time=NOW)
    with pytest.raises(StatementError) as info:
        verify_statement(forged, TrustStore.of([sm.root.certificate]), now=NOW)
    assert info.value.code == "STATEMENT_INVALID" and info.value.details["field"] == "package_sha256"
    other = dataclasses.replace(statement, by="李四")
    forged = der.replace(statement.encode(), other.encode())
    with pytest.raises(StatementError):
        verify_statement(forged, TrustStore.of([sm.root.certificate]), now=NOW)


def test_ocsp_answers_are_sm2_signed_over_their_response_data(sm, tmp_path):
    leaf = sm.nodes["b"].creds.signing_certificate
    request = ocsp.make_request(leaf, sm.root.certificate, b"n" * 16)
    responder = sm.root.ocsp_responder_signer()
    answer = aocsp.OCSPResponse.load(ocsp.respond(request, sm.root, responder, NOW))
    basic = answer["response_bytes"]["response"].parsed
    assert basic["signature_algorithm"]["algorithm"].dotted == SM2_WITH_SM3
    _checked_by_others(responder.certificate, basic["tbs_response_data"].dump(), basic["signature"].native,
                       tmp_path)


def test_time_stamp_tokens_are_sm2_signed_gbt_cms(sm, tmp_path):
    signer = sm.root.tsa_signer()
    reply = tsa.respond(tsa.make_request(b"evidence", nonce=7), signer, NOW, 99)
    assert tsa.verify_response(reply, b"evidence", trust_roots=[sm.root.root_certificate]).serial == 99
    token = tsa.token_from_response(reply)
    info = acms.ContentInfo.load(token)
    si = info["content"]["signer_infos"][0]
    tst_info = info["content"]["encap_content_info"]["content"].contents
    digest = gmalg.SM3()
    digest.update(tst_info)
    attrs = {a["type"].dotted: a["values"][0] for a in si["signed_attrs"]}
    assert attrs["1.2.840.113549.1.9.4"].native == digest.value()
    _checked_by_others(signer.certificate, b"\x31" + si["signed_attrs"].dump()[1:], si["signature"].native, tmp_path)


def test_an_archive_holds_an_sm2_seals_statement_to_the_archived_packages_sm3(sm, tmp_path):
    """The archive verifier asks the archived package's digest by the statement's key (SM3 here) and
    refuses a statement about other bytes."""
    from exchange_protocol import archive as A
    from exchange_protocol.archive_verify import _check_statements
    town = make_unit_code("11371302MB0000009")  # a seal of its own: the CA issues one per unit
    seal = issue_seal(sm.root, town, "镇政府办公室", tmp_path / "seal", PASSPHRASE, now=NOW - dt.timedelta(days=1))
    package = "归档的封装包".encode() * 50
    sm3 = run_openssl("dgst", "-sm3", "-r", input=package).stdout.decode().split()[0]
    der = sign_statement(Statement(MessageType.RECEIPT, MESSAGE_ID, sm3, town, "镇政府办公室", "张三", NOW, None,
                                   CITY, "sm3"), seal.signer)
    small, trust, asked = {f"{A.STATEMENTS_DIR}0000.receipt.cms": der}, TrustStore.of([sm.root.certificate]), []

    def archived(digest: str) -> str:
        asked.append(digest)
        return sm3 if digest == "sm3" else hashlib.sha256(package).hexdigest()

    passed = _check_statements(small, trust, NOW, (), None, MESSAGE_ID, archived)
    assert (passed.status, asked) == ("pass", ["sm3"]), passed
    failed = _check_statements(small, trust, NOW, (), None, MESSAGE_ID, lambda digest: "00" * 32)
    assert failed.status == "fail" and failed.code == "ARCHIVE_EVIDENCE_INVALID" and "package_sm3" in failed.message
