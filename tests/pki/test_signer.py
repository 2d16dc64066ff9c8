"""SoftwareSigner: the Signer contract with an in-memory key and a certificate from our CA."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki import profiles
from pki.algorithms import ECDSA_P256_SHA256, RSA3072_SHA256
from pki.ca import CertificateAuthority
from pki.errors import BadSignature, KeyCertificateMismatch, UnsupportedAlgorithm
from pki.signer import Signer, SoftwareSigner

DATA = "签章数据".encode() * 100


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.init_root(tmp_path_factory.mktemp("ca") / "root", "GWX Signer Test Root",
                                          b"root-passphrase")


def _cert(ca: CertificateAuthority, key) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    return ca.issue(key.public_key(), subject, profiles.NODE_SIGNING)


@pytest.mark.parametrize("alg", [ECDSA_P256_SHA256, RSA3072_SHA256], ids=lambda a: a.name)
def test_signs_with_the_algorithm_of_its_key(alg):
    key = alg.generate()
    signer = SoftwareSigner(key)
    assert signer.algorithm is alg
    assert signer.certificate is None
    sig = signer.sign(DATA)
    alg.verify(signer.public_key, sig, DATA)
    with pytest.raises(BadSignature):
        alg.verify(signer.public_key, sig, DATA[:-1])


def test_certificate_is_carried_and_must_match_the_key(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(ca, key)
    signer = SoftwareSigner(key, cert)
    assert signer.certificate is cert
    ECDSA_P256_SHA256.verify(signer.certificate.public_key(), signer.sign(DATA), DATA)

    other_cert = _cert(ca, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KeyCertificateMismatch) as err:
        SoftwareSigner(key, other_cert)
    assert err.value.code == "PKI_KEY_CERT_MISMATCH"
    with pytest.raises(KeyCertificateMismatch):
        SoftwareSigner(key).with_certificate(other_cert)


def test_with_certificate_returns_a_new_signer(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    bare = SoftwareSigner(key)
    cert = _cert(ca, key)
    certified = bare.with_certificate(cert)
    assert bare.certificate is None and certified.certificate is cert
    assert certified.algorithm is bare.algorithm
    assert certified.private_key_for_tls() is key


def test_key_of_an_unsupported_curve_is_refused():
    with pytest.raises(UnsupportedAlgorithm):
        SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))


def test_signer_interface_requires_algorithm_key_and_sign():
    class Incomplete(Signer):
        @property
        def algorithm(self):
            return ECDSA_P256_SHA256

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]
