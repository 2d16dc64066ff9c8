"""End-to-end payload encryption: CMS AuthEnvelopedData (RFC 5083/5084) with AES-256-GCM, streamed.

Why CMS: ``openssl cms -decrypt`` (OpenSSL ≥ 3.0) opens what we write, so an operator can recover a
payload with the node's encryption key and no gwx code, and the format is a standard with a reviewed
key-agreement design. What we write (DER, definite lengths)::

    ContentInfo { id-ct-authEnvelopedData,
      [0] AuthEnvelopedData { version 0,
            recipientInfos SET { one RecipientInfo per destination node, DER-sorted },
            authEncryptedContentInfo { id-data, aes256-GCM { nonce (12 bytes), icvLen 16 },
                                        [0] IMPLICIT ciphertext },
            mac OCTET STRING (the 16-byte GCM tag) } }

One content key encrypts the payload once, however many destination nodes a bundle has (issue 8
§4: a 通知 to many nodes is encrypted once); the key is wrapped for each of them. A reader looks
for the RecipientInfo naming its own certificate by issuer and serial among them all. RecipientInfo
by key type of the destination's encryption certificate:

- EC P-256 → KeyAgreeRecipientInfo v3 (RFC 5753): an ephemeral originator key (id-ecPublicKey,
  uncompressed point), dhSinglePass-stdDH-sha256kdf-scheme with aes256-wrap, the recipient named
  by issuer and serial; KEK = ANSI X9.63 KDF(SHA-256, Z, ECC-CMS-SharedInfo{aes256-wrap, [2] 256}).
- RSA → KeyTransRecipientInfo v0 with RSAES-OAEP (SHA-256, MGF1-SHA-256). PKCS#1 v1.5 key
  transport is refused on reading (padding-oracle history).

Streaming: GCM ciphertext is as long as the plaintext, so every DER length is known from the
plaintext length (and the recipients' RecipientInfo lengths, fixed per certificate) before the
first byte is encrypted. The bytes before the ciphertext (the *prefix*)
and after it (the tag) are assembled by hand from precomputed fragments; asn1crypto is used once
per recipient certificate (its issuer/serial), never per byte. Decryption is a push parser
(:class:`PayloadDecryptor`): it buffers the prefix up to a hard cap, then passes ciphertext through
and returns plaintext chunk by chunk; only :meth:`PayloadDecryptor.finalize` (which checks the tag)
says the plaintext is genuine. Callers write plaintext to a temporary file and keep it only when
``finalize`` returns. Memory is bounded by the chunk size plus the prefix cap, whatever the payload.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from ._der import NeedMore, Reader, length_bytes, tlv
from .errors import (
    EnvelopeDecryptionFailed,
    EnvelopeMalformedPayload,
    EnvelopeNotForMe,
    EnvelopeRecipientUnusable,
    EnvelopeTagMismatch,
    EnvelopeUnsupportedAlgorithm,
)

# Object identifiers, DER-encoded once (tag 06 included).
OID_AUTH_ENVELOPED = bytes.fromhex("060b2a864886f70d0109100117")  # 1.2.840.113549.1.9.16.1.23
OID_DATA = bytes.fromhex("06092a864886f70d010701")  # 1.2.840.113549.1.7.1
OID_AES256_GCM = bytes.fromhex("060960864801650304012e")  # 2.16.840.1.101.3.4.1.46
OID_AES256_WRAP = bytes.fromhex("060960864801650304012d")  # 2.16.840.1.101.3.4.1.45
OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
OID_ECDH_SHA256_KDF = bytes.fromhex("06062b8104010b01")  # 1.3.132.1.11.1
OID_RSAES_OAEP = bytes.fromhex("06092a864886f70d010107")  # 1.2.840.113549.1.1.7
OID_SHA256 = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1
OID_MGF1 = bytes.fromhex("06092a864886f70d010108")  # 1.2.840.113549.1.1.8

NONCE_LEN = 12
TAG_LEN = 16
CEK_LEN = 32
DEFAULT_CHUNK = 1 << 20
# Everything before the ciphertext, RecipientInfos included: ~200 bytes each for P-256, ~600 for
# RSA-3072, so a payload for a thousand destination nodes still fits.
DEFAULT_PREFIX_CAP = 1024 * 1024

_AES_WRAP_ALG = tlv(0x30, OID_AES256_WRAP)
# ECC-CMS-SharedInfo { keyInfo aes256-wrap, suppPubInfo [2] { OCTET STRING 00000100 (256 bits) } }
_SHARED_INFO = tlv(0x30, _AES_WRAP_ALG + tlv(0xA2, tlv(0x04, (256).to_bytes(4, "big"))))
_KDF_SUFFIX = (1).to_bytes(4, "big") + _SHARED_INFO
_KARI_KEA = tlv(0x30, OID_ECDH_SHA256_KDF + _AES_WRAP_ALG)
_SHA256_ALG = tlv(0x30, OID_SHA256)
_OAEP_ALG = tlv(0x30, OID_RSAES_OAEP + tlv(0x30, tlv(0xA0, _SHA256_ALG)
                                          + tlv(0xA1, tlv(0x30, OID_MGF1 + _SHA256_ALG))))
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_GCM_PARAMS_HEAD = bytes([0x30, 17, 0x04, NONCE_LEN])  # SEQUENCE { OCTET STRING nonce, INTEGER 16 }
_ICV_LEN = bytes([0x02, 0x01, TAG_LEN])
_MAC_HEAD = bytes([0x04, TAG_LEN])


def _issuer_and_serial(cert: x509.Certificate) -> bytes:
    """DER IssuerAndSerialNumber, with the issuer Name bytes exactly as they sit in the certificate."""
    from asn1crypto import x509 as ax509  # only here: once per certificate, not per envelope

    acert = ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    return tlv(0x30, acert.issuer.dump() + acert["tbs_certificate"]["serial_number"].dump())


@dataclass(frozen=True)
class SealedPayload:
    """What :func:`encrypt_stream` wrote: its length and SHA-256 (what the header signs)."""

    length: int
    sha256: bytes


class Recipient:
    """A destination node's encryption certificate, prepared once and reused for every envelope."""

    def __init__(self, certificate: x509.Certificate) -> None:
        key = certificate.public_key()
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
        else:
            raise EnvelopeRecipientUnusable(f"cannot encrypt for a {type(key).__name__}")

    def _ktri(self, encrypted_key: bytes) -> bytes:
        return tlv(0x30, b"\x02\x01\x00" + self.rid + _OAEP_ALG + tlv(0x04, encrypted_key))

    def recipient_info(self, cek: bytes) -> bytes:
        """The DER RecipientInfo carrying ``cek`` for this recipient (fresh ephemeral key for EC)."""
        if self.kind == "rsa":
            return self._ktri(self._rsa_key.encrypt(cek, _OAEP))
        eph = ec.generate_private_key(ec.SECP256R1())
        z = eph.exchange(ec.ECDH(), self._ec_key)
        kek = hashlib.sha256(z + _KDF_SUFFIX).digest()
        point = eph.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        return self._kari_a + point + self._kari_b + aes_key_wrap(kek, cek)

    def encrypted_length(self, plaintext_length: int) -> int:
        """The exact DER length of the payload for ``plaintext_length`` bytes of plaintext."""
        return encrypted_length(plaintext_length, [self])

    @property
    def recipient_info_length(self) -> int:
        return self._ri_len


