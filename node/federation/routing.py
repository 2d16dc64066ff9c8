"""Which node hosts a unit, which neighbour an envelope goes to next, and where that node is: the
routing decisions behind one interface (nothing else reads peers or the directory's tree).

:class:`StaticRouter` reads the static peer list of node.toml: every peer is reached directly.
:class:`DirectoryRouter` (what a node runs) reads it first and, for a unit or node no static peer
names, the network directory the node holds (``NODE_DIR/directory.json``, verified when it was
installed or fetched): the unit's hosting node, and the next hop towards that node along the tree
or a direct link (:class:`exchange_protocol.routes.RouteTable`, the one place the route rules
live). A node the directory does not list, or a directory that does not list this node, is reached
directly. A directory swapped in while the node runs is read at the first decision after it (the
file's size, mtime and inode are looked at once per :data:`RECHECK_SECONDS`, and at once after
:meth:`DirectoryRouter.reload`, which the node's own fetcher calls), so a new unit or a moved one is
routed anew without a restart. Not on every decision: a stat from the event loop of a process
hosting many nodes waits for the GIL, and routing decides several times per message. A unit or
node the held copy does not name is looked up again in the file at once before it is refused, so
a directory installed a moment ago is never the reason for ROUTE_UNKNOWN_UNIT.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from exchange_protocol.directory import Directory, NodeEntry, UnitEntry
from exchange_protocol.directory_signing import read_unverified
from exchange_protocol.routes import RouteTable
from node.config import NodeConfig, Peer
from node.errors import NodeError
from pki.errors import ErrorKind, GwxError

log = logging.getLogger("gwx.node.routing")
# Seconds between looks at the directory file's identity: `gwx net install` (another process) is seen
# this long after it wrote; the node's own fetcher makes it seen at once (DirectoryRouter.reload).
RECHECK_SECONDS = 1.0


class UnknownUnit(NodeError):
    """A recipient unit no node in the routing table hosts: the sender named a unit we cannot reach."""

    code = "ROUTE_UNKNOWN_UNIT"
    kind = ErrorKind.INVALID_INPUT


class NoRoute(NodeError):
    """A relay that knows no route to an envelope's destination node: its directory may be older than
    the sender's (a node just added), so the sender tries again until its retry window closes."""

    code = "ROUTE_NO_PATH"
    kind = ErrorKind.TRANSIENT


class RouteLoop(NodeError):
    """An envelope our route would send straight back to the node that handed it to us: two nodes'
    directories disagree about the tree. Given up on at once (the origin hears a bounce)."""

    code = "ROUTE_LOOP"
    kind = ErrorKind.CONFLICT


class Router(Protocol):
    def node_for(self, unit_code: str) -> str:
        """The node id that hosts ``unit_code`` (raise :class:`UnknownUnit` when none does)."""

    def hosts(self, node_id: str, unit_code: str) -> bool:
        """Whether ``node_id`` hosts ``unit_code`` (the inbound check on a sender's claim)."""

    def peer(self, node_id: str) -> Peer | None:
        """Where to reach ``node_id`` (None when this router knows no address for it)."""

    def next_hop(self, destination_node: str) -> str:
        """The node to hand an envelope for ``destination_node`` to: that node itself when it is a
        neighbour (or a static peer), else the next node on the route."""

    def is_neighbour(self, node_id: str) -> bool:
        """Whether ``node_id`` may hand us envelopes of other nodes (and use us as a relay): a static
        peer, or our parent, child or direct link in the directory (any node when we hold none)."""

    def unit_name(self, unit_code: str) -> str | None:
        """The unit's name, as node.toml or the network directory gives it (None if neither does)."""

    def path(self, destination_node: str) -> tuple[str, ...]:
        """The nodes our envelopes for ``destination_node`` pass, from the next hop to the destination."""


class StaticRouter:
    def __init__(self, config: NodeConfig) -> None:
        self._config = config
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

    def next_hop(self, destination_node: str) -> str:
        return destination_node

    def is_neighbour(self, node_id: str) -> bool:
        return node_id in self._peers

    def unit_name(self, unit_code: str) -> str | None:
        return self._config.unit_name(unit_code)

    def path(self, destination_node: str) -> tuple[str, ...]:
        return (destination_node,)


@dataclass(frozen=True)
class _Held:
    """One directory as routing reads it: indexed, with this node's routes."""

    directory: Directory
    nodes: dict[str, NodeEntry]
    units: dict[str, UnitEntry]
    hosted: dict[str, tuple[str, ...]]
    routes: RouteTable

    @classmethod
    def of(cls, directory: Directory, me: str) -> _Held:
        hosted: dict[str, list[str]] = {}
        for u in directory.units:
            hosted.setdefault(u.node, []).append(u.code)
        return cls(directory, {n.id: n for n in directory.nodes}, {u.code: u for u in directory.units},
                   {node: tuple(codes) for node, codes in hosted.items()}, RouteTable.of(directory, me))


