"""Who a payload is for: destination certificates (:class:`Recipient`), our own keys
(:class:`DecryptionKey`), and the CMS RecipientInfos that carry the content key to each — written
and read by hand for the shapes :mod:`exchange_protocol.envelope_crypto` describes (P-256 key
agreement, RSA-OAEP key transport, SM2 key transport through :mod:`exchange_protocol.envelope_ciphers`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from pki.sm2 import Sm2PrivateKey, Sm2PublicKey
from pki.x509_sm2 import public_key_of

from ._der import Reader, tlv
from .envelope_ciphers import ContentCipher, sm2_recipient_info, sm2_recipient_info_max_length, sm2_unwrap
from .errors import (
    EnvelopeDecryptionFailed,
    EnvelopeNotForMe,
    EnvelopeRecipientUnusable,
    EnvelopeUnsupportedAlgorithm,
)

# Object identifiers, DER-encoded once (tag 06 included).
OID_AES256_WRAP = bytes.fromhex("060960864801650304012d")  # 2.16.840.1.101.3.4.1.45
OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
OID_ECDH_SHA256_KDF = bytes.fromhex("06062b8104010b01")  # 1.3.132.1.11.1
OID_RSAES_OAEP = bytes.fromhex("06092a864886f70d010107")  # 1.2.840.113549.1.1.7
OID_SHA256 = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1
OID_MGF1 = bytes.fromhex("06092a864886f70d010108")  # 1.2.840.113549.1.1.8
CEK_LEN = 32  # an AES-256 key, what P-256 and RSA destinations unwrap

_AES_WRAP_ALG = tlv(0x30, OID_AES256_WRAP)
# ECC-CMS-SharedInfo { keyInfo aes256-wrap, suppPubInfo [2] { OCTET STRING 00000100 (256 bits) } }
_SHARED_INFO = tlv(0x30, _AES_WRAP_ALG + tlv(0xA2, tlv(0x04, (256).to_bytes(4, "big"))))
_KDF_SUFFIX = (1).to_bytes(4, "big") + _SHARED_INFO
_KARI_KEA = tlv(0x30, OID_ECDH_SHA256_KDF + _AES_WRAP_ALG)
_SHA256_ALG = tlv(0x30, OID_SHA256)
_OAEP_ALG = tlv(0x30, OID_RSAES_OAEP + tlv(0x30, tlv(0xA0, _SHA256_ALG)
                                          + tlv(0xA1, tlv(0x30, OID_MGF1 + _SHA256_ALG))))
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _issuer_and_serial(cert: x509.Certificate) -> bytes:
    """DER IssuerAndSerialNumber, with the issuer Name bytes exactly as they sit in the certificate."""
    from asn1crypto import x509 as ax509  # only here: once per certificate, not per envelope

    acert = ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return tlv(0x30, acert.issuer.dump() + acert["tbs_certificate"]["serial_number"].dump())


class Recipient:
    """A destination node's encryption certificate, prepared once and reused for every envelope."""

    def __init__(self, certificate: x509.Certificate) -> None:
        key = public_key_of(certificate)
        try:
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        self.certificate = certificate
        self.rid = _issuer_and_serial(certificate)
        if isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name != "secp256r1":
                raise EnvelopeRecipientUnusable(f"unsupported curve {key.curve.name}")
            if usage is not None and not usage.key_agreement:
                raise EnvelopeRecipientUnusable("EC encryption certificate lacks keyAgreement")
            self._ec_key = key
            self.kind = "ec"
            # The KARI with zero placeholders; only the ephemeral point and the wrapped key vary.
            orig = tlv(0xA0, tlv(0xA1, tlv(0x30, OID_EC_PUBLIC_KEY) + tlv(0x03, bytes(66))))
            reks = tlv(0x30, tlv(0x30, self.rid + tlv(0x04, bytes(40))))
            body = b"\x02\x01\x03" + orig + _KARI_KEA + reks
            template = tlv(0xA1, body)
            point_at = len(template) - len(body) + 3 + len(orig) - 65
            self._kari_a = template[:point_at]
            self._kari_b = template[point_at + 65:-40]
            self._ri_len = len(template)
        elif isinstance(key, rsa.RSAPublicKey):
            if usage is not None and not usage.key_encipherment:
                raise EnvelopeRecipientUnusable("RSA encryption certificate lacks keyEncipherment")
            self._rsa_key = key
            self.kind = "rsa"
            self._ri_len = len(self._ktri(bytes(key.key_size // 8)))
        elif isinstance(key, Sm2PublicKey):
            if usage is not None and not usage.key_encipherment:
                raise EnvelopeRecipientUnusable("SM2 encryption certificate lacks keyEncipherment")
            self._sm2_key = key
            self.kind = "sm2"
            self._ri_len = sm2_recipient_info_max_length(self.rid)
        else:
            raise EnvelopeRecipientUnusable(f"cannot encrypt for a {type(key).__name__}")

    def _ktri(self, encrypted_key: bytes) -> bytes:
        return tlv(0x30, b"\x02\x01\x00" + self.rid + _OAEP_ALG + tlv(0x04, encrypted_key))

    def recipient_info(self, cek: bytes) -> bytes:
        """The DER RecipientInfo carrying ``cek`` for this recipient (fresh ephemeral key for EC)."""
        if self.kind == "rsa":
            return self._ktri(self._rsa_key.encrypt(cek, _OAEP))
        if self.kind == "sm2":
            return sm2_recipient_info(self.rid, self._sm2_key, cek)
        eph = ec.generate_private_key(ec.SECP256R1())
        z = eph.exchange(ec.ECDH(), self._ec_key)
        kek = hashlib.sha256(z + _KDF_SUFFIX).digest()
        point = eph.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        return self._kari_a + point + self._kari_b + aes_key_wrap(kek, cek)

    def encrypted_length(self, plaintext_length: int) -> int:
        """The DER length of the payload for ``plaintext_length`` bytes of plaintext (at most, for SM2)."""
        from .envelope_crypto import encrypted_length  # the payload's layout is that module's

        return encrypted_length(plaintext_length, [self])

    @property
    def recipient_info_length(self) -> int:
        """Its RecipientInfo's DER length (the longest an SM2 one can be)."""
        return self._ri_len


Recipients = Recipient | Sequence[Recipient]


def as_list(recipients: Recipients) -> list[Recipient]:
    """One recipient or several, as a non-empty list with each certificate once."""
    listed = [recipients] if isinstance(recipients, Recipient) else list(recipients)
    if not listed:
        raise EnvelopeRecipientUnusable("a payload needs at least one recipient")
    if len({r.rid for r in listed}) != len(listed):
        raise EnvelopeRecipientUnusable("a recipient certificate is listed twice")
    return listed


class DecryptionKey:
    """Our encryption key and certificate, prepared once (the issuer/serial we look for)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | Sm2PrivateKey,
                 certificate: x509.Certificate) -> None:
        pub = public_key_of(certificate)
        if type(pub) is not type(private_key.public_key()) or pub != private_key.public_key():
            raise EnvelopeRecipientUnusable("the private key does not belong to the encryption certificate")
        self.private_key = private_key
        self.certificate = certificate
        self.rid = _issuer_and_serial(certificate)
        self.kind = ("sm2" if isinstance(private_key, Sm2PrivateKey)
                     else "ec" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "rsa")


# Our encryption key, or our keys during a renewal's overlap (the current one first).
DecryptionKeys = DecryptionKey | Sequence[DecryptionKey]


def recipient_key(infos: bytes, keys: tuple[DecryptionKey, ...], cipher: ContentCipher) -> bytes:
    """The content key from the first RecipientInfo in ``infos`` naming one of ``keys``' certificates.
    Structural faults are ``ValueError`` (the caller's "malformed"), the rest typed envelope errors."""
    r = Reader(infos)
    while not r.at_end():
        tag = r.peek_tag()
        body = r.element(tag)
        for key in keys:
            if tag == 0xA1 and key.kind == "ec":
                cek = _kari(body, key)
            elif tag == 0x30 and key.kind in ("rsa", "sm2"):
                cek = _ktri(body, key)
            else:
                continue
            if cek is not None:
                if len(cek) != cipher.key_length:
                    raise EnvelopeDecryptionFailed(f"the content key is not {cipher.name}'s "
                                                   f"{cipher.key_length * 8} bits")
                return cek
    raise EnvelopeNotForMe("no RecipientInfo in the payload names our encryption certificate",
                           issuer_serial=keys[0].rid.hex()[:64])


def _kari(body: bytes, key: DecryptionKey) -> bytes | None:
    r = Reader(body)
    if r.element(0x02) != b"\x03":
        raise ValueError("KeyAgreeRecipientInfo version is not 3")
    orig = Reader(Reader(r.element(0xA0)).element(0xA1))
    if Reader(orig.element(0x30)).element(0x06) != OID_EC_PUBLIC_KEY[2:]:
        raise EnvelopeUnsupportedAlgorithm("originator key is not an EC public key")
    bits = orig.element(0x03)
    ukm = r.element(0xA1) if r.peek_tag() == 0xA1 else None
    if r.element(0x30) != _KARI_KEA[2:]:
        raise EnvelopeUnsupportedAlgorithm("key agreement is not dhSinglePass-stdDH-sha256kdf with aes256-wrap")
    keys = Reader(r.element(0x30))
    r.end()
    while not keys.at_end():
        rek = Reader(keys.element(0x30))
        rid = rek.raw(0x30) if rek.peek_tag() == 0x30 else rek.raw(rek.peek_tag())
        wrapped = rek.element(0x04)
        if rid != key.rid:
            continue
        if bits[:1] != b"\x00":
            raise ValueError("originator public key BIT STRING has unused bits")
        try:
            eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bits[1:])
            z = key.private_key.exchange(ec.ECDH(), eph)
        except ValueError:
            raise EnvelopeDecryptionFailed("originator public key is not a valid P-256 point") from None
        info = _SHARED_INFO if ukm is None else _shared_info_with_ukm(Reader(ukm).element(0x04))
        kek = hashlib.sha256(z + (1).to_bytes(4, "big") + info).digest()
        return _unwrap(kek, wrapped)
    return None


def _ktri(body: bytes, key: DecryptionKey) -> bytes | None:
    r = Reader(body)
    if r.element(0x02) != b"\x00":
        return None  # v2 names the recipient by key identifier; we write and read issuer/serial
    if r.raw(0x30) != key.rid:
        return None
    algorithm = r.raw(0x30)
    if key.kind == "sm2":
        encrypted = r.element(0x04)
        r.end()
        return sm2_unwrap(algorithm, encrypted, key.private_key)
    if algorithm != _OAEP_ALG:
        raise EnvelopeUnsupportedAlgorithm("RSA key transport must be RSAES-OAEP with SHA-256 and MGF1-SHA-256")
    encrypted = r.element(0x04)
    r.end()
    try:
        cek = key.private_key.decrypt(encrypted, _OAEP)
    except ValueError:
        raise EnvelopeDecryptionFailed("RSA-OAEP key transport failed with our key") from None
    return cek


def _shared_info_with_ukm(ukm: bytes) -> bytes:
    return tlv(0x30, _AES_WRAP_ALG + tlv(0xA0, tlv(0x04, ukm)) + tlv(0xA2, tlv(0x04, (256).to_bytes(4, "big"))))


def _unwrap(kek: bytes, wrapped: bytes) -> bytes:
    try:
        cek = aes_key_unwrap(kek, wrapped)
    except (InvalidUnwrap, ValueError):
        raise EnvelopeDecryptionFailed("the content key does not unwrap with our key") from None
    if len(cek) != CEK_LEN:
        raise EnvelopeDecryptionFailed("content key is not 256 bits")
    return cek
