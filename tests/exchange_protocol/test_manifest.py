"""The manifest's canonical form and the member-name rules both sides of the wire apply."""

from __future__ import annotations

import hashlib
import json

import pytest

from exchange_protocol.errors import PackageError
from exchange_protocol.manifest import (
    Manifest,
    ManifestEntry,
    attachment_member,
    check_member_name,
    guess_media_type,
    parse_manifest,
)

H = hashlib.sha256(b"x").hexdigest()


def entry(path="body.pdf", sha=H, size=1, media="application/pdf"):
    return ManifestEntry(path, sha, size, media)


def test_round_trip_is_canonical_and_keeps_order():
    m = Manifest.of([entry("metadata.json", media="application/json"), entry(),
                     entry("attachments/附件2.txt", media="text/plain"), entry("attachments/附件1.txt")])
    data = m.to_bytes()
    assert data == json.dumps(json.loads(data), ensure_ascii=False, sort_keys=True,
                              separators=(",", ":")).encode()
    assert "附件2".encode() in data  # UTF-8, not \\u escapes
    assert parse_manifest(data) == m
    assert [e.path for e in m.attachments] == ["attachments/附件2.txt", "attachments/附件1.txt"]


@pytest.mark.parametrize("name, code", [
    ("../x", "PKG_PATH_TRAVERSAL"), ("attachments/../../x", "PKG_PATH_TRAVERSAL"),
    ("/etc/passwd", "PKG_ABSOLUTE_PATH"), ("C:/x", "PKG_ABSOLUTE_PATH"), ("c:x", "PKG_ABSOLUTE_PATH"),
    ("a\\b", "PKG_BAD_PATH"), ("a//b", "PKG_BAD_PATH"), ("./a", "PKG_BAD_PATH"), ("", "PKG_BAD_PATH"),
    ("a\x00b", "PKG_BAD_PATH"), ("a\u202eb", "PKG_BAD_PATH"), ("notes:stream", "PKG_BAD_PATH"),
    ("a\x7fb", "PKG_BAD_PATH"), ("a\tb", "PKG_BAD_PATH"), ("附件\u200b.pdf", "PKG_BAD_PATH"),
    ("x" * 256, "PKG_BAD_PATH"),
])
def test_unsafe_names(name, code):
    with pytest.raises(PackageError) as info:
        check_member_name(name)
    assert info.value.code == code


def test_safe_names_pass_unchanged():
    for name in ("body.pdf", "attachments/附件1 关于…的方案（修订稿）.docx", "META-INF/seal.esl"):
        assert check_member_name(name) == name
    assert attachment_member("附件 1.pdf") == "attachments/附件 1.pdf"
    with pytest.raises(PackageError):
        attachment_member("sub/dir.txt")


@pytest.mark.parametrize("mutate", [
    lambda d: d.replace(b'{"files"', b'{ "files"'),                      # not canonical
    lambda d: d.replace(H.encode(), H.upper().encode()),                  # digest not lower-case hex
    lambda d: d.replace(b'"size":1', b'"size":-1'),                       # negative size
    lambda d: d.replace(b'"size":1', b'"size":"1"'),                      # size not an integer
    lambda d: d.replace(b'"gwx-package/1"', b'"gwx-package/9"'),          # unknown format
    lambda d: d.replace(b'"media_type"', b'"mediatype"'),                 # unknown key
    lambda d: d.replace(b'"body.pdf"', b'"META-INF/signature.p7s"'),      # lists the signature
    lambda d: d.replace(b'"attachments/a"', b'"Body.PDF"'),               # duplicate after case folding
    lambda d: d.replace(b'"attachments/a"', b'"../a"'),                   # unsafe path
    lambda d: d[:-1],                                                     # not JSON
])
def test_bad_manifests(mutate):
    data = Manifest.of([entry(), entry("attachments/a")]).to_bytes()
    with pytest.raises(PackageError) as info:
        parse_manifest(mutate(data))
    assert info.value.code == "PKG_BAD_MANIFEST"


def test_media_types():
    assert guess_media_type("a.PDF") == "application/pdf"
    assert guess_media_type("正文.ofd") == "application/ofd"
    assert guess_media_type("x.docx").startswith("application/vnd.openxmlformats")
    assert guess_media_type("noext") == "application/octet-stream"
