# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""The lean PAdES check: what it accepts, pyHanko (the full validator) and poppler's pdfsig accept;
each hostile body is refused by it with its own code, and by the full validator too (the same code
where the full validator has one for the case)."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields as pyh_fields
from pyhanko.sign import signers as pyh_signers

from exchange_protocol.errors import PackageSealInvalid
from exchange_protocol.package import build_package
from exchange_protocol.package_verify import verify_package
from exchange_protocol.pades import _GwxPyHankoSigner, pades_sealer, validate_sealed_pdf
from exchange_protocol.pades_lean import check_sealed_pdf
from node.localnet import notice_pdf
from pki import cms
from pki.ca import CertificateAuthority
from pki.crl import build_crl
from pki.errors import CertificateRevoked
from pki.revocation import CrlChecker
from pki.seal_store import issue_seal
from tests.exchange_protocol.package_fixtures import NOW, make_meta, make_pki, pki_env  # noqa: F401
from tests.support import PASSPHRASE

BYTE_RANGE = re.compile(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]")


def seal(pki_env, pdf: bytes, credential=None) -> bytes:
    credential = credential or pki_env.seal
    return pades_sealer(credential.signer, credential.seal).seal_pdf(pdf, at=NOW)


def seal_again(pdf: bytes, credential, field: str) -> bytes:
    """A second PAdES signature, in a new revision, in a field of its own (pyHanko, directly)."""
    meta = pyh_signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                            subfilter=pyh_fields.SigSeedSubFilter.PADES)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    signer = _GwxPyHankoSigner(credential.signer)
    return pyh_signers.PdfSigner(meta, signer).sign_pdf(writer, output=io.BytesIO()).getvalue()


def lean(pdf: bytes, pki_env, **kw):
    kw.setdefault("expected_certificate", pki_env.seal.certificate)
    return check_sealed_pdf(pdf, [pki_env.root], NOW, **kw)


def full(pdf: bytes, pki_env, **kw):
    kw.setdefault("expected_certificate", pki_env.seal.certificate)
    return validate_sealed_pdf(pdf, [pki_env.root], NOW, **kw)


