"""Hostile packages, each with the check it must fail and the stable code it must fail with.

Two ways of making them: :func:`rezip` copies a valid package's members into a new archive with
changes (what an attacker on the wire can do without the seal key), and :func:`assemble` builds a
*correctly signed* package from arbitrary members (what a sender with a valid seal but bad
intentions can do). :func:`patch` then edits raw bytes for what zipfile refuses to write
(encryption flags, names in GBK, invalid UTF-8, overlapping entries, lying sizes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import struct
import warnings
import zipfile
from dataclasses import dataclass

from exchange_protocol.canonical import canonical_json
from exchange_protocol.manifest import (
    BODY_NAME,
    MANIFEST_NAME,
    METADATA_NAME,
    SEAL_NAME,
    SIGNATURE_NAME,
    Manifest,
    ManifestEntry,
    guess_media_type,
)
from exchange_protocol.package_reader import PackageLimits
from pki import cms

MiB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    check: str  # the report check that must fail
    code: str
    limits: PackageLimits | None = None


def members_of(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rezip(members: list[tuple[str | zipfile.ZipInfo, bytes]],
          compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", compression=compression) as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def assemble(files: dict[str, bytes], signer, at: dt.datetime, *, extra: dict[str, bytes] | None = None
             ) -> bytes:
    """A package whose manifest lists ``files`` and is validly signed by ``signer``."""
    entries = [ManifestEntry(p, hashlib.sha256(b).hexdigest(), len(b), guess_media_type(p))
               for p, b in files.items()]
    manifest = Manifest(tuple(entries)).to_bytes()  # unvalidated on purpose: the reader must judge
    signature = cms.sign_detached(manifest, signer, signing_time=at)
    members = [*files.items(), (MANIFEST_NAME, manifest), (SIGNATURE_NAME, signature),
               *(extra or {}).items()]
    return rezip(members)


def patch(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and data.count(old) >= 1
    return data.replace(old, new)


def _set_flags(data: bytes, name: bytes, flags: int) -> bytes:
    """OR ``flags`` into the general-purpose flags of the entry called ``name`` (local and central)."""
    out = bytearray(data)
    for sig, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = out.find(sig)
        while pos >= 0:
            n = struct.unpack_from("<H", out, pos + name_len_at)[0]
            if bytes(out[pos + name_at:pos + name_at + n]) == name:
                struct.pack_into("<H", out, pos + flag_at, struct.unpack_from("<H", out, pos + flag_at)[0] | flags)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def _central_offsets(data: bytes) -> list[int]:
    out, pos = [], data.find(b"PK\x01\x02")
    while pos >= 0:
        out.append(pos)
        pos = data.find(b"PK\x01\x02", pos + 4)
    return out


def build_corpus(valid: bytes, signer, at: dt.datetime) -> list[Case]:
    m = members_of(valid)
    base = list(m.items())
    signed_files = {k: v for k, v in m.items() if not k.startswith("META-INF/") or k == SEAL_NAME}
    cases: list[Case] = []
    add = cases.append

    def without(name: str) -> bytes:
        return rezip([(k, v) for k, v in base if k != name])

    def plus(name: str | zipfile.ZipInfo, data: bytes = b"x") -> bytes:
        return rezip([*base, (name, data)])

    # --- not a ZIP at all, or a broken one
    add(Case("random bytes", os.urandom(4096), "structure", "PKG_MALFORMED"))
    add(Case("truncated", valid[: len(valid) // 2], "structure", "PKG_MALFORMED"))
    add(Case("empty file", b"", "structure", "PKG_MALFORMED"))
    # --- names
    add(Case("path traversal", plus("attachments/../../etc/cron.d/x"), "structure", "PKG_PATH_TRAVERSAL"))
    add(Case("absolute path", plus("/etc/passwd"), "structure", "PKG_ABSOLUTE_PATH"))
    add(Case("drive letter", plus("C:/Windows/evil.dll"), "structure", "PKG_ABSOLUTE_PATH"))
    add(Case("backslash", plus("attachments\\..\\evil.txt"), "structure", "PKG_BAD_PATH"))
    add(Case("control character", plus("attachments/a\x07.txt"), "structure", "PKG_BAD_PATH"))
    add(Case("duplicate name", rezip([*base, (BODY_NAME, b"%PDF-1.4 other")]), "structure",
             "PKG_DUPLICATE_NAME"))
    add(Case("duplicate after case folding", plus("Body.PDF"), "structure", "PKG_DUPLICATE_NAME"))
    gbk = "附件.txt".encode("gbk")  # 8 bytes, no UTF-8 flag: a name in a legacy code page
    add(Case("GBK name", patch(plus("attachments/XXXXXXXX"), b"attachments/XXXXXXXX", b"attachments/" + gbk),
             "structure", "PKG_NAME_NOT_UTF8"))
    flagged = _set_flags(plus("attachments/XXXX"), b"attachments/XXXX", 0x800)
    add(Case("flagged UTF-8 but invalid", patch(flagged, b"attachments/XXXX", b"attachments/\xff\xfe\xfd\xfc"),
             "structure", "PKG_NAME_NOT_UTF8"))
    link = zipfile.ZipInfo("attachments/link")
    link.create_system, link.external_attr = 3, (0o120777 << 16)
    add(Case("symlink", plus(link, b"/etc/shadow"), "structure", "PKG_SYMLINK"))
    # --- flags and methods
    add(Case("encrypted member", _set_flags(plus("attachments/secret.txt", b"hidden"),
                                            b"attachments/secret.txt", 0x1), "structure", "PKG_ENCRYPTED_MEMBER"))
    bz = rezip([*base, ("attachments/b.txt", b"b" * 100)], compression=zipfile.ZIP_BZIP2)
    add(Case("bzip2 member", bz, "structure", "PKG_UNSUPPORTED_COMPRESSION"))
    # --- sizes and bombs
    add(Case("zip bomb by ratio", plus("attachments/zeros.txt", bytes(64 * MiB)), "structure", "PKG_ZIP_BOMB"))
    add(Case("too many members", rezip([*base, *((f"attachments/{i}.txt", b"") for i in range(1001))]),
             "structure", "PKG_TOO_MANY_MEMBERS"))
    big = plus("attachments/big.bin", os.urandom(2 * MiB))
    add(Case("oversized member", big, "structure", "PKG_MEMBER_TOO_LARGE",
             PackageLimits(max_member_bytes=MiB)))
    add(Case("total too large", big, "structure", "PKG_TOO_LARGE",
             PackageLimits(max_total_bytes=MiB + 512 * 1024, max_member_bytes=4 * MiB)))
    # Two central entries pointing at the same local data (the overlapping-file bomb).
    two = plus("attachments/a.txt", b"aaaa")
    offs = _central_offsets(two)
    first_local = struct.unpack_from("<I", two, offs[0] + 42)[0]
    overlapped = bytearray(two)
    struct.pack_into("<I", overlapped, offs[-1] + 42, first_local)
    add(Case("overlapping members", bytes(overlapped), "structure", "PKG_OVERLAPPING_MEMBERS"))
    # A signed package whose central directory lies: it declares fewer bytes than the member
    # inflates to. zipfile stops at the declared size; the CRC then fails: a typed error, no more.
    lying = bytearray(assemble({**signed_files, "attachments/lie.txt": b"y" * 5000}, signer, at))
    cpos = next(o for o in _central_offsets(bytes(lying)) if lying[o + 46:o + 46 + 19] == b"attachments/lie.txt")
    struct.pack_into("<I", lying, cpos + 24, 100)  # uncompressed size: 100
    add(Case("size field lies", bytes(lying), "digests", "PKG_MALFORMED"))
    # --- layout
    for name, code in ((METADATA_NAME, "PKG_MISSING_METADATA"), (BODY_NAME, "PKG_MISSING_BODY"),
                       (SIGNATURE_NAME, "PKG_MISSING_SIGNATURE"), (MANIFEST_NAME, "PKG_MISSING_MANIFEST"),
                       (SEAL_NAME, "PKG_MISSING_SEAL")):
        add(Case(f"missing {name}", without(name), "structure", code))
    add(Case("file extra to the manifest", plus("attachments/smuggled.exe", b"MZ"), "structure",
             "PKG_UNLISTED_FILE"))
    add(Case("unknown META-INF file", plus("META-INF/evil.xml", b"<x/>"), "structure", "PKG_UNLISTED_FILE"))
    listed_missing = assemble({**signed_files, "attachments/gone.txt": b"gone"}, signer, at)
    add(Case("file missing from the archive", rezip([(k, v) for k, v in members_of(listed_missing).items()
                                                     if k != "attachments/gone.txt"]),
             "structure", "PKG_MISSING_FILE"))
    pretty = canonical_json({"x": 1})  # any manifest that is not the canonical form of itself
    add(Case("manifest not canonical", rezip([(k, v if k != MANIFEST_NAME else
                                               m[MANIFEST_NAME].replace(b'","', b'", "', 1))
                                              for k, v in base]), "structure", "PKG_BAD_MANIFEST"))
    add(Case("manifest not JSON", rezip([(k, v if k != MANIFEST_NAME else pretty[:-1]) for k, v in base]),
             "structure", "PKG_BAD_MANIFEST"))
    add(Case("signed manifest listing a stray top-level file",
             assemble({**signed_files, "run.sh": b"#!/bin/sh"}, signer, at), "structure", "PKG_BAD_MANIFEST"))
    # --- contents (the manifest is intact; the files are not what it lists)
    att = "attachments/附件1.txt"
    with_att = assemble({**signed_files, att: b"original text"}, signer, at)
    mm = members_of(with_att)
    add(Case("digest mismatch", rezip([(k, v if k != att else b"0riginal text") for k, v in mm.items()]),
             "digests", "PKG_DIGEST_MISMATCH"))
    add(Case("size mismatch", rezip([(k, v if k != att else b"original text!") for k, v in mm.items()]),
             "digests", "PKG_SIZE_MISMATCH"))
    inner = rezip([("payload.exe", b"MZ" + os.urandom(64))])
    for name, blob in (("attachments/inner.zip", inner), ("attachments/附件2.docx", inner),
                       ("attachments/a.rar", b"Rar!\x1a\x07\x01\x00" + os.urandom(64)),
                       ("attachments/a.7z", b"7z\xbc\xaf\x27\x1c" + os.urandom(64)),
                       ("attachments/a.txt.gz", _gzip(b"hello"))):
        add(Case(f"nested archive {name}", assemble({**signed_files, name: blob}, signer, at),
                 "digests", "PKG_NESTED_ARCHIVE"))
    # --- signature
    add(Case("manifest changed after signing",
             rezip([(k, v if k != MANIFEST_NAME else _resigned_manifest(m[MANIFEST_NAME])) for k, v in base]),
             "manifest_signature", "CMS_DIGEST_MISMATCH"))
    add(Case("signature replaced by garbage", rezip([(k, v if k != SIGNATURE_NAME else os.urandom(300))
                                                     for k, v in base]), "manifest_signature", "CMS_MALFORMED"))
    return cases


def _gzip(data: bytes) -> bytes:
    import gzip
    return gzip.compress(data)


def _resigned_manifest(manifest: bytes) -> bytes:
    # Same length, one hex digit of the body's digest changed: still canonical, no longer signed.
    i = manifest.index(b'"sha256":"') + 10
    return manifest[:i] + (b"0" if manifest[i:i + 1] != b"0" else b"1") + manifest[i + 1:]

