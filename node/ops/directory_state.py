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


def directory_figures(config: NodeConfig, now: dt.datetime) -> dict[str, float]:
    """The gauges of /metrics: version, age and seconds until expiry (negative once expired).
    Empty when the node holds no readable directory."""
    try:
        directory = held_directory(config)
    except (OSError, GwxError):
        return {}
    if directory is None:
        return {}
    return {"version": float(directory.version), "age": (now - directory.issued_at).total_seconds(),
            "expires_in": (directory.expires - now).total_seconds(),
            "expired": 1.0 if directory.status(now) is DirectoryStatus.EXPIRED else 0.0}

