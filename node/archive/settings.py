"""``[archive]`` in node.toml: who time-stamps this node's archive packages.

::

    [archive]
    tsa_signer = "tsa"               # a directory from `gwx pki issue-tsa-signer` (relative to the node
                                     # directory): this node is the network's TSA (the root node)
    tsa_node = "root"                # else: the node that is, asked over mutual TLS at
    tsa_url = "https://root.example:7443"   # its peer API (POST /peer/v1/tsa)

Without any of them a node asks the root node of the network directory it holds (its first URL).
A node with a signer stamps its own archives with it and serves every other node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.errors import ConfigError


@dataclass(frozen=True)
class ArchiveSettings:
    tsa_signer: Path | None = None
    tsa_node: str | None = None
    tsa_url: str | None = None

    def to_toml(self, directory: Path) -> list[str]:
        """The section's lines for ``dump_config`` (none when nothing is set)."""
        if self == ArchiveSettings():
            return []
        lines = ["[archive]"]
        if self.tsa_signer is not None:
            signer = self.tsa_signer.relative_to(directory) if self.tsa_signer.is_relative_to(directory) \
                else self.tsa_signer
            lines.append(f'tsa_signer = "{signer}"')
        for key in ("tsa_node", "tsa_url"):
            if getattr(self, key) is not None:
                lines.append(f'{key} = "{getattr(self, key)}"')
        return [*lines, ""]


def parse_archive(raw: Any, directory: Path) -> ArchiveSettings:
    if not isinstance(raw, dict):
        raise ConfigError("[archive] must be a table", key="archive")
    unknown = sorted(set(raw) - {"tsa_signer", "tsa_node", "tsa_url"})
    if unknown:
        raise ConfigError(f"unknown keys in [archive]: {', '.join(unknown)}", key="archive", keys=unknown)
    for key, value in raw.items():
        if not isinstance(value, str) or not value or '"' in value or "\\" in value:
            raise ConfigError(f"[archive] {key} must be a non-empty string", key=f"archive.{key}")
    if ("tsa_node" in raw) != ("tsa_url" in raw):
        raise ConfigError("[archive] tsa_node and tsa_url go together: the TSA node's id and its peer API URL",
                          key="archive.tsa_url")
    url = raw.get("tsa_url")
    if url is not None and (not url.startswith("https://") or len(url) <= len("https://") or " " in url):
        raise ConfigError(f"[archive] tsa_url must be https://HOST:PORT (mutual TLS only), got {url!r}",
                          key="archive.tsa_url")
    signer = directory / raw["tsa_signer"] if "tsa_signer" in raw else None
    return ArchiveSettings(signer, raw.get("tsa_node"), url.rstrip("/") if url else None)
