# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""PAdES seals on body.pdf, checked by pyHanko's validator, poppler's pdfsig and qpdf."""

from __future__ import annotations

import datetime as dt
import io
import subprocess

import pytest
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader

from exchange_protocol.errors import PackageNotPdf, PackageSealInvalid
from exchange_protocol.pades import MM_TO_PT, PadesSealer, pades_sealer, validate_sealed_pdf
from node.localnet import notice_pdf
from pki.ca import CertificateAuthority
from pki.signer import Signer
from tests.exchange_protocol.package_fixtures import NOW, pki_env  # noqa: F401


@pytest.fixture(scope="module")
def sealed(pki_env) -> bytes:
    return pades_sealer(pki_env.seal.signer, pki_env.seal.seal).seal_pdf(notice_pdf(pages=2), at=NOW)


def test_pyhanko_validator_trusting_our_root_accepts_the_seal(sealed, pki_env):
    root = ax509.Certificate.load(pki_env.root.public_bytes(Encoding.DER))
    sig = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0]
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[root], moment=NOW, allow_fetching=False))
    assert status.intact and status.valid and status.trusted
    assert status.signing_cert.subject.native["organization_identifier"] == "91350100M000100Y43"
    assert status.signer_reported_dt == NOW  # our time, not the clock's


def test_pdfsig_reports_a_valid_signature_and_trusted_certificate(sealed, pki_env, tmp_path):
    pdf = tmp_path / "body.pdf"
    pdf.write_bytes(sealed)
    out = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
    assert "Signature Validation: Signature is Valid." in out
    assert "Total document signed" in out
    # certutil (libnss3-tools, in the Makefile's system packages): trust our root in a throwaway NSS db.
    db = tmp_path / "nss"
    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "gwx-root", "-t", "CT,C,C",
                    "-i", str(pki_env.root_pem)], check=True)
    out = subprocess.run(["pdfsig", "-nssdir", f"sql:{db}", str(pdf)], capture_output=True, text=True).stdout
    assert "Signature Validation: Signature is Valid." in out
    assert "Certificate Validation: Certificate is Trusted." in out, out


def test_qpdf_check_passes(sealed, tmp_path):
    pdf = tmp_path / "body.pdf"
    pdf.write_bytes(sealed)
    r = subprocess.run(["qpdf", "--check", str(pdf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_seal_appearance_sits_over_the_date_line_on_the_last_page(sealed, pki_env):
    reader = PdfReader(io.BytesIO(sealed))
    assert len(reader.pages) == 2
    annots = [a.get_object() for a in reader.pages[-1].get("/Annots", [])]
    widget = next(a for a in annots if a.get("/FT") == "/Sig")
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    diameter = 42 * MM_TO_PT
    assert x2 - x1 == pytest.approx(diameter, abs=0.5) and y2 - y1 == pytest.approx(diameter, abs=0.5)
    # notice_pdf writes the date at (372, 272): the seal covers it, the date in its lower half.
    assert x1 < 372 + 40 < x2 and y1 < 272 < (y1 + y2) / 2
    assert "/Image" in str(widget["/AP"]["/N"].get_object()["/Resources"]["/XObject"]) or \
        widget["/AP"]["/N"].get_object()["/Resources"]["/XObject"]
    assert not reader.pages[0].get("/Annots")


def test_without_a_date_line_the_seal_goes_lower_right(pki_env):
    sealer = pades_sealer(pki_env.seal.signer, pki_env.seal.seal)
    where = sealer.placement(notice_pdf(date_line=None))
    assert not where.found_date_line
    x1, y1, x2, _ = where.box
    assert x2 > 595 / 2 and y1 < 842 / 2


def test_seal_box_places_the_seal(pki_env):
    sealer = pades_sealer(pki_env.seal.signer, pki_env.seal.seal)
    out = sealer.seal_pdf(notice_pdf(), at=NOW, seal_box=(100, 100, 200, 200))
    widget = next(a.get_object() for a in PdfReader(io.BytesIO(out)).pages[0]["/Annots"])
    assert [float(v) for v in widget["/Rect"]] == [100, 100, 200, 200]
    validate_sealed_pdf(out, [pki_env.root], NOW)


def test_the_pyhanko_signer_is_built_once_per_seal(pki_env):
    a = pades_sealer(pki_env.seal.signer, pki_env.seal.seal)
    assert pades_sealer(pki_env.seal.signer, pki_env.seal.seal) is a
    assert pades_sealer(pki_env.other_seal.signer, pki_env.other_seal.seal) is not a


class CountingSigner(Signer):
    """Any Signer (a PKCS#11 token behaves the same): pyHanko gets its signatures from sign()."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    algorithm = property(lambda self: self.inner.algorithm)
    public_key = property(lambda self: self.inner.public_key)
    certificate = property(lambda self: self.inner.certificate)

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self.inner.sign(data)


def test_signatures_come_from_our_signer_interface(pki_env):
    signer = CountingSigner(pki_env.seal.signer)
    out = PadesSealer(signer, pki_env.seal.seal).seal_pdf(notice_pdf(), at=NOW)
    assert signer.calls >= 1
    assert validate_sealed_pdf(out, [pki_env.root], NOW).signer_certificate == pki_env.seal.certificate


def test_tampering_and_appending_are_detected(sealed, pki_env):
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(sealed + b"\n% appended after sealing\n", [pki_env.root], NOW)
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(sealed + b"\n%%EOF\n", [pki_env.root], NOW)
    i = sealed.index(b"/Contents <") + 20
    flipped = sealed[:i] + (b"0" if sealed[i:i + 1] != b"0" else b"1") + sealed[i + 1:]
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(flipped, [pki_env.root], NOW)


def test_untrusted_root_wrong_certificate_and_expiry(sealed, pki_env, tmp_path):
    stranger = CertificateAuthority.init_root(tmp_path / "other", "别的根CA", b"another passphrase",
                                              now=NOW - dt.timedelta(days=1))
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(sealed, [stranger.root_certificate], NOW)
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(sealed, [pki_env.root], NOW, expected_certificate=pki_env.other_seal.certificate)
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(sealed, [pki_env.root], NOW + dt.timedelta(days=20 * 365))


def test_unsealed_and_non_pdf_bodies(pki_env):
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(notice_pdf(), [pki_env.root], NOW)
    with pytest.raises(PackageNotPdf):
        pades_sealer(pki_env.seal.signer, pki_env.seal.seal).seal_pdf(b"%PDF-1.7\ngarbage", at=NOW)
    with pytest.raises(PackageSealInvalid):
        validate_sealed_pdf(b"GIF89a", [pki_env.root], NOW)
