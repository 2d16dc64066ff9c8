"""Sealed signatures (电子签章, GB/T 38540 ``SES_Signature``): a unit's seal applied to data.

:func:`make_sealed_signature` signs ``TBS_Sign`` — version 4, the unit's SESeal as the seal maker
made it, the time, ``dataHash`` (the data's digest with the signer's hash: SM3 for an SM2 seal key,
SHA-256 for P-256) and ``propertyInfo`` (what was signed, e.g. an OFD's
``Doc_0/Signs/Sign_0/Signature.xml``) — with the unit's seal key through its :class:`Signer`, and
emits DER ``SES_Signature``. It is what an OFD's ``SignedValue.dat`` holds (issue 11 §2 places it).

:func:`verify_sealed_signature` checks one against the data, in this order, each failure its own
code: the structure (``SEAL_MALFORMED``), the signature over ``TBS_Sign`` *as received* with the
signer certificate it carries (``SEAL_BAD_SIGNATURE``), ``dataHash`` against the data
(``SEAL_DATA_MISMATCH``), the seal inside (everything :func:`pki.seal_verify.verify_seal` checks),
the signer certificate listed by that seal (``SEAL_CERT_NOT_LISTED``), ``timeInfo`` within the
seal's validity and not later than the time of verifying, give or take the clock skew
(``SEAL_NOT_YET_VALID`` / ``SEAL_EXPIRED``), and the signer certificate's path and
revocation (``SEAL_CERT_INVALID``, ``SEAL_REVOKED``, ``SEAL_REVOCATION_UNKNOWN``) — and last, that
the signature is of the profile of the network whose root that path ends at (``SEAL_BAD_SIGNATURE``):
the algorithm the signature names is the signer's claim, the root's is the network's, so a P-256
signature under an SM2 root is refused however well it verifies, as is SM2 named by another OID than
GB/T 38540's SM3withSM2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from . import seal_asn1 as A
from .algorithms import SignatureAlgorithm, by_oid, require_network_algorithm
from .certificates import load_certificate
from .errors import (
    BadSignature,
    CertificateInvalid,
    CertificateRevoked,
    GwxError,
    InvalidInput,
    KeyCertificateMismatch,
    MalformedEncoding,
    SealBadSignature,
    SealCertInvalid,
    SealCertNotListed,
    SealDataMismatch,
    SealExpired,
    SealMalformed,
    SealNotYetValid,
    SealRevocationUnknown,
    SealRevoked,
    UnsupportedAlgorithm,
)
from .revocation import CLOCK_SKEW, CrlChecker
from .seal import MAX_SEAL_BYTES, Seal, parse_seal
from .seal_verify import SealVerification, verify_seal
from .signer import Signer
from .trust import Purpose, RevocationCheck, TrustStore, verify_certificate
from .x509_sm2 import network_algorithm, public_key_of

SIGNATURE_VERSION = 4
MAX_SIGNATURE_BYTES = MAX_SEAL_BYTES + 64 * 1024  # a seal, a certificate, a hash and a signature


def data_hash(algorithm: SignatureAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm.hash())
    digest.update(data)
    return digest.finalize()


def make_sealed_signature(data: bytes, signer: Signer, seal: Seal, *, property_info: str,
                          now: dt.datetime | None = None) -> bytes:
    """DER ``SES_Signature`` of ``data`` under ``seal``, signed by ``signer`` (the unit's seal key,
    whose certificate the seal must list)."""
    cert = signer.certificate
    if cert is None:
        raise InvalidInput("a sealed signature needs the signer's certificate", field="signer")
    if not seal.matches_certificate(cert):
        raise KeyCertificateMismatch("the seal does not list the signer's certificate: sign with the key the "
                                     "seal was made for", serial=f"{cert.serial_number:x}")
    if not property_info.isascii() or not property_info.isprintable() or len(property_info) > 1024:
        raise InvalidInput("propertyInfo is printable ASCII (IA5String), at most 1024 characters",
                           field="property_info")
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    tbs_der = A.TBSSign({"version": SIGNATURE_VERSION, "eseal": A.SESeal.load(seal.der), "time_info": now,
                         "data_hash": data_hash(signer.algorithm, data), "property_info": property_info}).dump()
    return A.SESSignature({"to_sign": A.TBSSign.load(tbs_der), "cert": cert.public_bytes(Encoding.DER),
                           "signature_alg_id": signer.algorithm.oid,
                           "signature": signer.sign(tbs_der)}).dump()


@dataclass(frozen=True)
class SealedSignature:
    """A parsed ``SES_Signature``: the fields, and ``to_sign_der`` exactly as received (what was signed)."""

    to_sign_der: bytes
    seal: Seal
    time_info: dt.datetime
    data_hash: bytes
    property_info: str
    certificate: x509.Certificate
    algorithm_oid: str
    signature: bytes


def parse_sealed_signature(der: bytes) -> SealedSignature:
    if not isinstance(der, bytes) or not der or len(der) > MAX_SIGNATURE_BYTES:
        raise SealMalformed("a sealed signature is DER bytes of a bounded size")
    try:
        parsed = A.SESSignature.load(der, strict=True)
        tbs = parsed["to_sign"]
        version = tbs["version"].native
        fields = (tbs.dump(), tbs["eseal"].dump(), tbs["time_info"].native, tbs["data_hash"].native,
                  tbs["property_info"].native, parsed["cert"].native, parsed["signature_alg_id"].dotted,
                  parsed["signature"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise SealMalformed(f"not a GB/T 38540 SES_Signature: {exc}") from None
    if version != SIGNATURE_VERSION:
        raise SealMalformed(f"SES_Signature version {version}, expected {SIGNATURE_VERSION}", version=version)
    to_sign, seal_der, time_info, digest, property_info, cert_der, oid, signature = fields
    try:
        cert = load_certificate(cert_der)
    except MalformedEncoding as exc:
        raise SealMalformed(f"the signer certificate does not parse: {exc.message}") from None
    return SealedSignature(to_sign, parse_seal(seal_der), time_info.astimezone(dt.UTC), digest, property_info,
                           cert, oid, signature)


@dataclass(frozen=True)
class SealedSignatureVerification:
    signature: SealedSignature
    seal: SealVerification
    signer_path: tuple[x509.Certificate, ...]


def verify_sealed_signature(der: bytes, data: bytes, *, trust_roots: Iterable[x509.Certificate],
                            at: dt.datetime | None = None,
                            crls: Sequence[x509.CertificateRevocationList] | None = None,
                            revocation: RevocationCheck | None = None, unit_code: str | None = None,
                            intermediates: Sequence[x509.Certificate] = ()) -> SealedSignatureVerification:
    """Verify ``der`` over ``data`` (see the module doc for the order and the codes)."""
    s = parse_sealed_signature(der)
    at = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    try:
        algorithm = by_oid(s.algorithm_oid)
        algorithm.verify(public_key_of(s.certificate), s.signature, s.to_sign_der)
    except (UnsupportedAlgorithm, BadSignature) as exc:
        raise SealBadSignature(f"the signature over TBS_Sign does not verify with the signer certificate: "
                               f"{exc.message}", oid=s.algorithm_oid) from None
    if data_hash(algorithm, data) != s.data_hash:
        raise SealDataMismatch("dataHash is not the digest of the data: the data changed after sealing, or the "
                               "signature belongs to other data", property_info=s.property_info)
    check = revocation or (CrlChecker(crls) if crls is not None else None)
    seal = verify_seal(s.seal, trust_roots=trust_roots, at=at, revocation=check, unit_code=unit_code,
                       intermediates=intermediates)
    if not s.seal.matches_certificate(s.certificate):
        raise SealCertNotListed("the signer certificate is not one the seal lists: the seal was applied with "
                                "another key than its unit's", serial=f"{s.certificate.serial_number:x}")
    if s.time_info < s.seal.valid_start:
        raise SealNotYetValid(f"signed at {s.time_info.isoformat()}, before the seal's validity "
                              f"({s.seal.valid_start.isoformat()})")
    if s.time_info > s.seal.valid_end:
        raise SealExpired(f"signed at {s.time_info.isoformat()}, after the seal expired "
                          f"({s.seal.valid_end.isoformat()})")
    if s.time_info > at + CLOCK_SKEW:  # the signer's own word for when it signed: not later than now
        raise SealNotYetValid(f"signed at {s.time_info.isoformat()}, later than the time it is verified at "
                              f"({at.isoformat()})")
    store = TrustStore.of(trust_roots)
    try:
        path = verify_certificate(s.certificate, store, at, intermediates, Purpose.SEAL, check)
    except CertificateRevoked as exc:
        raise SealRevoked(f"the signer certificate is revoked: {exc.message}",
                          serial=f"{s.certificate.serial_number:x}") from None
    except CertificateInvalid as exc:
        raise SealCertInvalid(f"the signer certificate: {exc.message}", cause=exc.code) from None
    except GwxError as exc:
        raise SealRevocationUnknown(f"no usable revocation status for the signer certificate: {exc.message}",
                                    ) from None
    _check_network_profile(s, algorithm, path[-1])
    return SealedSignatureVerification(s, seal, tuple(path))


def _check_network_profile(s: SealedSignature, algorithm: SignatureAlgorithm, root: x509.Certificate) -> None:
    network = network_algorithm(root)
    try:
        require_network_algorithm(network, algorithm)
    except UnsupportedAlgorithm as exc:
        raise SealBadSignature(f"the signature is {algorithm.name}, but its root's network signs with "
                               f"{network.name}: {exc.message}", oid=s.algorithm_oid) from None
    if s.algorithm_oid != algorithm.oid:  # one OID per algorithm (by_oid); kept so this never rests on that
        raise SealBadSignature(f"signatureAlgID {s.algorithm_oid} is not {algorithm.name}'s {algorithm.oid}",
                               oid=s.algorithm_oid)
