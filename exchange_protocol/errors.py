"""Machine-readable errors of the exchange protocol (documents, packages, envelopes, states).

All derive from :class:`ProtocolError` (itself a :class:`pki.errors.GwxError`). Codes are a
contract: adapters and peers match on them. Group by area; keep one class per distinct cause.
"""

from __future__ import annotations

from pki.errors import GwxError


class ProtocolError(GwxError):
    code = "PROTO_ERROR"


# --- document model (metadata.json / META.json) -------------------------------------------
class MetadataError(ProtocolError):
    code = "DOC_INVALID_METADATA"


class MalformedMetadata(MetadataError):
    """META.json / metadata.json that is not a bounded, well-formed UTF-8 JSON object."""

    code = "DOC_MALFORMED_JSON"


class UnknownMetadataField(MetadataError):
    code = "DOC_UNKNOWN_FIELD"


class MissingMetadataField(MetadataError):
    code = "DOC_MISSING_FIELD"


class MetadataWrongType(MetadataError):
    code = "DOC_WRONG_TYPE"


class InvalidMetadataValue(MetadataError):
    """A field of the right type whose value is not allowed (empty title, bad date, …)."""

    code = "DOC_INVALID_FIELD"


class UnknownKind(MetadataError):
    code = "DOC_UNKNOWN_KIND"


class InvalidDocNumber(MetadataError):
    code = "DOC_INVALID_DOC_NUMBER"


class InvalidRecipientCode(MetadataError):
    """A 主送/抄送/发文机关 entry that is not a valid 统一社会信用代码."""

    code = "DOC_INVALID_UNIT_CODE"


class DuplicateRecipient(MetadataError):
    code = "DOC_DUPLICATE_RECIPIENT"


class NoMainRecipient(MetadataError):
    code = "DOC_NO_MAIN_RECIPIENT"


class SignerRequired(MetadataError):
    """签发人 missing on an upward document (请示, 报告)."""

    code = "DOC_SIGNER_REQUIRED"


class ClassifiedRefused(MetadataError):
    """密级 other than 非密 on a node not configured for a classified network."""

    code = "DOC_CLASSIFIED_REFUSED"


class CopyNumberRequired(MetadataError):
    code = "DOC_COPY_NUMBER_REQUIRED"


# --- sealed packages (ZIP) ------------------------------------------------------------------
class PackageError(ProtocolError):
    code = "PKG_INVALID"


# --- envelopes (node to node) ---------------------------------------------------------------
class EnvelopeError(ProtocolError):
    code = "ENV_INVALID"


# --- state machines -------------------------------------------------------------------------
class IllegalTransition(ProtocolError):
    code = "STATE_ILLEGAL_TRANSITION"


class ConflictingDuplicate(IllegalTransition):
    """The same event again with different facts (a second 签收 by someone else)."""

    code = "STATE_CONFLICTING_DUPLICATE"


class EventDataMissing(ProtocolError):
    """An event without the facts it must record (签收 without who, 退回 without a reason)."""

    code = "STATE_EVENT_DATA_MISSING"


# --- shared encodings, ids and retry timing ----------------------------------------------------
class MalformedJson(ProtocolError):
    code = "PROTO_MALFORMED_JSON"


class NotCanonicalEncodable(ProtocolError):
    """A value canonical JSON refuses (float, non-string key, lone surrogate, unknown type)."""

    code = "PROTO_NOT_ENCODABLE"


class InvalidId(ProtocolError):
    code = "PROTO_INVALID_ID"


class InvalidRetryPolicy(ProtocolError):
    code = "RETRY_INVALID_POLICY"


class InvalidRetryInput(ProtocolError):
    code = "RETRY_INVALID_INPUT"
