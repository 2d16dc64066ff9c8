"""Verifying an electronic seal (GB/T 38540) against our trust roots — no fetching here.

``verify_seal`` takes the seal bytes (or a parsed :class:`~pki.seal.Seal`), the trust roots, the
time to judge at, and revocation information the caller already has (CRL objects, or a
``pki.trust.RevocationCheck`` callable such as ``pki.revocation.OcspChecker``; CRLs are judged by
``pki.revocation.CrlChecker``: issuer, signature, freshness). It returns a
:class:`SealVerification` or raises exactly one typed error, checked in this order so that each
kind of damage has its own stable code:

1. ``SEAL_MALFORMED``        the bytes do not parse (or the maker certificate does not)
2. ``SEAL_BAD_SIGNATURE``    signedValue does not verify over eSealInfo *as received*
3. ``SEAL_PICTURE_INVALID``  the signed picture is not a sane image
4. ``SEAL_MAKER_UNTRUSTED``  the maker certificate does not chain to a root at ``at``, is not a
                             signing certificate, or was not valid when the seal was made
5. ``SEAL_NOT_YET_VALID`` / ``SEAL_EXPIRED``  ``at`` outside [validStart, validEnd]
6. ``SEAL_CERT_INVALID``     a listed signer certificate is not from our roots, not valid at
                             ``at``, or the seal's window is not within its validity
7. ``SEAL_REVOKED`` / ``SEAL_REVOCATION_UNKNOWN``  any certificate on those paths is revoked,
                             or CRLs were given but none usable covers it
8. ``SEAL_WRONG_UNIT``       the caller expected another 统一社会信用代码

The signature is checked first: every later check reads fields the maker vouches for only once
the signature holds. Certificate paths are decided by ``pki.trust`` like everywhere else.

A successful verification is remembered (:class:`_Verdicts`) as ``pki.trust`` remembers path
verdicts: keyed by the seal's bytes, the roots, the intermediates, the revocation check's token
(a new CRL is another key) and the unit expected, and used only for a moment inside every window
it rests on (the seal's validStart–validEnd, each certificate's validity, the CRLs' currency). A
receiving node sees the same seal on every document of a unit: its SESeal signature, its picture
and its two paths are judged once per CRL. A failure is never remembered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import struct
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as CryptoUnsupported

from .algorithms import by_oid, for_public_key
from .errors import (
    BadSignature,
    CertificateInvalid,
    CertificateRevoked,
    GwxError,
    SealBadSignature,
    SealCertInvalid,
    SealExpired,
    SealMakerUntrusted,
    SealNotYetValid,
    SealPictureInvalid,
    SealRevocationUnknown,
    SealRevoked,
    SealWrongUnit,
    UnsupportedAlgorithm,
)
from .revocation import CrlChecker
from .seal import Seal, describe_seal, parse_seal
from .seal_picture import MAX_PICTURE_BYTES, MAX_PICTURE_PIXELS, validate_png
from .trust import Purpose, RevocationCheck, TrustStore, revocation_token, verify_certificate
from .unit_code import validate_unit_code
from .x509_sm2 import public_key_of

__all__ = ["SealVerification", "check_picture", "describe_seal", "verify_seal"]


@dataclass(frozen=True)
class SealVerification:
    seal: Seal
    checked_at: dt.datetime
    maker_path: tuple[x509.Certificate, ...]
    seal_certificates: tuple[x509.Certificate, ...]
    unit_code: str | None
    revocation_checked: bool

    def to_dict(self) -> dict:
        return {
            "ok": True,
            "name": self.seal.name,
            "unit_code": self.unit_code,
            "es_id": self.seal.es_id,
            "format": self.seal.format,
            "valid_start": self.seal.valid_start.isoformat(),
            "valid_end": self.seal.valid_end.isoformat(),
            "maker": self.maker_path[0].subject.rfc4514_string(),
            "checked_at": self.checked_at.isoformat(),
            "revocation_checked": self.revocation_checked,
        }


def verify_seal(seal: bytes | Seal, *, trust_roots: Iterable[x509.Certificate],
                at: dt.datetime | None = None,
                crls: Sequence[x509.CertificateRevocationList] | None = None,
                revocation: RevocationCheck | None = None,
                unit_code: str | None = None,
                intermediates: Sequence[x509.Certificate] = ()) -> SealVerification:
    """Verify ``seal``; return the verification or raise one ``Seal*`` error (see module doc)."""
    s = parse_seal(seal)
    at = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    store = TrustStore.of(trust_roots)
    check = revocation or (CrlChecker(crls) if crls is not None else None)
    token = revocation_token(check)
    key = (s.der, store, tuple(intermediates), token[0], unit_code) if token is not None and s.der else None
    if key is not None and (hit := _verdicts.get(key, at)) is not None:
        return dataclasses.replace(hit, checked_at=at)
    verified = _verify(s, store, at, check, unit_code, intermediates)
    if key is not None:
        certs = [*verified.maker_path, *verified.seal_certificates]
        _verdicts.put(key, verified, max(s.valid_start, token[1], *(c.not_valid_before_utc for c in certs)),
                      min(s.valid_end, token[2], *(c.not_valid_after_utc for c in certs)))
    return verified


class _Verdicts:
    """Successful verifications with the window of moments they hold for (bounded, thread-safe)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[tuple, tuple[SealVerification, dt.datetime, dt.datetime]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple, at: dt.datetime) -> SealVerification | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
        verified, start, end = item
        return verified if start <= at <= end else None

    def put(self, key: tuple, verified: SealVerification, start: dt.datetime, end: dt.datetime) -> None:
        with self._lock:
            self._items[key] = (verified, start, end)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_verdicts = _Verdicts()


