"""End-to-end payload encryption: CMS AuthEnvelopedData (RFC 5083/5084) with AES-256-GCM or SM4-GCM, streamed.

Why CMS: ``openssl cms -decrypt`` (OpenSSL ≥ 3.0) opens what we write, so an operator can recover a
payload with the node's encryption key and no gwx code, and the format is a standard with a reviewed
key-agreement design. What we write (DER, definite lengths)::

    ContentInfo { id-ct-authEnvelopedData,
      [0] AuthEnvelopedData { version 0,
            recipientInfos SET { one RecipientInfo per destination node, DER-sorted },
            authEncryptedContentInfo { id-data, aes256-GCM or sm4-GCM { nonce (12 bytes), icvLen 16 },
                                        [0] IMPLICIT ciphertext },
            mac OCTET STRING (the 16-byte GCM tag) } }

One content key encrypts the payload once, however many destination nodes a bundle has (issue 8
§4: a 通知 to many nodes is encrypted once); the key is wrapped for each of them. A reader looks
for the RecipientInfo naming its own certificate by issuer and serial among them all. RecipientInfo
by key type of the destination's encryption certificate (written and read by
:mod:`exchange_protocol.envelope_recipients`):

- EC P-256 → KeyAgreeRecipientInfo v3 (RFC 5753): an ephemeral originator key (id-ecPublicKey,
  uncompressed point), dhSinglePass-stdDH-sha256kdf-scheme with aes256-wrap, the recipient named
  by issuer and serial; KEK = ANSI X9.63 KDF(SHA-256, Z, ECC-CMS-SharedInfo{aes256-wrap, [2] 256}).
- RSA → KeyTransRecipientInfo v0 with RSAES-OAEP (SHA-256, MGF1-SHA-256). PKCS#1 v1.5 key
  transport is refused on reading (padding-oracle history).
- SM2 (a 国密 network) → KeyTransRecipientInfo v0 with SM2 encryption of a 16-byte SM4 key, and the
  content is SM4-GCM (:mod:`exchange_protocol.envelope_ciphers` says what and why). Its
  RecipientInfo's length varies by a byte or two (SM2Cipher's INTEGER coordinates), so
  :func:`encrypted_length` is exact for P-256 and RSA destinations and an upper bound with SM2 ones.

Streaming: GCM ciphertext is as long as the plaintext, so every DER length is known from the
plaintext length (and the recipients' RecipientInfos, made before any content) before the
first byte is encrypted. The bytes before the ciphertext (the *prefix*)
and after it (the tag) are assembled by hand from precomputed fragments; asn1crypto is used once
per recipient certificate (its issuer/serial), never per byte. Decryption is a push parser
(:class:`PayloadDecryptor`): it buffers the prefix up to a hard cap, then passes ciphertext through
and returns plaintext chunk by chunk; only :meth:`PayloadDecryptor.finalize` (which checks the tag)
says the plaintext is genuine. Callers write plaintext to a temporary file and keep it only when
``finalize`` returns. Memory is bounded by the chunk size plus the prefix cap, whatever the payload.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from . import digests
from ._der import NeedMore, Reader, length_bytes, tlv
from .envelope_ciphers import ContentCipher, cipher_by_oid, cipher_for
from .envelope_recipients import (  # noqa: F401  (Recipient, DecryptionKey… are this module's API too)
    CEK_LEN,
    DecryptionKey,
    DecryptionKeys,
    Recipient,
    Recipients,
    as_list,
    recipient_key,
)
from .errors import EnvelopeMalformedPayload, EnvelopeTagMismatch, EnvelopeUnsupportedAlgorithm

# Object identifiers, DER-encoded once (tag 06 included).
OID_AUTH_ENVELOPED = bytes.fromhex("060b2a864886f70d0109100117")  # 1.2.840.113549.1.9.16.1.23
OID_DATA = bytes.fromhex("06092a864886f70d010701")  # 1.2.840.113549.1.7.1
NONCE_LEN = 12
TAG_LEN = 16
DEFAULT_CHUNK = 1 << 20
# Everything before the ciphertext, RecipientInfos included: ~200 bytes each for P-256, ~600 for
# RSA-3072, so a payload for a thousand destination nodes still fits.
DEFAULT_PREFIX_CAP = 1024 * 1024

_GCM_PARAMS_HEAD = bytes([0x30, 17, 0x04, NONCE_LEN])  # SEQUENCE { OCTET STRING nonce, INTEGER 16 }
_ICV_LEN = bytes([0x02, 0x01, TAG_LEN])
_MAC_HEAD = bytes([0x04, TAG_LEN])


@dataclass(frozen=True)
class SealedPayload:
    """What :func:`encrypt_stream` wrote: its length and digest (what the header signs): SHA-256, or
    SM3 for a 国密 cipher (:mod:`exchange_protocol.digests`)."""

    length: int
    digest: bytes


def encrypted_length(plaintext_length: int, recipients: Recipients) -> int:
    """The DER length of the payload for ``plaintext_length`` bytes encrypted for ``recipients``: exact for
    P-256 and RSA destinations, an upper bound (by a few bytes) for SM2 ones."""
    listed = as_list(recipients)
    infos = bytes(sum(r.recipient_info_length for r in listed))
    cipher = cipher_for({r.kind for r in listed})
    return len(_prefix(infos, bytes(NONCE_LEN), plaintext_length, cipher)) + plaintext_length + 2 + TAG_LEN


def _cipher_of(recipients: list[Recipient]) -> ContentCipher:
    return cipher_for({r.kind for r in recipients})


def _recipient_infos(recipients: list[Recipient], cek: bytes) -> bytes:
    """The content of the recipientInfos SET OF: every recipient's RecipientInfo, sorted as DER wants."""
    return b"".join(sorted(r.recipient_info(cek) for r in recipients))


