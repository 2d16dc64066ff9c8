"""Changing an existing ``node.toml``: the operator's comments and layout kept, nothing written unchecked.

Every change (``gwx node add-peer``, the test network's overrides) goes through :func:`edit_config`:

1. the file is parsed with tomlkit, which keeps comments, blank lines and key order;
2. the caller edits that document;
3. the would-be text is loaded by the *same* loader the node uses at start
   (:func:`node.config.parse_config`), so a change the node would refuse is refused here, and the
   file on disk is untouched;
4. only then is it written atomically (temp file, fsync, rename, fsync of the directory): a crash
   leaves either the old file or the new one, never half of each.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from node.config import CONFIG_NAME, NodeConfig, load_config, parse_config
from node.errors import ConfigError
from pki.keystore import write_public_file


def edit_config(directory: str | Path, edit: Callable[[TOMLDocument], None]) -> NodeConfig:
    """Apply ``edit`` to ``directory/node.toml`` if the result is a valid configuration; return it."""
    directory = Path(directory).resolve()
    load_config(directory)  # a file that is already broken is reported as such, not "fixed" blindly
    path = directory / CONFIG_NAME
    try:
        document = tomlkit.parse(path.read_text("utf-8"))
    except TOMLKitError as exc:  # tomllib accepted it; tomlkit should too, but never a traceback
        raise ConfigError(f"{path} cannot be edited: {exc}") from None
    edit(document)
    text = tomlkit.dumps(document)
    config = parse_config(tomllib.loads(text), directory)  # raises ConfigError; nothing written
    write_public_file(path, text.encode("utf-8"))
    return config


def set_peer(document: TOMLDocument, node_id: str, url: str, units: Iterable[str],
             names: dict[str, str] | None = None) -> None:
    """Add the peer ``node_id`` or replace its entry in place (its comments stay where they were)."""
    entry = tomlkit.table()
    entry.add("node_id", node_id)
    entry.add("url", url)
    entry.add("units", list(units))
    if names:
        entry.add("unit_names", _inline(names))
    entry.add(tomlkit.nl())  # a blank line after the table, as `gwx node init` writes them
    peers = document.get("peers")
    if peers is None:
        peers = tomlkit.aot()
        document.append("peers", peers)
    if not isinstance(peers, list):
        raise ConfigError("peers must be written as [[peers]] tables", key="peers")
    for existing in peers:
        if isinstance(existing, dict) and existing.get("node_id") == node_id:
            # Assigning an existing key keeps its place and the comments around it.
            existing["url"] = url
            existing["units"] = list(units)
            if names:
                existing["unit_names"] = _inline(names)
            elif isinstance(existing.get("unit_names"), dict):  # keep the names of units still listed
                kept = {c: n for c, n in existing["unit_names"].items() if c in existing["units"]}
                if kept != dict(existing["unit_names"]):
                    existing["unit_names"] = _inline(kept)
                if not kept:
                    del existing["unit_names"]
            return
    peers.append(entry)


def set_section_values(document: TOMLDocument, section: str, values: dict) -> None:
    """Set keys of ``[section]`` (created at the end when missing), keeping what else it holds."""
    table = document.get(section)
    if table is None:
        table = tomlkit.table()
        document.append(section, table)
    for key, value in values.items():
        table[key] = value


def _inline(values: dict[str, str]):
    table = tomlkit.inline_table()  # a plain dict would become a [peers.unit_names] sub-table
    table.update(values)
    return table