def _verify(s: Seal, store: TrustStore, at: dt.datetime, check: RevocationCheck | None, unit_code: str | None,
            intermediates: Sequence[x509.Certificate]) -> SealVerification:
    maker = s.maker_certificate

    _check_signature(s, maker)
    check_picture(s)

    try:
        maker_path = verify_certificate(maker, store, at, intermediates, Purpose.SEAL_MAKING)
    except CertificateInvalid as exc:
        raise SealMakerUntrusted(f"seal maker certificate: {exc.message}", cause=exc.code) from None
    if not maker.not_valid_before_utc <= s.create_date <= maker.not_valid_after_utc:
        raise SealMakerUntrusted("the seal was made (createDate) outside its maker certificate's validity",
                                 create_date=s.create_date.isoformat())

    if s.valid_end <= s.valid_start:
        raise SealExpired("the seal's validity ends before it starts", valid_end=s.valid_end.isoformat())
    if at < s.valid_start:
        raise SealNotYetValid(f"the seal is valid from {s.valid_start.isoformat()}",
                              valid_start=s.valid_start.isoformat())
    if at > s.valid_end:
        raise SealExpired(f"the seal expired on {s.valid_end.isoformat()}", valid_end=s.valid_end.isoformat())

    paths = [maker_path]
    seal_certs = s.seal_certificates  # empty for certListType 2 (digests): checked at signing time
    for cert in seal_certs:
        try:
            paths.append(verify_certificate(cert, store, at, intermediates, Purpose.SEAL))
        except CertificateInvalid as exc:
            raise SealCertInvalid(f"seal certificate (serial {cert.serial_number:x}): {exc.message}",
                                  cause=exc.code, serial=f"{cert.serial_number:x}") from None
        if s.valid_start < cert.not_valid_before_utc or s.valid_end > cert.not_valid_after_utc:
            raise SealCertInvalid("the seal's validity extends beyond its certificate's "
                                  f"(serial {cert.serial_number:x})", serial=f"{cert.serial_number:x}")

    if check is not None:
        for path in paths:
            for cert, issuer in zip(path, path[1:], strict=False):
                _check_revocation(check, cert, issuer, at)

    code = s.unit_code
    if unit_code is not None:
        expected = validate_unit_code(unit_code)
        if code != expected:
            raise SealWrongUnit(f"the seal belongs to unit {code or '(none named)'}, expected {expected}",
                                expected=expected, actual=code)
    return SealVerification(s, at, tuple(maker_path), seal_certs, code, check is not None)


