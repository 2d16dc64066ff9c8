"""The payload's content cipher and SM2 key transport, by network profile (sans-I/O).

A payload is the same CMS AuthEnvelopedData on every network (:mod:`exchange_protocol.envelope_crypto`);
only the algorithms inside differ, named by their object identifiers as data:

- international (P-256 / RSA destination certificates): AES-256-GCM (RFC 5084), ECDH key agreement
  or RSA-OAEP key transport;
- 国密 (SM2 destination certificates): SM4-GCM ``1.2.156.10197.1.104.8`` with the same
  ``GCMParameters`` (12-byte nonce, 16-byte tag), and the 16-byte content key carried to each destination
  in a KeyTransRecipientInfo (v0, issuer and serial) whose keyEncryptionAlgorithm is SM2 encryption
  ``1.2.156.10197.1.301.3`` (GM/T 0006 "SM2-3", as GB/T 35275 uses it) and whose encryptedKey is the
  GM/T 0009 ``SM2Cipher`` DER (C1 x, y, C3, C2).

Why GCM and not GB/T 35275's EnvelopedData with SM4-CBC: the envelope format is AuthEnvelopedData, whose
streaming reader authenticates the payload by its tag before anything is kept; EnvelopedData with CBC
would change the format's shape (another content type, padding, no mac) and leave the payload's
integrity to the header's SHA-256 alone. SM4 in C comes from pyca/cryptography's bundled OpenSSL
(SM4-GCM; the system's OpenSSL 3.0 has no SM4-GCM), SM2 from :mod:`pki.sm2` (the system libcrypto).

One payload has one content cipher, so the destinations of a bundle are all of one profile; a payload
of the other profile than the reader's key is refused with ``PKI_PROFILE_MISMATCH``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from pki.errors import DecryptionFailed, MalformedEncoding, UnsupportedAlgorithm
from pki.sm2 import Sm2PrivateKey, Sm2PublicKey

from ._der import Reader, tlv
from .errors import EnvelopeDecryptionFailed, EnvelopeUnsupportedAlgorithm

OID_AES256_GCM = bytes.fromhex("060960864801650304012e")  # 2.16.840.1.101.3.4.1.46
OID_SM4_GCM = bytes.fromhex("06082a811ccf55016808")  # 1.2.156.10197.1.104.8
OID_SM2_ENCRYPT = bytes.fromhex("06092a811ccf5501822d03")  # 1.2.156.10197.1.301.3
_SM2_ENCRYPT_ALG = tlv(0x30, OID_SM2_ENCRYPT)
_SM2_ENCRYPT_ALG_NULL = tlv(0x30, OID_SM2_ENCRYPT + b"\x05\x00")  # what some writers put: read, never written
# An SM2Cipher of a 16-byte key: SEQUENCE { INTEGER x, INTEGER y, OCTET STRING (32), OCTET STRING (16) },
# each coordinate 33 bytes at most (a leading zero when its top bit is set).
_SM2_CIPHER_MAX = 2 + 2 * (2 + 33) + (2 + 32) + (2 + 16)

INTERNATIONAL, SM = "international", "sm"


@dataclass(frozen=True)
class ContentCipher:
    """A GCM content cipher: its OID (DER, tag included), key length and profile."""

    name: str
    oid: bytes
    key_length: int
    profile: str
    _algorithm: type

    def encryptor(self, key: bytes, nonce: bytes) -> CipherContext:
        return Cipher(self._algorithm(key), modes.GCM(nonce)).encryptor()

    def decryptor(self, key: bytes, nonce: bytes):
        return Cipher(self._algorithm(key), modes.GCM(nonce)).decryptor()


AES256_GCM = ContentCipher("AES-256-GCM", OID_AES256_GCM, 32, INTERNATIONAL, algorithms.AES)
SM4_GCM = ContentCipher("SM4-GCM", OID_SM4_GCM, 16, SM, algorithms.SM4)
_BY_OID = {c.oid[2:]: c for c in (AES256_GCM, SM4_GCM)}
_BY_PROFILE = {c.profile: c for c in (AES256_GCM, SM4_GCM)}


def profile_of_kind(kind: str) -> str:
    """The network profile of a destination key kind ("ec", "rsa", "sm2")."""
    return SM if kind == "sm2" else INTERNATIONAL


def mismatch(message: str, **details) -> UnsupportedAlgorithm:
    return UnsupportedAlgorithm(message, code="PKI_PROFILE_MISMATCH", **details)


def cipher_for(kinds: set[str]) -> ContentCipher:
    """The content cipher for destinations of these key kinds: all SM2 or none (one payload, one cipher)."""
    profiles = {profile_of_kind(k) for k in kinds}
    if len(profiles) > 1:
        raise mismatch("one payload cannot be for SM2 and non-SM2 destinations: a bundle's destinations are "
                       "of one network profile", kinds=sorted(kinds))
    return _BY_PROFILE[profiles.pop()]


def cipher_by_oid(oid_content: bytes, key_kinds: set[str]) -> ContentCipher:
    """The content cipher a payload names, checked against the profile of the keys that are to open it."""
    cipher = _BY_OID.get(bytes(oid_content))
    if cipher is None:
        raise EnvelopeUnsupportedAlgorithm("content encryption is neither AES-256-GCM nor SM4-GCM")
    ours = {profile_of_kind(k) for k in key_kinds}
    if cipher.profile not in ours:
        raise mismatch(f"the payload is encrypted with {cipher.name}, a {cipher.profile} network's cipher, "
                       f"and this node's key is of a {'/'.join(sorted(ours))} network",
                       cipher=cipher.name)
    return cipher


def sm2_recipient_info(rid: bytes, public_key: Sm2PublicKey, cek: bytes) -> bytes:
    """KeyTransRecipientInfo v0 carrying ``cek`` to ``public_key`` (SM2 encryption, GM/T 0009 DER)."""
    return tlv(0x30, b"\x02\x01\x00" + rid + _SM2_ENCRYPT_ALG + tlv(0x04, public_key.encrypt(cek)))


def sm2_recipient_info_max_length(rid: bytes) -> int:
    """The longest such RecipientInfo: SM2Cipher's coordinates are INTEGERs, a byte shorter or longer."""
    return len(tlv(0x30, b"\x02\x01\x00" + rid + _SM2_ENCRYPT_ALG + tlv(0x04, bytes(_SM2_CIPHER_MAX))))


def sm2_unwrap(algorithm: bytes, encrypted: bytes, private_key: Sm2PrivateKey) -> bytes:
    """The content key from a KeyTransRecipientInfo's algorithm (raw DER) and encryptedKey, for our SM2 key."""
    if algorithm not in (_SM2_ENCRYPT_ALG, _SM2_ENCRYPT_ALG_NULL):
        if Reader(Reader(algorithm).element(0x30)).element(0x06) == b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x07":
            raise mismatch("the content key is carried by RSA-OAEP, and this node's key is SM2")
        raise EnvelopeUnsupportedAlgorithm("SM2 key transport must be SM2 encryption (1.2.156.10197.1.301.3)")
    try:
        cek = private_key.decrypt(encrypted)
    except (MalformedEncoding, DecryptionFailed) as exc:
        raise EnvelopeDecryptionFailed(f"the content key does not decrypt with our SM2 key: {exc.message}",
                                       cause=exc.code) from None
    if len(cek) != SM4_GCM.key_length:
        raise EnvelopeDecryptionFailed("content key is not 128 bits")
    return cek
