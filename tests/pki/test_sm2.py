"""SM2 through OpenSSL's libcrypto (pki.sm2), and SM3/SM4 through pyca (pki.sm3_sm4), each checked
against the standards' known answers and against implementations we did not write: the openssl
command line, and gmalg (a pure-Python SM2, test-only) both ways."""

from __future__ import annotations

import gmalg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import keystore
from pki.algorithms import SM2_SM3, by_name, by_oid, for_public_key
from pki.errors import (
    BadSignature,
    DecryptionFailed,
    ErrorKind,
    InvalidInput,
    KeyStoreError,
    MalformedEncoding,
    SigningFailed,
    UnsupportedAlgorithm,
    WrongPassphrase,
)
from pki.signer import SoftwareSigner
from pki.sm2 import DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey
from pki.sm3_sm4 import sm3, sm4_cbc_decrypt, sm4_cbc_encrypt, sm4_gcm_decrypt, sm4_gcm_encrypt

from .sm_support import (
    KAT_C1,
    KAT_C2,
    KAT_C3,
    KAT_NONCE,
    KAT_PLAINTEXT,
    KAT_PRIVATE,
    KAT_PUBLIC,
    KAT_R,
    KAT_S,
    KAT_SIGNED,
    ciphertext_der,
    ciphertext_raw,
    openssl,
    private_key_from_scalar,
    signature_der,
    signature_rs,
)


@pytest.fixture(scope="module")
def key() -> Sm2PrivateKey:
    return Sm2PrivateKey.generate()


# ---- known answers (SM2: OpenSSL's sm2_internal_test.c vectors; SM3: GB/T 32905; SM4: GB/T 32907) --

def test_the_known_answer_signature_verifies_and_a_changed_one_does_not():
    public = Sm2PublicKey.from_point(KAT_PUBLIC)
    public.verify(signature_der(KAT_R, KAT_S), KAT_SIGNED)
    with pytest.raises(BadSignature):
        public.verify(signature_der(KAT_R, KAT_S + 1), KAT_SIGNED)
    with pytest.raises(BadSignature):
        public.verify(signature_der(KAT_R, KAT_S), b"message digesT")
    with pytest.raises(BadSignature):  # the id is part of what is signed
        public.verify(signature_der(KAT_R, KAT_S), KAT_SIGNED, distinguishing_id=b"ALICE123@YAHOO.COM")


def test_the_known_answer_key_loads_and_decrypts_its_ciphertext():
    key = private_key_from_scalar(KAT_PRIVATE, KAT_PUBLIC)
    assert key.public_key().point() == KAT_PUBLIC
    assert key.scalar() == KAT_PRIVATE
    assert key.decrypt(ciphertext_der(KAT_C1, KAT_C3, KAT_C2)) == KAT_PLAINTEXT
    with pytest.raises(DecryptionFailed) as err:  # C3, the hash, binds the plaintext
        key.decrypt(ciphertext_der(KAT_C1, KAT_C3, KAT_C2[:-1] + b"\x00"))
    assert err.value.code == "PKI_DECRYPTION_FAILED"


def test_gmalg_reproduces_the_known_answers_so_it_is_a_fair_second_opinion():
    other = gmalg.SM2(KAT_PRIVATE, DEFAULT_ID, rnd_fn=lambda _bits: KAT_NONCE)
    r, s = other.sign(KAT_SIGNED)
    assert (int.from_bytes(r, "big"), int.from_bytes(s, "big")) == (KAT_R, KAT_S)
    assert other.encrypt(KAT_PLAINTEXT) == KAT_C1 + KAT_C3 + KAT_C2


def test_sm3_and_sm4_known_answers():
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    # GB/T 32907 Annex A: one block, key = plaintext; CBC with a zero IV's first block is that block.
    assert sm4_cbc_encrypt(key, bytes(16), key)[:16].hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_encrypting_the_block_a_million_times_gives_the_standards_second_answer():
    """GB/T 32907 Annex A's second example catches key-schedule faults one block does not. CBC with a
    zero IV and zero blocks after the first encrypts the previous output again: block i is E^i(P)."""
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    chained = sm4_cbc_encrypt(key, bytes(16), key + bytes(16 * 999_999))
    assert chained[16 * 999_999:16 * 1_000_000].hex() == "595298c7c6fd271f0402f804c33d3f66"


