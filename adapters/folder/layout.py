"""A unit's watched folder on disk, and the few file operations that must survive a kill -9.

``ROOT`` (``[[folders]] path``) holds::

    outgoing/   the OA writes drops here (NAME/ with .ready, or NAME.zip renamed into place)
    results/    NAME.json for each drop sent: 公文标识 and status      (written by the node)
    rejects/    NAME/ with the drop as it was and error.json           (written by the node)
    inbox/      DOC_ID/ for each document received, events/ for every event  (written by the node)
    work/       the node's own: drops it has claimed (0700, not for the OA)

``ROOT`` itself is the operator's (a share mounted there, or a folder made for it): the node creates
only the subfolders, and only under a root that is there (:meth:`FolderLayout.create`).

Everything the node writes for the OA appears whole: written under a name starting with ``.``
(which the OA is told to ignore), fsynced, renamed into place, and the directory fsynced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.folder.errors import FolderIncomplete, FolderRootMissing, FolderRootUnreadable
from pki.keystore import fsync_dir, write_public_file

DONE_PREFIX = ".done-"  # a claim being removed after its outcome is durable


@dataclass(frozen=True)
class FolderLayout:
    root: Path

    @property
    def outgoing(self) -> Path:
        return self.root / "outgoing"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def events(self) -> Path:
        return self.inbox / "events"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def subfolders(self) -> tuple[Path, ...]:
        return (self.outgoing, self.results, self.rejects, self.inbox, self.events, self.work)

    def check_root(self) -> None:
        """Raise :class:`FolderRootMissing` unless the configured root is a directory; one that cannot be
        looked at (EACCES above it, a stale NFS handle, EIO) is :class:`FolderRootUnreadable`, never a
        bare OSError (readiness reports it, ``gwx node status`` prints it)."""
        try:
            is_dir = stat.S_ISDIR(os.stat(self.root).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_dir = False
        except OSError as exc:
            raise FolderRootUnreadable(f"the watched folder {self.root} cannot be read ({exc.strerror or exc}): a "
                                       "share gone stale or a permission above it", path=str(self.root)) from exc
        if not is_dir:
            raise FolderRootMissing(f"the watched folder {self.root} is not there (a share not mounted?); the node "
                                    "never creates it: mount the share or create the folder", path=str(self.root))

    def check(self) -> None:
        """:meth:`check_root`, and every subfolder there (:class:`FolderIncomplete` names the first missing)."""
        self.check_root()
        for path in self.subfolders:
            try:
                present = stat.S_ISDIR(os.stat(path).st_mode)
            except (FileNotFoundError, NotADirectoryError):
                present = False
            except OSError as exc:
                raise FolderRootUnreadable(f"{path} cannot be read ({exc.strerror or exc})", path=str(path)) from exc
            if not present:
                raise FolderIncomplete(f"{path} is missing (the share came back empty?): the running node makes "
                                       "it again within a round", path=str(path))

    def create(self, *, mounted: bool = False) -> bool:
        """The subfolders, under a root that must already be there (:meth:`check_root`): never the root
        itself nor anything above it, so an unmounted share is reported, not filled in underneath.
        ``mounted``: the root was a mount point when they were first made (``path`` is the share's
        mount point itself), so it must be one again — a bare mount point is a directory too, and the
        subfolders made there would be hidden once the share is back. Returns whether it is one."""
        self.check_root()
        is_mount = os.path.ismount(self.root)
        if mounted and not is_mount:
            raise FolderRootMissing(f"the watched folder {self.root} was a mounted share and is now a bare mount "
                                    "point (the share not mounted?): the node waits for it", path=str(self.root))
        for path in (self.outgoing, self.results, self.rejects, self.inbox, self.events):
            path.mkdir(exist_ok=True)  # no parents: each one's parent is the root or made just before
        self.work.mkdir(mode=0o700, exist_ok=True)
        return is_mount


def write_json(path: Path, value: Any) -> None:
    """``path`` appears whole or not at all (temp ``.name.*``, fsync, rename, fsync of the directory);
    its directory must exist."""
    text = json.dumps(value, ensure_ascii=False, indent=1)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8 somewhere in it: escaped, never an error here
        data = json.dumps(value, ensure_ascii=True, indent=1).encode("ascii")
    # Never creates a missing directory: under an unmounted share that would write beneath the bare
    # mount point, where the OA never looks once the share is back. Failing is retried instead.
    write_public_file(path, data + b"\n", parents=False)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def move(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target`` (same file system: atomic) and make both directories durable."""
    os.rename(source, target)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)


def remove_tree(path: Path) -> None:
    """Remove a finished claim: first renamed out of the way (one atomic step, so a kill -9 in the
    middle never leaves half a drop that looks like a new one), then deleted."""
    if not path.exists():
        return
    doomed = path.with_name(DONE_PREFIX + path.name)
    if doomed.exists():
        shutil.rmtree(doomed)
    move(path, doomed)
    shutil.rmtree(doomed)


def free_name(directory: Path, name: str, suffix: str = "", same=None) -> Path:
    """``directory/name+suffix``, or ``name.1+suffix``, ``name.2+suffix``… when taken — unless
    ``same(existing)`` says the taken one is this very outcome (written again after a crash)."""
    for n in range(10_000):
        candidate = directory / (f"{name}{suffix}" if n == 0 else f"{name}.{n}{suffix}")
        if not os.path.lexists(candidate) or (same is not None and same(candidate)):
            return candidate
    raise FileExistsError(f"{directory}: 10,000 outcomes named {name}; remove what has been read")


def write_tree(target: Path, files: dict[str, bytes | Iterable[bytes]]) -> None:
    """A directory ``target`` of ``files`` (relative name → bytes, or chunks streamed to disk) that
    appears whole: built as a hidden sibling, every file and directory fsynced, renamed into place."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        for rel, content in files.items():
            if rel.startswith("/") or ".." in rel.split("/"):  # names come from packages: never outside
                raise ValueError(f"{rel!r} is not a name inside the folder")
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                for chunk in [content] if isinstance(content, bytes) else content:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(path, 0o644)
        for directory in sorted({(staging / rel).parent for rel in files}, reverse=True):
            fsync_dir(directory)
        os.chmod(staging, 0o755)
        move(staging, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
        raise


def clear_staging(directory: Path) -> int:
    """Remove what a kill -9 left half-written in ``directory`` (hidden ``.NAME.*`` temp entries)."""
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        if entry.name.startswith(".") and entry.name.count(".") >= 2:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    return removed
