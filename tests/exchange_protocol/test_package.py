# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""Building packages: layout, streaming, refusals, and checks by tools we did not write (openssl)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from exchange_protocol.canonical import canonical_json
from exchange_protocol.errors import ClassifiedRefused
from exchange_protocol.manifest import (
    BODY_NAME,
    MANIFEST_NAME,
    METADATA_NAME,
    SEAL_NAME,
    SIGNATURE_NAME,
    Manifest,
    parse_manifest,
)
from exchange_protocol.meta_json import meta_to_dict, meta_to_json, parse_meta
from exchange_protocol.package import Attachment, PackageBuilder, build_package, signature_value
from exchange_protocol.package_reader import PackageReader
from exchange_protocol.package_verify import verify_package
from node.localnet import notice_pdf
from pki import cms
from pki.errors import GwxError
from pki.seal_store import SealCredential
from tests.exchange_protocol.package_fixtures import NOW, OTHER_UNIT, UNIT, make_meta, pki_env  # noqa: F401

MiB = 1024 * 1024


def build(pki, **kw) -> bytes:
    out = io.BytesIO()
    kw.setdefault("metadata", make_meta())
    kw.setdefault("body", notice_pdf())
    build_package(out, seal_key=pki.seal, at=NOW, **kw)
    return out.getvalue()


def unpack(data: bytes, dest: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(dest)
    return dest


def test_layout_and_manifest(pki_env):
    data = build(pki_env, attachments=[Attachment("附件1 参会人员名单.csv", "姓名,单位\n张三,某局\n".encode()),
                                       Attachment("附件2 议程.txt", b"9:00 opening\n")])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert names == [METADATA_NAME, BODY_NAME, "attachments/附件1 参会人员名单.csv",
                         "attachments/附件2 议程.txt", SEAL_NAME, MANIFEST_NAME, SIGNATURE_NAME]
        for info in zf.infolist():
            if not info.filename.isascii():
                assert info.flag_bits & 0x800, "non-ASCII names must carry the UTF-8 flag"
        manifest = json.loads(zf.read(MANIFEST_NAME))
        assert zf.read(MANIFEST_NAME) == canonical_json(manifest)
        listed = {f["path"]: f for f in manifest["files"]}
        assert set(listed) == {METADATA_NAME, BODY_NAME, SEAL_NAME, "attachments/附件1 参会人员名单.csv",
                               "attachments/附件2 议程.txt"}
        for path, f in listed.items():
            content = zf.read(path)
            assert f["sha256"] == hashlib.sha256(content).hexdigest() and f["size"] == len(content)
        assert listed["attachments/附件1 参会人员名单.csv"]["media_type"] == "text/csv"
        assert listed[BODY_NAME]["media_type"] == "application/pdf"
        assert zf.read(SEAL_NAME) == pki_env.seal.seal.der
        meta = parse_meta(zf.read(METADATA_NAME)).metadata
        assert meta_to_dict(meta) == meta_to_dict(make_meta())
        assert zf.read(BODY_NAME).startswith(b"%PDF-") and b"/ByteRange" in zf.read(BODY_NAME)


def test_unzip_tool_sees_chinese_names(pki_env, tmp_path):
    pkg = tmp_path / "pkg.zip"
    pkg.write_bytes(build(pki_env, attachments=[Attachment("附件 说明.txt", b"x")]))
    listing = subprocess.run(["python3", "-m", "zipfile", "-l", str(pkg)], capture_output=True, text=True,
                             check=True).stdout
    assert "attachments/附件 说明.txt" in listing


def test_openssl_accepts_the_manifest_signature_and_refuses_a_changed_byte(pki_env, tmp_path):
    d = unpack(build(pki_env), tmp_path / "x")
    cmd = ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(d / SIGNATURE_NAME),
           "-content", str(d / MANIFEST_NAME), "-CAfile", str(pki_env.root_pem), "-purpose", "any",
           "-out", os.devnull]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Verification successful" in ok.stderr
    manifest = bytearray((d / MANIFEST_NAME).read_bytes())
    manifest[40] ^= 0x01
    (d / MANIFEST_NAME).write_bytes(bytes(manifest))
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode != 0
    # The signature carries signing time and ESS signing-certificate-v2, and the seal certificate.
    printed = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in",
                              str(d / SIGNATURE_NAME)], capture_output=True, text=True, check=True).stdout
    assert "signingTime" in printed and "id-smime-aa-signingCertificateV2" in printed
    assert "某某市人民政府" in printed or "\\xE6" in printed or "91350100M000100Y43" in printed


