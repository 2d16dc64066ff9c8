"""Pkcs11Signer against a real softhsm2 token; signatures checked by pki.algorithms and openssl."""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11e

from pki import pkcs11 as p11
from pki import profiles
from pki.algorithms import ECDSA_P256_SHA256, RSA3072_SHA256
from pki.ca import CertificateAuthority
from pki.certificates import pem
from pki.errors import (
    BadSignature,
    HsmBadPin,
    HsmError,
    HsmKeyNotFound,
    HsmTokenNotFound,
    InvalidInput,
    KeyCertificateMismatch,
)
from pki.pkcs11 import Pkcs11Signer, generate_keypair_on_token
from pki.signer import SoftwareSigner
from tests.pki.softhsm import SoftHsm, softhsm_fixture  # noqa: F401  (the `softhsm` fixture)

DATA = "关于印发《2024年工作要点》的通知".encode() * 50


def _label(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def ec_key(softhsm: SoftHsm) -> p11.TokenKey:
    return generate_keypair_on_token(softhsm.module, softhsm.token_label, softhsm.pin, _label("ec"),
                                     ECDSA_P256_SHA256)


@pytest.fixture(scope="module")
def rsa_key(softhsm: SoftHsm) -> p11.TokenKey:
    return generate_keypair_on_token(softhsm.module, softhsm.token_label, softhsm.pin, _label("rsa"),
                                     RSA3072_SHA256)


def _signer(hsm: SoftHsm, key: p11.TokenKey, **kw) -> Pkcs11Signer:
    return Pkcs11Signer(hsm.module, hsm.token_label, hsm.pin, key.key_label, **kw)


def openssl_verify(tmp: Path, public_key, signature: bytes, data: bytes) -> subprocess.CompletedProcess:
    pub = tmp / "pub.pem"
    pub.write_bytes(public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp / "sig").write_bytes(signature)
    (tmp / "data").write_bytes(data)
    return subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(tmp / "sig"),
                           str(tmp / "data")], capture_output=True, text=True)


@pytest.fixture(scope="module")
def sub_ca(tmp_path_factory) -> CertificateAuthority:
    base = tmp_path_factory.mktemp("ca")
    root = CertificateAuthority.init_root(base / "root", "GWX Test Root", b"root-passphrase")
    return root.create_intermediate(base / "sub", "GWX Test Sub CA", b"sub-passphrase")


def _cert_for(ca: CertificateAuthority, public_key, name: str = "other") -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return ca.issue(public_key, subject, profiles.NODE_SIGNING)


@pytest.mark.parametrize("key_fixture, algorithm", [("ec_key", ECDSA_P256_SHA256), ("rsa_key", RSA3072_SHA256)])
def test_token_signature_verifies_with_our_verifier_and_openssl(request, softhsm, tmp_path, key_fixture,
                                                                 algorithm):
    key: p11.TokenKey = request.getfixturevalue(key_fixture)
    with _signer(softhsm, key) as signer:
        assert signer.algorithm is algorithm
        assert signer.public_key.public_numbers() == key.public_key.public_numbers()
        sig = signer.sign(DATA)
    algorithm.verify(signer.public_key, sig, DATA)
    ok = openssl_verify(tmp_path, key.public_key, sig, DATA)
    assert ok.returncode == 0 and "Verified OK" in ok.stdout, ok.stdout + ok.stderr
    tampered = DATA[:-1] + b"!"
    with pytest.raises(BadSignature):
        algorithm.verify(key.public_key, sig, tampered)
    assert openssl_verify(tmp_path, key.public_key, sig, tampered).returncode != 0


