"""The SQLite backend of the node's store: the only code in gwx that speaks SQL.

It implements the protocols of :mod:`node.store.interfaces` with the values of
:mod:`node.store.values`; nothing here (rows, ``?`` placeholders, the time encoding, the transaction
object) is seen by callers. Only :mod:`node.store.opener` imports it (and the tests of this backend).

- ``db``: connections (one writer; one reader for scans, one on the loop's thread for key lookups), PRAGMAs (WAL, ``synchronous=FULL`` and why),
  explicit transactions (:class:`~.db.SqliteTransaction`) over the holder both backends share
  (:mod:`node.store.sql_common`, with the time format).
- ``migrations``: the schema, versioned, one transaction per step, idempotent on re-open.
- ``queue``: the outbound queue per destination node; the legal moves come from
  :mod:`node.store.queue_states`.
- ``peers``: each peer's state as the sender sees it, and its certificates as last fetched.
- ``received``: inbound dedupe with the original receipt, each accepted envelope's processing state,
  inbound counts for status (the base class of ``messages``).
- ``messages``: outbox, recipient and inbox rows with compare-and-set updates and keyset-paged
  listings.
- ``exchange``: envelope drafts, and the links from sent messages to their documents.
- ``adapter_outbox``: adapters' cursors into the audit log, their outbox rows, webhook subscriptions.
- ``ledger``: the 台账 queries, a unit's rows by time in keyset pages, and their query plans.
- ``audit``: the append-only hash-chained audit log (triggers refuse UPDATE/DELETE; ``verify_chain``).
- ``group_commit``: many concurrent acceptances, one transaction, one fsync.
- ``inline_blobs``: small received blobs' bytes committed with their row and kept in the database
  for good (never a file); read through ``BlobStore``.
- ``store``: :class:`Store`, which opens all of the above and recovers after a crash.
"""

from node.store.sqlite.db import Database, SqliteTransaction
from node.store.sqlite.store import Store

__all__ = ["Database", "SqliteTransaction", "Store"]
