"""Read-only rows for the node's status report (``node.ops.status``) from a PostgreSQL store.

The same rows as :mod:`node.store.sqlite.status_rows`, read on a short-lived read-only connection
(nothing written, migrated or recovered). Two queries say in PostgreSQL what SQLite says with bare
columns beside a ``MAX`` (the row holding the newest time): ``DISTINCT ON`` here.
"""

from __future__ import annotations

from typing import Any

import psycopg

from node.errors import StoreError, StoreSchemaTooNew
from node.store.postgresql.db import CONNECT_TIMEOUT_S, safe_dsn
from node.store.postgresql.dialect import translate
from node.store.sqlite.migrations import LATEST_VERSION
from node.store.sqlite.status_rows import ADAPTER_QUERIES, QUERIES, SCHEMA_VERSION

PG_QUERIES = QUERIES | {
    "waiting": "SELECT w.destination, w.last_error_code, w.last_error_message, w.updated_at, c.n FROM"
               " (SELECT DISTINCT ON (destination) destination, last_error_code, last_error_message, updated_at"
               "  FROM queue WHERE state IN ('deferred', 'active', 'incoming') AND last_error_code IS NOT NULL"
               "  ORDER BY destination, updated_at DESC) AS w JOIN"
               " (SELECT destination, COUNT(*) AS n FROM queue WHERE state IN ('deferred', 'active', 'incoming')"
               "  AND last_error_code IS NOT NULL GROUP BY destination) AS c ON c.destination = w.destination",
}
PG_ADAPTER_QUERIES = ADAPTER_QUERIES | {
    "adapter_dead": "SELECT DISTINCT ON (consumer) consumer, last_error_code, last_error_message, finished_at"
                    " FROM adapter_outbox WHERE state = 'dead' ORDER BY consumer, finished_at DESC",
}


def read_status_rows(dsn: str) -> dict[str, list[tuple[Any, ...]]] | None:
    """The rows of :data:`PG_QUERIES`, or None when the database has no schema yet (the node never ran)."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.read_only = True
            exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return None
            version = conn.execute(translate(SCHEMA_VERSION), ()).fetchone()[0]  # type: ignore[index]
            if version > LATEST_VERSION:
                raise StoreSchemaTooNew(f"the PostgreSQL store has schema version {version}; this gwx knows "
                                        f"{LATEST_VERSION}", version=version)
            queries = PG_QUERIES | PG_ADAPTER_QUERIES
            return {name: [tuple(r) for r in conn.execute(translate(sql), ()).fetchall()]
                    for name, sql in queries.items()}
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the PostgreSQL store: {str(exc).strip()}", dsn=safe_dsn(dsn)) from None