def test_ec_token_signature_is_der_like_a_software_signature(softhsm, ec_key):
    software = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    with _signer(softhsm, ec_key) as token:
        token_sig = token.sign(DATA)
    soft_sig = software.sign(DATA)
    for sig in (token_sig, soft_sig):
        r, s = decode_dss_signature(sig)  # DER SEQUENCE{r, s}, not the token's raw r || s
        assert r > 0 and s > 0
    assert token.algorithm is software.algorithm
    # The very same verifier accepts both, and rejects each under the other's key.
    token.algorithm.verify(token.public_key, token_sig, DATA)
    software.algorithm.verify(software.public_key, soft_sig, DATA)
    with pytest.raises(BadSignature):
        token.algorithm.verify(software.public_key, token_sig, DATA)


def test_key_found_by_id_and_private_key_cannot_be_exported(softhsm, ec_key):
    with Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, key_id=ec_key.key_id) as signer:
        ECDSA_P256_SHA256.verify(ec_key.public_key, signer.sign(b"by id"), b"by id")
        with pytest.raises(p11e.AttributeSensitive):
            signer._private_key[Attribute.VALUE]


def test_wrong_pin_is_a_typed_error_that_never_shows_the_pin(softhsm, ec_key):
    wrong_pin = "not-the-pin-5150"
    signer = Pkcs11Signer(softhsm.module, softhsm.token_label, wrong_pin, ec_key.key_label)  # lazy: no error yet
    with pytest.raises(HsmBadPin) as err:
        signer.sign(DATA)
    assert err.value.code == "PKI_HSM_BAD_PIN"
    shown = str(err.value) + repr(err.value.to_dict()) + repr(signer)
    assert wrong_pin not in shown and softhsm.pin not in shown
    # The failed login left nothing behind: the right PIN works straight after.
    with _signer(softhsm, ec_key) as good:
        good.sign(DATA)


def test_missing_key_token_and_module_are_typed_errors(softhsm, tmp_path):
    with pytest.raises(HsmKeyNotFound) as err:
        Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, "no-such-key").open()
    assert err.value.code == "PKI_HSM_KEY_NOT_FOUND"
    with pytest.raises(HsmTokenNotFound):
        Pkcs11Signer(softhsm.module, "no-such-token", softhsm.pin, "k").open()
    with pytest.raises(HsmError) as err:
        Pkcs11Signer(tmp_path / "libnothing.so", softhsm.token_label, softhsm.pin, "k").open()
    assert err.value.code == "PKI_HSM_ERROR"
    with pytest.raises(InvalidInput):
        Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin)  # neither label nor id


def test_generating_over_an_existing_label_is_refused(softhsm, ec_key):
    with pytest.raises(HsmError) as err:
        generate_keypair_on_token(softhsm.module, softhsm.token_label, softhsm.pin, ec_key.key_label)
    assert err.value.code == "PKI_HSM_KEY_EXISTS"
    with pytest.raises(HsmBadPin):
        generate_keypair_on_token(softhsm.module, softhsm.token_label, "wrong-pin-000", _label("x"))


def test_certificate_for_another_key_is_rejected(softhsm, ec_key, sub_ca):
    other = _cert_for(sub_ca, ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(KeyCertificateMismatch) as err:
        _signer(softhsm, ec_key, certificate=other).open()
    assert err.value.code == "PKI_KEY_CERT_MISMATCH"
    with _signer(softhsm, ec_key) as signer, pytest.raises(KeyCertificateMismatch):
        signer.with_certificate(other)
    assert signer.certificate is None


def test_ec_key_without_public_object_is_proven_against_the_certificate(softhsm, sub_ca):
    key = generate_keypair_on_token(softhsm.module, softhsm.token_label, softhsm.pin, _label("nopub"))
    module = p11.load_module(softhsm.module)
    token = module.get_token(token_label=softhsm.token_label)
    with p11._user_session(module, token, softhsm.pin, rw=True) as session:
        session.get_key(ObjectClass.PUBLIC_KEY, label=key.key_label).destroy()
    with pytest.raises(HsmKeyNotFound):
        Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, key.key_label).open()
    other = _cert_for(sub_ca, ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(KeyCertificateMismatch):
        Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, key.key_label, certificate=other).open()
    # A certificate for the right key is accepted once the token has signed a probe with it.
    cert = _cert_for(sub_ca, key.public_key, "token key")
    with Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, key.key_label, certificate=cert) as s:
        assert s.public_key.public_numbers() == key.public_key.public_numbers()
        ECDSA_P256_SHA256.verify(key.public_key, s.sign(DATA), DATA)


