"""Machine-readable errors of the running node (config, requests, storage, queues, audit log).

All derive from :class:`NodeError` (a :class:`pki.errors.GwxError`): a stable ``code``, a human
``message`` and a ``kind`` set in each class's own body (what HTTP status, exit code and retry
decision follow from it is :mod:`node.error_kinds`). The request errors shared by the local and
the peer API live here so that neither imports the other. Envelope-level refusals that a peer
matches on (``ENV_REPLAYED``) live in :mod:`exchange_protocol.errors` and are re-exported here.
"""

from __future__ import annotations

from exchange_protocol.errors import EnvelopeReplayed
from pki.errors import ErrorKind, GwxError

__all__ = [
    "ApiError",
    "AuditChainBroken",
    "BadDigest",
    "BadJson",
    "BlobDigestMismatch",
    "BlobMissing",
    "BlobTooLarge",
    "ConfigError",
    "EnvelopeReplayed",
    "NoDirectory",
    "NoRevocationService",
    "NodeAlreadyRunning",
    "NodeError",
    "NodeExists",
    "NodeStopTimeout",
    "NodeUnavailable",
    "NotFound",
    "PackageKillsCheck",
    "QueueExpired",
    "QueuePurged",
    "StoreConflict",
    "StoreContended",
    "StoreCorrupt",
    "StoreDiskFull",
    "StoreDuplicate",
    "StoreError",
    "StoreNotFound",
    "StoreSchemaTooNew",
    "StoreSqliteTooOld",
]


class NodeError(GwxError):
    code = "NODE_ERROR"
    kind = ErrorKind.INTERNAL
    subcodes = ("INTERNAL",)  # an exception nobody typed, reported without its traceback


class ConfigError(NodeError):
    """node.toml (or a provisioning input) that cannot be used; the message names the key."""

    code = "NODE_CONFIG"
    kind = ErrorKind.INVALID_INPUT
    # NODE_TLS_ROOT_MISMATCH: credentials/tls-root.crt is not the transport root the held directory names
    subcodes = ("NODE_TOKENS_CORRUPT", "NODE_TLS_ROOT_MISMATCH")


class NodeExists(ConfigError):
    code = "NODE_EXISTS"
    kind = ErrorKind.CONFLICT


class NodeUnavailable(NodeError):
    """The node cannot do this now but may shortly, with nothing changed in the request: it is
    shutting down or out of disk, its CRL is stale, a notice arrived ahead of its document."""

    code = "NODE_UNAVAILABLE"
    kind = ErrorKind.TRANSIENT
    # NODE_CHECK_TIMEOUT: a check process did not answer in time (node.federation.check_pool)
    subcodes = ("NODE_SHUTTING_DOWN", "NODE_REVOCATION_UNKNOWN", "NOTICE_EARLY", "NODE_NOT_RUNNING",
                "NODE_CHECK_TIMEOUT")


class PackageKillsCheck(NodeError):
    """A package under which a check process died twice (node.federation.check_pool): refused for
    good, as a package that crashes the checker is broken or hostile, and judging it again costs a
    process every time. ``details['digest']`` names it."""

    code = "NODE_CHECK_CRASHED"
    kind = ErrorKind.INVALID_INPUT


class NodeAlreadyRunning(NodeError):
    """Another process serves this node directory (node.run_lock); ``details['pid']`` names it."""

    code = "NODE_ALREADY_RUNNING"
    kind = ErrorKind.CONFLICT


class NodeStopTimeout(NodeError):
    """`gwx node stop` waited and the node has not exited yet (it may be finishing a large transfer)."""

    code = "NODE_STOP_TIMEOUT"
    kind = ErrorKind.TRANSIENT


class QueueExpired(NodeError):
    """The retry window closed before the next node took the message; the cause was transient."""

    code = "QUEUE_EXPIRED"
    kind = ErrorKind.TRANSIENT


class QueuePurged(NodeError):
    """An operator took the message out of the send queue for good (``gwx node queue purge``): the
    sender's rows turn failed with this, a relayed message's origin gets a bounce saying so."""

    code = "QUEUE_PURGED"
    kind = ErrorKind.CONFLICT


# --- requests (local API, peer API) ------------------------------------------------------------
class ApiError(NodeError):
    """A request that cannot be used as given; the code names what is wrong with it."""

    code = "API_BAD_REQUEST"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("API_BAD_MULTIPART", "API_BAD_FILENAME", "API_BAD_PARAMETER", "API_BAD_DOC_ID", "API_BAD_MESSAGE_ID",
                "API_UNKNOWN_FIELD", "API_BAD_FIELD", "API_BAD_ROLE", "API_UNSUPPORTED_MEDIA_TYPE",
                "API_METHOD_NOT_ALLOWED", "API_LENGTH_REQUIRED", "API_TOO_MANY_FRAMES", "API_OCSP_TOO_LARGE",
                "API_TSA_TOO_LARGE")


