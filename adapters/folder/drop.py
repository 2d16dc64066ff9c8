"""What counts as a drop in ``outgoing/``, and reading one the node has claimed, trusting nothing.

The rule an OA system follows (README "Watched folders"):

* a **folder** ``NAME/`` holding ``META.json``, ``body.pdf`` (the 正文) and optionally
  ``attachments/`` (one level of files, each sent under its own name) counts once it holds a
  ``.ready`` file — write the marker last (or build the folder elsewhere on the same disk and rename it in);
* a **zip** ``NAME.zip`` with the same layout (at its root, or inside one top folder) counts as soon
  as it is there under that name — write it as ``NAME.zip.part`` (or ``.NAME.zip``) and rename it;
* anything whose name starts with ``.`` or ends in ``.part``/``.tmp`` is still being written and is
  never looked at; other files are left alone (and logged once).

Reading a claimed drop refuses, each with its code (:mod:`adapters.folder.errors`): symbolic links
anywhere (the drop itself included), files with other names (hard links), anything but the layout
above, attachment names a package cannot carry, a missing META.json or body, and sizes past the
node's limits (``[limits] max_body_pdf_bytes`` for the body, ``max_envelope_bytes`` for all).
META.json is read with a cap before it is parsed, never whole into memory when it is huge.

A claimed folder is never read twice by path: :func:`copy_folder` opens each entry once, relative
to its directory's descriptor and without following links (``O_NOFOLLOW``), checks it on the open
descriptor and copies it into the claim's private ``.unpacked/``; that copy is what is checked and
sent. Swapping a file for a link after the checks (the OA runs as the same user, or holds the drop
as its working directory) changes nothing the node sends.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.folder.errors import (
    DropBadName,
    DropHardLink,
    DropNoBody,
    DropNoMeta,
    DropSymlink,
    DropTooLarge,
    DropUnexpectedEntry,
    DropUnreadable,
)
from exchange_protocol.canonical import load_json
from exchange_protocol.errors import MalformedMetadata, PackageError
from exchange_protocol.manifest import attachment_member, name_key
from exchange_protocol.meta_json import MAX_META_BYTES

META_NAME = "meta.json"  # names are matched case-insensitively: OA systems on Windows write META.JSON
BODY_NAME = "body.pdf"
ATTACHMENTS_DIR = "attachments"
READY_MARKER = ".ready"
IN_PROGRESS_SUFFIXES = (".part", ".tmp")
MAX_ATTACHMENTS = 1000  # as the local API (node.api.upload)
RESERVED_NAME = "error.json"  # rejects/NAME/ holds the drop beside error.json: no drop takes that name
MAX_NAME = 200  # characters of a drop's name (results and rejects are named after it)


@dataclass(frozen=True)
class DropLimits:
    body: int  # bytes of body.pdf
    total: int  # bytes of everything in the drop (zip: unpacked)


@dataclass
class DropContents:
    meta: dict[str, Any]
    body: Path
    attachments: list[tuple[str, Path]] = field(default_factory=list)
    size: int = 0


def in_progress(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


def is_complete(path: Path) -> bool | None:
    """Whether the entry ``outgoing/NAME`` is a complete drop to claim now; None: not a drop at all
    (a stray file, or the one name a reject's error.json needs: left alone). A symbolic link counts
    as complete so that it is refused and moved out of the way rather than followed."""
    name = path.name
    if in_progress(name):
        return False
    if name.lower() == RESERVED_NAME:
        return None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return True
    if stat.S_ISDIR(st.st_mode):
        return os.path.lexists(path / READY_MARKER)
    if stat.S_ISREG(st.st_mode) and is_zip_name(name):
        return True
    return None


def printable(name: str) -> str:
    """A file name as an OA and a log can show it: bytes that are not UTF-8 (a GBK name from a Windows
    share arrives as surrogates, which no UTF-8 file or log can hold) written as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def not_utf8(name: str, shown: str) -> None:
    if printable(name) != name:
        raise DropBadName(f"{printable(shown)!r} is not a UTF-8 name (GBK?); name files in UTF-8 (Unicode)",
                          file=printable(shown))


def check_drop_name(name: str) -> None:
    not_utf8(name, name)
    if len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DropBadName(f"the drop's name {name[:60]!r} is longer than {MAX_NAME} characters or has control "
                          "characters", name=name[:MAX_NAME])


def read_folder(path: Path, limits: DropLimits) -> DropContents:
    """The contents of the drop folder ``path`` (a claimed folder, or a zip unpacked by the node)."""
    meta_path = body = None
    attachments: list[tuple[str, Path]] = []
    total = 0
    seen: dict[str, str] = {}
    for entry in _entries(path):
        not_utf8(entry.name, entry.name)
        lower = entry.name.lower()
        if lower in seen:  # META.json and meta.json on a case-sensitive disk: never pick one silently
            raise DropBadName(f"the drop has {lower!r} twice (spelt {seen[lower]!r} and {entry.name!r})",
                              file=entry.name)
        seen[lower] = entry.name
        if lower == READY_MARKER:
            regular_file(entry, entry.name)
        elif lower == META_NAME:
            meta_path = entry
            total += regular_file(entry, entry.name).st_size
        elif lower == BODY_NAME:
            body = entry
            size = regular_file(entry, entry.name).st_size
            if size > limits.body:
                raise DropTooLarge(f"body.pdf is {size} bytes, more than the {limits.body} a body may have",
                                   file=entry.name, size=size, limit=limits.body)
            total += size
        elif lower == ATTACHMENTS_DIR and _is_dir(entry):
            found, size = _attachments(entry)
            attachments += found
            total += size
        else:
            raise DropUnexpectedEntry(f"{entry.name!r} is not part of a drop (META.json, body.pdf, attachments/, "
                                      ".ready)", file=entry.name)
        if total > limits.total:
            raise DropTooLarge(f"the drop is more than the {limits.total} bytes a document may have",
                               limit=limits.total)
    if meta_path is None:
        raise DropNoMeta("the drop has no META.json (the document's metadata)")
    if body is None:
        raise DropNoBody("the drop has no body.pdf (the 正文 to seal and send)")
    return DropContents(read_meta(meta_path), body, attachments, total)


def copy_folder(source: Path, target: Path, limits: DropLimits) -> Path:
    """Copy the drop folder ``source`` into the new private directory ``target``, each entry opened once
    without following links; returns ``target``. At most ``limits.total`` bytes are read."""
    fd = _open_dir(source, source.name, None)
    try:
        os.mkdir(target, 0o700)
        _copy_dir(fd, target, "", [limits.total], limits)
    finally:
        os.close(fd)
    return target


def _open_dir(name: Path | str, shown: str, dir_fd: int | None) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a link (or a file) where a folder was
            raise DropSymlink(f"{shown!r} is not a real folder (a symbolic link?); a drop is real files",
                              file=shown) from None
        refuse_if_unreadable(exc, shown)
        raise


def refuse_if_unreadable(exc: OSError, shown: str) -> None:
    """EACCES/EPERM opening a file of the drop: the OA's permissions, which no retry changes."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        raise DropUnreadable(f"the node may not read {shown!r} ({exc.strerror}); let the node's user read the "
                             "drop", file=shown) from None


def _copy_dir(dir_fd: int, target: Path, prefix: str, budget: list[int], limits: DropLimits) -> None:
    for name in sorted(os.listdir(dir_fd)):
        shown = prefix + name
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode) and not prefix and name.lower() == ATTACHMENTS_DIR:
            sub = _open_dir(name, shown, dir_fd)
            try:
                os.mkdir(target / name, 0o700)
                _copy_dir(sub, target / name, shown + "/", budget, limits)
            finally:
                os.close(sub)
        elif stat.S_ISLNK(st.st_mode):
            raise DropSymlink(f"{shown!r} is a symbolic link; a drop is real files", file=shown)
        elif not stat.S_ISREG(st.st_mode):
            raise DropUnexpectedEntry(f"{shown!r} is not a regular file", file=shown)
        else:
            _copy_file(dir_fd, name, shown, target / name, budget, limits)


def _copy_file(dir_fd: int, name: str, shown: str, target: Path, budget: list[int], limits: DropLimits) -> None:
    try:  # O_NONBLOCK: a FIFO swapped in cannot hang the watcher
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DropSymlink(f"{shown!r} is a symbolic link; a drop is real files", file=shown) from None
        refuse_if_unreadable(exc, shown)
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())  # the file actually opened, not the name checked a moment ago
        if not stat.S_ISREG(st.st_mode):
            raise DropUnexpectedEntry(f"{shown!r} is not a regular file", file=shown)
        if st.st_nlink > 1:
            raise DropHardLink(f"{shown!r} has {st.st_nlink - 1} other name(s) on this disk (a hard link); "
                               "copy the file into the drop instead", file=shown)
        with open(target, "xb") as out:
            while chunk := f.read(min(1 << 20, budget[0] + 1)):
                budget[0] -= len(chunk)
                if budget[0] < 0:  # counted on the bytes read: a file growing after fstat is caught too
                    raise DropTooLarge(f"the drop is more than the {limits.total} bytes a document may have",
                                       limit=limits.total)
                out.write(chunk)


def read_meta(path: Path) -> dict[str, Any]:
    """META.json read with a cap (an oversized one is refused after MAX_META_BYTES + 1 bytes)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags), "rb") as f:
        data = f.read(MAX_META_BYTES + 1)
    if len(data) > MAX_META_BYTES:
        raise DropTooLarge(f"META.json is more than the {MAX_META_BYTES} bytes it may have", file=path.name,
                           limit=MAX_META_BYTES)
    meta = load_json(data, max_bytes=MAX_META_BYTES, what="META.json", error=MalformedMetadata)
    if not isinstance(meta, dict):
        raise MalformedMetadata("META.json must be a JSON object", file=path.name)
    return meta