Recipients = Recipient | Sequence[Recipient]


def _as_list(recipients: Recipients) -> list[Recipient]:
    """One recipient or several, as a non-empty list with each certificate once."""
    listed = [recipients] if isinstance(recipients, Recipient) else list(recipients)
    if not listed:
        raise EnvelopeRecipientUnusable("a payload needs at least one recipient")
    if len({r.rid for r in listed}) != len(listed):
        raise EnvelopeRecipientUnusable("a recipient certificate is listed twice")
    return listed


def encrypted_length(plaintext_length: int, recipients: Recipients) -> int:
    """The exact DER length of the payload for ``plaintext_length`` bytes encrypted for ``recipients``."""
    infos = bytes(sum(r.recipient_info_length for r in _as_list(recipients)))
    return len(_prefix(infos, bytes(NONCE_LEN), plaintext_length)) + plaintext_length + 2 + TAG_LEN


def _recipient_infos(recipients: list[Recipient], cek: bytes) -> bytes:
    """The content of the recipientInfos SET OF: every recipient's RecipientInfo, sorted as DER wants."""
    return b"".join(sorted(r.recipient_info(cek) for r in recipients))


def _prefix(recipient_infos: bytes, nonce: bytes, length: int) -> bytes:
    alg = tlv(0x30, OID_AES256_GCM + _GCM_PARAMS_HEAD + nonce + _ICV_LEN)
    eci_head_body = OID_DATA + alg
    content_head = _header(0x80, length)
    eci_len = len(eci_head_body) + len(content_head) + length
    eci_head = _header(0x30, eci_len) + eci_head_body + content_head
    infos = tlv(0x31, recipient_infos)
    aed_len = 3 + len(infos) + len(_header(0x30, eci_len)) + eci_len + 2 + TAG_LEN
    aed_head = _header(0x30, aed_len) + b"\x02\x01\x00" + infos
    explicit_len = len(_header(0x30, aed_len)) + aed_len
    ci_len = len(OID_AUTH_ENVELOPED) + len(_header(0xA0, explicit_len)) + explicit_len
    return (_header(0x30, ci_len) + OID_AUTH_ENVELOPED + _header(0xA0, explicit_len)
            + aed_head + eci_head)


