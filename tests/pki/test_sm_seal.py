"""Seals on a 国密 network: the SESeal signed by the seal maker's SM2 key, and sealed signatures
(SES_Signature) by the unit's SM2 seal key with an SM3 dataHash — read by an independent decoder
(asn1tools, compiled from the standard's ASN.1) and their signatures checked by openssl dgst and gmalg."""

from __future__ import annotations

import datetime as dt

import asn1tools
import gmalg
import pytest
from cryptography.hazmat.primitives import serialization

from pki import crl as crls
from pki.algorithms import SM2_SM3
from pki.ca import CertificateAuthority
from pki.errors import (
    KeyCertificateMismatch,
    SealBadSignature,
    SealCertNotListed,
    SealDataMismatch,
    SealExpired,
    SealMalformed,
    SealRevoked,
)
from pki.seal import SealBuilder
from pki.seal_signature import make_sealed_signature, parse_sealed_signature, verify_sealed_signature
from pki.seal_store import issue_seal
from pki.seal_verify import verify_seal
from pki.signer import SoftwareSigner
from pki.sm2 import DEFAULT_ID, Sm2PrivateKey
from pki.sm3_sm4 import sm3
from pki.x509_sm2 import public_key_of
from tests.support import PASSPHRASE

from .sm_support import openssl_verifies_signature, signature_rs
from .test_seal_asn1 import SPEC

UNIT, UNIT_NAME = "91350100M000100Y43", "临沂市财政局"
SIGNATURE_XML = b'<?xml version="1.0" encoding="UTF-8"?><ofd:Signature xmlns:ofd="http://www.ofdspec.org/2016"/>'


@pytest.fixture(scope="module")
def sm(tmp_path_factory):
    base = tmp_path_factory.mktemp("sm-seal")
    ca = CertificateAuthority.init_root(base / "ca", "国密印章测试CA", PASSPHRASE, algorithm="sm2-sm3")
    credential = issue_seal(ca, UNIT, UNIT_NAME, base / "seal", PASSPHRASE)
    return ca, credential


@pytest.fixture(scope="module")
def codec():
    return asn1tools.compile_string(SPEC.replace("CERTLIST", "CertInfoList"), "der")


def _pem(cert) -> bytes:
    return public_key_of(cert).public_bytes(serialization.Encoding.PEM)


def test_the_seal_is_made_with_sm2_and_verifies(sm):
    ca, credential = sm
    seal = credential.seal
    assert seal.sign_alg_oid == SM2_SM3.oid
    assert credential.signer.algorithm is SM2_SM3
    checked = verify_seal(seal.der, trust_roots=[ca.root_certificate], unit_code=UNIT)
    assert checked.unit_code == UNIT


