"""pki.cms: SignedData from a Signer, checked by openssl cms and by our own verifier."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms as acms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import cms
from pki import crl as crlmod
from pki.ca import CertificateAuthority
from pki.certificates import pem
from pki.errors import (
    CertificateExpired,
    CertificateRevoked,
    CertificateUntrusted,
    CmsBadSignature,
    CmsDigestMismatch,
    CmsMalformed,
    InvalidInput,
)
from pki.revocation import CrlChecker
from pki.signer import SoftwareSigner
from pki.trust import Purpose
from tests.support import PASSPHRASE

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DATA = b"\xe5\x85\xac\xe6\x96\x87 manifest\r\nline two\n" * 50


@pytest.fixture(scope="module", params=["ecdsa-p256-sha256", "rsa3072-sha256"])
def pki_env(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    root = CertificateAuthority.init_root(base / "root", "Test Root", PASSPHRASE, algorithm=request.param)
    inter = root.create_intermediate(base / "int", "Test County CA", PASSPHRASE)
    key = inter.algorithm.generate()
    cert = inter.issue_seal_certificate("91350100M000100Y43", "测试县人民政府", key.public_key())
    (base / "root.pem").write_bytes(pem(root.certificate))
    (base / "chain.pem").write_bytes(pem(inter.certificate))
    (base / "data").write_bytes(DATA)
    return base, root, inter, SoftwareSigner(key, cert)


def openssl_verify(base: Path, sig: bytes, *args: str) -> subprocess.CompletedProcess:
    (base / "sig.p7s").write_bytes(sig)
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(base / "sig.p7s"),
                           "-CAfile", str(base / "root.pem"), "-purpose", "any", "-out", "/dev/null", *args],
                          capture_output=True, text=True)


def test_openssl_verifies_detached_signature_with_embedded_chain(pki_env):
    base, root, inter, signer = pki_env
    sig = cms.sign_detached(DATA, signer, signing_time=NOW, extra_certs=[inter.certificate])
    result = openssl_verify(base, sig, "-content", str(base / "data"))
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr


def test_openssl_verifies_without_embedded_intermediate_given_a_chain_bundle(pki_env):
    # openssl 3.0's cms -certfile only helps find the signer certificate, not build its path, so the
    # intermediate goes beside the root in the CA bundle.
    base, _, _, signer = pki_env
    sig = cms.sign_detached(DATA, signer, signing_time=NOW)
    assert openssl_verify(base, sig, "-content", str(base / "data")).returncode != 0  # no path without it
    bundle = base / "bundle.pem"
    bundle.write_bytes((base / "root.pem").read_bytes() + (base / "chain.pem").read_bytes())
    result = openssl_verify(base, sig, "-content", str(base / "data"), "-CAfile", str(bundle))
    assert result.returncode == 0, result.stderr


def test_tampered_data_fails_for_openssl_and_for_us(pki_env):
    base, root, inter, signer = pki_env
    sig = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate])
    tampered = bytearray(DATA)
    tampered[100] ^= 0x01
    (base / "tampered").write_bytes(bytes(tampered))
    assert openssl_verify(base, sig, "-content", str(base / "tampered")).returncode != 0
    with pytest.raises(CmsDigestMismatch):
        cms.verify_detached(sig, bytes(tampered), trust_roots=[root.certificate], now=NOW)


def test_tampered_signature_fails_for_openssl_and_for_us(pki_env):
    base, root, inter, signer = pki_env
    sig = bytearray(cms.sign_detached(DATA, signer, extra_certs=[inter.certificate]))
    sig[-5] ^= 0x40  # inside the signature value, the last field of the SignerInfo
    assert openssl_verify(base, bytes(sig), "-content", str(base / "data")).returncode != 0
    with pytest.raises(CmsBadSignature):
        cms.verify_detached(bytes(sig), DATA)


def test_our_verifier_reports_signer_time_and_path(pki_env):
    _, root, inter, signer = pki_env
    sig = cms.sign_detached(DATA, signer, signing_time=NOW, extra_certs=[inter.certificate])
    result = cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW,
                                 require_signing_cert_v2=True)
    assert result.signer_certificate == signer.certificate
    assert result.signing_time == NOW
    assert result.content is None and result.content_type == "1.2.840.113549.1.7.1"
    assert result.path == (signer.certificate, inter.certificate, root.certificate)
    assert result.message_digest == hashlib.sha256(DATA).digest()


def test_signing_a_precomputed_digest_equals_signing_the_data(pki_env):
    base, root, inter, signer = pki_env
    sig = cms.sign_detached(None, signer, digest=hashlib.sha256(DATA).digest(), extra_certs=[inter.certificate])
    assert openssl_verify(base, sig, "-content", str(base / "data")).returncode == 0
    cms.verify_detached(sig, digest=hashlib.sha256(DATA).digest(), trust_roots=[root.certificate], now=NOW)


def test_encapsulated_content_verifies_without_separate_data(pki_env):
    base, root, inter, signer = pki_env
    sig = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate], encapsulate=True)
    assert openssl_verify(base, sig).returncode == 0
    assert cms.verify_detached(sig).content == DATA


def test_untrusted_root_is_refused(pki_env, tmp_path):
    _, _, inter, signer = pki_env
    other = CertificateAuthority.init_root(tmp_path / "other", "Other Root", PASSPHRASE)
    sig = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate])
    with pytest.raises(CertificateUntrusted):
        cms.verify_detached(sig, DATA, trust_roots=[other.certificate], now=NOW)


def test_signature_made_by_openssl_verifies_with_us(pki_env):
    base, root, inter, signer = pki_env
    key_pem = signer.private_key_for_tls().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (base / "k.pem").write_bytes(key_pem)
    (base / "c.pem").write_bytes(pem(signer.certificate))
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-in", str(base / "data"),
                    "-signer", str(base / "c.pem"), "-inkey", str(base / "k.pem"), "-certfile",
                    str(base / "chain.pem"), "-md", "sha256", "-out", str(base / "ossl.p7s")], check=True)
    result = cms.verify_detached((base / "ossl.p7s").read_bytes(), DATA, trust_roots=[root.certificate], now=NOW)
    assert result.signer_certificate == signer.certificate
    with pytest.raises(CmsDigestMismatch):
        cms.verify_detached((base / "ossl.p7s").read_bytes(), DATA + b"x")


@pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x02\x01", b"not cms at all", b"\x30\x80" + b"\x00" * 40])
def test_garbage_is_a_typed_error(garbage):
    with pytest.raises(CmsMalformed):
        cms.verify_detached(garbage, DATA)


def test_signer_without_certificate_is_refused(pki_env):
    _, _, _, signer = pki_env
    with pytest.raises(InvalidInput):
        cms.sign_detached(DATA, SoftwareSigner(signer.private_key_for_tls()))


def test_output_is_the_der_asn1crypto_would_write(pki_env):
    # Re-encoding every value from scratch (force=True) gives back our bytes: the hand-written DER is canonical.
    _, _, inter, signer = pki_env
    for kwargs in ({}, {"signing_time": NOW, "extra_certs": [inter.certificate]},
                   {"encapsulate": True, "include_signing_cert_v2": False}):
        sig = cms.sign_detached(DATA, signer, **kwargs)
        assert acms.ContentInfo.load(sig).dump(force=True) == sig


# ---- the per-certificate caches (signer parts, certificate links) cannot be fooled ----------------------
def test_tampered_signature_fails_after_the_same_certificate_verified(pki_env):
    _, root, inter, signer = pki_env
    sig = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate])
    cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW)
    tampered = bytearray(sig)
    tampered[-5] ^= 0x40
    with pytest.raises(CmsBadSignature):
        cms.verify_detached(bytes(tampered), DATA, trust_roots=[root.certificate], now=NOW)


def test_two_certificates_of_one_key_each_sign_as_themselves(pki_env):
    _, root, inter, signer = pki_env
    other = inter.issue_seal_certificate("91350100M000100Y43", "测试县人民政府", signer.public_key)
    for cert in (signer.certificate, other, signer.certificate):
        sig = cms.sign_detached(DATA, signer.with_certificate(cert), extra_certs=[inter.certificate])
        result = cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW,
                                     require_signing_cert_v2=True)  # ESS hash of *this* certificate
        assert result.signer_certificate == cert


def _forge(subject: x509.Name, issuer: x509.Name, public_key, issuer_key, template: x509.Certificate,
           ) -> x509.Certificate:
    """A certificate like ``template`` (same serial, validity, extensions) signed by ``issuer_key``."""
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(template.serial_number).not_valid_before(template.not_valid_before_utc)
               .not_valid_after(template.not_valid_after_utc))
    for ext in template.extensions:
        if ext.oid not in (x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
                           x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER):
            builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(issuer_key, template.signature_hash_algorithm)


def test_same_names_with_another_key_fail_the_path_after_a_cached_success(pki_env):
    _, root, inter, signer = pki_env
    good = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate])
    cms.verify_detached(good, DATA, trust_roots=[root.certificate], now=NOW, purpose=Purpose.SEAL)
    # A look-alike intermediate (same subject, serial, extensions; another key, not issued by the root)
    # and a look-alike leaf under it.
    fake_key = inter.algorithm.generate()
    fake_inter = _forge(inter.certificate.subject, root.certificate.subject, fake_key.public_key(), fake_key,
                        inter.certificate)
    leaf_key = inter.algorithm.generate()
    fake_leaf = _forge(signer.certificate.subject, inter.certificate.subject, leaf_key.public_key(), fake_key,
                       signer.certificate)
    forged = cms.sign_detached(DATA, SoftwareSigner(leaf_key, fake_leaf), extra_certs=[fake_inter])
    cms.verify_detached(forged, DATA)  # the cryptography alone is sound
    for intermediates in ([], [inter.certificate]):
        with pytest.raises(CertificateUntrusted):
            cms.verify_detached(forged, DATA, trust_roots=[root.certificate], now=NOW,
                                intermediates=intermediates, purpose=Purpose.SEAL)
    # The real leaf's name and serial with another key under the real intermediate's name.
    impostor = cms.sign_detached(DATA, SoftwareSigner(leaf_key, fake_leaf), extra_certs=[inter.certificate])
    with pytest.raises(CertificateUntrusted):
        cms.verify_detached(impostor, DATA, trust_roots=[root.certificate], now=NOW, purpose=Purpose.SEAL)


def test_revocation_is_decided_afresh_after_a_cached_success(pki_env):
    _, root, inter, _ = pki_env
    key = inter.algorithm.generate()
    signer = SoftwareSigner(key, inter.issue_seal_certificate("91350100M000100Y43", "测试县人民政府",
                                                              key.public_key()))
    sig = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate])
    before = CrlChecker([crlmod.build_crl(inter, NOW), crlmod.build_crl(root, NOW)])
    cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW, revocation=before)
    inter.revoke(signer.certificate, "key_compromise", NOW)
    after = CrlChecker([crlmod.build_crl(inter, NOW + dt.timedelta(seconds=1)), crlmod.build_crl(root, NOW)])
    with pytest.raises(CertificateRevoked):
        cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW + dt.timedelta(seconds=2),
                            revocation=after)


def test_expiry_is_decided_afresh_after_a_cached_success(pki_env):
    _, root, inter, signer = pki_env
    sig = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate])
    cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW)
    with pytest.raises(CertificateExpired):
        cms.verify_detached(sig, DATA, trust_roots=[root.certificate],
                            now=signer.certificate.not_valid_after_utc + dt.timedelta(seconds=1))


def test_the_nodes_intermediates_are_searched_for_the_signer_only_when_the_cms_does_not_carry_it(
        pki_env, tmp_path, monkeypatch):
    """A node passes its CAs (nine county CAs at a city) with every statement it checks: the signer the
    CMS carries is found without a lookup of each of them."""
    _, root, inter, signer = pki_env
    others = [root.create_intermediate(tmp_path / f"county-{i}", f"County CA {i}", PASSPHRASE) for i in range(3)]
    intermediates = [c.certificate for c in others] + [inter.certificate]
    carried = cms.sign_detached(DATA, signer, extra_certs=[inter.certificate])
    looked_up = []
    facts_of = cms._facts_of
    monkeypatch.setattr(cms, "_facts_of", lambda cert: looked_up.append(cert) or facts_of(cert))
    result = cms.verify_detached(carried, DATA, trust_roots=[root.certificate], now=NOW,
                                 intermediates=intermediates, purpose=Purpose.SEAL)
    assert result.signer_certificate == signer.certificate and looked_up == []
    # (A signer the CMS leaves out, found among those given: test_tsa.py's tokens made without certReq.)
