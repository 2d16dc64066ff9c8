"""One running node per node directory: an exclusive lock on ``NODE_DIR/run/node.lock``.

``gwx node run`` takes the lock before anything touches the store (crash recovery and blob garbage
collection must never run on a store another process is using), writes its pid into the file and
holds the lock until it exits; the kernel releases it even after ``kill -9``, so a crash never
leaves a stale lock behind. The file itself is never deleted: deleting a lock file lets two
processes lock two different files.

:func:`holder` tells who holds the lock (for ``gwx node status`` and ``gwx node stop``) without
disturbing it: a probe takes a shared lock for an instant, and a node starting at that very
instant waits :data:`PATIENCE` seconds for it rather than mistaking the probe for a running node.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from node.errors import NodeAlreadyRunning

LOCK_NAME = "node.lock"
PATIENCE = 2.0


def lock_path(directory: Path) -> Path:
    return Path(directory) / "run" / LOCK_NAME


class NodeLock:
    """The held lock; :meth:`release` (or process exit) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path) -> NodeLock:
        path = lock_path(directory)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise _already_running(directory, _read_pid(path)) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # a stopped node leaves no pid that could be mistaken for it
            os.close(fd)  # closing drops the lock


def holder(directory: Path) -> int | None:
    """The pid of the process holding the node directory's lock, or None when no node runs there.

    Returns 0 when the lock is held but the pid is not written yet (a node in its first instant)."""
    path = lock_path(directory)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(path) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def ensure_not_running(directory: Path) -> None:
    """Fail early (before a passphrase prompt) when a node already serves ``directory``."""
    pid = holder(directory)
    if pid is not None:
        raise _already_running(directory, pid)


def _already_running(directory: Path, pid: int | None) -> NodeAlreadyRunning:
    who = f"pid {pid}" if pid else "a process that is still starting"
    return NodeAlreadyRunning(f"a node is already running in {directory} ({who}); stop it first with "
                              f"`gwx node stop --dir {directory}`", pid=pid, directory=str(directory))


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
