"""Sealing ``body.pdf`` (PAdES, through pyHanko) and validating such a seal against our roots.

Signing goes through our :class:`pki.signer.Signer` (software key or PKCS#11 token alike):
:class:`_GwxPyHankoSigner` adapts it to pyHanko's ``Signer`` — ``async_sign_raw`` calls
``Signer.sign`` — so pyHanko never sees a private key. A :class:`PadesSealer` is built **once per
seal** and reused: pyHanko's own ``SimpleSigner`` re-parses its key on every signature, and the seal
picture only needs decoding once. :func:`pades_sealer` keeps one sealer per signer object.

The visible appearance is the seal picture from the SESeal (transparent PNG), its size the seal's
width in mm (42 mm ≈ 119 pt for the common unit seal), placed where GB/T 9704 puts the 印章: over
the issuing organ's signature and the 成文日期 on the last page, the date in the lower part of the
seal. We look for the date line (``YYYY年M月D日``) on the last page; when none is found the seal
goes to the lower right. ``seal_box`` (points, PDF user space) overrides both.

Synchronous API. pyHanko's sync entry points run their own event loop (``asyncio.run``), so these
functions must not be called from a thread that is running an event loop: the node calls them in
a worker thread (``asyncio.to_thread``). The PDF is held in memory (PAdES needs the whole file,
seekable); the package layer bounds its size. The signing time is ours (passed in), not the
clock's: :class:`_TimedPdfSigner` puts it into the signing session.

On a 国密 network the seal key is SM2: pyHanko writes the CMS (SM3 digest, SM2-with-SM3 signature,
the key signing through our ``Signer``), but neither pyHanko nor its certificate validator can check
an SM2 signature or an SM2 certificate. Such a seal is validated here with pyHanko's reading of the
PDF (byte ranges, SM3 digest over them, coverage) and :func:`pki.cms.verify_detached` for the
signature and the path — the same checks, the same errors (:func:`_validate_sm2`).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import algos as a_algos
from asn1crypto import cms as a_cms
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from PIL import Image
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields as pyh_fields
from pyhanko.sign import signers as pyh_signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from pki import cms
from pki.algorithms import SM2_SM3
from pki.errors import GwxError
from pki.seal import Seal
from pki.signer import Signer
from pki.trust import RevocationCheck

from .errors import PackageInputError, PackageNotPdf, PackageSealInvalid, PdfSealNotLast
from .pades_lean import PdfSealStatus, check_seal_signer, verify_seal_cms

MM_TO_PT = 72 / 25.4
FIELD_NAME = "GwxSeal"
DATE_LINE = re.compile(r"(19|20)\d{2}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日")
# Lower-right fallback: the seal's right edge this far from the page edge, its bottom this high.
FALLBACK_RIGHT_PT = 90.0
FALLBACK_BOTTOM_PT = 160.0
MAX_TEXT_SCAN_BYTES = 256 * 1024

Box = tuple[float, float, float, float]
# A seal certificate signs documents: digitalSignature or nonRepudiation (pki.profiles.SEAL has both).
_SEAL_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"},
                                      match_all_key_usages=False)


class _GwxPyHankoSigner(pyh_signers.Signer):
    """pyHanko's Signer over a gwx :class:`Signer`: the raw signature comes from ``Signer.sign``."""

    def __init__(self, signer: Signer, chain: tuple[x509.Certificate, ...] = ()) -> None:
        cert = signer.certificate
        if cert is None:
            raise PackageInputError("the seal signer has no certificate")
        self._gwx = signer
        a_cert = a_x509.Certificate.load(cert.public_bytes(Encoding.DER))
        registry = SimpleCertificateStore.from_certs(
            [a_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in chain])
        mechanism = a_algos.SignedDigestAlgorithm({"algorithm": signer.algorithm.asn1crypto_name})
        super().__init__(signing_cert=a_cert, cert_registry=registry, signature_mechanism=mechanism,
                         embed_roots=False)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != self._gwx.algorithm.hash_name:
            raise PackageInputError(f"pyHanko asked for {digest_algorithm}; the seal key signs with "
                                    f"{self._gwx.algorithm.hash_name}")
        if dry_run:  # pyHanko sizes the signature container; a real signature is as big as any
            return self._gwx.sign(b"gwx dry run")
        return self._gwx.sign(data)