def test_the_seal_makers_signature_is_checked_by_openssl_and_gmalg(sm, codec, tmp_path):
    ca, credential = sm
    seal, maker = credential.seal, ca.seal_maker_signer().certificate
    decoded = codec.decode("SESeal", seal.der)
    assert decoded["signAlgID"] == "1.2.156.10197.1.501"
    assert codec.encode("SESeal", decoded) == seal.der  # canonical DER, field for field the standard's
    done = openssl_verifies_signature(_pem(maker), seal.seal_info_der, seal.signed_value, tmp_path)
    assert done.returncode == 0 and b"Verified OK" in done.stdout, done.stderr
    r, s = signature_rs(seal.signed_value)
    theirs = gmalg.SM2(pk=public_key_of(maker).point(), uid=DEFAULT_ID)
    assert theirs.verify(seal.seal_info_der, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def test_a_changed_seal_is_refused(sm):
    ca, credential = sm
    der = bytearray(credential.seal.der)
    at = der.find(UNIT_NAME.encode())
    der[at:at + 3] = "济".encode()  # another unit's name, same length
    with pytest.raises(SealBadSignature):
        verify_seal(bytes(der), trust_roots=[ca.root_certificate])


def test_a_digest_listed_seal_uses_sm3(sm):
    ca, credential = sm
    seal = (SealBuilder().with_unit(UNIT, UNIT_NAME).with_certificate(credential.certificate)
            .with_picture(credential.seal.picture.data).with_digests().build(ca.seal_maker_signer()))
    assert [d.type for d in seal.cert_digests] == ["SM3"]
    assert seal.cert_digests[0].value == sm3(credential.certificate.public_bytes(serialization.Encoding.DER))
    assert seal.matches_certificate(credential.certificate)


def test_sealed_signature_round_trip_and_independent_checks(sm, codec, tmp_path):
    ca, credential = sm
    der = make_sealed_signature(SIGNATURE_XML, credential.signer, credential.seal,
                                property_info="Doc_0/Signs/Sign_0/Signature.xml")
    checked = verify_sealed_signature(der, SIGNATURE_XML, trust_roots=[ca.root_certificate], unit_code=UNIT)
    assert checked.signature.property_info == "Doc_0/Signs/Sign_0/Signature.xml"
    decoded = codec.decode("SES-Signature", der)
    assert codec.encode("SES-Signature", decoded) == der
    assert decoded["signatureAlgID"] == "1.2.156.10197.1.501"
    assert decoded["toSign"]["version"] == 4
    assert decoded["toSign"]["dataHash"] == (sm3(SIGNATURE_XML), 256)  # SM3 of the data, by pyca's SM3
    assert codec.encode("SESeal", decoded["toSign"]["eseal"]) == credential.seal.der
    to_sign = codec.encode("TBS-Sign", decoded["toSign"])  # the signed bytes, as the decoder re-makes them
    signature = decoded["signature"][0]
    done = openssl_verifies_signature(_pem(credential.certificate), to_sign, signature, tmp_path)
    assert done.returncode == 0 and b"Verified OK" in done.stdout, done.stderr
    r, s = signature_rs(signature)
    theirs = gmalg.SM2(pk=public_key_of(credential.certificate).point(), uid=DEFAULT_ID)
    assert theirs.verify(to_sign, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def test_sealed_signature_damage_each_has_its_code(sm, tmp_path):
    ca, credential = sm
    roots = [ca.root_certificate]
    der = make_sealed_signature(SIGNATURE_XML, credential.signer, credential.seal, property_info="Sign_0")
    with pytest.raises(SealDataMismatch):  # the page changed after sealing
        verify_sealed_signature(der, SIGNATURE_XML + b" ", trust_roots=roots)
    flipped = bytearray(der)
    flipped[-3] ^= 0x01
    with pytest.raises(SealBadSignature):
        verify_sealed_signature(bytes(flipped), SIGNATURE_XML, trust_roots=roots)
    with pytest.raises(SealMalformed):
        verify_sealed_signature(der[:-10], SIGNATURE_XML, trust_roots=roots)
    # another SM2 key with a certificate from the same CA, not listed by the seal
    stranger_key = Sm2PrivateKey.generate()
    stranger = ca.issue_seal_certificate("11100000000013127D", "外单位", stranger_key.public_key())
    with pytest.raises(KeyCertificateMismatch):
        make_sealed_signature(SIGNATURE_XML, SoftwareSigner(stranger_key, stranger), credential.seal,
                              property_info="x")
    forged = _sign_unchecked(SoftwareSigner(stranger_key, stranger), credential.seal)
    with pytest.raises(SealCertNotListed):
        verify_sealed_signature(forged, SIGNATURE_XML, trust_roots=roots)
    late = make_sealed_signature(SIGNATURE_XML, credential.signer, credential.seal, property_info="x",
                                 now=credential.seal.valid_end + dt.timedelta(days=1))
    with pytest.raises(SealExpired):
        verify_sealed_signature(late, SIGNATURE_XML, trust_roots=roots)


def test_a_revoked_seal_key_is_refused_by_an_sm2_crl(tmp_path):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "国密吊销测试CA", PASSPHRASE, algorithm="sm2-sm3")
    credential = issue_seal(ca, UNIT, UNIT_NAME, tmp_path / "seal", PASSPHRASE)
    der = make_sealed_signature(SIGNATURE_XML, credential.signer, credential.seal, property_info="x")
    ca.revoke(credential.certificate, "key_compromise")
    crl = crls.publish_crl(ca, dt.datetime.now(dt.UTC))
    with pytest.raises(SealRevoked):
        verify_sealed_signature(der, SIGNATURE_XML, trust_roots=[ca.root_certificate], crls=[crl])


def test_parse_reads_what_make_wrote(sm):
    _, credential = sm
    der = make_sealed_signature(b"data", credential.signer, credential.seal, property_info="p",
                                now=dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC))
    s = parse_sealed_signature(der)
    assert s.time_info == dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    assert s.data_hash == sm3(b"data") and s.seal.der == credential.seal.der
    assert s.certificate == credential.certificate


def _sign_unchecked(signer, seal) -> bytes:
    """What a forger would emit: a well-formed SES_Signature by a key the seal does not list."""
    from pki import seal_asn1 as A
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    tbs_der = A.TBSSign({"version": 4, "eseal": A.SESeal.load(seal.der), "time_info": now,
                         "data_hash": sm3(SIGNATURE_XML), "property_info": "x"}).dump()
    return A.SESSignature({"to_sign": A.TBSSign.load(tbs_der),
                           "cert": signer.certificate.public_bytes(serialization.Encoding.DER),
                           "signature_alg_id": signer.algorithm.oid, "signature": signer.sign(tbs_der)}).dump()