def pdfsig(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "body.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True).stdout


def resigned(pdf: bytes, byte_range: tuple[int, int, int, int], signer) -> bytes:
    """``pdf`` with its /ByteRange rewritten to ``byte_range`` (same width) and its /Contents hole
    filled with a real CMS by ``signer`` over exactly those ranges: what a holder of a seal key (or
    a tool bent on it) could make, so that only the ranges themselves can be faulted."""
    m = list(BYTE_RANGE.finditer(pdf))[-1]
    text = b"/ByteRange [%d %d %d %d]" % byte_range
    pdf = pdf[:m.start()] + text.ljust(m.end() - m.start()) + pdf[m.end():]
    _, b, c, _ = (int(v) for v in m.groups())  # the hole pyHanko reserved: <hex>
    a2, b2, c2, d2 = byte_range
    data = pdf[a2:a2 + b2] + pdf[c2:c2 + d2]
    der = cms.sign_detached(data, signer, signing_time=NOW)
    hexed = der.hex().encode().ljust(c - b - 2, b"0")
    return pdf[:b + 1] + hexed + pdf[c - 1:]


@pytest.fixture(scope="module")
def sealed(pki_env) -> bytes:
    return seal(pki_env, notice_pdf())


@pytest.mark.parametrize("variant", ["one page", "two pages", "sealed twice by the same seal"])
def test_what_the_lean_check_accepts_pyhanko_and_pdfsig_accept(variant, pki_env, tmp_path):
    pdf = {"one page": lambda: seal(pki_env, notice_pdf()),
           "two pages": lambda: seal(pki_env, notice_pdf(pages=2)),
           "sealed twice by the same seal": lambda: seal_again(seal(pki_env, notice_pdf()), pki_env.seal, "Again")
           }[variant]()
    status = lean(pdf, pki_env)
    assert status.signer_certificate == pki_env.seal.certificate
    assert status.signing_time == full(pdf, pki_env).signing_time
    assert full(pdf, pki_env).signer_certificate == status.signer_certificate
    assert variant.startswith("sealed twice") or status.signing_time == NOW
    out = pdfsig(pdf, tmp_path)
    last = out.rsplit("Signature #", 1)[1]
    assert "Signature Validation: Signature is Valid." in last and "Total document signed" in last, out


def test_a_byte_range_that_skips_bytes_is_refused(sealed, pki_env):
    _, b, c, d = (int(v) for v in list(BYTE_RANGE.finditer(sealed))[-1].groups())
    # Validly signed over the ranges it declares, but the hole now begins 9 bytes before the
    # signature's '<': bytes a reader interprets that nobody signed.
    forged = resigned(sealed, (0, b - 9, c, d), pki_env.seal.signer)
    with pytest.raises(PackageSealInvalid) as err:
        lean(forged, pki_env)
    assert err.value.code == "PKG_PDF_BYTE_RANGE"
    with pytest.raises(PackageSealInvalid):
        full(forged, pki_env)
    # A range that does not start at the first byte: the same.
    with pytest.raises(PackageSealInvalid) as err:
        lean(resigned(sealed, (5, b - 5, c, d), pki_env.seal.signer), pki_env)
    assert err.value.code == "PKG_PDF_BYTE_RANGE"
    # One that reaches past the end of the file: the same.
    longer = b"/ByteRange [0 %d %d %d]" % (b, c, d + 10)
    m = list(BYTE_RANGE.finditer(sealed))[-1]
    with pytest.raises(PackageSealInvalid) as err:
        lean(sealed[:m.start()] + longer.ljust(m.end() - m.start()) + sealed[m.end():], pki_env)
    assert err.value.code == "PKG_PDF_BYTE_RANGE"


def test_a_changed_byte_inside_the_covered_range_is_refused(sealed, pki_env):
    at = sealed.index(b"/MediaBox") + 12  # inside the first signed range: the page before its seal
    changed = sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1:]
    with pytest.raises(PackageSealInvalid) as err:
        lean(changed, pki_env)
    with pytest.raises(PackageSealInvalid) as by_pyhanko:
        full(changed, pki_env)
    assert err.value.code == by_pyhanko.value.code == "PKG_PDF_SEAL_INVALID"
    assert err.value.details["intact"] is False
    # In the second range (after the signature) too.
    at = len(sealed) - 40
    with pytest.raises(PackageSealInvalid) as err:
        lean(sealed[:at] + b"9" + sealed[at + 1:], pki_env)
    assert err.value.code == "PKG_PDF_SEAL_INVALID"


def test_a_second_revision_appended_after_sealing_is_refused(sealed, pki_env):
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed), strict=False)
    writer.root["/Lang"] = generic.TextStringObject("zh-CN")  # an incremental update, unsigned
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    updated = out.getvalue()
    assert updated.startswith(sealed) and len(updated) > len(sealed)
    with pytest.raises(PackageSealInvalid) as err:
        lean(updated, pki_env)
    with pytest.raises(PackageSealInvalid) as by_pyhanko:
        full(updated, pki_env)
    assert err.value.code == by_pyhanko.value.code == "PKG_PDF_SEAL_APPENDED"
    with pytest.raises(PackageSealInvalid) as err:  # bytes merely appended: the same
        lean(sealed + b"\n% appended after sealing\n", pki_env)
    assert err.value.code == "PKG_PDF_SEAL_APPENDED"


def test_a_signature_by_another_key_is_refused(sealed, pki_env):
    by_other = seal(pki_env, notice_pdf(), pki_env.other_seal)  # another unit's valid seal
    with pytest.raises(PackageSealInvalid) as err:
        lean(by_other, pki_env)
    with pytest.raises(PackageSealInvalid) as by_pyhanko:
        full(by_other, pki_env)
    assert err.value.code == by_pyhanko.value.code == "PKG_PDF_SEAL_WRONG_SIGNER"
    # Our sealed PDF sealed again on top by the other unit: the newest signature is the other's.
    with pytest.raises(PackageSealInvalid) as err:
        lean(seal_again(sealed, pki_env.other_seal, "Other"), pki_env)
    assert err.value.code == "PKG_PDF_SEAL_WRONG_SIGNER"
    # The expected certificate carried, the signature made by another key: it does not verify.
    _, b, c, d = (int(v) for v in list(BYTE_RANGE.finditer(sealed))[-1].groups())
    forged = resigned(sealed, (0, b, c, d), pki_env.other_seal.signer)
    with pytest.raises(PackageSealInvalid) as err:
        lean(forged, pki_env)
    assert err.value.code == "PKG_PDF_SEAL_WRONG_SIGNER"


