"""Signature algorithms: names and OIDs agree with libraries we did not write; openssl verifies."""

from __future__ import annotations

import subprocess

import pytest
from asn1crypto.algos import DigestAlgorithmId, SignedDigestAlgorithmId
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from pki import algorithms
from pki.algorithms import ECDSA_P256_SHA256, RSA3072_SHA256, by_name, by_oid, for_public_key
from pki.errors import BadSignature, UnsupportedAlgorithm

ALL = [ECDSA_P256_SHA256, RSA3072_SHA256]
DATA = "公文交换 — signed bytes".encode()


@pytest.fixture(scope="module")
def keys():
    return {alg.name: alg.generate() for alg in ALL}


@pytest.mark.parametrize("alg", ALL, ids=lambda a: a.name)
def test_name_and_oid_round_trip_and_match_other_libraries(alg):
    assert by_name(alg.name) is alg
    assert by_oid(alg.oid) is alg
    assert SignedDigestAlgorithmId(alg.asn1crypto_name).dotted == alg.oid
    assert DigestAlgorithmId(alg.hash_name).dotted == alg.hash_oid
    expected = {"ec": SignatureAlgorithmOID.ECDSA_WITH_SHA256, "rsa": SignatureAlgorithmOID.RSA_WITH_SHA256}
    assert expected[alg.key_type].dotted_string == alg.oid


def test_default_and_aliases():
    assert algorithms.DEFAULT is ECDSA_P256_SHA256
    assert by_name("ecdsa") is by_name("p256") is ECDSA_P256_SHA256
    assert by_name("rsa") is by_name("rsa3072") is RSA3072_SHA256


@pytest.mark.parametrize("name", ["sm2-sha256", "ECDSA", "", "dsa"])
def test_unknown_name_is_typed(name):
    with pytest.raises(UnsupportedAlgorithm) as err:
        by_name(name)
    assert err.value.code == "PKI_UNSUPPORTED_ALGORITHM"
    assert "ecdsa-p256-sha256" in err.value.to_dict()["details"]["known"]


@pytest.mark.parametrize("oid", ["1.2.156.10197.501", "1.2.840.10045.4.3.3", "not an oid"])
def test_unknown_oid_is_typed(oid):
    with pytest.raises(UnsupportedAlgorithm) as err:
        by_oid(oid)
    assert err.value.code == "PKI_UNSUPPORTED_ALGORITHM"


def test_generated_keys_have_the_promised_shape(keys):
    ec_key, rsa_key = keys[ECDSA_P256_SHA256.name], keys[RSA3072_SHA256.name]
    assert ec_key.curve.name == "secp256r1"
    assert rsa_key.key_size == 3072 and rsa_key.public_key().public_numbers().e == 65537
    assert for_public_key(ec_key.public_key()) is ECDSA_P256_SHA256
    assert for_public_key(rsa_key.public_key()) is RSA3072_SHA256


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP384R1()).public_key(),
                                 rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(),
                                 ed25519.Ed25519PrivateKey.generate().public_key()],
                         ids=["p384", "rsa1024", "ed25519"])
def test_keys_we_do_not_use_are_refused(key):
    with pytest.raises(UnsupportedAlgorithm):
        for_public_key(key)


@pytest.mark.parametrize("alg", ALL, ids=lambda a: a.name)
def test_signature_verifies_here_and_with_openssl(alg, keys, tmp_path):
    key = keys[alg.name]
    sig = alg.sign_with_key(key, DATA)
    alg.verify(key.public_key(), sig, DATA)
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "sig").write_bytes(sig)
    (tmp_path / "data").write_bytes(DATA)
    cmd = ["openssl", "dgst", "-sha256", "-verify", str(tmp_path / "pub.pem"), "-signature", str(tmp_path / "sig")]
    ok = subprocess.run([*cmd, str(tmp_path / "data")], capture_output=True, text=True)
    assert ok.returncode == 0 and "Verified OK" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "data2").write_bytes(DATA + b".")
    assert subprocess.run([*cmd, str(tmp_path / "data2")], capture_output=True).returncode != 0


@pytest.mark.parametrize("alg", ALL, ids=lambda a: a.name)
def test_verify_rejects_tampering_wrong_key_and_garbage(alg, keys):
    key = keys[alg.name]
    sig = alg.sign_with_key(key, DATA)
    with pytest.raises(BadSignature) as err:
        alg.verify(key.public_key(), sig, DATA + b"x")
    assert err.value.code == "PKI_BAD_SIGNATURE"
    flipped = bytes([sig[0], *sig[1:-1], sig[-1] ^ 1])
    with pytest.raises(BadSignature):
        alg.verify(key.public_key(), flipped, DATA)
    same_type_other_key = alg.generate().public_key()
    with pytest.raises(BadSignature):
        alg.verify(same_type_other_key, sig, DATA)
    other_type = next(k for name, k in keys.items() if name != alg.name).public_key()
    with pytest.raises(BadSignature) as err:
        alg.verify(other_type, sig, DATA)
    assert "not an" in err.value.message
    for garbage in (b"", b"\x30\x00", b"\xff" * 7, sig + b"\x00"):
        with pytest.raises(BadSignature):
            alg.verify(key.public_key(), garbage, DATA)


def test_the_cms_name_of_sm2_is_not_a_signature_algorithm_oid_everywhere():
    """GB/T 35275 names an SM2 signature in CMS by SM2-1 (…301.1); certificates, seals (GB/T 38540) and
    OCSP name it SM3withSM2 (…501). The global table knows only the latter, so by_oid(x).oid == x."""
    with pytest.raises(UnsupportedAlgorithm):
        by_oid("1.2.156.10197.1.301.1")
    assert by_oid("1.2.156.10197.1.501").oid == "1.2.156.10197.1.501"
