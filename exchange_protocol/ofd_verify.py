"""Verifying the seals of an OFD body (GB/T 38540 in GB/T 33190), each failure its own code.

:func:`verify_sealed_ofd` opens the container as hostile (:mod:`.ofd_container`: bombs, traversal,
XML entities refused), finds ``DocBody/Signatures`` (none, or an empty list: ``OFD_NOT_SEALED``) and
checks every signature it lists, in this order:

1. Signature.xml and SignedValue.dat are read; the DER SES_Signature parses (``SEAL_MALFORMED``).
2. ``propertyInfo`` names this Signature.xml (``OFD_SIGNATURE_MOVED``: made for another place).
3. ``CheckMethod`` is the digest of the seal key's algorithm — SM3 under SM2, SHA-256 under P-256 —
   so no weaker digest decides what is covered (``OFD_CHECK_METHOD_REFUSED``).
4. ``Seal/BaseLoc`` (Seal.esl), when given, is byte for byte the seal inside the SES_Signature
   (``OFD_SEAL_MISMATCH``) — before the References, which cover Seal.esl too, so a swapped seal is
   named as such.
5. Every Reference is re-hashed: a file gone is ``OFD_REFERENCE_MISSING``; OFD.xml changed means
   the signature was made over another document (``OFD_SIGNATURE_MOVED``); any other file changed
   is ``OFD_REFERENCE_MISMATCH`` (a page altered after sealing).
6. The SES_Signature (:func:`pki.seal_signature.verify_sealed_signature`): its signature over
   TBS_Sign, ``dataHash`` = the digest of Signature.xml, the seal maker's signature, the picture,
   the seal's validity and certificate list, ``timeInfo`` within it, the signer's chain and
   revocation, the network profile — each with its ``SEAL_*`` code.
7. At least one StampAnnot, on a page the document has, with a box of four numbers inside the page's
   PhysicalBox (``OFD_STAMP_INVALID``): a seal that shows nowhere is not a 印章.
8. With ``expected_certificate`` (the package's signer), the seal key is that certificate
   (``OFD_SIGNER_MISMATCH``).

Last, every file of the container is covered by some signature's References, but each signature's
own Signature.xml and SignedValue.dat and — when some signature is another product's — the signatures list
(which ContinueSign-mode producers leave uncovered so that seals can be added; ours always covers it)
(``OFD_UNREFERENCED_FILE``: a file added after sealing, or a Reference removed — removing one changes
Signature.xml, which step 6 catches first).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pki.algorithms import by_oid
from pki.errors import SealBadSignature, UnsupportedAlgorithm
from pki.seal_signature import SealedSignatureVerification, parse_sealed_signature, verify_sealed_signature

from .ofd_container import DEFAULT_OFD_LIMITS, OFD_XML, OfdContainer, OfdLimits, q, resolve_loc
from .ofd_errors import (
    OfdCheckMethodRefused,
    OfdMalformed,
    OfdNotSealed,
    OfdReferenceMismatch,
    OfdReferenceMissing,
    OfdSealMismatch,
    OfdSignatureMoved,
    OfdSignerMismatch,
    OfdStampInvalid,
    OfdUnreferencedFile,
)
from .ofd_seal import PROVIDER, digest, page_size

RevocationCheck = Callable[[x509.Certificate, x509.Certificate, dt.datetime], None]


def NO_REVOCATION_CHECK(certificate: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> None:
    """What a caller passes as ``revocation`` to check none, saying so: there is no default (fail-open)."""
# CheckMethod as written by us (OIDs) and by others (names, any case, with or without a dash).
_CHECK_METHODS = {"1.2.156.10197.1.401": "sm3", "sm3": "sm3", "2.16.840.1.101.3.4.2.1": "sha256",
                  "sha256": "sha256", "sha-256": "sha256"}


@dataclass(frozen=True)
class OfdSignatureReport:
    path: str  # the Signature.xml
    verification: SealedSignatureVerification
    page_id: int
    box: tuple[float, float, float, float]
    references: int
    provider: str = ""  # SignedInfo/Provider's ProviderName: "gwx" for ours

    def to_dict(self) -> dict:
        s = self.verification.signature
        return {"signature": self.path, "seal_name": s.seal.name, "unit_code": s.seal.unit_code,
                "signer": s.certificate.subject.rfc4514_string(), "signed_at": s.time_info.isoformat(),
                "page_id": self.page_id, "box_mm": list(self.box), "references": self.references}


@dataclass(frozen=True)
class OfdVerification:
    signatures: tuple[OfdSignatureReport, ...]
    pages: int

    @property
    def first(self) -> OfdSignatureReport:
        return self.signatures[0]


def verify_sealed_ofd(ofd: bytes, *, trust_roots: Iterable[x509.Certificate], at: dt.datetime | None = None,
                      revocation: RevocationCheck | None = None,
                      crls: Sequence[x509.CertificateRevocationList] | None = None,
                      intermediates: Sequence[x509.Certificate] = (), unit_code: str | None = None,
                      expected_certificate: x509.Certificate | None = None,
                      limits: OfdLimits = DEFAULT_OFD_LIMITS) -> OfdVerification:
    """Verify every seal of ``ofd`` (see the module doc); raise the first failure's typed error. The caller
    says how revocation is checked — ``revocation``, ``crls``, or ``revocation=NO_REVOCATION_CHECK`` —
    so that forgetting it checks no revocation silently."""
    if revocation is None and crls is None:
        raise TypeError("verify_sealed_ofd: pass revocation=…, crls=… or revocation=NO_REVOCATION_CHECK")
    if revocation is NO_REVOCATION_CHECK:
        revocation = None
    roots = tuple(trust_roots)
    container = OfdContainer.open(ofd, limits)
    doc_root, signatures_path = container.doc_body()
    pages = container.pages(doc_root)
    if signatures_path is None or signatures_path not in container.files:
        raise OfdNotSealed("the OFD carries no electronic seal (no Signatures.xml)")
    listed = container.xml(signatures_path).findall(q("Signature"))
    if not listed:
        raise OfdNotSealed("the OFD's Signatures.xml lists no signature")
    covered: set[str] = set()
    own: set[str] = set()
    reports = []
    for entry in listed:
        path = resolve_loc(signatures_path, entry.get("BaseLoc"))
        report, refs, signed_value = _verify_one(container, path, doc_root, pages, roots, at, revocation, crls,
                                                 intermediates, unit_code, expected_certificate)
        reports.append(report)
        covered |= refs
        own |= {path, signed_value}
    # The signatures list itself may be left out of the References by other products (ofdrw's ContinueSign
    # mode, common in practice so that a later seal can be added): each signature it lists is verified all
    # the same. Ours always cover it, so when every signature is ours, nothing is left uncovered.
    list_exempt = {signatures_path} if any(r.provider != PROVIDER for r in reports) else set()
    unreferenced = sorted(set(container.files) - covered - own - list_exempt)
    if unreferenced:
        raise OfdUnreferencedFile(f"{unreferenced[0]} is covered by no seal: added after sealing",
                                  name=unreferenced[0], count=len(unreferenced))
    return OfdVerification(tuple(reports), len(pages))


def _verify_one(container: OfdContainer, path: str, doc_root: str, pages: dict[int, str], roots, at, revocation, crls,
                intermediates, unit_code, expected_certificate) -> tuple[OfdSignatureReport, set[str], str]:
    signature_xml = container.files.get(path)
    if signature_xml is None:
        raise OfdReferenceMissing(f"Signatures.xml lists {path}, which is not in the OFD", name=path)
    root = container.xml(path)
    info = _child(root, "SignedInfo", path)
    signed_value_path = resolve_loc(path, _child(root, "SignedValue", path).text)
    der = container.files.get(signed_value_path)
    if der is None:
        raise OfdReferenceMissing(f"{path} points at {signed_value_path}, which is not in the OFD",
                                  name=signed_value_path)
    parsed = parse_sealed_signature(der)
    if parsed.property_info.lstrip("/") != path:
        raise OfdSignatureMoved(f"the seal was made for {parsed.property_info}, and sits at /{path}",
                                property_info=parsed.property_info, name=path)
    hash_algorithm = _check_method(info, path, parsed.algorithm_oid)
    seal = info.find(q("Seal"))
    if seal is not None:
        seal_path = resolve_loc(path, _child(seal, "BaseLoc", path).text)
        if container.files.get(seal_path) != parsed.seal.der:
            raise OfdSealMismatch(f"{seal_path} is not the seal inside the signature: the seal beside it was "
                                  "swapped", name=seal_path)
    refs = _check_references(container, info, path, hash_algorithm)
    verification = verify_sealed_signature(der, signature_xml, trust_roots=roots, at=at, crls=crls,
                                           revocation=revocation, unit_code=unit_code,
                                           intermediates=intermediates)
    page_id, box = _check_stamp(container, info, path, doc_root, pages)
    if expected_certificate is not None and parsed.certificate != expected_certificate:
        raise OfdSignerMismatch("the OFD was sealed with another certificate than the package's signer",
                                serial=f"{parsed.certificate.serial_number:x}")
    provider = info.find(q("Provider"))
    report = OfdSignatureReport(path, verification, page_id, box, len(refs),
                                provider.get("ProviderName", "") if provider is not None else "")
    return report, refs, signed_value_path


def _child(node: Element, tag: str, path: str) -> Element:
    found = node.find(q(tag))
    if found is None:
        raise OfdMalformed(f"{path} has no ofd:{tag}", name=path)
    return found


def _check_method(info: Element, path: str, signature_oid: str) -> hashes.HashAlgorithm:
    method = (_child(info, "References", path).get("CheckMethod") or "MD5").strip()
    name = _CHECK_METHODS.get(method.lower())
    try:
        expected = by_oid(signature_oid).hash()
    except UnsupportedAlgorithm as exc:
        raise SealBadSignature(f"{path}: {exc.message}", oid=signature_oid) from None
    if name != expected.name:
        raise OfdCheckMethodRefused(f"{path} checks its references with {method}; a {expected.name.upper()} "
                                    "seal is checked with its own digest", check_method=method)
    return expected


def _check_references(container: OfdContainer, info: Element, path: str,
                      hash_algorithm: hashes.HashAlgorithm) -> set[str]:
    refs: set[str] = set()
    for ref in _child(info, "References", path).findall(q("Reference")):
        target = resolve_loc(path, ref.get("FileRef"))
        if target in refs:
            raise OfdMalformed(f"{path} references {target} twice", name=target)
        refs.add(target)
        value = ref.find(q("CheckValue"))
        try:
            expected = base64.b64decode((value.text or "") if value is not None else "", validate=True)
        except (binascii.Error, ValueError):
            raise OfdMalformed(f"{path}: the CheckValue of {target} is not base64", name=target) from None
        data = container.files.get(target)
        if data is None:
            raise OfdReferenceMissing(f"{target} is covered by the seal but no longer in the OFD", name=target)
        if digest(hash_algorithm, data) != expected:
            if target == OFD_XML:
                raise OfdSignatureMoved("OFD.xml is not the one sealed: the signature was made over another "
                                        "document", name=target)
            raise OfdReferenceMismatch(f"{target} changed after sealing", name=target)
    if not refs:
        raise OfdMalformed(f"{path} references no file", name=path)
    return refs


def _check_stamp(container: OfdContainer, info: Element, path: str, doc_root: str,
                 pages: dict[int, str]) -> tuple[int, tuple[float, float, float, float]]:
    stamps = info.findall(q("StampAnnot"))
    if not stamps:
        raise OfdStampInvalid(f"{path} places the seal on no page (no StampAnnot)", name=path)
    first = None
    for stamp in stamps:
        try:
            page_id = int(stamp.get("PageRef", ""))
            x, y, w, h = (float(v) for v in (stamp.get("Boundary") or "").split())
        except ValueError:
            raise OfdStampInvalid(f"{path}: a StampAnnot's PageRef or Boundary is not numbers", name=path) from None
        if page_id not in pages:
            raise OfdStampInvalid(f"{path} places the seal on page {page_id}, which the document lacks",
                                  name=path, page=page_id)
        if not all(math.isfinite(v) for v in (x, y, w, h)) or min(x, y) < 0 or w <= 0 or h <= 0:
            raise OfdStampInvalid(f"{path}: the seal's box {x} {y} {w} {h} is empty or off the page", name=path)
        page_w, page_h = page_size(container, doc_root, pages[page_id])  # the sealer's own check, verified
        if x + w > page_w or y + h > page_h:
            raise OfdStampInvalid(f"{path}: the seal's box {x:g} {y:g} {w:g} {h:g} is off the {page_w:g}×{page_h:g} mm "
                                  "page", name=path, page=page_id)
        first = first or (page_id, (x, y, w, h))
    assert first is not None
    return first
