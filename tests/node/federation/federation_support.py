"""The two nodes the federation tests drive by hand: a county node that receives, a city node that sends.

Both are provisioned as ``gwx node init`` provisions them (our own CA, real key files) under one
directory; neither runs. A test loads a node's :class:`~node.context.NodeContext` and wires the part
it tests (acceptor, processor, transport) over its own SQLite store.
"""

from __future__ import annotations

from pathlib import Path

from node.config import load_config
from node.context import NodeContext
from node.provision import add_peer, init_node
from pki.ca import CertificateAuthority
from tests.support import PASSPHRASE


def provision_county_and_city(base: Path, ca_name: str, county_units: dict[str, str],
                              city_units: dict[str, str], algorithm: str = "ecdsa-p256-sha256") -> Path:
    """``base``/ca, ``base``/county and ``base``/city (units: code → name); the county knows the city
    as the peer of its units (at an address nothing listens on: these tests send nothing over it).
    ``algorithm="sm2-sm3"`` makes it a 国密 network."""
    ca = CertificateAuthority.init_root(base / "ca", ca_name, PASSPHRASE, algorithm=algorithm)
    for node_id, units in (("county", county_units), ("city", city_units)):
        init_node(base / node_id, node_id, ca, [{"code": c, "name": n} for c, n in units.items()], PASSPHRASE)
    if city_units:
        add_peer(base / "county", "city", "https://127.0.0.1:1", list(city_units), city_units)
    return base


def node_context(node_dir: Path) -> NodeContext:
    """A provisioned node's context (its keys, seals and trust), loaded as the running node loads it."""
    return NodeContext.load(load_config(node_dir), PASSPHRASE)