class _TimedPdfSigner(pyh_signers.PdfSigner):
    """A PdfSigner whose signing time is the one we were given rather than the system clock."""

    def __init__(self, *args, at: dt.datetime, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._at = at

    def init_signing_session(self, pdf_out, existing_fields_only=False):
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._at
        return session


@dataclass(frozen=True)
class PdfSealPlacement:
    page: int  # 0-based
    box: Box
    found_date_line: bool


class PadesSealer:
    """Seals PDFs with one seal. Build once per seal (see module docstring) and reuse; thread-safe."""

    def __init__(self, signer: Signer, seal: Seal, chain: tuple[x509.Certificate, ...] = ()) -> None:
        self.signer = signer
        self.seal = seal
        self._pyhanko_signer = _GwxPyHankoSigner(signer, chain)
        cert_bytes = sum(len(c.public_bytes(Encoding.DER)) for c in (signer.certificate, *chain) if c)
        self._reserved = 4096 + 2 * cert_bytes
        try:
            picture = Image.open(io.BytesIO(seal.picture.data))
            picture.load()
        except Exception as exc:  # Pillow raises many types for bad images
            raise PackageInputError(f"the seal picture does not decode: {exc}") from None
        self._picture = picture.convert("RGBA")
        self.diameter_pt = (seal.picture.width_mm or 42) * MM_TO_PT
        self.height_pt = (seal.picture.height_mm or seal.picture.width_mm or 42) * MM_TO_PT
        self._lock = threading.Lock()  # PIL images are not safe to share across threads

    def placement(self, pdf: bytes, seal_box: Box | None = None, page: int = -1) -> PdfSealPlacement:
        """Where the seal goes on ``pdf`` (see module docstring)."""
        reader = _open_reader(pdf)
        pages = reader.root["/Pages"]["/Count"]
        index = page if page >= 0 else pages + page
        if not 0 <= index < pages:
            raise PackageInputError(f"page {page} is outside the document's {pages} pages")
        if seal_box is not None:
            x1, y1, x2, y2 = (float(v) for v in seal_box)
            if not (x2 > x1 and y2 > y1):
                raise PackageInputError(f"seal box {seal_box} must be (x1, y1, x2, y2) with x2>x1, y2>y1")
            return PdfSealPlacement(index, (x1, y1, x2, y2), False)
        w, h = self.diameter_pt, self.height_pt
        media = [float(v) for v in reader.get_object(reader.find_page_for_modification(index)[0])["/MediaBox"]]
        found = _find_date_line(pdf, index)
        if found is not None:
            cx, baseline = found
            # The date sits in the lower part of the seal (居印章中心偏下).
            cy = baseline + h * 0.30
        else:
            cx = media[2] - FALLBACK_RIGHT_PT - w / 2
            cy = media[1] + FALLBACK_BOTTOM_PT + h / 2
        cx = min(max(cx, media[0] + w / 2), media[2] - w / 2)
        cy = min(max(cy, media[1] + h / 2), media[3] - h / 2)
        return PdfSealPlacement(index, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), found is not None)

    def seal_pdf(self, pdf: bytes, *, at: dt.datetime, seal_box: Box | None = None, page: int = -1,
                 reason: str | None = None) -> bytes:
        """Return ``pdf`` with an incremental PAdES signature made at ``at`` with the seal's key."""
        if at.tzinfo is None:
            raise PackageInputError("the sealing time must be timezone-aware")
        where = self.placement(pdf, seal_box, page)
        with self._lock:
            image = PdfImage(self._picture.copy(), writer=None)
        style = StaticStampStyle(background=image, border_width=0, background_opacity=1.0,
                                 background_layout=layout.SimpleBoxLayoutRule(
                                     x_align=layout.AxisAlignment.ALIGN_MID,
                                     y_align=layout.AxisAlignment.ALIGN_MID,
                                     margins=layout.Margins.uniform(0),
                                     inner_content_scaling=layout.InnerScaling.STRETCH_TO_FIT))
        meta = pyh_signers.PdfSignatureMetadata(
            field_name=FIELD_NAME, md_algorithm=self.signer.algorithm.hash_name,
            subfilter=pyh_fields.SigSeedSubFilter.PADES, reason=reason or f"{self.seal.name} 电子印章",
            name=self.seal.name)
        spec = pyh_fields.SigFieldSpec(FIELD_NAME, on_page=where.page, box=where.box)
        pdf_signer = _TimedPdfSigner(meta, self._pyhanko_signer, stamp_style=style, new_field_spec=spec,
                                     at=at.astimezone(dt.UTC))
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
            # Reserving the space up front spares pyHanko a dry-run CMS build to measure it (about
            # half of its signing time): ample room for an ECDSA or RSA-3072 value, the attributes and
            # the certificates, which we know.
            out = pdf_signer.sign_pdf(writer, output=io.BytesIO(), bytes_reserved=self._reserved)
        except GwxError:
            raise
        except Exception as exc:  # pyHanko reports broken PDFs with many exception types
            raise PackageNotPdf(f"body.pdf cannot be sealed: {type(exc).__name__}: {exc}") from None
        return out.getvalue()