def refuse_if_symlink(path: Path) -> None:
    if os.path.islink(path):
        raise DropSymlink(f"{path.name!r} is a symbolic link (to {os.readlink(path)!r}); a drop is real files",
                          file=path.name)


def _entries(path: Path) -> list[Path]:
    with os.scandir(path) as it:
        return sorted(Path(e.path) for e in it)


def _is_dir(path: Path) -> bool:
    refuse_if_symlink(path)
    return path.is_dir()


def regular_file(path: Path, shown: str) -> os.stat_result:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise DropSymlink(f"{shown!r} is a symbolic link (to {os.readlink(path)!r}); a drop is real files",
                          file=shown)
    if not stat.S_ISREG(st.st_mode):
        raise DropUnexpectedEntry(f"{shown!r} is not a regular file", file=shown)
    if st.st_nlink > 1:
        raise DropHardLink(f"{shown!r} has {st.st_nlink - 1} other name(s) on this disk (a hard link); "
                           "copy the file into the drop instead", file=shown)
    return st


def _attachments(directory: Path) -> tuple[list[tuple[str, Path]], int]:
    found: list[tuple[str, Path]] = []
    seen: set[str] = set()
    total = 0
    for entry in _entries(directory):
        shown = f"{ATTACHMENTS_DIR}/{entry.name}"
        not_utf8(entry.name, shown)
        total += regular_file(entry, shown).st_size
        try:
            attachment_member(entry.name)
        except PackageError as exc:
            raise DropBadName(f"attachment name refused: {exc.message}", file=shown) from None
        if name_key(entry.name) in seen:
            raise DropBadName(f"two attachments are called {entry.name!r} (letter case or Unicode form aside)",
                              file=shown)
        seen.add(name_key(entry.name))
        found.append((entry.name, entry))
        if len(found) > MAX_ATTACHMENTS:
            raise DropUnexpectedEntry(f"more than {MAX_ATTACHMENTS} attachments", limit=MAX_ATTACHMENTS)
    return found, total