@pytest.mark.parametrize("key_fixture", ["ec_key", "rsa_key"])
def test_certificate_from_our_ca_for_a_token_key_verifies_with_openssl(request, softhsm, sub_ca, tmp_path,
                                                                      key_fixture):
    key: p11.TokenKey = request.getfixturevalue(key_fixture)
    cert = sub_ca.issue_seal_certificate("91350100M000100Y43", "福州市测试局", key.public_key)
    leaf = tmp_path / "seal.pem"
    leaf.write_bytes(pem(cert))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pem(sub_ca.certificate))
    root = tmp_path / "root.pem"
    root.write_bytes(pem(sub_ca.root_certificate))
    verify = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(root), "-untrusted", str(chain),
                             str(leaf)], capture_output=True, text=True)
    assert verify.returncode == 0 and f"{leaf}: OK" in verify.stdout, verify.stdout + verify.stderr

    with _signer(softhsm, key, certificate=cert) as signer:
        assert signer.certificate is cert
        sig = signer.sign(DATA)
    # The public key openssl takes out of the certificate, not ours, checks the token's signature.
    pub = tmp_path / "pub.pem"
    pub.write_bytes(subprocess.run(["openssl", "x509", "-in", str(leaf), "-pubkey", "-noout"],
                                   capture_output=True, check=True).stdout)
    (tmp_path / "sig").write_bytes(sig)
    (tmp_path / "data").write_bytes(DATA)
    out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(tmp_path / "sig"),
                          str(tmp_path / "data")], capture_output=True, text=True)
    assert out.returncode == 0 and "Verified OK" in out.stdout, out.stdout + out.stderr


def test_two_signers_share_the_token_login_and_closing_one_keeps_the_other(softhsm, ec_key, rsa_key):
    a = _signer(softhsm, ec_key).open()
    b = _signer(softhsm, rsa_key).open()  # a second C_Login would fail "already logged in"
    a.close()
    RSA3072_SHA256.verify(rsa_key.public_key, b.sign(DATA), DATA)  # b's login survived a's logout
    b.close()
    with pytest.raises(HsmError) as err:
        b.sign(DATA)
    assert err.value.code == "PKI_HSM_CLOSED"
    # With no signer left the token is logged out: a wrong PIN is checked again.
    with pytest.raises(HsmBadPin):
        Pkcs11Signer(softhsm.module, softhsm.token_label, "wrong-pin-111", ec_key.key_label).open()


def test_one_signer_shared_by_threads(softhsm, ec_key):
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                msg = f"{n}-{i}".encode()
                results.append((msg, signer.sign(msg)))
        except BaseException as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)

    with _signer(softhsm, ec_key) as signer:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert len(results) == 60
    for msg, sig in results:
        ECDSA_P256_SHA256.verify(ec_key.public_key, sig, msg)


def test_signer_recovers_when_the_token_drops_its_session(softhsm, ec_key):
    with _signer(softhsm, ec_key) as signer:
        signer.sign(b"before")
        signer._session.close()  # what a re-inserted token or a restarted HSM daemon looks like
        ECDSA_P256_SHA256.verify(ec_key.public_key, signer.sign(b"after"), b"after")


def test_a_refused_pin_is_not_tried_again_by_the_same_signer(softhsm, ec_key):
    signer = Pkcs11Signer(softhsm.module, softhsm.token_label, "not-the-pin-7070", ec_key.key_label)
    with pytest.raises(HsmBadPin):
        signer.sign(DATA)
    with pytest.raises(HsmBadPin) as again:
        signer.sign(DATA)
    assert "not tried again" in again.value.message
