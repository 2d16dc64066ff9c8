"""Verifying a document package end to end, as a report of named checks.

:func:`verify_package` never raises for a bad package: it returns a frozen :class:`PackageReport`
whose checks each pass, fail (with the typed error's stable code and message), are skipped
(because a check they build on failed) or are absent (an optional part, the time stamp).
``report.ok`` is true only when every check that applies passed. Checks, in order:

``structure``           the defensive reader (:mod:`.package_reader`): ZIP sanity, names, limits,
                        layout, strict manifest, members exactly as listed
``manifest_signature``  the CMS over the manifest bytes verifies, carries ESS
                        signing-certificate-v2, and its certificate chains to our roots at ``at``
                        for sealing, not revoked (when revocation information is given)
``digests``             every file streamed: size and SHA-256 as listed, limits, no nested archive
``metadata``            metadata.json is a valid DocumentMetadata with a 公文标识
``pdf_seal``            pyHanko validates body.pdf's PAdES seal against our roots, covering the
                        whole file, made with the same certificate as the manifest signature,
                        not revoked (the same revocation verdict as ``manifest_signature``);
                        with ``lean_pdf`` the lean check (:mod:`.pades_lean`) judges the same
                        properties from the byte ranges and the CMS alone
``ofd_seal``            in its place when the body is an OFD (body.ofd): its GB/T 38540 seal
                        (:mod:`.ofd_verify`): every reference, the SES_Signature, made with the
                        manifest signature's certificate under the package's seal.esl; always run
                        (milliseconds), also with ``validate_pdf=False``
``seal``                the SESeal (GB/T 38540) verifies (maker, validity, revocation), lists the
                        signing certificate, and belongs to the first (lead) 发文机关 of the metadata;
                        intermediate CAs are taken from the manifest signature's certificates
``timestamp``           when present: an RFC 3161 token from a TSA under our roots over the
                        SHA-256 of the signature value

A verified time-stamp proves the signature existed at its genTime. Only with ``judge_at_stamp=True``
(an archive check: ``gwx doc verify``, ``verify_archive``), when that is before ``at``, the
signature, the PDF seal and the SESeal are judged *at the genTime* (``judged_at`` in the report):
a package whose certificates expired or were revoked after it was time-stamped stays valid, one
revoked before it does not. A live node judges an arriving package at ``at`` (now), stamped or not:
otherwise a thief of a seal key could pre-stamp packages and send them after the revocation, and a
CRL newer than the stamp could not answer. Revocation at the stamp's moment is ``revocation_at_stamp``'s
(:class:`pki.revocation.CrlCheckerAt` over the same CRLs), since a CRL issued after the moment
judged is no evidence to a checker for the present.

With ``validate_pdf=False`` a PDF body's report carries what its seal check needs
(:class:`PdfToJudge`, not in ``to_dict``): :func:`judge_pdf_later` completes that report with the
``pdf_seal`` check at a later moment — a node's processor, after its acceptor checked the rest —
without reading the package again.

Revocation is a ``(cert, issuer, at) -> None`` callable (``pki.revocation.CrlChecker`` …), the
same for every certificate judged. Synchronous (pyHanko): run it in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from cryptography import x509

from pki import cms, tsa
from pki.errors import GwxError, SealCertNotListed, SealWrongUnit, TsaDigestMismatch
from pki.seal import parse_seal
from pki.seal_verify import verify_seal
from pki.trust import Purpose, TrustStore

from .errors import MissingMetadataField, PackageManifestInvalid
from .manifest import BODY_NAMES, METADATA_NAME, OFD_BODY_NAME, SEAL_NAME
from .meta_json import parse_meta
from .model import DocumentMetadata
from .ofd_errors import OfdSealMismatch
from .ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
from .package import signature_hash, signature_value
from .package_reader import DEFAULT_LIMITS, PackageLimits, PackageReader

PASS, FAIL, SKIPPED, ABSENT = "pass", "fail", "skipped", "absent"
CHECKS = ("structure", "manifest_signature", "digests", "metadata", "pdf_seal", "seal", "timestamp")
OFD_CHECKS = tuple("ofd_seal" if name == "pdf_seal" else name for name in CHECKS)  # an OFD body's report
RevocationCheck = Callable[[x509.Certificate, x509.Certificate, dt.datetime], None]


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | fail | skipped | absent
    code: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status}
        if self.code:
            out["code"] = self.code
        if self.message:
            out["message"] = self.message
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class PdfToJudge:
    """What judging body.pdf's seal needs once the rest of its package passed: the body, the roots
    and the manifest signature's certificate it must be sealed with, and the certificates that
    signature carried (intermediates)."""

    body: bytes
    roots: tuple[x509.Certificate, ...]
    signer: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class PackageReport:
    checks: tuple[Check, ...]
    checked_at: dt.datetime
    document_id: str | None = None
    title: str | None = None
    doc_number: str | None = None  # 发文字号, as the metadata gives it
    issuers: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()  # 主送 then 抄送 unit codes, as the document names them
    seal_name: str | None = None
    seal_unit: str | None = None
    signer: str | None = None
    signing_time: dt.datetime | None = None
    timestamp_time: dt.datetime | None = None
    judged_at: dt.datetime | None = None  # the moment certificates were judged: ``at`` or the genTime
    attachments: tuple[tuple[str, int], ...] = ()  # (member path, size)
    # The moments within which the certificates and the seal judged are all inside their validity
    # (not in to_dict: for a verdict cache, which must also hold the revocation information fixed).
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    metadata: DocumentMetadata | None = field(default=None, compare=False, repr=False)  # parsed, when it passed
    # validate_pdf=False, a PDF body, a manifest signature that verified: the seal check left to do
    pdf_to_judge: PdfToJudge | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return all(c.status in (PASS, ABSENT) for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == FAIL)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        iso = (lambda t: t.isoformat() if t else None)  # noqa: E731
        return {"ok": self.ok, "checked_at": iso(self.checked_at), "document_id": self.document_id,
                "title": self.title, "doc_number": self.doc_number, "issuers": list(self.issuers), "recipients": list(self.recipients), "seal_name": self.seal_name,
                "seal_unit": self.seal_unit, "signer": self.signer, "signing_time": iso(self.signing_time),
                "timestamp_time": iso(self.timestamp_time), "judged_at": iso(self.judged_at),
                "attachments": [{"path": p, "size": s} for p, s in self.attachments],
                "checks": [c.to_dict() for c in self.checks]}


def _fail(name: str, exc: GwxError) -> Check:
    return Check(name, FAIL, exc.code, exc.message, {k: str(v) for k, v in exc.details.items()})


def verify_package(source: BinaryIO | str | os.PathLike, trust: TrustStore | Sequence[x509.Certificate],
                   at: dt.datetime, *, revocation: RevocationCheck | None = None,
                   limits: PackageLimits = DEFAULT_LIMITS, validate_pdf: bool = True,
                   allow_classified: bool = False,
                   intermediates: Sequence[x509.Certificate] = (),
                   revocation_at_stamp: RevocationCheck | None = None,
                   judge_at_stamp: bool = False, lean_pdf: bool = False) -> PackageReport:
    """Verify the package in ``source`` (a seekable binary file, or a path) at ``at`` (see module doc).

    ``validate_pdf=False`` leaves out the PAdES validation (pyHanko, tens of milliseconds): a node
    accepting an envelope checks everything else before acknowledging, and validates the PDF seal
    afterwards, once per package digest. The check then reads SKIPPED, so ``report.ok`` is false
    and ``report.failures`` holds only real failures. ``allow_classified`` is the node's policy
    (``classified_network``): without it a document with a 密级 other than 非密 fails ``metadata``.
    ``intermediates`` are CA certificates given by the verifier, for a package whose manifest
    signature does not carry the chain of a seal made under an intermediate CA. ``lean_pdf``: the
    PDF seal is judged by :func:`.pades_lean.check_sealed_pdf` (byte ranges and the CMS, about a
    millisecond: a receiving node's processor) rather than by pyHanko (the full validator).
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return verify_package(f, trust, at, revocation=revocation, limits=limits, validate_pdf=validate_pdf,
                                  allow_classified=allow_classified, intermediates=intermediates,
                                  revocation_at_stamp=revocation_at_stamp, judge_at_stamp=judge_at_stamp,
                                  lean_pdf=lean_pdf)
    roots = tuple(trust.roots if isinstance(trust, TrustStore) else trust)
    checks: dict[str, Check] = {}
    info: dict[str, Any] = {"checked_at": at}

    names = [CHECKS]  # the body's kind decides, once the reader knows it

    def finish() -> PackageReport:
        ordered = tuple(checks.get(n) or Check(n, SKIPPED, message="a check it depends on failed")
                        for n in names[0])
        return PackageReport(ordered, **info)

    try:
        reader = PackageReader(source, limits)
    except GwxError as exc:
        checks["structure"] = _fail("structure", exc)
        return finish()
    with reader:
        names[0] = OFD_CHECKS if reader.body_name == OFD_BODY_NAME else CHECKS
        checks["structure"] = Check("structure", PASS, details={"files": len(reader.manifest.entries)})
        info["attachments"] = tuple((e.path, e.size) for e in reader.attachments)
        # The time-stamp first: when it verifies and the caller opted in, everything signed is judged at its genTime.
        checks["timestamp"] = _check_timestamp(reader.timestamp, reader.signature, roots, info,
                                               revocation_at_stamp, intermediates)
        stamped = info.get("timestamp_time")
        if judge_at_stamp and stamped is not None and stamped < at:
            at = stamped
            revocation = revocation_at_stamp if revocation_at_stamp is not None else revocation
        info["judged_at"] = at

        signer_cert = result = None
        try:
            result = cms.verify_detached(reader.signature, reader.manifest_bytes, trust_roots=roots, now=at,
                                         purpose=Purpose.SEAL, revocation=revocation,
                                         intermediates=intermediates, require_signing_cert_v2=True)
            signer_cert = result.signer_certificate
            if reader.manifest.algorithm != result.digest_algorithm:  # one network, one profile
                raise PackageManifestInvalid(f"the manifest lists its files by {reader.manifest.algorithm} and is "
                                             f"signed with {result.digest_algorithm}",
                                             code="PKG_BAD_MANIFEST")
            _validity(info, result.path)
            info["signer"] = signer_cert.subject.rfc4514_string()
            info["signing_time"] = result.signing_time
            checks["manifest_signature"] = Check("manifest_signature", PASS,
                                                 details={"signer": info["signer"]})
        except GwxError as exc:
            checks["manifest_signature"] = _fail("manifest_signature", exc)
        # The certificates the manifest signature carries: the issuers' chain, for the seal too. The
        # verified signature's own (read once), else read unjudged from a signature that failed.
        if result is not None:
            carried = (*result.certificates, *intermediates)
        else:
            try:
                carried = (*cms.carried_certificates(reader.signature), *intermediates)
            except GwxError:
                carried = tuple(intermediates)

        kept: dict[str, bytes] = {}
        try:
            for entry in reader.manifest.entries:
                if entry.path in (METADATA_NAME, *BODY_NAMES, SEAL_NAME):  # small, bounded by the reader
                    kept[entry.path] = b"".join(reader.iter_member(entry.path))
                else:
                    for _ in reader.iter_member(entry.path):
                        pass
            checks["digests"] = Check("digests", PASS, details={"files": len(reader.manifest.entries)})
        except GwxError as exc:
            checks["digests"] = _fail("digests", exc)
            return finish()

        meta = None
        try:
            meta = parse_meta(kept[METADATA_NAME], allow_classified=allow_classified).metadata
            if meta.id is None:
                raise MissingMetadataField("metadata.json has no 公文标识 (id)", field="id")
            info.update(document_id=meta.id, title=meta.title, issuers=meta.issuers, recipients=meta.to + meta.cc,
                        doc_number=meta.doc_number.format() if meta.doc_number else None)
            checks["metadata"] = Check("metadata", PASS)
            info["metadata"] = meta
        except GwxError as exc:
            checks["metadata"] = _fail("metadata", exc)

        body = kept[reader.body_name]
        if reader.body_name == OFD_BODY_NAME:
            checks["ofd_seal"] = _check_ofd_seal(body, kept[SEAL_NAME], roots, at, revocation, signer_cert, carried)
        elif not validate_pdf:
            checks["pdf_seal"] = Check("pdf_seal", SKIPPED, message="validated after acceptance")
            if signer_cert is not None:
                info["pdf_to_judge"] = PdfToJudge(body, roots, signer_cert, tuple(carried))
        else:
            checks["pdf_seal"] = _check_pdf(body, roots, at, signer_cert, revocation, carried, lean_pdf)

        checks["seal"] = _check_seal(kept[SEAL_NAME], roots, at, revocation, signer_cert, meta, info, carried)
    return finish()


def judge_pdf_later(report: PackageReport, at: dt.datetime, *, revocation: RevocationCheck | None = None,
                    lean_pdf: bool = True) -> PackageReport:
    """``report`` (made with ``validate_pdf=False``, carrying :class:`PdfToJudge`) completed with its
    ``pdf_seal`` check judged at ``at``, stamped ``checked_at``/``judged_at`` ``at``: the report
    :func:`verify_package` gives at ``at`` *provided* nothing else it judged can differ between the
    two moments — the caller's to ensure (the same roots and revocation information, ``at`` inside
    ``valid_from``–``valid_until``). A report without a PDF seal to judge (an OFD body) is only
    re-stamped."""
    pending = report.pdf_to_judge
    checks = report.checks
    if pending is not None:
        pdf = _check_pdf(pending.body, pending.roots, at, pending.signer, revocation, pending.intermediates,
                         lean_pdf)
        checks = tuple(pdf if c.name == "pdf_seal" else c for c in checks)
    return replace(report, checks=checks, checked_at=at, judged_at=at, pdf_to_judge=None)


def _check_pdf(body: bytes, roots: tuple[x509.Certificate, ...], at: dt.datetime,
               signer_cert: x509.Certificate | None, revocation: RevocationCheck | None,
               carried: Sequence[x509.Certificate], lean_pdf: bool) -> Check:
    if lean_pdf:
        from .pades_lean import check_sealed_pdf as validate_sealed_pdf
    else:  # .pades loads pyhanko (~15 % of a node's start-up imports): imported where a PDF is validated
        from .pades import validate_sealed_pdf
    try:
        status = validate_sealed_pdf(body, roots, at, expected_certificate=signer_cert,
                                     revocation=revocation, intermediates=carried)
        return Check("pdf_seal", PASS, details={
            "field": status.field_name, "signer": status.signer_certificate.subject.rfc4514_string(),
            "check": "lean" if lean_pdf else "full"})
    except GwxError as exc:
        return _fail("pdf_seal", exc)


def _validity(info: dict[str, Any], certs: Sequence[x509.Certificate], start: dt.datetime | None = None,
              end: dt.datetime | None = None) -> None:
    """Narrow the report's ``valid_from``/``valid_until`` to ``certs``' validity (and ``start``–``end``)."""
    starts = [c.not_valid_before_utc for c in certs] + ([start] if start else [])
    ends = [c.not_valid_after_utc for c in certs] + ([end] if end else [])
    if starts:
        info["valid_from"] = max([*starts, *([info["valid_from"]] if "valid_from" in info else [])])
    if ends:
        info["valid_until"] = min([*ends, *([info["valid_until"]] if "valid_until" in info else [])])


def _check_seal(seal_der: bytes, roots: tuple[x509.Certificate, ...], at: dt.datetime,
                revocation: RevocationCheck | None, signer_cert: x509.Certificate | None, meta,
                info: dict[str, Any], intermediates: Sequence[x509.Certificate] = ()) -> Check:
    try:
        seal = parse_seal(seal_der)
        info.update(seal_name=seal.name, seal_unit=seal.unit_code)
        # An SESeal carries its maker's certificate alone; under an intermediate CA, the
        # intermediates come from the manifest signature, which the sender's node fills with its chain.
        verified = verify_seal(seal, trust_roots=roots, at=at, revocation=revocation, intermediates=intermediates)
        _validity(info, (*verified.maker_path, *verified.seal_certificates), seal.valid_start, seal.valid_end)
        if signer_cert is not None and not seal.matches_certificate(signer_cert):
            return _fail("seal", SealCertNotListed(
                "the package was signed with a certificate the seal does not list"))
        if meta is not None and verified.unit_code != meta.issuers[0]:
            # The first 发文机关 seals (META.json's contract): naming another unit as a joint issuer
            # does not let its seal be implied, nor a co-issuer's seal stand for the lead organ's.
            return _fail("seal", SealWrongUnit(
                f"the seal belongs to unit {verified.unit_code}, not to the lead issuing organ (发文机关) "
                f"{meta.issuers[0]}", seal_unit=str(verified.unit_code)))
        if signer_cert is None or meta is None:
            return Check("seal", SKIPPED, message="the seal verifies, but the signer or the metadata "
                         "it must match failed")
        return Check("seal", PASS, details={"es_id": seal.es_id, "unit_code": str(verified.unit_code)})
    except GwxError as exc:
        return _fail("seal", exc)


def _check_ofd_seal(body: bytes, seal_der: bytes, roots: tuple[x509.Certificate, ...], at: dt.datetime,
                    revocation: RevocationCheck | None, signer_cert: x509.Certificate | None,
                    intermediates: Sequence[x509.Certificate]) -> Check:
    if signer_cert is None:
        return Check("ofd_seal", SKIPPED, message="the manifest signature it must match failed")
    try:
        checked = verify_sealed_ofd(body, trust_roots=roots, at=at, revocation=revocation or NO_REVOCATION_CHECK,
                                    intermediates=intermediates, expected_certificate=signer_cert)
        # One seal per body (ours seal once; see ofd_seal), so the first is the one META-INF/seal.esl names.
        if checked.first.verification.signature.seal.der != seal_der:
            return _fail("ofd_seal", OfdSealMismatch("the OFD is sealed with another seal than the package's "
                                                     "META-INF/seal.esl"))
        return Check("ofd_seal", PASS, details=checked.first.to_dict())
    except GwxError as exc:
        return _fail("ofd_seal", exc)


def _check_timestamp(token: bytes | None, signature: bytes, roots: tuple[x509.Certificate, ...],
                     info: dict[str, Any], revocation: RevocationCheck | None = None,
                     intermediates: Sequence[x509.Certificate] = ()) -> Check:
    if token is None:
        return Check("timestamp", ABSENT, message="no time stamp in the package")
    try:
        # The imprint is the signature value's digest with the signature's own hash (SM3 on a 国密
        # network): a token of another hash is for other data, whatever it hashes.
        hash_name = signature_hash(signature)
        stamp = tsa.verify_token(token, signature_value(signature), trust_roots=roots,
                                 tsa_certificates=intermediates, revocation=revocation)
        if stamp.hash_name != hash_name:
            raise TsaDigestMismatch(f"the time stamp's imprint is {stamp.hash_name}, not the signature's "
                                    f"{hash_name}", code="TSA_DIGEST_MISMATCH")
        info["timestamp_time"] = stamp.gen_time
        return Check("timestamp", PASS, details={"gen_time": stamp.gen_time.isoformat(),
                                                 "tsa": stamp.tsa_certificate.subject.rfc4514_string()})
    except GwxError as exc:
        return _fail("timestamp", exc)