# ---- our signatures, checked by others, and theirs by us -----------------------------------------

def test_sign_and_verify_and_every_change_is_refused(key):
    signature = key.sign(b"\xe5\x85\xac\xe6\x96\x87")
    key.public_key().verify(signature, b"\xe5\x85\xac\xe6\x96\x87")
    for data, sig, who, distid in [(b"other", signature, key, DEFAULT_ID),
                                   (b"\xe5\x85\xac\xe6\x96\x87", signature, Sm2PrivateKey.generate(), DEFAULT_ID),
                                   (b"\xe5\x85\xac\xe6\x96\x87", signature, key, b"8765432187654321"),
                                   (b"\xe5\x85\xac\xe6\x96\x87", b"\x30\x00", key, DEFAULT_ID),
                                   (b"\xe5\x85\xac\xe6\x96\x87", b"garbage", key, DEFAULT_ID)]:
        with pytest.raises(BadSignature):
            who.public_key().verify(sig, data, distinguishing_id=distid)


def test_openssl_dgst_verifies_our_signature_with_the_default_id_and_we_verify_its(key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = b"SM2 over bytes we signed" * 40
    (tmp_path / "data").write_bytes(data)
    (tmp_path / "sig").write_bytes(key.sign(data))
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM))
    ok = openssl("dgst", "-sm3", "-verify", "pub.pem", "-sigopt", "distid:1234567812345678",
                 "-signature", "sig", "data")
    assert ok.returncode == 0 and b"Verified OK" in ok.stdout, ok.stderr
    # …and it is the id that makes it: with another id OpenSSL refuses the same signature.
    assert openssl("dgst", "-sm3", "-verify", "pub.pem", "-sigopt", "distid:8765432187654321",
                   "-signature", "sig", "data").returncode != 0
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    made = openssl("dgst", "-sm3", "-sign", "key.pem", "-sigopt", "distid:1234567812345678",
                   "-out", "theirs", "data")
    assert made.returncode == 0, made.stderr
    key.public_key().verify((tmp_path / "theirs").read_bytes(), data)


def test_gmalg_verifies_our_signatures_and_we_verify_gmalgs():
    for _ in range(8):  # several keys: a leading zero byte in a coordinate or r, s must survive
        key = Sm2PrivateKey.generate()
        data = bytes(range(256)) * 3
        r, s = signature_rs(key.sign(data))
        theirs = gmalg.SM2(pk=key.public_key().point(), uid=DEFAULT_ID)
        assert theirs.verify(data, r.to_bytes(32, "big"), s.to_bytes(32, "big"))
        assert not theirs.verify(data + b"x", r.to_bytes(32, "big"), s.to_bytes(32, "big"))

        secret, point = gmalg.SM2().generate_keypair()
        r2, s2 = gmalg.SM2(secret, DEFAULT_ID, pk=point).sign(data)
        ours = Sm2PublicKey.from_point(point)
        ours.verify(signature_der(int.from_bytes(r2, "big"), int.from_bytes(s2, "big")), data)
        with pytest.raises(BadSignature):
            ours.verify(signature_der(int.from_bytes(r2, "big"), int.from_bytes(s2, "big")), data[1:])


# ---- SM2 encryption (key transport) --------------------------------------------------------------