def _prefix(recipient_infos: bytes, nonce: bytes, length: int, cipher: ContentCipher) -> bytes:
    alg = tlv(0x30, cipher.oid + _GCM_PARAMS_HEAD + nonce + _ICV_LEN)
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
    listed = as_list(recipients)
    cipher = _cipher_of(listed)
    cek, nonce = os.urandom(cipher.key_length), os.urandom(NONCE_LEN)
    enc = cipher.encryptor(cek, nonce)
    ciphertext = enc.update(plaintext) + enc.finalize()
    return b"".join((_prefix(_recipient_infos(listed, cek), nonce, len(plaintext), cipher),
                     ciphertext, _MAC_HEAD, enc.tag))


def encrypt_stream(src: BinaryIO, dst: BinaryIO, length: int, recipients: Recipients,
                   chunk_size: int = DEFAULT_CHUNK) -> SealedPayload:
    """Encrypt exactly ``length`` bytes from ``src`` into ``dst`` for one recipient or several;
    memory stays at one chunk (plus the RecipientInfos)."""
    if length < 0:
        raise ValueError("length must not be negative")
    listed = as_list(recipients)
    cipher = _cipher_of(listed)
    cek, nonce = os.urandom(cipher.key_length), os.urandom(NONCE_LEN)
    enc = cipher.encryptor(cek, nonce)
    digest = digests.new(digests.for_profile(cipher.profile))
    written = 0

    def out(data: bytes) -> None:
        nonlocal written
        digest.update(data)
        dst.write(data)
        written += len(data)

    out(_prefix(_recipient_infos(listed, cek), nonce, length, cipher))
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
        self._cipher: ContentCipher | None = None
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
            raise EnvelopeTagMismatch(f"{self._cipher.name} tag does not verify: the payload was altered",
                                      cipher=self._cipher.name) from None
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
            cipher = cipher_by_oid(alg.element(0x06), {k.kind for k in self._keys})
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
            cek = recipient_key(infos, self._keys, cipher)
        except ValueError as exc:
            raise _malformed(f"recipient info: {exc}") from None
        self._remaining = length
        self._cipher = cipher
        self._dec = cipher.decryptor(cek, nonce)
        self._state = "body" if length else "tail"
        return r.pos

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
