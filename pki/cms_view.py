"""What verifying a CMS SignedData needs from it, read straight from DER in the common case.

:mod:`pki.cms` verifies from a :class:`SignedDataView`: the eContentType, the encapsulated content,
the certificates as the bytes they arrived as, and per signer its identifier, algorithms, signature
value, the signed attributes as signed, and the four attributes gwx reads. Two readers fill it:

* :func:`read_common` walks the DER by hand. It handles exactly the shape gwx and most producers
  write — definite minimal lengths, certificates only, signed attributes limited to contentType,
  messageDigest, signingTime and signingCertificateV2 (default hash), each once with one value,
  algorithm parameters absent or NULL — and returns ``None`` for anything else, never an error.
  It costs a few microseconds where asn1crypto's lazy objects cost a few hundred.
* the general reader in :mod:`pki.cms` (asn1crypto) handles everything else (BER, other attributes,
  other certificate formats) and is the one that raises the typed errors for malformed input.

So the fast path cannot accept what the general one refuses: whatever it does not recognise goes
to the general reader. OIDs, times and integers are decoded by asn1crypto in both paths (cached
per encoding), so both produce the same values.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from asn1crypto import algos, cms, core

_OID_DATA_SIGNED = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
_OID_GBT_SIGNED = core.ObjectIdentifier("1.2.156.10197.6.1.4.2.2").dump()  # GB/T 35275 signedData (SM2)
_ATTR_CONTENT_TYPE = core.ObjectIdentifier("1.2.840.113549.1.9.3").dump()
_ATTR_MESSAGE_DIGEST = core.ObjectIdentifier("1.2.840.113549.1.9.4").dump()
_ATTR_SIGNING_TIME = core.ObjectIdentifier("1.2.840.113549.1.9.5").dump()
_ATTR_SIGNING_CERT_V2 = core.ObjectIdentifier("1.2.840.113549.1.9.16.2.47").dump()
_NULL = b"\x05\x00"


@dataclass(frozen=True)
class AttributesView:
    content_type: str | None  # dotted OID
    message_digest: bytes | None
    signing_time: dt.datetime | None
    ess: tuple[str, bytes] | None  # (hash name, certHash) of the first ESSCertIDv2, if the attribute is there


@dataclass(frozen=True)
class SignerView:
    issuer: bytes | None  # DER Name of the IssuerAndSerialNumber identifier
    serial: int | None
    key_id: bytes | None  # or the SubjectKeyIdentifier identifier
    digest_algorithm: str  # asn1crypto name ("sha256") or dotted OID
    signature_algorithm: str  # dotted OID
    signature: bytes
    signed_bytes: bytes | None  # the signed attributes as signed (universal SET); None without any
    attributes: AttributesView | None


@dataclass(frozen=True)
class SignedDataView:
    content_type: str  # dotted OID of eContentType
    content: bytes | None
    certificates: tuple[bytes, ...]  # DER, as received
    signers: tuple[SignerView, ...]


class _Uncommon(Exception):
    """Not the shape read_common handles; the general reader decides."""


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag byte, start of contents, end of contents) of the DER TLV at ``pos``; minimal lengths only."""
    if pos + 2 > end:
        raise _Uncommon
    tag, first = buf[pos], buf[pos + 1]
    if tag & 0x1F == 0x1F:  # high tag numbers: not in SignedData
        raise _Uncommon
    if first < 0x80:
        start = pos + 2
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + 2 + count > end:  # indefinite (BER) or absurd
            raise _Uncommon
        length = int.from_bytes(buf[pos + 2:pos + 2 + count], "big")
        if length < 0x80 or length >> (8 * (count - 1)) == 0:  # not the minimal encoding
            raise _Uncommon
        start = pos + 2 + count
    if start + length > end:
        raise _Uncommon
    return tag, start, start + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, TLV start, contents start, contents end) of each TLV in ``buf[start:end]``."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = _tlv(buf, pos, end)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def _expect(item: tuple[int, int, int, int], tag: int) -> tuple[int, int, int, int]:
    if item[0] != tag:
        raise _Uncommon
    return item


@functools.lru_cache(maxsize=256)
def _dotted(oid_der: bytes) -> str:
    return core.ObjectIdentifier.load(oid_der).dotted


@functools.lru_cache(maxsize=64)
def _digest_name(oid_der: bytes) -> str:
    return algos.DigestAlgorithmId.load(oid_der).native


def _algorithm_oid(buf: bytes, item: tuple[int, int, int, int]) -> bytes:
    """The OID DER of an AlgorithmIdentifier whose parameters are absent or NULL."""
    _, _, start, end = _expect(item, 0x30)
    parts = _children(buf, start, end)
    if not parts or parts[0][0] != 0x06 or len(parts) > 2 or (len(parts) == 2 and buf[parts[1][1]:end] != _NULL):
        raise _Uncommon
    return buf[parts[0][1]:parts[0][3]]


