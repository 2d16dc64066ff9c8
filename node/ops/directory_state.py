"""How old the network directory this node holds is, for readiness, ``gwx node status`` and /metrics.

The directory (``NODE_DIR/directory.json``) was verified when it was installed (``gwx net install``
or :mod:`node.federation.directory_fetch`), so it is read here without judging its signature again.
**An expired directory never stops the exchange**: the node keeps routing on the last good copy,
and raises the alarm: :mod:`node.ops.readiness` gives ``warn`` naming the version and when it expired (or
when the next one was due), never ``fail``. X-Road stops a node 72 hours after its global
configuration expires (its issue #2849); a 公文 network must not.
"""

from __future__ import annotations

import datetime as dt

from exchange_protocol.directory import Directory, DirectoryStatus
from exchange_protocol.directory_signing import read_unverified
from node.config import NodeConfig
from pki.errors import GwxError


def held_directory(config: NodeConfig) -> Directory | None:
    """The directory this node holds, or None when it holds none. Raises a typed error when unreadable."""
    try:
        data = config.network_directory_path.read_bytes()
    except FileNotFoundError:
        return None
    return read_unverified(data)


class HeldDirectoryReader:
    """The directory a node holds, parsed again only when its file changes (size or mtime).

    The gauges of /metrics look at each scrape; parsing a city's directory (163 nodes, 3,600
    units) costs a tenth of a second of CPU each time — for a node that does nothing else, and
    for many nodes at once, most of the machine (bench/network.py)."""

    def __init__(self, config: NodeConfig) -> None:
        self._path = config.network_directory_path
        self._seen: tuple[int, int] | None = None
        self._directory: Directory | None = None

    def read(self) -> Directory | None:
        """As :func:`held_directory` (None when the node holds none; typed errors when unreadable)."""
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            self._seen, self._directory = None, None
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        if key != self._seen:
            # Replaced between the stat and the read: the next look sees a new key and reads again.
            self._directory = read_unverified(self._path.read_bytes())
            self._seen = key
        return self._directory


def directory_figures(config: NodeConfig, now: dt.datetime,
                      reader: HeldDirectoryReader | None = None) -> dict[str, float]:
    """The gauges of /metrics: version, age and seconds until expiry (negative once expired).
    Empty when the node holds no readable directory. ``reader``: a caller that asks again and again
    keeps one, so the file is parsed once per version."""
    try:
        directory = reader.read() if reader is not None else held_directory(config)
    except (OSError, GwxError):
        return {}
    if directory is None:
        return {}
    return {"version": float(directory.version), "age": (now - directory.issued_at).total_seconds(),
            "expires_in": (directory.expires - now).total_seconds(),
            "expired": 1.0 if directory.status(now) is DirectoryStatus.EXPIRED else 0.0}