class BadJson(ApiError):
    """A request body (or the meta part) that is not the JSON object it must be."""

    code = "API_BAD_JSON"
    kind = ErrorKind.INVALID_INPUT


class NoDirectory(NodeError):
    """This node holds no network directory (``NODE_DIR/directory.json``) to serve or show."""

    code = "NODE_NO_DIRECTORY"
    kind = ErrorKind.NOT_FOUND


class NoRevocationService(NodeError):
    """This node has no CRL to serve (``NODE_NO_CRL``: none in ``crl.pem`` yet) or answers no OCSP
    (``NODE_NO_OCSP``: no ``[revocation] ocsp_signer``; the root node answers it)."""

    code = "NODE_NO_CRL"
    kind = ErrorKind.NOT_FOUND
    subcodes = ("NODE_NO_OCSP",)


class NoTimeStampService(NodeError):
    """This node holds no TSA signer (``[archive] tsa_signer``): the root node time-stamps."""

    code = "NODE_NO_TSA"
    kind = ErrorKind.NOT_FOUND


class ArchiveNoTsa(NodeError):
    """No time-stamping authority to ask: no signer here, no ``[archive] tsa_node``, no directory root."""

    code = "ARCHIVE_NO_TSA"
    kind = ErrorKind.CONFLICT  # the node's configuration does not allow it; retrying as it is will not help


class ArchiveNotFinished(NodeError):
    """一键归档 of a document whose handling is not finished (a recipient not settled), without a reason."""

    code = "ARCHIVE_DOC_NOT_FINISHED"
    kind = ErrorKind.CONFLICT


class NotFound(NodeError):
    """No such route, or no such document, token or row for the one asking."""

    code = "API_NOT_FOUND"
    kind = ErrorKind.NOT_FOUND
    subcodes = ("NODE_UNKNOWN_TOKEN",)


# --- storage (node.store) ---------------------------------------------------------------------
class StoreError(NodeError):
    code = "STORE_ERROR"
    kind = ErrorKind.INTERNAL
    # STORE_BLOB_UNREADABLE: the database holding a small blob's bytes (inline_blobs) refused the read
    subcodes = ("STORE_BLOB_UNREADABLE",)


class StoreCorrupt(StoreError):
    """Stored state that contradicts itself: a queue or inbox row whose blob is gone or altered."""

    code = "STORE_CORRUPT"
    kind = ErrorKind.INTERNAL


class BlobDigestMismatch(StoreCorrupt):
    """Blob bytes whose SHA-256 is not the digest they were announced or stored under."""

    code = "STORE_BLOB_DIGEST_MISMATCH"
    kind = ErrorKind.INTERNAL


class BlobMissing(StoreCorrupt):
    code = "STORE_BLOB_MISSING"
    kind = ErrorKind.INTERNAL


class BlobTooLarge(StoreError):
    code = "STORE_BLOB_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class BadDigest(StoreError):
    """A blob digest that is not 64 lower-case hex characters (never turned into a path)."""

    code = "STORE_BAD_DIGEST"
    kind = ErrorKind.INVALID_INPUT


class StoreDiskFull(StoreError):
    """Less free space where the store lives than the node needs to accept an envelope (what
    readiness reports, ``node.ops.readiness``): an operator frees space, the node carries on."""

    code = "STORE_DISK_FULL"
    kind = ErrorKind.TRANSIENT


class StoreConflict(StoreError):
    """A compare-and-set update found a different state than expected: someone changed it first."""

    code = "STORE_CONFLICT"
    kind = ErrorKind.CONFLICT


class StoreContended(StoreConflict):
    """A row that kept changing under every retry of a compare-and-set: busy, try again shortly."""

    code = "STORE_CONTENDED"
    kind = ErrorKind.TRANSIENT


class StoreDuplicate(StoreConflict):
    """A row with this key exists already (e.g. enqueueing a message id twice)."""

    code = "STORE_DUPLICATE"
    kind = ErrorKind.CONFLICT


class StoreNotFound(StoreError):
    code = "STORE_NOT_FOUND"
    kind = ErrorKind.NOT_FOUND


class StoreSqliteTooOld(StoreError):
    """The SQLite library Python was built with lacks what the store uses (UPDATE … RETURNING)."""

    code = "STORE_SQLITE_TOO_OLD"
    kind = ErrorKind.INTERNAL


class StoreSchemaTooNew(StoreError):
    """The database was migrated by a newer gwx than this one; refusing to touch it."""

    code = "STORE_SCHEMA_TOO_NEW"
    kind = ErrorKind.INTERNAL


class AuditChainBroken(StoreError):
    """The audit log's hash chain does not verify; ``details['seq']`` is the first broken event."""

    code = "AUDIT_CHAIN_BROKEN"
    kind = ErrorKind.INTERNAL