def test_timestamp_over_the_signature_value_checked_by_openssl_ts(pki_env, tmp_path):
    data = build(pki_env, timestamper=pki_env.timestamper())
    d = unpack(data, tmp_path / "x")
    tsr = d / "META-INF" / "timestamp.tsr"
    assert tsr.exists()
    digest = hashlib.sha256(signature_value((d / SIGNATURE_NAME).read_bytes())).hexdigest()
    r = subprocess.run(["openssl", "ts", "-verify", "-token_in", "-in", str(tsr), "-digest", digest,
                        "-CAfile", str(pki_env.root_pem)], capture_output=True, text=True)
    assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout + r.stderr
    report = verify_package(io.BytesIO(data), [pki_env.root], NOW)
    assert report.ok and report.check("timestamp").status == "pass"
    assert report.timestamp_time is not None


def test_package_without_timestamp_verifies_with_it_absent(pki_env):
    report = verify_package(io.BytesIO(build(pki_env)), [pki_env.root], NOW)
    assert report.ok, report.to_dict()
    assert [c.status for c in report.checks] == ["pass"] * 6 + ["absent"]
    assert report.seal_unit == "91350100M000100Y43" and report.document_id == make_meta().id


def test_attachments_stream_back_identical(pki_env):
    blobs = {"a.bin": os.urandom(3 * MiB + 17), "附件2 表格.csv": b"a,b\n" * 50_000, "empty.txt": b""}
    data = build(pki_env, attachments=[Attachment(n, io.BytesIO(b)) for n, b in blobs.items()])
    with PackageReader(io.BytesIO(data)) as reader:
        got = {e.path.removeprefix("attachments/"): b"".join(reader.iter_member(e.path))
               for e in reader.attachments}
    assert got == blobs


