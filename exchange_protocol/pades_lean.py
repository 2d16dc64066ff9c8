"""The lean check of body.pdf's PAdES seal: what a receiving node needs, without parsing the PDF.

A PAdES seal signs every byte of the file but the hole its own signature sits in: the signature
dictionary's ``/ByteRange [0 b c d]`` names the two signed spans, ``/Contents <hex>`` fills the
hole ``[b, c)``. If the spans start at the first byte and end at the last, and the hole holds the
hex string and nothing else, then every byte a PDF reader could ever interpret is either signed or
the signature itself; if the CMS in the hole verifies over the spans with the package's seal
certificate, the file is exactly what the seal's holder sealed, whatever the file's structure
says. So the check reads no PDF object, no cross-reference table, no page:

1. the file is a PDF (``%PDF-``) and carries a ``/ByteRange`` (the last one, the newest revision's);
2. the ranges are ``[0, b]`` and ``[c, c+d]`` with ``b < c`` and ``c + d`` the file's length —
   otherwise bytes are skipped (:class:`PdfByteRangeInvalid`) or were appended after sealing, as a
   second revision would be (:class:`PdfSealNotLast`);
3. the hole ``[b, c)`` is exactly ``<hex>`` (:class:`PdfByteRangeInvalid` otherwise);
4. the CMS in it (DER, zero-padded) verifies over the two spans with signed attributes and ESS
   signing-certificate-v2 (:func:`pki.cms.verify_detached`); a changed byte fails here with
   today's ``PKG_PDF_SEAL_INVALID``;
5. its signer chains to our roots at ``at`` for sealing (:func:`pki.trust.verify_certificate`,
   cached certificate links), is the package's seal certificate (:class:`PdfSealWrongSigner`) and
   is not revoked (the PKI's own codes, as the full validator gives them).

Nothing is parsed from the PDF but the last ``/ByteRange`` (and the ``/M`` after it, the signing
time); whether pyHanko or pdfsig would render the file is not checked (the seal's holder made it;
the sending node sealed it with pyHanko). The full validator,
:func:`exchange_protocol.pades.validate_sealed_pdf` (pyHanko), stays where a person asks for a
verdict on the document itself: ``gwx doc verify`` and archive verification; see
docs/architecture.md. It works for every algorithm :mod:`pki.cms` verifies (ECDSA, RSA, SM2 on a
国密 network) and costs about a millisecond.
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from pki import cms
from pki.errors import CertificateInvalid, PkiError
from pki.trust import Purpose, RevocationCheck, TrustStore, verify_certificate

from .errors import PackageSealInvalid, PdfByteRangeInvalid, PdfSealNotLast, PdfSealWrongSigner

_BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d{1,12})\s+(\d{1,12})\s+(\d{1,12})\s+(\d{1,12})\s*\]")
_HOLE = re.compile(rb"<[0-9A-Fa-f]*>")
_CLAIMED = re.compile(rb"/M\s*\(D(?::|\\072)(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})([Z+-])?(\d{2})?'?(\d{2})?")
LEAN_FIELD = "(not read: lean check)"


@dataclass(frozen=True)
class PdfSealStatus:
    """A PAdES seal that verified against our roots, covering the whole file (either check's result)."""

    signer_certificate: x509.Certificate
    signing_time: dt.datetime | None
    field_name: str
    signatures: int


def check_sealed_pdf(pdf: bytes, trust_roots: Sequence[x509.Certificate], at: dt.datetime, *,
                     expected_certificate: x509.Certificate | None = None,
                     revocation: RevocationCheck | None = None,
                     intermediates: Sequence[x509.Certificate] = ()) -> PdfSealStatus:
    """The lean check (module docstring); the same signature and result as ``validate_sealed_pdf``."""
    if not pdf.startswith(b"%PDF-"):
        raise PackageSealInvalid("cannot validate the seal: body is not a PDF (no %PDF- header)",
                                 cause="PKG_NOT_PDF")
    ranges = list(_BYTE_RANGE.finditer(pdf))
    if not ranges:
        raise PackageSealInvalid("body.pdf carries no seal (no PDF signature)")
    a, b, c, d = (int(v) for v in ranges[-1].groups())
    if a != 0 or not 0 < b < c or c + d > len(pdf):
        raise PdfByteRangeInvalid(f"the seal's byte range [{a} {b} {c} {d}] does not cover the file from its "
                                  "first byte around one hole", byte_range=f"{a} {b} {c} {d}")
    if c + d < len(pdf):
        raise PdfSealNotLast(f"content was added to body.pdf after it was sealed ({len(pdf) - c - d} bytes "
                             "after the signed range)", appended=len(pdf) - c - d)
    hole = pdf[b:c]
    if _HOLE.fullmatch(hole) is None:
        raise PdfByteRangeInvalid("the seal's byte range skips bytes that are not its signature",
                                  byte_range=f"{a} {b} {c} {d}")
    der = _cms_der(hole[1:-1])
    # The certificates the CMS carries are searched by the verification itself (the signer, its
    # issuers), so they are read from it: the signature is parsed once, not once more for them.
    result = verify_seal_cms(der, data=pdf[:b] + pdf[c:], trust_roots=trust_roots, at=at, intermediates=intermediates)
    cert = result.signer_certificate
    path = [*result.certificates, *intermediates]
    check_seal_signer(cert, trust_roots, at, path, expected_certificate=expected_certificate, revocation=revocation)
    return PdfSealStatus(cert, result.signing_time or _claimed_time(pdf, ranges[-1].end()), LEAN_FIELD, len(ranges))


def verify_seal_cms(der: bytes, *, data: bytes | None = None, digest: bytes | None = None,
                    trust_roots: Sequence[x509.Certificate], at: dt.datetime,
                    intermediates: Sequence[x509.Certificate]) -> cms.CmsSignature:
    """The PDF seal's CMS verified over the signed byte ranges (``data``, the lean check) or their
    digest (``digest``, the full validator's SM2 path, pyHanko having read the ranges): signed
    attributes, ESS signing-certificate-v2, a signer chaining to ``trust_roots`` at ``at`` for
    sealing. A failure is :class:`PackageSealInvalid` (``trusted=False`` for the chain, ``intact=False``
    for the cryptography) with the PKI's code as its cause."""
    try:
        return cms.verify_detached(der, data, digest=digest, trust_roots=TrustStore.of(trust_roots), now=at,
                                   intermediates=intermediates, purpose=Purpose.SEAL, require_signing_cert_v2=True)
    except CertificateInvalid as exc:
        raise PackageSealInvalid("the PDF seal's certificate does not chain to a trusted root at the "
                                 f"verification time: {exc.message}", trusted=False, cause=exc.code) from None
    except PkiError as exc:
        raise PackageSealInvalid(f"the PDF seal does not verify: the sealed document was changed ({exc.message})",
                                 intact=False, cause=exc.code) from None


def check_seal_signer(cert: x509.Certificate, trust_roots: Sequence[x509.Certificate], at: dt.datetime,
                      path: Sequence[x509.Certificate], *, expected_certificate: x509.Certificate | None,
                      revocation: RevocationCheck | None) -> None:
    """The seal's signer is the package's seal certificate (:class:`PdfSealWrongSigner`) and, with
    ``revocation``, not revoked (:func:`pki.trust.verify_certificate`'s codes); every check's last step."""
    if expected_certificate is not None and cert != expected_certificate:
        raise PdfSealWrongSigner("body.pdf was sealed with another certificate than the package's seal",
                                 subject=cert.subject.rfc4514_string())
    if revocation is not None:
        verify_certificate(cert, TrustStore.of(trust_roots), at, path, Purpose.SEAL, revocation)


def _claimed_time(pdf: bytes, start: int) -> dt.datetime | None:
    """The signature dictionary's ``/M`` (PAdES puts the signer's claimed time there, not in the CMS),
    read from the ``/ByteRange`` to the dictionary's end: signed bytes."""
    end = pdf.find(b">>", start, start + 4096)
    m = _CLAIMED.search(pdf, start, end if end > 0 else start)
    if m is None:
        return None
    zone = dt.UTC if m.group(7) in (None, b"Z") else dt.timezone(
        (-1 if m.group(7) == b"-" else 1) * dt.timedelta(hours=int(m.group(8) or 0), minutes=int(m.group(9) or 0)))
    try:
        return dt.datetime(*(int(g) for g in m.groups()[:6]), tzinfo=zone).astimezone(dt.UTC)
    except ValueError:
        return None


def _cms_der(hex_digits: bytes) -> bytes:
    """The DER SignedData in the hole: hex, padded with zeros after its end (pyHanko reserves room)."""
    try:
        raw = binascii.unhexlify(hex_digits if len(hex_digits) % 2 == 0 else hex_digits + b"0")
    except binascii.Error:
        raw = b""
    length = _der_length(raw)
    if length is None or raw[length:].strip(b"\0"):
        raise PackageSealInvalid("the PDF seal's /Contents is not one DER signature padded with zeros")
    return raw[:length]


def _der_length(raw: bytes) -> int | None:
    """Header plus content length of the DER SEQUENCE at the start of ``raw``, if it fits."""
    if len(raw) < 2 or raw[0] != 0x30:
        return None
    first = raw[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or len(raw) < 2 + count:
            return None
        total = 2 + count + int.from_bytes(raw[2:2 + count], "big")
    return total if total <= len(raw) else None