_sealers: weakref.WeakKeyDictionary[Signer, tuple[bytes, PadesSealer]] = weakref.WeakKeyDictionary()
_sealers_lock = threading.Lock()


def pades_sealer(signer: Signer, seal: Seal, chain: tuple[x509.Certificate, ...] = ()) -> PadesSealer:
    """The cached :class:`PadesSealer` for this signer object and seal (built on first use)."""
    with _sealers_lock:
        hit = _sealers.get(signer)
        if hit is not None and hit[0] == seal.der:
            return hit[1]
        sealer = PadesSealer(signer, seal, chain)
        _sealers[signer] = (seal.der, sealer)
        return sealer


def _open_reader(pdf: bytes) -> PdfFileReader:
    if not pdf.startswith(b"%PDF-"):
        raise PackageNotPdf("body is not a PDF (no %PDF- header)")
    try:
        return PdfFileReader(io.BytesIO(pdf), strict=False)
    except Exception as exc:
        raise PackageNotPdf(f"body.pdf does not parse: {type(exc).__name__}: {exc}") from None


def _find_date_line(pdf: bytes, page_index: int) -> tuple[float, float] | None:
    """Centre x and baseline y of the last 成文日期-looking text run on the page, if readable."""
    try:
        from pypdf import PdfReader
        page = PdfReader(io.BytesIO(pdf)).pages[page_index]
        contents = page.get_contents()
        # pypdf's text extraction runs at about 1 µs a byte; a page whose content stream is huge (a
        # vector drawing, a text dump) is not worth it: the seal goes to the corner instead.
        if contents is None or len(contents.get_data()) > MAX_TEXT_SCAN_BYTES:
            return None
        runs: list[tuple[str, float, float, float]] = []

        def visit(text, cm, tm, font_dict, font_size):
            if text and text.strip():
                # Text space → user space (translation and scale only; rotated text is not a date line).
                x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
                size = (font_size or 12) * abs(tm[0] * cm[0] or 1)
                runs.append((text, x, y, size))

        page.extract_text(visitor_text=visit)
    except Exception:  # an unreadable text layer only means we fall back to the corner
        return None
    hits = [(x, y, size, m) for text, x, y, size in runs if (m := DATE_LINE.search(text))]
    if not hits:
        return None
    x, y, size, m = min(hits, key=lambda h: h[1])  # the lowest date on the page: the 成文日期
    # CJK glyphs are one em wide, digits about half: 0.75 em a character on average.
    start, width = m.start() * size * 0.75, len(m.group(0)) * size * 0.75
    return x + start + width / 2, y


# --- validation ------------------------------------------------------------------------------------


def _carried_certificates(sig) -> list[x509.Certificate]:
    """The certificates the PDF signature's CMS carries (its chain), or none if it has no readable set."""
    try:
        return [x509.load_der_x509_certificate(c.chosen.dump()) for c in sig.signed_data["certificates"]
                if c.name == "certificate"]
    except Exception:  # absent or malformed: the path is then built from what the caller gave
        return []