def _header(tag: int, length: int) -> bytes:
    return bytes([tag]) + length_bytes(length)


# ---- encryption ---------------------------------------------------------------------------------
def encrypt_bytes(plaintext: bytes, recipients: Recipients) -> bytes:
    """The whole payload for a small plaintext (receipts, notices, benchmarks), for one recipient or
    several (each can open it)."""
    listed = _as_list(recipients)
    cek, nonce = AESGCM.generate_key(256), os.urandom(NONCE_LEN)
    sealed = AESGCM(cek).encrypt(nonce, plaintext, None)
    return b"".join((_prefix(_recipient_infos(listed, cek), nonce, len(plaintext)),
                     sealed[:-TAG_LEN], _MAC_HEAD, sealed[-TAG_LEN:]))


def encrypt_stream(src: BinaryIO, dst: BinaryIO, length: int, recipients: Recipients,
                   chunk_size: int = DEFAULT_CHUNK) -> SealedPayload:
    """Encrypt exactly ``length`` bytes from ``src`` into ``dst`` for one recipient or several;
    memory stays at one chunk (plus the RecipientInfos)."""
    if length < 0:
        raise ValueError("length must not be negative")
    listed = _as_list(recipients)
    cek, nonce = AESGCM.generate_key(256), os.urandom(NONCE_LEN)
    enc = Cipher(algorithms.AES(cek), modes.GCM(nonce)).encryptor()
    digest = hashlib.sha256()
    written = 0

    def out(data: bytes) -> None:
        nonlocal written
        digest.update(data)
        dst.write(data)
        written += len(data)

    out(_prefix(_recipient_infos(listed, cek), nonce, length))
    remaining = length
    while remaining:
        chunk = src.read(min(chunk_size, remaining))
        if not chunk:
            raise EnvelopeMalformedPayload(f"plaintext source ended {remaining} bytes early",
                                           code="ENV_SOURCE_TRUNCATED")
        remaining -= len(chunk)
        out(enc.update(chunk))
    enc.finalize()
    out(_MAC_HEAD + enc.tag)
    return SealedPayload(written, digest.digest())


