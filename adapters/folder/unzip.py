"""Unpacking a zipped drop into the node's own work folder, refusing zips that attack.

A member name must be relative, without ``..``, backslashes, drive letters or control characters;
a member may not be a symbolic link, encrypted, or use a compression we do not know. The sizes the
zip declares are checked before anything is written (count of members, total against the node's
limit, each member's inflation ratio), and the bytes actually inflated are counted while they are
written — zipfile stops a member at its declared size and then fails its CRC, so a zip that lies
about a size is refused too. Files are created with ``O_EXCL | O_NOFOLLOW`` under a directory only
the node writes, so two members of one name, or a member that tries to land on a link, fail.
Before zipfile parses anything, the zip's own size and its end record's member count and directory
size are checked (read cheaply from the file's tail), and the zip is opened once without following
links: what is checked is what is unpacked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from adapters.folder.drop import MAX_ATTACHMENTS, DropLimits, refuse_if_unreadable
from adapters.folder.errors import DropBadName, DropBadZip, DropSymlink, DropTooLarge, DropZipBomb

MAX_MEMBERS = MAX_ATTACHMENTS + 8  # META.json, body.pdf, .ready and a few directory entries
MAX_RATIO = 200  # inflated / compressed bytes of one member; PDFs and office files stay far below
MAX_DIRECTORY = MAX_MEMBERS * 1024  # bytes of central directory: 46 per entry + name and extras
END_SIZE = struct.calcsize(zipfile.structEndArchive)
RATIO_FLOOR = 1024 * 1024  # members smaller than this may inflate as they like
CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError,
                    NotImplementedError, RuntimeError, ValueError)


def unpack(zip_path: Path, target: Path, limits: DropLimits) -> Path:
    """Unpack ``zip_path`` into the new directory ``target``; returns the drop folder inside it
    (``target`` itself, or the one top folder every member is in)."""
    target.mkdir(mode=0o700)
    try:  # opened once, never through a link: what is checked below is what is unpacked
        fd = os.open(zip_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DropSymlink(f"{zip_path.name!r} is a symbolic link; a drop is real files",
                              file=zip_path.name) from None
        refuse_if_unreadable(exc, zip_path.name)
        raise
    with os.fdopen(fd, "rb") as f:
        _check_end_record(f, zip_path.name, limits)
        try:
            archive = zipfile.ZipFile(f)
        except (*_ZIP_READ_ERRORS, OSError) as exc:
            raise DropBadZip(f"{zip_path.name} is not a readable zip: {_one_line(exc)}",
                             file=zip_path.name) from None
        _unpack(archive, target, limits)
    return _drop_root(target)


def _check_end_record(f: BinaryIO, shown: str, limits: DropLimits) -> None:
    """The zip's own size, and the member count and directory size its end record declares, checked
    before zipfile reads the central directory (it builds an object per entry, whatever the count):
    a small zip of 200,000 empty members would otherwise cost 100 MiB and seconds to refuse."""
    st = os.fstat(f.fileno())
    if not stat.S_ISREG(st.st_mode):
        raise DropBadZip(f"{shown!r} is not a regular file", file=shown)
    if st.st_size > limits.total + MAX_DIRECTORY:
        raise DropTooLarge(f"the zip is {st.st_size} bytes, more than the {limits.total} a document may have",
                           size=st.st_size, limit=limits.total)
    tail_size = min(st.st_size, END_SIZE + 0xFFFF)  # the end record, and a comment of at most 64 KiB
    f.seek(st.st_size - tail_size)
    tail = f.read(tail_size)
    at = tail.rfind(zipfile.stringEndArchive)
    if at < 0 or len(tail) - at < END_SIZE:
        raise DropBadZip(f"{shown} is not a zip (no end of central directory record)", file=shown)
    fields = struct.unpack(zipfile.structEndArchive, tail[at:at + END_SIZE])
    count, directory_size = fields[4], fields[5]
    locator = tail[at - 20:at] if at >= 20 else b""
    if locator[:4] == zipfile.stringEndArchive64Locator:  # zip64: the real figures are in its own record
        offset = struct.unpack(zipfile.structEndArchive64Locator, locator)[2]
        f.seek(offset)
        record = f.read(56)
        if len(record) < 56 or record[:4] != zipfile.stringEndArchive64:
            raise DropBadZip(f"{shown} has a broken zip64 end record", file=shown)
        fields64 = struct.unpack(zipfile.structEndArchive64, record)
        count, directory_size = fields64[7], fields64[8]
    if count > MAX_MEMBERS or directory_size > MAX_DIRECTORY:  # the size bounds a count that lies
        raise DropZipBomb(f"the zip declares {count} members in a {directory_size}-byte directory, more than "
                          f"the {MAX_MEMBERS} a drop may have", members=count, limit=MAX_MEMBERS)
    f.seek(0)


def _unpack(archive: zipfile.ZipFile, target: Path, limits: DropLimits) -> None:
    with archive:
        infos = archive.infolist()
        _check_declared(infos, limits)
        for info in infos:
            parts = _member_parts(info)
            if info.is_dir():
                _make_dirs(target, parts)
                continue
            _make_dirs(target, parts[:-1])
            _extract(archive, info, target.joinpath(*parts))


def _check_declared(infos: list[zipfile.ZipInfo], limits: DropLimits) -> None:
    if len(infos) > MAX_MEMBERS:
        raise DropZipBomb(f"the zip has {len(infos)} members, more than the {MAX_MEMBERS} a drop may have",
                          members=len(infos), limit=MAX_MEMBERS)
    declared = sum(i.file_size for i in infos)
    if declared > limits.total:
        raise DropTooLarge(f"the zip unpacks to {declared} bytes, more than the {limits.total} a document may have",
                           size=declared, limit=limits.total)
    for info in infos:
        if info.flag_bits & 0x1:
            raise DropBadZip(f"zip member {info.filename!r} is encrypted", member=info.filename)
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise DropZipBomb(f"zip member {info.filename!r} inflates {info.compress_size} bytes to "
                              f"{info.file_size} (more than {MAX_RATIO} times)", member=info.filename)


def _member_parts(info: zipfile.ZipInfo) -> list[str]:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DropSymlink(f"zip member {name!r} is a symbolic link; a drop is real files", member=name)
    if (not name or "\\" in name or name.startswith("/") or _DRIVE.match(name)
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise DropBadName(f"zip member name {name!r} is absolute, has a backslash, a drive or control "
                          "characters", member=name)
    parts = name.rstrip("/").split("/") if info.is_dir() else name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise DropBadName(f"zip member name {name!r} has an empty, '.' or '..' segment", member=name)
    return parts


def _make_dirs(target: Path, parts: list[str]) -> None:
    path = target
    for part in parts:
        path = path / part
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise DropBadName(f"zip member {'/'.join(parts)!r} is both a file and a folder",
                                  member="/".join(parts)) from None


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise DropBadName(f"the zip holds {info.filename!r} twice", member=info.filename) from None
    written = 0
    with os.fdopen(fd, "wb") as out:
        with _reading(info):
            member = archive.open(info)
        with member:
            while True:
                with _reading(info):
                    chunk = member.read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > info.file_size:  # zipfile stops at the declared size; belt and braces
                    raise DropZipBomb(f"zip member {info.filename!r} inflates past its declared size",
                                      member=info.filename)
                out.write(chunk)  # our disk: an error here is ours (retried), not the zip's


@contextlib.contextmanager
def _reading(info: zipfile.ZipInfo) -> Iterator[None]:
    """Whatever reading a hostile member raises — a negative seek from a forged offset is an OSError
    too — is the zip's fault: a typed refusal, never a retry."""
    try:
        yield
    except (*_ZIP_READ_ERRORS, OSError) as exc:
        raise DropBadZip(f"zip member {info.filename!r} cannot be read: {_one_line(exc)}",
                         member=info.filename) from None


def _drop_root(target: Path) -> Path:
    """A zip made by zipping the drop folder itself has one top folder: the drop is inside it."""
    entries = list(target.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name.lower() != "attachments":
        return entries[0]
    return target


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
