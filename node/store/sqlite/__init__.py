"""The SQLite backend of the node's store: the only code that speaks SQL.

- ``db``: connections (one writer, one reader), PRAGMAs, explicit transactions, time format.
- ``migrations``: the schema, versioned, one transaction per step.
- ``queue``: the outbound queue per destination node and the peers table.
- ``messages``: inbound dedupe with the original receipt; outbox, recipient and inbox rows.
- ``exchange``: envelope drafts, links from sent messages to documents, peer credentials.
- ``audit``: the append-only hash-chained audit log.
- ``group_commit``: many concurrent acceptances, one transaction, one fsync.
- ``store``: :class:`Store`, which opens all of the above and recovers after a crash.
"""
