"""A node's configuration written back as TOML (``gwx node init``; :mod:`node.config` reads it).

tomllib has no writer: :func:`dump_config` writes the parts a new node has, each key as
:mod:`node.config` parses it, so what it writes loads back to the same configuration.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from node.config import NodeConfig, ProcessingSettings, SoapSettings, StoreSettings


def dump_config(config: NodeConfig) -> str:
    """TOML text for ``config`` (what ``gwx node init`` writes; tomllib has no writer)."""
    lines = [f"node_id = {_q(config.node_id)}", f"classified_network = {str(config.classified_network).lower()}", ""]
    for name in ("peer_api", "local_api", "limits", "retry"):
        lines.append(f"[{name}]")
        for f in fields(getattr(config, name)):
            value = getattr(getattr(config, name), f.name)
            if isinstance(value, tuple):  # [local_api] hosts: written only when given
                if value:
                    lines.append(f"{f.name} = [{', '.join(_q(v) for v in value)}]")
            elif f.name == "reuse_port":  # written only when set
                if value:
                    lines.append("reuse_port = true")
            elif value is not None:
                lines.append(f"{f.name} = {_q(value)}")
        lines.append("")
    if config.soap != SoapSettings():
        lines += ["[soap]", f"enabled = {_q(config.soap.enabled)}", ""]
    if config.parent is not None:
        lines += ["[parent]", f"node_id = {_q(config.parent.node_id)}", f"url = {_q(config.parent.url)}",
                  f"refresh_seconds = {_q(config.parent.refresh_seconds)}", ""]
    if config.revocation is not None:
        lines.append("[revocation]")
        for f in fields(config.revocation):
            value = getattr(config.revocation, f.name)
            if value is not None:
                lines.append(f"{f.name} = {_q(value)}")
        lines.append("")
    lines += config.archive.to_toml(config.directory)
    if config.processing != ProcessingSettings():  # unset means this machine's default: left unset
        lines += ["[processing]", f"check_processes = {_q(config.processing.check_processes)}", ""]
    if config.store != StoreSettings():
        lines += ["[store]", f"backend = {_q(config.store.backend)}", f"dsn = {_q(config.store.dsn)}",
                  f"lease_seconds = {_q(config.store.lease_seconds)}", f"worker = {_q(config.store.worker)}",
                  f"inline_max_bytes = {_q(config.store.inline_max_bytes)}", ""]
    for u in config.units:
        lines += ["[[units]]", f"code = {_q(u.code)}", f"name = {_q(u.name)}",
                  f"seal_dir = {_q(str(u.seal_dir.relative_to(config.directory)))}"]
        if u.level:
            lines.append(f"level = {_q(u.level)}")
        if u.parent:
            lines.append(f"parent = {_q(u.parent)}")
        lines.append("")
    for f in config.folders:
        path = f.path.relative_to(config.directory) if f.path.is_relative_to(config.directory) else f.path
        lines += ["[[folders]]", f"unit = {_q(f.unit)}", f"path = {_q(str(path))}",
                  f"poll_seconds = {_q(f.poll_seconds)}", ""]
    for p in config.peers:
        lines += ["[[peers]]", f"node_id = {_q(p.node_id)}", f"url = {_q(p.url)}",
                  "units = [" + ", ".join(_q(c) for c in p.units) + "]"]
        if p.unit_names:
            lines.append("unit_names = { " + ", ".join(f"{_q(c)} = {_q(n)}" for c, n in p.unit_names) + " }")
        lines.append("")
    return "\n".join(lines) + "\n"


def _q(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string
