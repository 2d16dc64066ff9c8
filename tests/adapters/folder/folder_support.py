"""Helpers of the watched-folder tests: a node's [[folders]] entry, drops written as an OA writes them.

A drop is built under a staging directory on the same disk and renamed into ``outgoing/`` (folders
carry their ``.ready`` marker), so the watcher never sees half of one unless a test means it to.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import tomlkit

from node.config_edit import edit_config
from node.localnet import LocalNode, wait_for


def add_folder(node: LocalNode, unit: str, poll_seconds: float = 0.2) -> Path:
    """A [[folders]] entry for ``unit`` (default path ``folders/<unit>``), its root made as an operator
    makes it; returns the folder's root."""
    def edit(document) -> None:
        folders = document.get("folders")
        if folders is None:
            folders = tomlkit.aot()
            document.append("folders", folders)
        entry = tomlkit.table()
        entry.add("unit", unit)
        entry.add("poll_seconds", poll_seconds)
        folders.append(entry)

    config = edit_config(node.directory, edit)
    root = next(f.path for f in config.folders if f.unit == unit)
    root.mkdir(parents=True, exist_ok=True)  # the operator's part: the node never creates a folder's root
    return root


class Dropper:
    """Writes drops into ``root/outgoing`` the way a well-behaved OA does."""

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging
        staging.mkdir(parents=True, exist_ok=True)

    def folder(self, name: str, meta: dict[str, Any] | bytes | None, body: bytes | None,
               attachments: dict[str, bytes] | None = None, *, ready: bool = True, place: bool = True) -> Path:
        path = self.staging / name
        path.mkdir()
        if meta is not None:
            (path / "META.json").write_bytes(meta if isinstance(meta, bytes)
                                             else json.dumps(meta, ensure_ascii=False).encode())
        if body is not None:
            (path / "body.pdf").write_bytes(body)
        if attachments:
            (path / "attachments").mkdir()
            for file_name, data in attachments.items():
                (path / "attachments" / file_name).write_bytes(data)
        if ready:
            (path / ".ready").write_bytes(b"")
        return self.place(path) if place else path

    def zip(self, name: str, members: dict[str, bytes], infos: list[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, data in members.items():
                archive.writestr(member, data)
            for info, data in infos:
                archive.writestr(info, data)
        return self.raw(name, buf.getvalue())

    def raw(self, name: str, data: bytes) -> Path:
        path = self.staging / name
        path.write_bytes(data)
        return self.place(path)

    def place(self, path: Path) -> Path:
        target = self.root / "outgoing" / path.name
        os.rename(path, target)
        return target


def zip_members(meta: dict[str, Any], body: bytes, attachments: dict[str, bytes] | None = None,
                top: str = "") -> dict[str, bytes]:
    members = {f"{top}META.json": json.dumps(meta, ensure_ascii=False).encode(), f"{top}body.pdf": body}
    members.update({f"{top}attachments/{n}": d for n, d in (attachments or {}).items()})
    return members


def wait_result(root: Path, name: str, timeout: float = 60.0) -> dict[str, Any]:
    path = root / "results" / f"{name}.json"
    wait_for(path.exists, timeout, what=f"results/{name}.json")
    return json.loads(path.read_text("utf-8"))


def wait_reject(root: Path, name: str, timeout: float = 60.0) -> dict[str, Any]:
    path = root / "rejects" / name / "error.json"
    wait_for(path.exists, timeout, what=f"rejects/{name}/error.json")
    return json.loads(path.read_text("utf-8"))