def _check_signature(s: Seal, maker: x509.Certificate) -> None:
    try:
        algorithm = by_oid(s.sign_alg_oid)
        key = public_key_of(maker)
        if for_public_key(key).key_type != algorithm.key_type:  # type: ignore[arg-type]
            raise SealBadSignature(f"signAlgID {s.sign_alg_oid} does not fit the maker's key")
        algorithm.verify(key, s.signed_value, s.seal_info_der)  # type: ignore[arg-type]
    except UnsupportedAlgorithm as exc:
        raise SealBadSignature(f"cannot check the seal signature: {exc.message}",
                               oid=s.sign_alg_oid) from None
    except (ValueError, TypeError, CryptoUnsupported) as exc:  # e.g. an SM2 key pyca cannot load
        raise SealBadSignature(f"cannot check the seal signature: {exc}", oid=s.sign_alg_oid) from None
    except BadSignature:
        raise SealBadSignature("the seal maker's signature over eSealInfo does not verify: "
                               "the seal was altered or not made by this maker") from None


def check_picture(s: Seal) -> None:
    """The picture must be a bounded, decodable image of the declared type and a sane size."""
    pic = s.picture
    for side in (pic.width_mm, pic.height_mm):
        if not 1 <= side <= 500:
            raise SealPictureInvalid(f"picture size {pic.width_mm}×{pic.height_mm} mm is not plausible")
    kind = pic.type.strip().upper()
    if kind == "PNG":
        validate_png(pic.data)
        return
    if kind == "OFD":  # GB/T 38540 lets a seal picture be an OFD itself (ofdrw's seals are): an OFD reader shows it
        _check_ofd_picture(pic.data)
        return
    if kind not in ("JPG", "JPEG", "GIF", "BMP"):
        raise SealPictureInvalid(f"picture type {pic.type!r} is not supported for display", type=pic.type)
    if len(pic.data) > MAX_PICTURE_BYTES:
        raise SealPictureInvalid("seal picture too large", size=len(pic.data))
    from PIL import Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(pic.data), formats=["JPEG" if kind.startswith("JP") else kind]) as img:
                if max(img.size) > MAX_PICTURE_PIXELS:
                    raise SealPictureInvalid("seal picture has too many pixels", size=list(img.size))
                img.load()
    except SealPictureInvalid:
        raise
    except Exception as exc:  # Pillow raises many types on corrupt data
        raise SealPictureInvalid(f"seal picture does not decode as {kind}: {exc}") from None


def _check_ofd_picture(data: bytes) -> None:
    """Bounded, a ZIP whose directory names OFD.xml, and small once inflated; it is never extracted here
    (the seal is shown by whoever renders the OFD it sits in)."""
    if len(data) > MAX_PICTURE_BYTES:
        raise SealPictureInvalid("seal picture too large", size=len(data))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
            NotImplementedError) as exc:  # NotImplementedError: a "version needed" above 6.3
        raise SealPictureInvalid(f"the OFD seal picture is not a readable ZIP: {exc}") from None
    if "OFD.xml" not in {i.filename for i in infos}:
        raise SealPictureInvalid("the OFD seal picture has no OFD.xml")
    if len(infos) > 256 or sum(i.file_size for i in infos) > 16 * MAX_PICTURE_BYTES:
        raise SealPictureInvalid("the OFD seal picture inflates too far", members=len(infos))


def _check_revocation(check: RevocationCheck, cert: x509.Certificate, issuer: x509.Certificate,
                      at: dt.datetime) -> None:
    try:
        check(cert, issuer, at)
    except CertificateRevoked as exc:
        raise SealRevoked(f"certificate {cert.subject.rfc4514_string()} (serial {cert.serial_number:x}) "
                          f"is revoked: {exc.message}", serial=f"{cert.serial_number:x}") from None
    except GwxError as exc:
        raise SealRevocationUnknown(f"no usable revocation status for serial {cert.serial_number:x}: "
                                    f"{exc.message}", serial=f"{cert.serial_number:x}") from None