# ---- decryption ---------------------------------------------------------------------------------
class DecryptionKey:
    """Our encryption key and certificate, prepared once (the issuer/serial we look for)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
                 certificate: x509.Certificate) -> None:
        pub = certificate.public_key()
        if pub != private_key.public_key():
            raise EnvelopeRecipientUnusable("the private key does not belong to the encryption certificate")
        self.private_key = private_key
        self.certificate = certificate
        self.rid = _issuer_and_serial(certificate)
        self.kind = "ec" if isinstance(private_key, ec.EllipticCurvePrivateKey) else "rsa"


# Our encryption key, or our keys during a renewal's overlap (the current one first).
DecryptionKeys = DecryptionKey | Sequence[DecryptionKey]


def _malformed(what: str) -> EnvelopeMalformedPayload:
    return EnvelopeMalformedPayload(f"payload is not a gwx AuthEnvelopedData: {what}")


class PayloadDecryptor:
    """Push decryptor: ``update(chunk) -> plaintext``, then ``finalize()`` verifies the GCM tag.

    ``expected_length`` (the payload length from the frame) makes the outer DER length checked
    against it. Plaintext returned before ``finalize`` succeeds is unauthenticated.
    """

    def __init__(self, key: DecryptionKeys, expected_length: int | None = None,
                 prefix_cap: int = DEFAULT_PREFIX_CAP) -> None:
        # Several keys while a renewed node keeps its previous encryption key (the current first):
        # an envelope sealed for the old certificate by a peer still caching it opens too.
        self._keys = (key,) if isinstance(key, DecryptionKey) else tuple(key)
        if not self._keys:
            raise ValueError("a decryptor needs at least one key")
        self._expected = expected_length
        self._cap = prefix_cap
        self._buf = bytearray()
        self._state = "prefix"
        self._remaining = 0
        self._dec = None
        self._finish: Callable[[bytes], None] | None = None
        self.plaintext_length = 0

    def update(self, data: bytes) -> bytes:
        if self._state == "prefix":
            # Parse in place when the prefix arrives whole (the common case): no copy of the payload.
            if self._buf:
                self._buf += data
                data = self._buf
            consumed = self._try_prefix(data)
            if consumed is None:
                if not self._buf:
                    self._buf = bytearray(data)
                if len(self._buf) > self._cap:
                    raise _malformed(f"no ciphertext within the first {self._cap} bytes")
                return b""
            data, self._buf = memoryview(data)[consumed:], bytearray()
        if self._state == "body":
            take = min(self._remaining, len(data))
            out = self._dec.update(data[:take]) if take else b""
            self._remaining -= take
            self.plaintext_length += take
            if self._remaining == 0:
                self._state = "tail"
            self._buf += data[take:]
            if len(self._buf) > 2 + TAG_LEN:
                raise _malformed("bytes after the authentication tag")
            return out
        self._buf += data
        if len(self._buf) > 2 + TAG_LEN:
            raise _malformed("bytes after the authentication tag")
        return b""

    def finalize(self) -> None:
        """Raise unless the whole payload arrived and its GCM tag verifies."""
        if self._state != "tail" or len(self._buf) != 2 + TAG_LEN:
            raise _malformed("payload ends before its authentication tag")
        if self._buf[:2] != _MAC_HEAD:
            raise _malformed("the mac is not a 16-byte OCTET STRING")
        try:
            self._dec.finalize_with_tag(bytes(self._buf[2:]))
        except Exception:  # cryptography raises InvalidTag
            raise EnvelopeTagMismatch("AES-GCM tag does not verify: the payload was altered") from None
        self._state = "done"

    def _try_prefix(self, data: bytes | bytearray) -> int | None:
        """Parse the prefix from ``data``: the number of prefix bytes, or None when more are needed."""
        r = Reader(data, partial=True)
        try:
            ends = [r.header(0x30)]  # ContentInfo
            ends[0] += r.pos
            if self._expected is not None and ends[0] != self._expected:
                raise _malformed(f"DER length {ends[0]} differs from the frame's {self._expected}")
            if r.element(0x06) != OID_AUTH_ENVELOPED[2:]:
                raise EnvelopeUnsupportedAlgorithm("payload is not CMS AuthEnvelopedData")
            ends.append(r.header(0xA0) + r.pos)
            ends.append(r.header(0x30) + r.pos)
            if r.element(0x02) != b"\x00":
                raise _malformed("AuthEnvelopedData version is not 0")
            if r.peek_tag() == 0xA0:  # originatorInfo: certificates we do not need
                r.element(0xA0)
            infos = r.element(0x31)
            eci_end = r.header(0x30) + r.pos
            if r.element(0x06) != OID_DATA[2:]:
                raise EnvelopeUnsupportedAlgorithm("encrypted content type is not id-data")
            alg = Reader(r.element(0x30))
            if r.peek_tag() != 0x80:
                raise EnvelopeUnsupportedAlgorithm("encrypted content must be one definite-length primitive")
            length = r.header(0x80)
            if not (ends[0] == ends[1] == ends[2] == eci_end + 2 + TAG_LEN == r.pos + length + 2 + TAG_LEN):
                raise _malformed("nested lengths disagree (or unsupported authenticated attributes)")
            if alg.element(0x06) != OID_AES256_GCM[2:]:
                raise EnvelopeUnsupportedAlgorithm("content encryption is not AES-256-GCM")
            params = Reader(alg.element(0x30))
            alg.end()
            nonce = params.element(0x04)
            icv = params.element(0x02) if not params.at_end() else b"\x0c"
            params.end()
            if len(nonce) != NONCE_LEN or icv != bytes([TAG_LEN]):
                raise EnvelopeUnsupportedAlgorithm("GCM parameters must be a 12-byte nonce and a 16-byte tag")
        except NeedMore:
            return None
        except ValueError as exc:  # Reader's structural complaints
            raise _malformed(str(exc)) from None
        try:
            cek = self._recipient_key(infos)
        except ValueError as exc:
            raise _malformed(f"recipient info: {exc}") from None
        self._remaining = length
        self._dec = Cipher(algorithms.AES(cek), modes.GCM(nonce)).decryptor()
        self._state = "body" if length else "tail"
        return r.pos

    def _recipient_key(self, infos: bytes) -> bytes:
        r = Reader(infos)
        while not r.at_end():
            tag = r.peek_tag()
            body = r.element(tag)
            for key in self._keys:
                if tag == 0xA1 and key.kind == "ec":
                    cek = self._kari(body, key)
                elif tag == 0x30 and key.kind == "rsa":
                    cek = self._ktri(body, key)
                else:
                    continue
                if cek is not None:
                    return cek
        raise EnvelopeNotForMe("no RecipientInfo in the payload names our encryption certificate",
                               issuer_serial=self._keys[0].rid.hex()[:64])

    def _kari(self, body: bytes, key: DecryptionKey) -> bytes | None:
        r = Reader(body)
        if r.element(0x02) != b"\x03":
            raise _malformed("KeyAgreeRecipientInfo version is not 3")
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
                raise _malformed("originator public key BIT STRING has unused bits")
            try:
                eph = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bits[1:])
                z = key.private_key.exchange(ec.ECDH(), eph)
            except ValueError:
                raise EnvelopeDecryptionFailed("originator public key is not a valid P-256 point") from None
            info = _SHARED_INFO if ukm is None else _shared_info_with_ukm(Reader(ukm).element(0x04))
            kek = hashlib.sha256(z + (1).to_bytes(4, "big") + info).digest()
            return _unwrap(kek, wrapped)
        return None

    def _ktri(self, body: bytes, key: DecryptionKey) -> bytes | None:
        r = Reader(body)
        if r.element(0x02) != b"\x00":
            return None  # v2 names the recipient by key identifier; we write and read issuer/serial
        if r.raw(0x30) != key.rid:
            return None
        if r.raw(0x30) != _OAEP_ALG:
            raise EnvelopeUnsupportedAlgorithm("RSA key transport must be RSAES-OAEP with SHA-256 and MGF1-SHA-256")
        encrypted = r.element(0x04)
        r.end()
        try:
            cek = key.private_key.decrypt(encrypted, _OAEP)
        except ValueError:
            raise EnvelopeDecryptionFailed("RSA-OAEP key transport failed with our key") from None
        if len(cek) != CEK_LEN:
            raise EnvelopeDecryptionFailed("content key is not 256 bits")
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


def decrypt_bytes(payload: bytes, key: DecryptionKeys) -> bytes:
    """Decrypt a whole payload held in memory; raises unless the tag verifies."""
    dec = PayloadDecryptor(key, expected_length=len(payload))
    out = dec.update(payload)
    dec.finalize()
    return out


def decrypt_stream(src: BinaryIO, dst: BinaryIO, key: DecryptionKeys, length: int | None = None,
                   chunk_size: int = DEFAULT_CHUNK) -> int:
    """Decrypt ``src`` (``length`` bytes, or to EOF) into ``dst``; returns the plaintext length.

    On any exception ``dst`` holds unauthenticated bytes: discard it.
    """
    dec = PayloadDecryptor(key, expected_length=length)
    remaining = length
    while remaining is None or remaining > 0:
        chunk = src.read(chunk_size if remaining is None else min(chunk_size, remaining))
        if not chunk:
            break
        if remaining is not None:
            remaining -= len(chunk)
        dst.write(dec.update(chunk))
    dec.finalize()
    return dec.plaintext_length
