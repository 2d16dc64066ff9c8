"""Recognising archives by their magic bytes, so an attachment cannot smuggle a nested archive.

A nested archive is refused (``PKG_NESTED_ARCHIVE``) by what its first bytes say, not by its
name: ZIP (and everything built on it: JAR, APK), 7z, RAR, gzip, bzip2, xz, zstd, LZ4, tar, CAB,
ARJ, LZH. Both the builder (so we never send one) and the reader (so we never accept one) ask.

One exception, because 公文 attachments are mostly office files: OOXML (docx/xlsx/pptx), ODF and
OFD documents are ZIP containers. They pass when the name has their extension **and** the first
local header names a member such a document starts with ([Content_Types].xml, _rels/, docProps/,
word/, xl/, ppt/, mimetype, OFD.xml, Doc_0/). A ``.jar``, or a ZIP merely renamed ``.docx``,
does not. We never open these containers ourselves; the recipient's office suite does.
"""

from __future__ import annotations

import struct

from .errors import PackageNestedArchive

# (name, offset, magic)
_MAGIC: tuple[tuple[str, int, bytes], ...] = (
    ("zip", 0, b"PK\x03\x04"), ("zip (empty)", 0, b"PK\x05\x06"), ("zip (spanned)", 0, b"PK\x07\x08"),
    ("7z", 0, b"7z\xbc\xaf\x27\x1c"), ("rar", 0, b"Rar!\x1a\x07"), ("gzip", 0, b"\x1f\x8b"),
    ("bzip2", 0, b"BZh"), ("xz", 0, b"\xfd7zXZ\x00"), ("zstd", 0, b"\x28\xb5\x2f\xfd"),
    ("lz4", 0, b"\x04\x22\x4d\x18"), ("cab", 0, b"MSCF\x00\x00\x00\x00"), ("arj", 0, b"\x60\xea"),
    ("lzh", 2, b"-lh"), ("tar", 257, b"ustar"),
)
OFFICE_EXTENSIONS = (".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".odt", ".ods", ".odp", ".ofd")
_OFFICE_FIRST_MEMBERS = ("[Content_Types].xml", "_rels/", "docProps/", "word/", "xl/", "ppt/",
                         "mimetype", "OFD.xml", "Doc_0/")


def archive_kind(head: bytes) -> str | None:
    """The archive format ``head`` (the first few hundred bytes) starts, or None."""
    for name, offset, magic in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return name
    return None


def _first_zip_member(head: bytes) -> str | None:
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None
    name_len = struct.unpack_from("<H", head, 26)[0]
    raw = head[30:30 + name_len]
    return raw.decode("utf-8", "replace") if len(raw) == name_len else None


def is_office_container(name: str, head: bytes) -> bool:
    if not name.lower().endswith(OFFICE_EXTENSIONS):
        return False
    first = _first_zip_member(head)
    return first is not None and first.startswith(_OFFICE_FIRST_MEMBERS)


def check_not_archive(member: str, head: bytes) -> None:
    """Raise ``PKG_NESTED_ARCHIVE`` if the member starting with ``head`` is an archive."""
    kind = archive_kind(head)
    if kind is None or (kind == "zip" and is_office_container(member, head)):
        return
    raise PackageNestedArchive(f"{member} is a {kind} archive; packages may not nest archives",
                               name=member, kind=kind)