class _Generated(io.RawIOBase):
    """``size`` bytes of incompressible data produced on demand, never held whole."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(MiB)
        self.counter = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        out = bytearray()
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha256(self.counter.to_bytes(8, "big")).digest() + self.block[:MiB]
        self.left -= n
        return bytes(out[:n])


def test_large_attachment_is_streamed_with_bounded_memory(pki_env, tmp_path):
    size = 64 * MiB
    pkg = tmp_path / "big.zip"
    tracemalloc.start()
    try:
        with pkg.open("wb") as out:
            build_package(out, metadata=make_meta(), body=notice_pdf(), seal_key=pki_env.seal, at=NOW,
                          attachments=[Attachment("附件3 现场录像.mp4", _Generated(size))])
        _, build_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with pkg.open("rb") as f:
            report = verify_package(f, [pki_env.root], NOW)
        _, verify_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok, report.to_dict()
    assert pkg.stat().st_size > size
    # An order-of-magnitude bound: a 64 MiB attachment costs a few 1 MiB chunks, not its size.
    assert build_peak < 32 * MiB, build_peak
    assert verify_peak < 32 * MiB, verify_peak


def test_builder_is_immutable_and_validates_at_build(pki_env):
    base = PackageBuilder().with_metadata(make_meta()).with_body(notice_pdf())
    more = base.with_attachment("a.txt", b"a")
    assert base.attachments == () and len(more.attachments) == 1
    out = io.BytesIO()
    built = more.build(out, pki_env.seal, at=NOW)
    assert built.document_id == make_meta().id and built.manifest.get("attachments/a.txt").size == 1


@pytest.mark.parametrize("change, code", [
    (lambda b: b.with_metadata(make_meta(id=None)), "PKG_BAD_INPUT"),
    (lambda b: b.with_body(b"<html>not a pdf</html>"), "PKG_NOT_PDF"),
    (lambda b: dataclasses.replace(b.with_body(b"%PDF-1.7\n" + b"0" * (2 * MiB)), max_body_bytes=MiB),
     "PKG_BODY_TOO_LARGE"),
    (lambda b: b.with_attachment("a.txt", b"1").with_attachment("A.TXT", b"2"), "PKG_DUPLICATE_NAME"),
    (lambda b: b.with_attachment("../etc/passwd", b"x"), "PKG_BAD_PATH"),
    (lambda b: b.with_attachment("..", b"x"), "PKG_BAD_PATH"),
    (lambda b: b.with_attachment("C:evil.txt", b"x"), "PKG_BAD_PATH"),
    (lambda b: b.with_attachment("a\\b.txt", b"x"), "PKG_BAD_PATH"),
    (lambda b: b.with_attachment("data.jar", b"PK\x03\x04" + b"\0" * 40), "PKG_NESTED_ARCHIVE"),
    (lambda b: b.with_attachment("backup.7z", b"7z\xbc\xaf\x27\x1c" + b"\0" * 40), "PKG_NESTED_ARCHIVE"),
    (lambda b: b.with_attachment("renamed.docx", b"PK\x03\x04" + b"\0" * 22 + b"\x05\0\0\0evil!"),
     "PKG_NESTED_ARCHIVE"),
])
def test_builder_refusals(pki_env, change, code):
    builder = change(PackageBuilder(metadata=make_meta(), body=notice_pdf()))
    with pytest.raises(Exception) as info:
        builder.build(io.BytesIO(), pki_env.seal, at=NOW)
    assert getattr(info.value, "code", None) == code, info.value


def test_a_real_docx_style_container_is_an_acceptable_attachment(pki_env):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    report = verify_package(io.BytesIO(build(pki_env, attachments=[Attachment("附件1 方案.docx", buf.getvalue())])),
                            [pki_env.root], NOW)
    assert report.ok, report.to_dict()


def test_classified_documents_are_refused(pki_env):
    meta = parse_meta({"kind": "通知", "title": "t", "issuers": ["91350100M000100Y43"],
                       "to": ["11100000000013127D"], "written_on": "2026-03-02",
                       "classification": "秘密★1年", "copy_number": "000001"},
                      allow_classified=True, now=NOW).metadata
    with pytest.raises(ClassifiedRefused):
        PackageBuilder(metadata=meta, body=notice_pdf()).build(io.BytesIO(), pki_env.seal, at=NOW)


def test_a_key_that_does_not_belong_to_the_seal_is_refused(pki_env):
    mixed = SealCredential(pki_env.seal.directory, pki_env.seal.seal, pki_env.other_seal.certificate,
                           pki_env.other_seal.signer)
    with pytest.raises(Exception) as info:
        PackageBuilder(metadata=make_meta(), body=notice_pdf()).build(io.BytesIO(), mixed, at=NOW)
    assert info.value.code == "PKG_BAD_INPUT"


def test_output_may_be_a_non_seekable_stream(pki_env):
    class Pipe(io.RawIOBase):
        def __init__(self):
            self.parts = []

        def writable(self):
            return True

        def write(self, b):
            self.parts.append(bytes(b))
            return len(b)

    pipe = Pipe()
    build_package(pipe, metadata=make_meta(), body=notice_pdf(), seal_key=pki_env.seal, at=NOW,
                  attachments=[Attachment("a.txt", b"hello")])
    report = verify_package(io.BytesIO(b"".join(pipe.parts)), [pki_env.root], NOW)
    assert report.ok, report.to_dict()


def test_only_the_lead_issuer_seals_a_joint_document(pki_env, tmp_path):
    """A co-issuer's clerk must not be able to put the lead organ first and seal with their own seal."""
    with pytest.raises(GwxError) as refused:  # the builder: the seal must be the lead issuer's
        build_package(io.BytesIO(), metadata=make_meta(issuers=[UNIT, OTHER_UNIT], to=["11100000000013127D"]),
                      body=notice_pdf(), seal_key=pki_env.other_seal, at=NOW)
    assert refused.value.code == "PKG_SEAL_NOT_ISSUER"

    # By hand: a valid joint package led by OTHER_UNIT, then the metadata reordered to put UNIT
    # first and the manifest re-signed with OTHER_UNIT's seal key.
    honest = io.BytesIO()
    build_package(honest, metadata=make_meta(issuers=[OTHER_UNIT, UNIT], to=[UNIT]), body=notice_pdf(),
                  seal_key=pki_env.other_seal, at=NOW)
    with zipfile.ZipFile(io.BytesIO(honest.getvalue())) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    members["metadata.json"] = meta_to_json(make_meta(issuers=[UNIT, OTHER_UNIT], to=[UNIT]))
    manifest = parse_manifest(members["META-INF/manifest.json"])
    entries = [dataclasses.replace(e, digest=hashlib.sha256(members[e.path]).hexdigest(), size=len(members[e.path]))
               for e in manifest.entries]
    members["META-INF/manifest.json"] = Manifest.of(entries).to_bytes()
    members["META-INF/signature.p7s"] = cms.sign_detached(members["META-INF/manifest.json"],
                                                          pki_env.other_seal.signer, signing_time=NOW)
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    report = verify_package(forged, [pki_env.root], NOW)
    assert report.check("manifest_signature").status == "pass"  # everything else holds…
    assert report.check("seal").code == "SEAL_WRONG_UNIT" and not report.ok  # …but not who sealed it
