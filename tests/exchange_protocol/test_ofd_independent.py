"""Our sealed OFDs checked by what we did not write: a reader (easyofd, from PyPI) renders the page and
the seal picture shows where the StampAnnot puts it; a second verifier written from the standard's
text (ofd_independent.py: minidom, asn1tools, gmalg, openssl; SM2/SM3 and P-256) accepts the seal and refuses a changed
page; the XML validates against the published OFD XSDs (ofd_xsd/, see its SOURCE.md)."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import xmlschema
from PIL import Image

from exchange_protocol.ofd_seal import seal_ofd
from pki.ca import CertificateAuthority
from pki.seal_store import issue_seal
from tests.support import PASSPHRASE

from .ofd_fixtures import make_ofd, unzip, zip_files
from .ofd_independent import check_sealed_ofd

XSD = Path(__file__).parent / "ofd_xsd"
UNIT, UNIT_NAME = "91350100M000100Y43", "福州市鼓楼区人民政府办公室"
SCHEMAS = {"OFD.xml": "OFD.xsd", "Doc_0/Document.xml": "Document.xsd", "Doc_0/PublicRes.xml": "Res.xsd",
           "Doc_0/Pages/Page_0/Content.xml": "Page.xsd", "Doc_0/Signs/Signatures.xml": "Signatures.xsd",
           "Doc_0/Signs/Sign_0/Signature.xml": "Signature.xsd"}


_SEALED: dict[str, bytes] = {}


def _sealed(algorithm: str, base: Path) -> bytes:
    if algorithm not in _SEALED:
        ca = CertificateAuthority.init_root(base / "ca", "OFD独立检查CA", PASSPHRASE, algorithm=algorithm)
        cred = issue_seal(ca, UNIT, UNIT_NAME, base / "seal", PASSPHRASE)
        _SEALED[algorithm] = seal_ofd(make_ofd(), cred.signer, cred.seal, at=dt.datetime.now(dt.UTC))
    return _SEALED[algorithm]


@pytest.fixture(scope="module", params=["sm2-sm3", "ecdsa-p256-sha256"], ids=["sm", "p256"])
def sealed(request, tmp_path_factory):
    return request.param, _sealed(request.param, tmp_path_factory.mktemp(f"ofd-indep-{request.param}"))


def _render(ofd: bytes, out: Path) -> Image.Image:
    """Page 1 as easyofd draws it (OFD → PDF), rasterised by PyMuPDF."""
    import fitz  # PyMuPDF, easyofd's own dependency (test-only, in requirements.lock): never skipped
    from easyofd.ofd import OFD
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # easyofd warns about every font it cannot find (on the root logger)
    try:
        reader = OFD()
        reader.read(ofd, fmt="binary")
        pdf = fitz.open(stream=reader.to_pdf(), filetype="pdf")
    finally:  # left at ERROR, it silenced the warnings later tests in this process read from caplog
        root.setLevel(level)
    pdf[0].get_pixmap(dpi=72).save(out)
    return Image.open(out).convert("RGB")


def _red_share(img: Image.Image, box_mm: tuple[float, float, float, float], page_mm: float = 210.0) -> float:
    scale = img.width / page_mm
    x, y, w, h = (v * scale for v in box_mm)
    region = img.crop((int(x), int(y), int(x + w), int(y + h)))
    raw = region.tobytes()
    pixels = [raw[i:i + 3] for i in range(0, len(raw), 3)]
    red = sum(1 for r, g, b in pixels if r > 180 and g < 90 and b < 90)
    return red / len(pixels)


def test_a_reader_we_did_not_write_shows_the_seal_where_it_was_placed(sealed, tmp_path):
    profile, ofd = sealed
    stamp = unzip(ofd)["Doc_0/Signs/Sign_0/Signature.xml"].split(b'Boundary="')[1].split(b'"')[0]
    box = tuple(float(v) for v in stamp.split())
    page = _render(ofd, tmp_path / f"sealed-{profile}.png")
    unsealed = _render(make_ofd(), tmp_path / "unsealed.png")
    assert _red_share(page, box) > 0.08, "the seal picture is not on the rendered page"  # ring, star, name
    assert _red_share(unsealed, box) == 0.0
    elsewhere = (box[0], box[1] - box[3] - 10, box[2], box[3])  # the same size, above the seal
    assert _red_share(page, elsewhere) == 0.0


def test_a_second_verifier_from_the_standards_text_accepts_the_seal_and_refuses_a_change(sealed):
    _, ofd = sealed
    seen = check_sealed_ofd(ofd)
    assert seen["seal_name"] == UNIT_NAME and seen["picture_type"] == "PNG" and seen["page"] == 10
    assert seen["references"] == 6  # OFD.xml, Document.xml, PublicRes.xml, the page, Signatures.xml, Seal.esl
    files = unzip(ofd)
    page = "Doc_0/Pages/Page_0/Content.xml"
    files[page] = files[page].replace("十二月十五日".encode(), "十二月二十日".encode())
    with pytest.raises(AssertionError, match="digest differs"):
        check_sealed_ofd(zip_files(files))


SIGN = "Doc_0/Signs/Sign_0/"


def _file_added(files):
    files["Doc_0/Res/extra.png"] = b"\x89PNG not covered"


def _reference_removed(files):
    xml = files[SIGN + "Signature.xml"].decode()
    start = xml.index('<ofd:Reference FileRef="/Doc_0/PublicRes.xml">')
    files[SIGN + "Signature.xml"] = (xml[:start] + xml[xml.index("</ofd:Reference>", start) + 16:]).encode()


def _seal_swapped(files):
    files[SIGN + "Seal.esl"] = files[SIGN + "Seal.esl"].replace(UNIT_NAME.encode(), "福州市鼓楼区人民政府".encode() + b"\xe3\x80\x80")


def _moved_to_another_document(files):
    other = unzip(make_ofd(doc_id="0" * 32, title="关于另一件事的通知"))
    files.update({n: v for n, v in other.items() if n != "OFD.xml"})
    files["OFD.xml"] = other["OFD.xml"].replace(
        b"</ofd:DocBody>", b"<ofd:Signatures>/Doc_0/Signs/Signatures.xml</ofd:Signatures></ofd:DocBody>")


def _stamp_moved_to_another_page(files):
    files[SIGN + "Signature.xml"] = files[SIGN + "Signature.xml"].replace(b'PageRef="10"', b'PageRef="99"')


@pytest.mark.parametrize(("damage", "why"), [
    (_file_added, "no reference covers"), (_reference_removed, "dataHash"), (_seal_swapped, "Seal.esl: digest"),
    (_moved_to_another_document, "OFD.xml: digest"), (_stamp_moved_to_another_page, "dataHash")],
    ids=["file-added", "reference-removed", "seal-swapped", "moved-to-another-document", "stamp-moved"])
def test_the_second_verifier_refuses_the_hostile_set_too(sealed, damage, why):
    """The cases test_ofd_seal.py refuses with the product's codes, refused by the second verifier as well."""
    _, ofd = sealed
    files = unzip(ofd)
    damage(files)
    with pytest.raises(AssertionError, match=why):
        check_sealed_ofd(zip_files(files))


