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


class InvalidDocumentId(InvalidMetadataValue):
    """A 公文标识 outside :data:`exchange_protocol.model.DOC_ID_PATTERN` (it could never be addressed)."""

    code = "DOC_INVALID_ID"


class DeadlinePassed(InvalidMetadataValue):
    """A document sent with a 办理时限 already past: every recipient would be overdue on arrival."""

    code = "DOC_DEADLINE_PASSED"


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
    exit_code = 1  # a package that fails a check is "verification said no" on the command line


class PackageInputError(PackageError):
    """What a sender hands the builder cannot make a package (bad name, body too big, not a PDF)."""

    code = "PKG_BAD_INPUT"
    exit_code = 2


class PackageBodyTooLarge(PackageInputError):
    code = "PKG_BODY_TOO_LARGE"


class PackageNotPdf(PackageInputError):
    code = "PKG_NOT_PDF"


class PackageMalformed(PackageError):
    """Not a ZIP we can read: truncated, corrupt, CRC errors, header/directory disagreement."""

    code = "PKG_MALFORMED"


class PackageOverlappingMembers(PackageError):
    """Members whose data overlap (the overlapping-file zip bomb)."""

    code = "PKG_OVERLAPPING_MEMBERS"


class PackageZipBomb(PackageError):
    """A member decompresses to more than the allowed ratio of its compressed size."""

    code = "PKG_ZIP_BOMB"


class PackageTooLarge(PackageError):
    """The members together decompress to more than the package limit."""

    code = "PKG_TOO_LARGE"


class PackageMemberTooLarge(PackageError):
    code = "PKG_MEMBER_TOO_LARGE"


class PackageTooManyMembers(PackageError):
    code = "PKG_TOO_MANY_MEMBERS"


class PackageEncryptedMember(PackageError):
    code = "PKG_ENCRYPTED_MEMBER"


class PackageUnsupportedCompression(PackageError):
    code = "PKG_UNSUPPORTED_COMPRESSION"


class PackageNameNotUtf8(PackageError):
    """A member name that is not flagged UTF-8 and not plain ASCII, or flagged but not decodable."""

    code = "PKG_NAME_NOT_UTF8"


class PackagePathTraversal(PackageError):
    code = "PKG_PATH_TRAVERSAL"


class PackageAbsolutePath(PackageError):
    code = "PKG_ABSOLUTE_PATH"


class PackageBadPath(PackageError):
    """Backslashes, drive letters, control characters, empty segments or other unusable names."""

    code = "PKG_BAD_PATH"


class PackageDuplicateName(PackageError):
    code = "PKG_DUPLICATE_NAME"


class PackageSymlink(PackageError):
    code = "PKG_SYMLINK"


class PackageNestedArchive(PackageError):
    """An attachment that is itself an archive (zip, jar, 7z, rar, gzip, …) by its magic bytes."""

    code = "PKG_NESTED_ARCHIVE"


class PackageMissingPart(PackageError):
    """A required member is absent; the code names which (PKG_MISSING_METADATA, …_BODY, …)."""

    code = "PKG_MISSING_PART"


class PackageManifestInvalid(PackageError):
    code = "PKG_BAD_MANIFEST"


class PackageUnlistedFile(PackageError):
    """A member the manifest does not list (extra to the manifest)."""

    code = "PKG_UNLISTED_FILE"


class PackageMissingFile(PackageError):
    """A file the manifest lists that the archive lacks."""

    code = "PKG_MISSING_FILE"


class PackageDigestMismatch(PackageError):
    code = "PKG_DIGEST_MISMATCH"


class PackageSizeMismatch(PackageError):
    code = "PKG_SIZE_MISMATCH"


class PackageBadSignature(PackageError):
    """The manifest signature (META-INF/signature.p7s) does not verify or is not trusted."""

    code = "PKG_BAD_SIGNATURE"


class PackageSealInvalid(PackageError):
    """The PAdES seal on body.pdf is missing, broken, untrusted or not made with the package's seal."""

    code = "PKG_PDF_SEAL_INVALID"


# --- envelopes (node to node) ---------------------------------------------------------------
class EnvelopeError(ProtocolError):
    code = "ENV_INVALID"


class EnvelopeReplayed(EnvelopeError):
    """A message id already received with different envelope bytes (a replay or an id collision)."""

    code = "ENV_REPLAYED"


# Framing (the binary frame around header, signature and payload).
class EnvelopeTruncated(EnvelopeError):
    code = "ENV_TRUNCATED"


class EnvelopeMalformedFrame(EnvelopeError):
    """Reserved bits set, bytes after the end of the frame, lengths that do not add up."""

    code = "ENV_MALFORMED_FRAME"


class EnvelopeBadMagic(EnvelopeError):
    code = "ENV_BAD_MAGIC"


class EnvelopeUnsupportedVersion(EnvelopeError):
    code = "ENV_UNSUPPORTED_VERSION"


class EnvelopeTooLarge(EnvelopeError):
    code = "ENV_TOO_LARGE"


class EnvelopeHeaderTooLarge(EnvelopeTooLarge):
    code = "ENV_HEADER_TOO_LARGE"


class EnvelopeSignatureTooLarge(EnvelopeTooLarge):
    code = "ENV_SIGNATURE_TOO_LARGE"


