"""Which node hosts a unit: the routing decision behind one interface.

This issue routes from the static peer list in the configuration; the multi-level network
(a signed directory, relaying up and down the tree) will be another :class:`Router`.
"""

from __future__ import annotations

from typing import Protocol

from node.config import NodeConfig
from node.errors import NodeError
from pki.errors import ErrorKind


class UnknownUnit(NodeError):
    """A recipient unit no node in the routing table hosts: the sender named a unit we cannot reach."""

    code = "ROUTE_UNKNOWN_UNIT"
    kind = ErrorKind.INVALID_INPUT


class Router(Protocol):
    def node_for(self, unit_code: str) -> str:
        """The node id that hosts ``unit_code`` (raise :class:`UnknownUnit` when none does)."""

    def hosts(self, node_id: str, unit_code: str) -> bool:
        """Whether ``node_id`` hosts ``unit_code`` (the inbound check on a sender's claim)."""


class StaticRouter:
    def __init__(self, config: NodeConfig) -> None:
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