def test_encryption_round_trip_and_across_gmalg_and_openssl(key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    content_key = bytes(range(16))
    ciphertext = key.public_key().encrypt(content_key)
    assert key.decrypt(ciphertext) == content_key
    theirs = gmalg.SM2(key.scalar(), DEFAULT_ID, pk=key.public_key().point())
    c1, c3, c2 = (lambda raw: (raw[:65], raw[65:97], raw[97:]))(ciphertext_raw(ciphertext))
    from gmalg.sm2 import bytes_to_point  # gmalg's own parts: C1 as a point, then C2 and C3
    assert theirs._core.decrypt(bytes_to_point(c1), c2, c3, int.from_bytes(key.scalar(), "big")) == content_key
    raw = gmalg.SM2(pk=key.public_key().point()).encrypt(content_key)  # C1 || C3 || C2
    assert key.decrypt(ciphertext_der(raw[:65], raw[65:97], raw[97:])) == content_key

    (tmp_path / "ct").write_bytes(ciphertext)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    done = openssl("pkeyutl", "-decrypt", "-inkey", "key.pem", "-in", "ct")
    assert done.returncode == 0 and done.stdout == content_key, done.stderr


def test_a_ciphertext_for_another_key_or_changed_is_a_typed_error(key):
    ciphertext = Sm2PrivateKey.generate().public_key().encrypt(b"k" * 16)
    with pytest.raises(DecryptionFailed) as err:  # well-formed, for another key: not "bad DER"
        key.decrypt(ciphertext)
    assert err.value.code == "PKI_DECRYPTION_FAILED" and not isinstance(err.value, MalformedEncoding)
    with pytest.raises(MalformedEncoding):
        key.decrypt(b"\x30\x03\x02\x01\x01")
    with pytest.raises(InvalidInput):
        key.public_key().encrypt(b"")


# ---- keys in and out, at rest --------------------------------------------------------------------

def test_keys_at_rest_are_encrypted_pkcs8_that_openssl_reads(key, tmp_path):
    path = keystore.write_private_key(tmp_path / "sm2.key", key, b"a long passphrase")
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert keystore.read_private_key(path, b"a long passphrase").public_key() == key.public_key()
    with pytest.raises(WrongPassphrase):
        keystore.read_private_key(path, b"another passphrase")
    parsed = openssl("asn1parse", "-in", str(path))
    assert b":sm4-cbc" in parsed.stdout and b":PBES2" in parsed.stdout  # SM4 at rest, not AES
    pub = openssl("pkey", "-in", str(path), "-passin", "pass:a long passphrase", "-pubout", "-outform", "DER")
    assert pub.returncode == 0 and pub.stdout == key.public_key().public_bytes(), pub.stderr


def test_der_in_and_out_and_bad_bytes_are_typed_errors(key):
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    assert Sm2PrivateKey.from_der(plain).public_key() == key.public_key()
    sealed = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                               serialization.BestAvailableEncryption(b"passphrase!"))
    assert Sm2PrivateKey.from_der(sealed, b"passphrase!").scalar() == key.scalar()
    with pytest.raises(WrongPassphrase):
        Sm2PrivateKey.from_der(sealed, b"not it at all")
    spki = key.public_key().public_bytes()
    assert Sm2PublicKey.from_der(spki) == key.public_key()
    with pytest.raises(MalformedEncoding):
        Sm2PublicKey.from_der(spki[:-3])
    with pytest.raises(MalformedEncoding):
        Sm2PublicKey.from_der(spki + b"\x00")
    with pytest.raises(MalformedEncoding):
        Sm2PrivateKey.from_der(plain + b"\x00")
    with pytest.raises(MalformedEncoding):
        Sm2PrivateKey.from_der(b"\x30\x00")
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(UnsupportedAlgorithm):  # a P-256 key is not taken for an SM2 one
        Sm2PublicKey.from_der(p256)
    with pytest.raises(InvalidInput):
        key.sign(b"x", distinguishing_id=b"")


def test_a_damaged_sm2_key_file_is_a_typed_error(tmp_path):
    path = tmp_path / "bad.key"
    path.write_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(KeyStoreError) as err:
        keystore.read_private_key(path, b"a long passphrase")
    assert err.value.code == "PKI_KEY_MALFORMED"  # damaged, not a mistyped passphrase


def test_damaged_encrypted_sm2_key_bytes_are_malformed_and_a_wrong_passphrase_is_told_apart(key):
    with pytest.raises(MalformedEncoding) as err:
        Sm2PrivateKey.from_der(b"\x30\x03\x02\x01\x01", b"pw")
    assert not isinstance(err.value, WrongPassphrase)
    encrypted = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"a long passphrase"))
    with pytest.raises(MalformedEncoding):
        Sm2PrivateKey.from_der(encrypted[:40], b"a long passphrase")  # cut short
    with pytest.raises(WrongPassphrase):
        Sm2PrivateKey.from_der(encrypted, b"another passphrase")


