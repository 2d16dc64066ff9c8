"""Machine-readable errors of the running node (storage, queues, audit log).

All derive from :class:`NodeError` (a :class:`pki.errors.GwxError`): a stable ``code`` and a human
``message``. Envelope-level refusals that a peer matches on (``ENV_REPLAYED``) live in
:mod:`exchange_protocol.errors` and are re-exported here for the node's convenience.
"""

from __future__ import annotations

from exchange_protocol.errors import EnvelopeReplayed
from pki.errors import GwxError

__all__ = [
    "AuditChainBroken",
    "BadDigest",
    "BlobDigestMismatch",
    "BlobMissing",
    "BlobTooLarge",
    "ConfigError",
    "EnvelopeReplayed",
    "NodeError",
    "StoreConflict",
    "StoreCorrupt",
    "StoreDuplicate",
    "StoreError",
    "StoreNotFound",
    "StoreSchemaTooNew",
]


class NodeError(GwxError):
    code = "NODE_ERROR"


class ConfigError(NodeError):
    """node.toml (or a provisioning input) that cannot be used; the message names the key."""

    code = "NODE_CONFIG"


# --- storage (node.store) ---------------------------------------------------------------------
class StoreError(NodeError):
    code = "STORE_ERROR"


class StoreCorrupt(StoreError):
    """Stored state that contradicts itself: a queue or inbox row whose blob is gone or altered."""

    code = "STORE_CORRUPT"


class BlobDigestMismatch(StoreCorrupt):
    """Blob bytes whose SHA-256 is not the digest they were announced or stored under."""

    code = "STORE_BLOB_DIGEST_MISMATCH"


class BlobMissing(StoreCorrupt):
    code = "STORE_BLOB_MISSING"


class BlobTooLarge(StoreError):
    code = "STORE_BLOB_TOO_LARGE"


class BadDigest(StoreError):
    """A blob digest that is not 64 lower-case hex characters (never turned into a path)."""

    code = "STORE_BAD_DIGEST"


class StoreConflict(StoreError):
    """A compare-and-set update found a different state than expected: someone changed it first."""

    code = "STORE_CONFLICT"


class StoreDuplicate(StoreConflict):
    """A row with this key exists already (e.g. enqueueing a message id twice)."""

    code = "STORE_DUPLICATE"


class StoreNotFound(StoreError):
    code = "STORE_NOT_FOUND"


class StoreSchemaTooNew(StoreError):
    """The database was migrated by a newer gwx than this one; refusing to touch it."""

    code = "STORE_SCHEMA_TOO_NEW"


class AuditChainBroken(StoreError):
    """The audit log's hash chain does not verify; ``details['seq']`` is the first broken event."""

    code = "AUDIT_CHAIN_BROKEN"
