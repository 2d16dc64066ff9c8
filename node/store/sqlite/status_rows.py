"""Read-only rows for the node's status report (``node.ops.status``), straight from ``gwx.db``.

Opened with ``mode=ro`` on its own short-lived connection: nothing is written, migrated or
recovered, so ``gwx node status`` may read the file of a running node (WAL lets readers in beside
the writer) or of a stopped one, and the running node reads its own the same way (in a thread).
Each query returns plain tuples; :func:`node.ops.status.assemble` gives them their meaning.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.errors import StoreError, StoreSchemaTooNew
from node.store.sqlite.migrations import LATEST_VERSION
from node.store.sqlite.store import DB_NAME

QUERIES = {
    "queues": "SELECT destination, state, COUNT(*) FROM queue GROUP BY destination, state",
    "drafts": "SELECT destination, COUNT(*) FROM drafts GROUP BY destination",
    "peers": "SELECT node_id, state, since, failures, last_error_code, last_error_message FROM peers ORDER BY node_id",
    # The newest error among envelopes still waiting for each destination (SQLite takes the bare
    # columns from the row that holds the MAX): why a peer that answers does not take them.
    "waiting": "SELECT destination, last_error_code, last_error_message, MAX(updated_at), COUNT(*) FROM queue"
               " WHERE state IN ('deferred', 'active', 'incoming') AND last_error_code IS NOT NULL"
               " GROUP BY destination",
    "inbound": "SELECT state, COUNT(*) FROM received GROUP BY state",
    "errors": "SELECT message_id, origin_node, error_code, error_message, processed_at FROM received"
              " WHERE state IN ('failed','corrupt') ORDER BY processed_at DESC LIMIT 10",
}
# Adapters' outbox rows per consumer and state, and each consumer's newest dead letter (migration 8;
# a database an older gwx left behind has neither table until the node runs once).
ADAPTER_QUERIES = {
    "adapters": "SELECT c.consumer, o.state, COUNT(o.id) FROM adapter_cursors c"
                " LEFT JOIN adapter_outbox o ON o.consumer = c.consumer GROUP BY c.consumer, o.state",
    "adapter_dead": "SELECT consumer, last_error_code, last_error_message, MAX(finished_at) FROM adapter_outbox"
                    " WHERE state = 'dead' GROUP BY consumer",
}
ADAPTERS_SINCE = 8
SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_version"


def read_schema_version(data_dir: Path) -> tuple[int, int] | None:
    """``(version, LATEST_VERSION)`` of the database, or None when the node has no database yet."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            known = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
            version = conn.execute(SCHEMA_VERSION).fetchone()[0] if known.fetchone() else 0
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}", path=str(path)) from None
    return version, LATEST_VERSION


def read_status_rows(data_dir: Path) -> dict[str, list[tuple]] | None:
    """The rows named in :data:`QUERIES`, or None when the node has no database yet (never ran)."""
    path = Path(data_dir) / DB_NAME
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            version = conn.execute(SCHEMA_VERSION).fetchone()[0]
            if version > LATEST_VERSION:
                raise StoreSchemaTooNew(f"{path} has schema version {version}; this gwx knows {LATEST_VERSION}",
                                        version=version)
            queries = QUERIES | (ADAPTER_QUERIES if version >= ADAPTERS_SINCE else {})
            rows = {name: conn.execute(sql).fetchall() for name, sql in queries.items()}
            return {name: [] for name in ADAPTER_QUERIES} | rows
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}", path=str(path)) from None
