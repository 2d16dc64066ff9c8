"""What changed between two network directories: nodes and units added, removed or changed, units
moved to another node (what a relay must re-route), direct links added or removed.

Pure: two :class:`~exchange_protocol.directory.Directory` values in, a JSON-ready dict out, the same
for ``gwx net diff`` and, later, a node logging what a new directory changed.
"""

from __future__ import annotations

from typing import Any

from .directory import Directory

NODE_FIELDS = ("urls", "level", "parent", "tls", "signing", "encryption", "chain", "previous")
UNIT_FIELDS = ("name", "level", "parent", "supervisor")


def diff(old: Directory, new: Directory) -> dict[str, Any]:
    old_nodes, new_nodes = {n.id: n for n in old.nodes}, {n.id: n for n in new.nodes}
    old_units, new_units = {u.code: u for u in old.units}, {u.code: u for u in new.units}
    node_changes = {}
    for node_id in sorted(old_nodes.keys() & new_nodes.keys()):
        a, b = old_nodes[node_id], new_nodes[node_id]
        fields = [f for f in NODE_FIELDS if getattr(a, f) != getattr(b, f)]
        if fields:
            node_changes[node_id] = fields
    moved, unit_changes = {}, {}
    for code in sorted(old_units.keys() & new_units.keys()):
        a, b = old_units[code], new_units[code]
        if a.node != b.node:
            moved[code] = {"from": a.node, "to": b.node}
        fields = [f for f in UNIT_FIELDS if getattr(a, f) != getattr(b, f)]
        if fields:
            unit_changes[code] = fields
    old_links, new_links = set(old.links), set(new.links)
    return {
        "network": {"from": old.network, "to": new.network} if old.network != new.network else None,
        "version": {"from": old.version, "to": new.version},
        "nodes": {"added": sorted(new_nodes.keys() - old_nodes.keys()),
                  "removed": sorted(old_nodes.keys() - new_nodes.keys()), "changed": node_changes},
        "units": {"added": sorted(new_units.keys() - old_units.keys()),
                  "removed": sorted(old_units.keys() - new_units.keys()), "moved": moved, "changed": unit_changes},
        "links": {"added": [list(p) for p in sorted(new_links - old_links)],
                  "removed": [list(p) for p in sorted(old_links - new_links)]},
        "revocation_changed": (old.crl_urls, old.ocsp_urls) != (new.crl_urls, new.ocsp_urls),
        "supervision_changed": old.supervision != new.supervision,
    }


def is_empty(changes: dict[str, Any]) -> bool:
    """No node, unit, link, revocation point or 督办 rule changed (the version and times may have)."""
    return (changes["network"] is None and not changes["revocation_changed"] and not changes["supervision_changed"]
            and not any(changes["nodes"].values()) and not any(changes["units"].values())
            and not any(changes["links"].values()))