def test_untrusted_expired_revoked_unsealed_and_not_a_pdf(sealed, pki_env, tmp_path):
    stranger = CertificateAuthority.init_root(tmp_path / "other", "别的根CA", b"another passphrase",
                                              now=NOW - dt.timedelta(days=1))
    with pytest.raises(PackageSealInvalid) as err:
        check_sealed_pdf(sealed, [stranger.root_certificate], NOW)
    assert err.value.code == "PKG_PDF_SEAL_INVALID" and err.value.details["trusted"] is False
    with pytest.raises(PackageSealInvalid) as err:
        check_sealed_pdf(sealed, [pki_env.root], NOW + dt.timedelta(days=20 * 365))
    assert err.value.details["cause"] == "PKI_CERT_EXPIRED"
    for body in (notice_pdf(), b"GIF89a"):
        with pytest.raises(PackageSealInvalid) as err:
            lean(body, pki_env)
        assert err.value.code == "PKG_PDF_SEAL_INVALID"
    own = make_pki(tmp_path / "own")  # its own CA: revoking must not leak into other tests
    mine = seal(own, notice_pdf())
    assert lean(mine, own, revocation=CrlChecker([build_crl(own.ca, NOW)])).signatures == 1  # not revoked
    own.ca.revoke(own.seal.certificate, "key_compromise", now=NOW - dt.timedelta(hours=1))
    revoked = CrlChecker([build_crl(own.ca, NOW)])
    with pytest.raises(CertificateRevoked):  # the PKI's own code, as the full validator raises it
        lean(mine, own, revocation=revoked)
    with pytest.raises(CertificateRevoked):
        full(mine, own, revocation=revoked)


def test_verify_package_judges_the_pdf_seal_by_the_lean_check_when_asked(sealed, pki_env):
    out = io.BytesIO()
    build_package(out, metadata=make_meta(), body=notice_pdf(), seal_key=pki_env.seal, at=NOW)
    lean_report = verify_package(io.BytesIO(out.getvalue()), [pki_env.root], NOW, lean_pdf=True)
    full_report = verify_package(io.BytesIO(out.getvalue()), [pki_env.root], NOW)
    assert lean_report.ok and full_report.ok
    by_name = {c.name: c for c in lean_report.checks}
    assert by_name["pdf_seal"].details["check"] == "lean"
    assert {c.name: c.details.get("check") for c in full_report.checks}["pdf_seal"] == "full"


def test_an_sm2_seal_is_judged_alike(tmp_path):
    """On a 国密 network the lean check verifies the SM2 signature and SM3 digest with pki.cms, as the
    full path does (pyHanko reads the ranges there, gwx verifies): the same verdicts, the same codes."""
    now = NOW - dt.timedelta(days=1)
    ca = CertificateAuthority.init_root(tmp_path / "ca", "国密测试网络根CA", PASSPHRASE, algorithm="sm2-sm3", now=now)
    mine = issue_seal(ca, "91350100M000100Y43", "某某市人民政府", tmp_path / "seal", PASSPHRASE, now=now)
    other = issue_seal(ca, "11100000000013127D", "某某县财政局", tmp_path / "seal2", PASSPHRASE, now=now)
    pdf = pades_sealer(mine.signer, mine.seal).seal_pdf(notice_pdf(), at=NOW)
    for check in (check_sealed_pdf, validate_sealed_pdf):
        assert check(pdf, [ca.root_certificate], NOW, expected_certificate=mine.certificate).signer_certificate \
            == mine.certificate
    at = pdf.index(b"/MediaBox") + 12
    cases = {"PKG_PDF_SEAL_INVALID": pdf[:at] + bytes([pdf[at] ^ 1]) + pdf[at + 1:],
             "PKG_PDF_SEAL_APPENDED": pdf + b"\n% appended after sealing\n",
             "PKG_PDF_SEAL_WRONG_SIGNER": pades_sealer(other.signer, other.seal).seal_pdf(notice_pdf(), at=NOW)}
    for code, body in cases.items():
        for check in (check_sealed_pdf, validate_sealed_pdf):
            with pytest.raises(PackageSealInvalid) as err:
                check(body, [ca.root_certificate], NOW, expected_certificate=mine.certificate)
            assert err.value.code == code, (check.__name__, err.value)
