"""exchange_protocol stays sans-I/O: no module in it may import the event loop, the network, a database,
or the imperative shell (node/, adapters/). Checked on the source with ast, so modules added later
by anyone are covered without touching this test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import exchange_protocol
from tests.support import absolute_imports

PACKAGE_DIR = Path(exchange_protocol.__file__).parent
FORBIDDEN = ("asyncio", "aiohttp", "aiosqlite", "sqlite3", "socket", "node", "adapters")


def forbidden_imports(source: str, filename: str) -> list[str]:
    return [f"{filename}:{line}: {name}" for line, name in absolute_imports(ast.parse(source, filename))
            if name.split(".")[0] in FORBIDDEN]


def modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_the_walk_sees_the_package() -> None:
    names = {p.name for p in modules()}
    assert {"__init__.py", "states.py", "retry.py", "model.py", "canonical.py"} <= names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_module_imports_no_io(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize("source", [
    "import asyncio",
    "import socket as s",
    "from aiohttp import web",
    "import sqlite3.dbapi2",
    "from node.store import blobs",
    "import adapters.soap",
    "def f():\n    import aiosqlite\n",
    "try:\n    import asyncio\nexcept ImportError:\n    pass\n",
])
def test_the_check_catches_io_imports(source: str) -> None:
    assert forbidden_imports(source, "x.py")


@pytest.mark.parametrize("source", [
    "from tests.exchange_protocol.node_ids import x",        # relative: our own module, whatever its name
    "import nodes_helper",            # a different top-level name that merely starts alike
    "from datetime import datetime",
    "import asyncio_free_name",
])
def test_the_check_allows_the_rest(source: str) -> None:
    assert forbidden_imports(source, "x.py") == []
