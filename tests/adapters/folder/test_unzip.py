"""Unpacking zipped drops on real files: the attacks a network test does not reach one by one."""

from __future__ import annotations

import struct
import tracemalloc
import zipfile

import pytest

from adapters.folder.drop import DropLimits, read_folder
from adapters.folder.errors import DropBadName, DropBadZip, DropTooLarge, DropZipBomb
from adapters.folder.unzip import MAX_MEMBERS, unpack

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name")  # a zip with one name twice, on purpose
LIMITS = DropLimits(body=1024 * 1024, total=8 * 1024 * 1024)
META = b'{"kind": "\xe9\x80\x9a\xe7\x9f\xa5"}'


def make_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def test_a_well_formed_zip_unpacks_to_its_drop(tmp_path):
    make_zip(tmp_path / "d.zip", [("META.json", META), ("body.pdf", b"%PDF-1.7"), ("attachments/a.txt", b"a")])
    root = unpack(tmp_path / "d.zip", tmp_path / "out", LIMITS)
    contents = read_folder(root, LIMITS)
    assert contents.meta == {"kind": "通知"} and [n for n, _ in contents.attachments] == ["a.txt"]


@pytest.mark.parametrize(("members", "error"), [
    ([("body.pdf", b"1"), ("body.pdf", b"2")], DropBadName),  # the second would overwrite the first
    ([("attachments", b"file"), ("attachments/a.txt", b"a")], DropBadName),  # a file and a folder
    ([("C:/Windows/x", b"x")], DropBadName),
    ([("attachments\\..\\x", b"x")], DropBadName),
    ([("a/./b", b"x")], DropBadName),
    ([("bell\x07", b"x")], DropBadName),
    ([(f"attachments/{i}.txt", b"") for i in range(MAX_MEMBERS + 1)], DropZipBomb),
])
def test_a_zip_that_attacks_is_refused_and_writes_nothing_outside(tmp_path, members, error):
    make_zip(tmp_path / "d.zip", members)
    with pytest.raises(error):
        unpack(tmp_path / "d.zip", tmp_path / "out", LIMITS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zip", "out"]


def test_a_zip_declaring_more_than_a_document_may_have_is_refused_before_unpacking(tmp_path):
    make_zip(tmp_path / "d.zip", [("attachments/big.bin", bytes(LIMITS.total + 1))], zipfile.ZIP_STORED)
    with pytest.raises(DropTooLarge):
        unpack(tmp_path / "d.zip", tmp_path / "out", LIMITS)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_zip_that_lies_about_a_members_size_is_refused(tmp_path):
    data = b"x" * 4096
    path = make_zip(tmp_path / "d.zip", [("body.pdf", data)])
    raw = bytearray(path.read_bytes())
    # Declare 16 bytes in both the local header (offset 22) and the central directory entry (offset 24).
    raw[22:26] = struct.pack("<I", 16)
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24:central + 28] = struct.pack("<I", 16)
    path.write_bytes(bytes(raw))
    with pytest.raises(DropBadZip):
        unpack(path, tmp_path / "out", LIMITS)


def test_an_encrypted_member_is_refused(tmp_path):
    path = make_zip(tmp_path / "d.zip", [("body.pdf", b"%PDF")])
    raw = bytearray(path.read_bytes())
    raw[6] |= 0x1  # the "encrypted" flag in the local header and in the central directory entry
    raw[raw.rindex(b"PK\x01\x02") + 8] |= 0x1
    path.write_bytes(bytes(raw))
    with pytest.raises(DropBadZip, match="encrypted"):
        unpack(path, tmp_path / "out", LIMITS)


def test_a_member_inflating_past_the_ratio_is_a_bomb(tmp_path):
    path = make_zip(tmp_path / "d.zip", [("attachments/zeros", bytes(4 * 1024 * 1024))], zipfile.ZIP_DEFLATED)
    with pytest.raises(DropZipBomb):
        unpack(path, tmp_path / "out", LIMITS)


def test_a_zip_whose_offsets_point_before_its_start_is_refused_not_retried(tmp_path):
    """A forged central-directory offset makes zipfile seek before the file's start (an OSError, not a
    BadZipFile): still the zip's fault, refused with its code rather than retried for ever."""
    path = make_zip(tmp_path / "d.zip", [("META.json", META), ("body.pdf", b"%PDF-1.7")])
    raw = bytearray(path.read_bytes())
    end = raw.rindex(b"PK\x05\x06")
    (offset,) = struct.unpack_from("<I", raw, end + 16)
    struct.pack_into("<I", raw, end + 16, offset + 1000)
    path.write_bytes(bytes(raw))
    with pytest.raises(DropBadZip):
        unpack(path, tmp_path / "out", LIMITS)


def _central_directory_only(count: int, declared: int | None = None) -> bytes:
    """A zip that is nothing but a central directory of ``count`` empty members (what a 17 MB zip of 200k
    members mostly is); its end record declares ``declared`` entries (default: the truth)."""
    entries = []
    for i in range(count):
        name = f"attachments/{i}.txt".encode()
        entries.append(struct.pack(zipfile.structCentralDir, zipfile.stringCentralDir, 20, 3, 20, 0, 0, 0, 0, 0,
                                   0, 0, 0, len(name), 0, 0, 0, 0, 0o644 << 16, 0) + name)
    directory = b"".join(entries)
    declared = count if declared is None else declared
    return directory + struct.pack(zipfile.structEndArchive, zipfile.stringEndArchive, 0, 0, declared, declared,
                                   len(directory), 0, 0)


@pytest.mark.parametrize(("data", "error"), [
    (_central_directory_only(60_000), DropZipBomb),  # counted in the end record, before zipfile reads it
    (_central_directory_only(60_000, declared=3), DropZipBomb),  # a lying count: the directory's size tells
    (b"\0" * (LIMITS.total + 2 * 1024 * 1024), DropTooLarge),  # the zip itself larger than any document
])
def test_a_zip_with_a_huge_directory_is_refused_before_it_is_parsed(tmp_path, data, error):
    (tmp_path / "d.zip").write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(error):
            unpack(tmp_path / "d.zip", tmp_path / "out", LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"{peak} bytes held to refuse it"