def test_an_encrypted_pem_without_a_passphrase_is_refused_without_prompting(key, capfd):
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"a long passphrase"))
    with pytest.raises(KeyStoreError) as err:
        Sm2PrivateKey.from_pem(encrypted, None)
    assert err.value.code == "PKI_NO_PASSPHRASE"
    assert "pass phrase" not in capfd.readouterr().err  # OpenSSL's terminal prompt never ran


# ---- behind the existing interfaces --------------------------------------------------------------

def test_a_signing_failure_is_ours_not_a_bad_signature(key):
    public_only = Sm2PrivateKey(key.public_key()._pkey)  # a key OpenSSL cannot sign with
    with pytest.raises(SigningFailed) as err:
        public_only.sign(b"data")
    assert err.value.code == "PKI_SIGNING_FAILED" and err.value.kind is ErrorKind.INTERNAL
    assert not isinstance(err.value, BadSignature)


def test_sm2_is_an_algorithm_like_the_others_and_signs_through_a_signer(key):
    assert by_name("sm2") is SM2_SM3 and by_oid("1.2.156.10197.1.501") is SM2_SM3
    assert for_public_key(key.public_key()) is SM2_SM3
    signer = SoftwareSigner(key)
    assert signer.algorithm is SM2_SM3
    signature = signer.sign(b"envelope header")
    SM2_SM3.verify(key.public_key(), signature, b"envelope header")
    with pytest.raises(BadSignature):
        SM2_SM3.verify(ec.generate_private_key(ec.SECP256R1()).public_key(), signature, b"envelope header")


# ---- SM4 content encryption ----------------------------------------------------------------------

def test_sm4_gcm_round_trip_and_tamper():
    key, nonce = bytes(range(16)), bytes(12)
    sealed = sm4_gcm_encrypt(key, nonce, b"content", b"header")
    assert sm4_gcm_decrypt(key, nonce, sealed, b"header") == b"content"
    for args in [(key, nonce, sealed, b"other header"), (key, nonce, sealed[:-1] + b"\x00", b"header"),
                 (bytes(16), nonce, sealed, b"header")]:
        with pytest.raises(DecryptionFailed) as err:  # the tag: changed, or another key — not a signature
            sm4_gcm_decrypt(*args)
        assert err.value.code == "PKI_DECRYPTION_FAILED"
    with pytest.raises(MalformedEncoding):
        sm4_gcm_decrypt(key, nonce, b"short", b"header")
    with pytest.raises(InvalidInput):
        sm4_gcm_encrypt(b"short", nonce, b"x")


def test_openssl_decrypts_our_sm4_cbc(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    key, iv = bytes(range(16)), bytes(range(16, 32))
    content = "公文正文".encode() * 100
    (tmp_path / "ct").write_bytes(sm4_cbc_encrypt(key, iv, content))
    done = openssl("enc", "-d", "-sm4-cbc", "-K", key.hex(), "-iv", iv.hex(), "-in", "ct")
    assert done.returncode == 0 and done.stdout == content, done.stderr
    assert sm4_cbc_decrypt(key, iv, (tmp_path / "ct").read_bytes()) == content
    with pytest.raises(InvalidInput):
        sm4_cbc_decrypt(bytes(16), iv, (tmp_path / "ct").read_bytes())


def test_another_distinguishing_id_is_honoured_both_ways_with_gmalg(key):
    uid = b"ALICE123@YAHOO.COM"
    r, s = signature_rs(key.sign(b"data", distinguishing_id=uid))
    assert gmalg.SM2(pk=key.public_key().point(), uid=uid).verify(b"data", r.to_bytes(32, "big"),
                                                                   s.to_bytes(32, "big"))
    assert not gmalg.SM2(pk=key.public_key().point(), uid=DEFAULT_ID).verify(b"data", r.to_bytes(32, "big"),
                                                                              s.to_bytes(32, "big"))
    r2, s2 = gmalg.SM2(key.scalar(), uid, pk=key.public_key().point()).sign(b"data")
    key.public_key().verify(signature_der(int.from_bytes(r2, "big"), int.from_bytes(s2, "big")), b"data",
                            distinguishing_id=uid)


def test_a_passphrase_with_a_nul_byte_is_refused_not_truncated(key):
    with pytest.raises(InvalidInput):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"good\x00bad passphrase"))
