"""Which node hosts a unit, and where that node is: the routing decision behind one interface.

:class:`StaticRouter` reads the static peer list of node.toml. :class:`DirectoryRouter` (what a
node runs) reads it first and, for a unit no static peer names, the network directory the node
holds (``NODE_DIR/directory.json``, verified when it was installed or fetched): the unit's hosting
node, and that node's first URL. A directory swapped in while the node runs is read at the next
decision (the file's size and mtime are watched), so a new unit is reachable without a restart.
Relaying along the tree (``next_hop``) is later work: today the hosting node is reached directly.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

from exchange_protocol.directory import Directory
from exchange_protocol.directory_signing import read_unverified
from node.config import NodeConfig, Peer
from node.errors import NodeError
from pki.errors import ErrorKind, GwxError

log = logging.getLogger("gwx.node.routing")


class UnknownUnit(NodeError):
    """A recipient unit no node in the routing table hosts: the sender named a unit we cannot reach."""

    code = "ROUTE_UNKNOWN_UNIT"
    kind = ErrorKind.INVALID_INPUT


class Router(Protocol):
    def node_for(self, unit_code: str) -> str:
        """The node id that hosts ``unit_code`` (raise :class:`UnknownUnit` when none does)."""

    def hosts(self, node_id: str, unit_code: str) -> bool:
        """Whether ``node_id`` hosts ``unit_code`` (the inbound check on a sender's claim)."""

    def peer(self, node_id: str) -> Peer | None:
        """Where to reach ``node_id`` (None when this router knows no address for it)."""


class StaticRouter:
    def __init__(self, config: NodeConfig) -> None:
        self._peers = {p.node_id: p for p in config.peers}
        self._table: dict[str, str] = {u.code: config.node_id for u in config.units}
        for peer in config.peers:
            for code in peer.units:
                self._table.setdefault(code, peer.node_id)

    def node_for(self, unit_code: str) -> str:
        try:
            return self._table[unit_code]
        except KeyError:
            raise UnknownUnit(f"no known node hosts unit {unit_code}", unit=unit_code) from None

    def hosts(self, node_id: str, unit_code: str) -> bool:
        return self._table.get(unit_code) == node_id

    def knows(self, unit_code: str) -> bool:
        return unit_code in self._table

    def peer(self, node_id: str) -> Peer | None:
        return self._peers.get(node_id)


class DirectoryRouter:
    """The static peers first (a two-node setup, tests, an operator's override), then the directory."""

    def __init__(self, config: NodeConfig) -> None:
        self._static = StaticRouter(config)
        self._path: Path = config.network_directory_path
        self._lock = threading.Lock()  # decisions come from the event loop and from worker threads
        self._seen: tuple[int, int] | None = None
        self._directory: Directory | None = None

    def node_for(self, unit_code: str) -> str:
        if self._static.knows(unit_code):
            return self._static.node_for(unit_code)
        directory = self._held()
        unit = directory.unit(unit_code) if directory is not None else None
        if unit is None:
            raise UnknownUnit(f"no known node hosts unit {unit_code} (neither a static peer nor the network "
                              "directory names it)", unit=unit_code)
        return unit.node

    def hosts(self, node_id: str, unit_code: str) -> bool:
        if self._static.knows(unit_code):
            return self._static.hosts(node_id, unit_code)
        directory = self._held()
        unit = directory.unit(unit_code) if directory is not None else None
        return unit is not None and unit.node == node_id

    def peer(self, node_id: str) -> Peer | None:
        static = self._static.peer(node_id)
        if static is not None:
            return static
        directory = self._held()
        entry = directory.node(node_id) if directory is not None else None
        if entry is None:
            return None
        return Peer(node_id, entry.urls[0], tuple(u.code for u in directory.units if u.node == node_id))

    def _held(self) -> Directory | None:
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key != self._seen:
                self._seen = key
                try:
                    self._directory = read_unverified(self._path.read_bytes())
                except (OSError, GwxError) as exc:  # keep routing on what we read before
                    log.error("cannot read the network directory %s: %s", self._path, exc)
            return self._directory
