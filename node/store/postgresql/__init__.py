"""The PostgreSQL backend of the node's store (issue 12 §1): the SQLite backend's roles over PostgreSQL.

Chosen in node.toml (``[store] backend = "postgresql"``, ``dsn = "…"``) through
:mod:`node.store.opener`; SQLite stays the default and needs nothing. Nothing here is seen by callers.

- ``dialect``: each statement of the role modules said in PostgreSQL's SQL (placeholders, ``INSERT OR
  IGNORE``, NULL-safe comparison, unnamed subqueries), translated once and cached.
- ``db``: connections (one writer, one reader, one side connection for lease renewals that must not
  wait behind the writers), transactions serialised across processes by an advisory lock, rows by
  index and name, the durability settings checked at open.
- ``schema``: the SQLite migrations' statements in PostgreSQL's DDL, and the SQLite functions the
  queries use, defined in SQL.
- ``leases``: queue rows, received envelopes, adapter outbox rows and drafts claimed by one worker of
  several; a held row's lease renewed on the side connection.
- ``inline_ahead``: a group commit's inline blobs written and committed before the writers' lock is
  taken, and checked under it (the collection between the two, two workers with the same blobs).
- ``ledger``: the 台账's query plan in PostgreSQL's words (``EXPLAIN (FORMAT JSON)``).
- ``status_rows``: the status report's rows read on a read-only connection.
- ``store``: :class:`Store`, the SQLite backend's store opened over PostgreSQL.
"""

from node.store.postgresql.db import Database, PgTransaction
from node.store.postgresql.store import Store

__all__ = ["Database", "PgTransaction", "Store"]