class EnvelopePayloadTooLarge(EnvelopeTooLarge):
    code = "ENV_PAYLOAD_TOO_LARGE"


# The routing header (canonical JSON).
class EnvelopeHeaderInvalid(EnvelopeError):
    code = "ENV_BAD_HEADER"


class EnvelopeMalformedHeader(EnvelopeHeaderInvalid):
    """Header bytes that are not a strict UTF-8 JSON object, or not in canonical form."""

    code = "ENV_MALFORMED_HEADER"


class EnvelopeUnknownField(EnvelopeHeaderInvalid):
    code = "ENV_UNKNOWN_FIELD"


class EnvelopeMissingField(EnvelopeHeaderInvalid):
    code = "ENV_MISSING_FIELD"


class EnvelopeWrongType(EnvelopeHeaderInvalid):
    code = "ENV_WRONG_TYPE"


class EnvelopeInvalidField(EnvelopeHeaderInvalid):
    """A field of the right type with a value not allowed (bad id, bad unit code, expiry before creation)."""

    code = "ENV_INVALID_FIELD"


# Routing decisions about a well-formed envelope.
class EnvelopeWrongRecipient(EnvelopeError):
    code = "ENV_WRONG_RECIPIENT"


class EnvelopeExpired(EnvelopeError):
    code = "ENV_EXPIRED"


class EnvelopeTooManyHops(EnvelopeError):
    code = "ENV_TOO_MANY_HOPS"


# Signature and trust.
class EnvelopeBadSignature(EnvelopeError):
    code = "ENV_BAD_SIGNATURE"


class EnvelopeRevocationUnknown(EnvelopeError):
    """The receiver could not tell whether the signer is revoked (stale or missing CRL): transient."""

    code = "ENV_REVOCATION_UNKNOWN"


class EnvelopeSignerUntrusted(EnvelopeError):
    """The header's signer certificate does not chain to our roots (expired, revoked, wrong usage …)."""

    code = "ENV_SIGNER_UNTRUSTED"


class EnvelopeSignerNotOrigin(EnvelopeError):
    """A trusted certificate, but of another node than the header's origin."""

    code = "ENV_SIGNER_NOT_ORIGIN"


# The encrypted payload.
class EnvelopePayloadDigestMismatch(EnvelopeError):
    code = "ENV_PAYLOAD_DIGEST_MISMATCH"


class EnvelopeMalformedPayload(EnvelopeError):
    """Payload bytes that are not the CMS AuthEnvelopedData this protocol writes."""

    code = "ENV_MALFORMED_PAYLOAD"


class EnvelopeUnsupportedAlgorithm(EnvelopeMalformedPayload):
    code = "ENV_UNSUPPORTED_ALGORITHM"


class EnvelopeNotForMe(EnvelopeError):
    """No RecipientInfo in the payload names our encryption certificate."""

    code = "ENV_NO_RECIPIENT_INFO"


class EnvelopeDecryptionFailed(EnvelopeError):
    """The content key could not be unwrapped with our key (wrong key or altered key material)."""

    code = "ENV_DECRYPTION_FAILED"


class EnvelopeTagMismatch(EnvelopeError):
    """AES-GCM authentication failed: ciphertext, nonce or tag altered. Discard all output."""

    code = "ENV_TAG_MISMATCH"


class EnvelopeRecipientUnusable(EnvelopeError):
    """An encryption certificate we cannot encrypt for (key type, curve, key usage, node id)."""

    code = "ENV_RECIPIENT_UNUSABLE"


# Transport receipts.
class TransportReceiptInvalid(EnvelopeError):
    code = "ENV_RECEIPT_INVALID"


class TransportReceiptBadSignature(TransportReceiptInvalid):
    code = "ENV_RECEIPT_BAD_SIGNATURE"


class TransportReceiptMismatch(TransportReceiptInvalid):
    """A valid receipt, but for other bytes, another message or from another node than expected."""

    code = "ENV_RECEIPT_MISMATCH"


# --- state machines -------------------------------------------------------------------------
class IllegalTransition(ProtocolError):
    code = "STATE_ILLEGAL_TRANSITION"


class ConflictingDuplicate(IllegalTransition):
    """The same event again with different facts (a second 签收 by someone else)."""

    code = "STATE_CONFLICTING_DUPLICATE"


class InvalidRecipientRow(ProtocolError):
    code = "STATE_INVALID_ROW"


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


# --- the peer protocol's answer to a batch of frames (exchange_protocol.batch_answer) ----------
class BatchAnswerInvalid(ProtocolError):
    """A peer's answer to ``POST /peer/v1/envelopes`` that cannot be trusted to say what it did."""

    code = "PEER_ANSWER_INVALID"


class BatchAnswerMalformed(BatchAnswerInvalid):
    """Not JSON, not the documented shape, a field of the wrong type, a receipt that is not base64."""

    code = "PEER_ANSWER_MALFORMED"


class BatchAnswerTooLarge(BatchAnswerInvalid):
    code = "PEER_ANSWER_TOO_LARGE"


class BatchAnswerMismatch(BatchAnswerInvalid):
    """More answers than frames sent: the answer cannot be paired with the batch."""

    code = "PEER_ANSWER_MISMATCH"
