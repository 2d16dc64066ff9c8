"""SQL lives only in the backends, node/store/sqlite and node/store/postgresql, and node/store/sql_common.py
(what the two share): no other module of the node (or the adapters) may contain SQL or import a database
driver or a backend, except node/store/opener.py, which picks the backend.
Checked on the source with ast, so modules added later by anyone are covered without touching this test."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import node
from tests.support import absolute_imports

ROOT = Path(node.__file__).parent.parent
BACKENDS = (ROOT / "node" / "store" / "sqlite", ROOT / "node" / "store" / "postgresql")
SHARED = ROOT / "node" / "store" / "sql_common.py"  # the backends' common half: behind the line too
OPENER = ROOT / "node" / "store" / "opener.py"
FORBIDDEN_MODULES = ("sqlite3", "aiosqlite", "psycopg", "node.store.sqlite", "node.store.postgresql")
SQL = re.compile(r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
                 r"|\b(CREATE|DROP|ALTER)\s+(TABLE|INDEX|VIEW|TRIGGER)\b|\bPRAGMA\s+\w+|\bBEGIN\s+IMMEDIATE\b")


def violations(source: str, filename: str, *, may_open_backend: bool = False) -> list[str]:
    tree = ast.parse(source, filename)
    found = [f"{filename}:{item.lineno}: SQL in a string: {item.value[:60]!r}" for item in ast.walk(tree)
             if isinstance(item, ast.Constant) and isinstance(item.value, str) and SQL.search(item.value)]
    for line, name in absolute_imports(tree):
        if may_open_backend and name.startswith(("node.store.sqlite", "node.store.postgresql")):
            continue
        if any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES):
            found.append(f"{filename}:{line}: imports {name}")
    return found


def modules() -> list[Path]:
    paths = sorted((ROOT / "node").rglob("*.py")) + sorted((ROOT / "adapters").rglob("*.py"))
    return [p for p in paths if p != SHARED and not any(backend in p.parents for backend in BACKENDS)]


def test_the_walk_sees_the_callers() -> None:
    names = {str(p.relative_to(ROOT)) for p in modules()}
    assert {"node/runner.py", "node/documents/service.py", "node/federation/processor.py",
            "node/federation/outbound.py", "node/store/opener.py", "node/api/local_api.py"} <= names
    assert not any(name.startswith(("node/store/sqlite/", "node/store/postgresql/")) for name in names)
    assert "node/store/sql_common.py" not in names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sql_outside_the_backend(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)),
                      may_open_backend=path == OPENER) == []


@pytest.mark.parametrize("source", [
    "import sqlite3",
    "import aiosqlite as db",
    "import psycopg",
    "from node.store.postgresql.store import Store",
    "from node.store.sqlite.store import Store",
    "from node.store.sqlite import Store",
    "import node.store.sqlite.db",
    "def f():\n    from node.store.sqlite.exchange import Drafts\n",
    "q = 'SELECT state, COUNT(*) FROM received GROUP BY state'",
    "q = ('SELECT o.message_id FROM outgoing o'\n     ' WHERE o.destination = ?')",
    "x = f'UPDATE queue SET state = {s}'",
    "run('DELETE FROM drafts WHERE message_id = ?')",
    "run('INSERT INTO inbox (doc_id) VALUES (?)')",
    "run('PRAGMA journal_mode')",
])
def test_the_check_catches_sql_and_drivers(source: str) -> None:
    assert violations(source, "x.py")


@pytest.mark.parametrize("source", [
    "from node.store import NodeStore, Transaction",
    "from node.store.opener import open_store",
    "import sqlite_utils_free_name",
    "msg = 'select the units to send to, then update the list'",
    "doc = 'Sending works the same way round: the envelope blob first, then the queue row.'",
])
def test_the_check_allows_the_rest(source: str) -> None:
    assert violations(source, "x.py") == []


def test_only_the_opener_may_open_the_backend() -> None:
    source = "from node.store.sqlite.store import Store"
    assert violations(source, "node/store/opener.py", may_open_backend=True) == []
    assert violations(source, "node/runner.py") != []