def validate_sealed_pdf(pdf: bytes, trust_roots: Sequence[x509.Certificate], at: dt.datetime, *,
                        expected_certificate: x509.Certificate | None = None,
                        revocation: RevocationCheck | None = None,
                        intermediates: Sequence[x509.Certificate] = ()) -> PdfSealStatus:
    """Validate the last signature of ``pdf`` with pyHanko, trusting only ``trust_roots``, at ``at``.

    It must be intact, cryptographically valid, chain to a root, cover the entire file (nothing
    appended after sealing), and — with ``expected_certificate`` — be made with that certificate.
    Raises :class:`PackageSealInvalid` (``PKG_PDF_SEAL_INVALID``) with the reason otherwise.
    ``intermediates`` help build the path when the PDF's own CMS does not carry them.

    Revocation: pyHanko never fetches here; with ``revocation`` the signer's path is then judged
    by :func:`pki.trust.verify_certificate` — the same rules and the same verdict (and error
    codes: ``PKI_CERT_REVOKED``, ``PKI_REVOCATION_UNKNOWN`` …) as the manifest signature gets.
    """
    try:
        reader = _open_reader(pdf)
    except PackageNotPdf as exc:
        raise PackageSealInvalid(f"cannot validate the seal: {exc.message}", cause=exc.code) from None
    try:
        signatures = reader.embedded_signatures
    except Exception as exc:
        raise PackageSealInvalid(f"the PDF's signatures cannot be read: {type(exc).__name__}: {exc}") from None
    if not signatures:
        raise PackageSealInvalid("body.pdf carries no seal (no PDF signature)")
    sig = signatures[-1]
    if _signed_with_sm2(sig):
        return _validate_sm2(sig, trust_roots, at, expected_certificate, revocation, intermediates, len(signatures))
    roots = [a_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in trust_roots]
    others = [a_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in intermediates]
    context = ValidationContext(trust_roots=roots, other_certs=others, moment=at, allow_fetching=False,
                                revocation_mode="soft-fail")
    try:
        status = validate_pdf_signature(sig, context, key_usage_settings=_SEAL_KEY_USAGE)
    except Exception as exc:  # pyHanko raises for structurally broken signatures
        raise PackageSealInvalid(f"the PDF seal cannot be validated: {type(exc).__name__}: {exc}") from None
    if not status.intact or not status.valid:
        raise PackageSealInvalid("the PDF seal does not verify: the sealed document was changed",
                                 intact=status.intact, valid=status.valid)
    if not status.trusted:
        raise PackageSealInvalid("the PDF seal's certificate does not chain to a trusted root at the "
                                 "verification time", trusted=False)
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise PdfSealNotLast("content was added to body.pdf after it was sealed", coverage=str(status.coverage))
    cert = x509.load_der_x509_certificate(status.signing_cert.dump())
    check_seal_signer(cert, trust_roots, at, [*_carried_certificates(sig), *intermediates],
                      expected_certificate=expected_certificate, revocation=revocation)
    return PdfSealStatus(cert, status.signer_reported_dt, sig.field_name, len(signatures))


def _signed_with_sm2(sig) -> bool:
    try:
        oid = sig.signer_info["signature_algorithm"]["algorithm"].dotted
    except Exception:  # a signature pyHanko cannot even read is pyHanko's to refuse
        return False
    return oid in (SM2_SM3.oid, cms.GBT_SM2_SIGNATURE)


def _validate_sm2(sig, trust_roots: Sequence[x509.Certificate], at: dt.datetime,
                  expected_certificate: x509.Certificate | None, revocation: RevocationCheck | None,
                  intermediates: Sequence[x509.Certificate], count: int) -> PdfSealStatus:
    """:func:`validate_sealed_pdf`'s checks for an SM2 seal, which pyHanko cannot verify: the SM3 digest
    of the signed byte ranges (pyHanko reads them) against the CMS, its SM2 signature and the signer's
    path at ``at`` (:mod:`pki.cms`), the whole file covered, the expected certificate, revocation."""
    try:
        coverage = sig.evaluate_signature_coverage()
        digest = sig.compute_digest()
        der = a_cms.ContentInfo({"content_type": "signed_data", "content": sig.signed_data}).dump()
    except Exception as exc:  # pyHanko raises for structurally broken signatures
        raise PackageSealInvalid(f"the PDF seal cannot be validated: {type(exc).__name__}: {exc}") from None
    path = [*_carried_certificates(sig), *intermediates]
    result = verify_seal_cms(der, digest=digest, trust_roots=trust_roots, at=at, intermediates=path)
    if coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise PdfSealNotLast("content was added to body.pdf after it was sealed", coverage=str(coverage))
    cert = result.signer_certificate
    check_seal_signer(cert, trust_roots, at, path, expected_certificate=expected_certificate, revocation=revocation)
    return PdfSealStatus(cert, result.signing_time or sig.self_reported_timestamp, sig.field_name, count)