class DirectoryRouter:
    """The static peers first (a two-node setup, tests, an operator's override), then the directory."""

    def __init__(self, config: NodeConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._me = config.node_id
        self._static = StaticRouter(config)
        self._path: Path = config.network_directory_path
        self._clock = clock  # monotonic seconds: paces the looks at the file
        self._lock = threading.Lock()  # decisions come from the event loop and from worker threads
        self._seen: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._held_now: _Held | None = None

    def node_for(self, unit_code: str) -> str:
        if self._static.knows(unit_code):
            return self._static.node_for(unit_code)
        unit = self._unit(unit_code)
        if unit is None:
            raise UnknownUnit(f"no known node hosts unit {unit_code} (neither a static peer nor the network "
                              "directory names it)", unit=unit_code)
        return unit.node

    def hosts(self, node_id: str, unit_code: str) -> bool:
        if self._static.knows(unit_code):
            return self._static.hosts(node_id, unit_code)
        unit = self._unit(unit_code)
        if unit is not None and unit.node != node_id:
            unit = self._unit(unit_code, fresh=True)  # moved a moment ago?
        return unit is not None and unit.node == node_id

    def peer(self, node_id: str) -> Peer | None:
        static = self._static.peer(node_id)
        if static is not None:
            return static
        held = self._held()
        entry = held.nodes.get(node_id) if held is not None else None
        if entry is None:
            held = self._held(fresh=True)
            entry = held.nodes.get(node_id) if held is not None else None
        if entry is None or held is None:
            return None
        return Peer(node_id, entry.urls[0], held.hosted.get(node_id, ()))

    def next_hop(self, destination_node: str) -> str:
        if self._static.peer(destination_node) is not None:
            return destination_node
        held = self._held()
        hop = held.routes.next_hop(destination_node) if held is not None else None
        return destination_node if hop is None else hop

    def is_neighbour(self, node_id: str) -> bool:
        if self._static.is_neighbour(node_id):
            return True
        held = self._held()
        if held is not None and held.routes.listed and node_id not in held.routes.neighbours():
            held = self._held(fresh=True)  # a child added a moment ago?
        if held is None or not held.routes.listed:
            return True  # no tree to hold it to (a static network): the peer's certificate is what counts
        return node_id in held.routes.neighbours()

    def unit_name(self, unit_code: str) -> str | None:
        name = self._static.unit_name(unit_code)
        if name is None:
            held = self._held()
            unit = held.units.get(unit_code) if held is not None else None
            name = unit.name if unit is not None else None
        return name

    def path(self, destination_node: str) -> tuple[str, ...]:
        if self._static.peer(destination_node) is not None:
            return (destination_node,)
        held = self._held()
        return (held.routes.path(destination_node) if held is not None else ()) or (destination_node,)

    def node_entry(self, node_id: str) -> NodeEntry | None:
        """The directory's entry for ``node_id`` (its certificates), or None."""
        held = self._held()
        return held.nodes.get(node_id) if held is not None else None

    def directory(self) -> Directory | None:
        held = self._held()
        return held.directory if held is not None else None

    def reload(self) -> None:
        """Look at the directory file again at the next decision (one was just installed)."""
        with self._lock:
            self._checked_at = float("-inf")

    def _unit(self, unit_code: str, *, fresh: bool = False) -> UnitEntry | None:
        held = self._held(fresh=fresh)
        unit = held.units.get(unit_code) if held is not None else None
        if unit is None and not fresh:
            return self._unit(unit_code, fresh=True)  # installed a moment ago?
        return unit

    def _held(self, *, fresh: bool = False) -> _Held | None:
        """The held directory; ``fresh``: look at the file now, not once per RECHECK_SECONDS."""
        now = self._clock()
        with self._lock:
            if not fresh and now - self._checked_at < RECHECK_SECONDS:
                return self._held_now
            self._checked_at = now
            try:
                stat = os.stat(self._path)
            except FileNotFoundError:
                self._seen = self._held_now = None
                return None
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if key != self._seen:
                self._seen = key
                try:
                    self._held_now = _Held.of(read_unverified(self._path.read_bytes()), self._me)
                except (OSError, GwxError) as exc:  # keep routing on what we read before
                    log.error("cannot read the network directory %s: %s", self._path, exc)
            return self._held_now