def test_the_ofd_xml_validates_against_the_published_schemas(sealed):
    profile, ofd = sealed
    files = unzip(ofd)
    assert set(SCHEMAS) == {n for n in files if n.endswith(".xml")}
    for name, schema in SCHEMAS.items():
        errors = [e.reason or "" for e in xmlschema.XMLSchema(str(XSD / schema)).iter_errors(files[name].decode())]
        if name.endswith("Signature.xml"):
            # The one deviation, on purpose: the 2016 schema enumerates CheckMethod as MD5 or SHA1; GB/T
            # 38540 seals check references with SM3 (and our international profile with SHA-256).
            assert len(errors) == 1 and "CheckMethod" in errors[0] and "MD5" in errors[0], errors
        else:
            assert errors == [], (name, errors)


def test_the_schemas_do_refuse_what_is_wrong(sealed):
    _, ofd = sealed
    signatures = unzip(ofd)["Doc_0/Signs/Signatures.xml"].replace(b'Type="Seal"', b'Type="Stamp"')
    assert not xmlschema.XMLSchema(str(XSD / "Signatures.xsd")).is_valid(signatures.decode())


def test_the_second_verifier_loads_no_product_code():
    """Independent in fact, not only in logic: importing it (in a fresh interpreter) loads no module of
    pki, exchange_protocol, node or adapters — not even through a shared test helper."""
    probe = ("import sys, tests.exchange_protocol.ofd_independent; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pki', 'exchange_protocol', 'node', 'adapters')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2]).stdout
    assert out.strip() == "[]", out