def read_common(cms_der: bytes) -> SignedDataView | None:
    """The view of a SignedData in the common shape, or ``None`` (then use the general reader)."""
    try:
        return _read(bytes(cms_der))
    except (_Uncommon, ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None


def _read(buf: bytes) -> SignedDataView:
    tag, start, end = _tlv(buf, 0, len(buf))
    if tag != 0x30 or end != len(buf):
        raise _Uncommon
    info = _children(buf, start, end)
    if len(info) != 2 or buf[info[0][1]:info[0][3]] not in (_OID_DATA_SIGNED, _OID_GBT_SIGNED):
        raise _Uncommon
    inner = _children(buf, *_expect(info[1], 0xA0)[2:])
    if len(inner) != 1:
        raise _Uncommon
    fields = _children(buf, *_expect(inner[0], 0x30)[2:])
    if len(fields) < 4:
        raise _Uncommon
    _expect(fields[0], 0x02)  # version
    _expect(fields[1], 0x31)  # digestAlgorithms
    content_type, content = _encap(buf, _expect(fields[2], 0x30))
    rest = fields[3:]
    certificates: tuple[bytes, ...] = ()
    if rest[0][0] == 0xA0:
        certificates = tuple(buf[pos:cend] for _, pos, _, cend in
                             (_expect(c, 0x30) for c in _children(buf, rest[0][2], rest[0][3])))
        rest = rest[1:]
    if rest and rest[0][0] == 0xA1:  # crls: not read by verification
        rest = rest[1:]
    if len(rest) != 1:
        raise _Uncommon
    signers = tuple(_signer(buf, _expect(si, 0x30)) for si in _children(buf, *_expect(rest[0], 0x31)[2:]))
    return SignedDataView(content_type, content, certificates, signers)


def _encap(buf: bytes, item: tuple[int, int, int, int]) -> tuple[str, bytes | None]:
    parts = _children(buf, item[2], item[3])
    if not parts or len(parts) > 2 or parts[0][0] != 0x06:
        raise _Uncommon
    content_type = _dotted(buf[parts[0][1]:parts[0][3]])
    if len(parts) == 1:
        return content_type, None
    octets = _children(buf, *_expect(parts[1], 0xA0)[2:])
    if len(octets) != 1:
        raise _Uncommon
    _, _, start, end = _expect(octets[0], 0x04)  # a constructed (BER) OCTET STRING goes the general way
    return content_type, buf[start:end]


def _signer(buf: bytes, item: tuple[int, int, int, int]) -> SignerView:
    fields = _children(buf, item[2], item[3])
    if len(fields) < 5:
        raise _Uncommon
    _expect(fields[0], 0x02)  # version
    issuer = serial = key_id = None
    sid = fields[1]
    if sid[0] == 0x30:
        parts = _children(buf, sid[2], sid[3])
        if len(parts) != 2 or parts[0][0] != 0x30 or parts[1][0] != 0x02 or parts[1][2] == parts[1][3]:
            raise _Uncommon
        issuer = buf[parts[0][1]:parts[0][3]]
        serial = int.from_bytes(buf[parts[1][2]:parts[1][3]], "big", signed=True)
    elif sid[0] == 0x80:  # [0] IMPLICIT SubjectKeyIdentifier
        key_id = buf[sid[2]:sid[3]]
    else:
        raise _Uncommon
    digest_algorithm = _digest_name(_algorithm_oid(buf, fields[2]))
    rest = fields[3:]
    signed_bytes = attributes = None
    if rest[0][0] == 0xA0:
        _, pos, start, end = rest[0]
        if start == end:
            raise _Uncommon
        signed_bytes = b"\x31" + buf[pos + 1:end]
        attributes = _attributes(buf, start, end)
        rest = rest[1:]
    if len(rest) not in (2, 3) or (len(rest) == 3 and rest[2][0] != 0xA1):
        raise _Uncommon
    signature_algorithm = _dotted(_algorithm_oid(buf, rest[0]))
    _, _, start, end = _expect(rest[1], 0x04)
    return SignerView(issuer, serial, key_id, digest_algorithm, signature_algorithm, buf[start:end],
                      signed_bytes, attributes)


def _attributes(buf: bytes, start: int, end: int) -> AttributesView:
    values: dict[bytes, tuple[int, int, int, int]] = {}
    for attr in _children(buf, start, end):
        parts = _children(buf, *_expect(attr, 0x30)[2:])
        if len(parts) != 2 or parts[0][0] != 0x06:
            raise _Uncommon
        oid = buf[parts[0][1]:parts[0][3]]
        one = _children(buf, *_expect(parts[1], 0x31)[2:])
        if oid in values or len(one) != 1:
            raise _Uncommon
        values[oid] = one[0]
    content_type = message_digest = signing_time = ess = None
    for oid, (tag, pos, cstart, cend) in values.items():
        if oid == _ATTR_CONTENT_TYPE and tag == 0x06:
            content_type = _dotted(buf[pos:cend])
        elif oid == _ATTR_MESSAGE_DIGEST and tag == 0x04:
            message_digest = buf[cstart:cend]
        elif oid == _ATTR_SIGNING_TIME and tag in (0x17, 0x18):
            signing_time = cms.Time.load(buf[pos:cend]).native
        elif oid == _ATTR_SIGNING_CERT_V2 and tag == 0x30:
            ess = _ess(buf, cstart, cend)
        else:
            raise _Uncommon
    return AttributesView(content_type, message_digest, signing_time, ess)


def _ess(buf: bytes, start: int, end: int) -> tuple[str, bytes]:
    """SigningCertificateV2 {certs SEQUENCE OF ESSCertIDv2, policies OPTIONAL}: the first certHash."""
    parts = _children(buf, start, end)
    if not parts or len(parts) > 2:
        raise _Uncommon
    ids = _children(buf, *_expect(parts[0], 0x30)[2:])
    if not ids:
        raise _Uncommon  # empty: the general reader says why
    first = _children(buf, *_expect(ids[0], 0x30)[2:])
    # hashAlgorithm DEFAULT sha256 is absent in DER when it is SHA-256; anything else goes the general way.
    if not first or len(first) > 2 or (len(first) == 2 and first[1][0] != 0x30):
        raise _Uncommon
    _, _, hstart, hend = _expect(first[0], 0x04)
    return "sha256", buf[hstart:hend]
