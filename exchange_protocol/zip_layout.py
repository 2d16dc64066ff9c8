"""Whether a ZIP's bytes are exactly its members, its central directory and its end record.

``zipfile`` reads the central directory at the end and accepts bytes before the first local header
(a self-extractor's stub), after the end record, and between members. A streaming reader — local
headers in order, as many OFD readers and unzip tools on a pipe do — sees those bytes, and a local
header hidden in a gap can show a page that no directory entry names, so no verifier hashed it.
:func:`unclaimed_bytes` finds the first such span: the members must follow one another from offset 0
(each a local header, its data and, when flag bit 3 says so, a data descriptor whose CRC is the
member's), then the central directory, an optional ZIP64 end record and locator, and the end record
whose comment ends the file. Sans-I/O: bytes and ``zipfile``'s directory in, a sentence or None out.

:data:`ZIP_OPEN_ERRORS` is every exception ``zipfile.ZipFile(...)`` raises on bytes that are not a
ZIP it can read — every reader of an untrusted ZIP catches this one tuple and says so with its own
typed error. ``NotImplementedError`` is among them: a directory entry whose "version needed to
extract" is above 6.3 is refused that way by ``zipfile`` (found by hypothesis: ``zip file version 6.4``).
"""

from __future__ import annotations

import struct
import zipfile

_LOCAL, _DESCRIPTOR, _END = b"PK\x03\x04", b"PK\x07\x08", b"PK\x05\x06"
_ZIP64_END, _ZIP64_LOCATOR = b"PK\x06\x06", b"PK\x06\x07"
_END_SIZE, _LOCATOR_SIZE = 22, 20

ZIP_OPEN_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error, NotImplementedError)


def unclaimed_bytes(data: bytes, zf: zipfile.ZipFile) -> str | None:
    """None when every byte of ``data`` (the archive ``zf`` was opened on) belongs to the archive's
    structure; else where the first byte that does not is, in words."""
    end = len(data) - _END_SIZE - len(zf.comment)
    if end < 0 or data[end:end + 4] != _END or struct.unpack_from("<H", data, end + 20)[0] != len(zf.comment):
        return "there are bytes after the ZIP's end record"
    expected = 0
    infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    following = [i.header_offset for i in infos[1:]] + [zf.start_dir]
    for info, next_start in zip(infos, following, strict=True):
        if info.header_offset != expected:
            where = "before the first member" if expected == 0 else f"between members, before {info.orig_filename!r}"
            return f"there are bytes {where} (offset {expected}, next member at {info.header_offset})"
        if data[expected:expected + 4] != _LOCAL:
            return f"member {info.orig_filename!r} has no local header at its offset"
        name_len, extra_len = struct.unpack_from("<HH", data, expected + 26)
        expected += 30 + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x08:
            expected += _descriptor_size(data, expected, info, next_start)
    if expected != zf.start_dir:
        return f"there are bytes between the last member and the central directory (offset {expected})"
    cd_size, cd_offset = struct.unpack_from("<II", data, end + 12)
    if cd_offset != 0xFFFFFFFF and cd_size != 0xFFFFFFFF:
        directory_end = zf.start_dir + cd_size
        return None if directory_end == end else f"there are bytes between the central directory and its end " \
                                                  f"record (offset {directory_end})"
    return _zip64_tail(data, zf.start_dir, end)


def _descriptor_size(data: bytes, at: int, info: zipfile.ZipInfo, next_start: int) -> int:
    """The length of the data descriptor at ``at`` — optional signature, the member's CRC, two sizes of 4
    or 8 bytes (ZIP64; some writers use them for any size) — the one that ends where the next structure
    starts; 0 when none fits, and then the caller names the gap. At most 24 bytes: no header hides there."""
    signed = data[at:at + 4] == _DESCRIPTOR
    crc_at = at + 4 if signed else at
    if len(data) < crc_at + 4 or struct.unpack_from("<I", data, crc_at)[0] != info.CRC:
        return 0
    for sizes in (8, 16):
        if crc_at + 4 + sizes == next_start:
            return crc_at - at + 4 + sizes
    return 0


def _zip64_tail(data: bytes, start_dir: int, end: int) -> str | None:
    locator = end - _LOCATOR_SIZE
    if locator < 0 or data[locator:locator + 4] != _ZIP64_LOCATOR:
        return "the end record points at a ZIP64 record that is not there"
    (record,) = struct.unpack_from("<Q", data, locator + 8)
    if data[record:record + 4] != _ZIP64_END:
        return "the ZIP64 locator points at no ZIP64 end record"
    record_size, = struct.unpack_from("<Q", data, record + 4)
    cd_size, = struct.unpack_from("<Q", data, record + 40)
    if start_dir + cd_size != record or record + 12 + record_size != locator:
        return "there are bytes between the central directory, the ZIP64 end record and its locator"
    return None
