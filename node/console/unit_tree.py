"""The units a clerk can send to, as a tree: the network directory's when the node holds one,
else the units node.toml names (this node's and its static peers').

Each unit comes with its level (市级, 县级 …) and its depth under the tree's roots, so the send page
can list them indented, grouped by level, and let the clerk pick by level or by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exchange_protocol.directory import Directory
from node.config import NodeConfig

LEVEL_LABEL = {"central": "中央", "province": "省级", "city": "市级", "county": "县级", "township": "乡级",
               "village": "村级", "": "其他"}


@dataclass(frozen=True)
class KnownUnit:
    code: str
    name: str
    level: str
    depth: int

    @property
    def level_label(self) -> str:
        return LEVEL_LABEL.get(self.level, self.level)


def known_units(config: NodeConfig, held: Callable[[], Directory | None]) -> list[KnownUnit]:
    """Every unit one could send to, in tree order (a parent before its children, names in order)."""
    try:
        directory = held()
    except Exception:  # an unreadable directory file: the node routes by node.toml then too
        directory = None
    if directory is not None:
        rows = [(u.code, u.name, u.level, u.parent) for u in directory.units]
    else:
        rows = [(u.code, u.name, u.level, u.parent) for u in config.units]
        rows += [(code, name, "", None) for p in config.peers for code, name in p.unit_names]
        named = {p.node_id: {c for c, _ in p.unit_names} for p in config.peers}
        rows += [(code, code, "", None) for p in config.peers for code in p.units if code not in named[p.node_id]]
    known = {code for code, *_ in rows}
    children: dict[str | None, list[tuple[str, str, str]]] = {}
    for code, name, level, parent in rows:
        children.setdefault(parent if parent in known else None, []).append((code, name, level))
    out: list[KnownUnit] = []

    def walk(parent: str | None, depth: int) -> None:
        for code, name, level in sorted(children.get(parent, []), key=lambda r: (r[1], r[0])):
            out.append(KnownUnit(code, name, level, depth))
            walk(code, depth + 1)
    walk(None, 0)
    return out


def levels_of(units: list[KnownUnit]) -> list[tuple[str, str]]:
    """The levels the units have, as (level, label), from the highest down: the send page's level filter."""
    present = {u.level for u in units}
    order = [level for level in LEVEL_LABEL if level in present]
    order += sorted(present - set(LEVEL_LABEL))
    return [(level, LEVEL_LABEL.get(level, level)) for level in order]
