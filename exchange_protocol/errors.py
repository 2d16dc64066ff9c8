"""Machine-readable errors of the exchange protocol (documents, packages, envelopes, states).

All derive from :class:`ProtocolError` (itself a :class:`pki.errors.GwxError`). Codes are a
contract: adapters and peers match on them. Group by area; keep one class per distinct cause, and
set its ``kind`` (:class:`pki.errors.ErrorKind`) in its own body: a package that fails a check is
``VERIFICATION_FAILED``, what a sender hands the builder ``INVALID_INPUT``.
"""

from __future__ import annotations

from pki.errors import ErrorKind, GwxError


class ProtocolError(GwxError):
    code = "PROTO_ERROR"
    kind = ErrorKind.INTERNAL


# --- document model (metadata.json / META.json) -------------------------------------------
class MetadataError(ProtocolError):
    code = "DOC_INVALID_METADATA"
    kind = ErrorKind.INVALID_INPUT


class MalformedMetadata(MetadataError):
    """META.json / metadata.json that is not a bounded, well-formed UTF-8 JSON object."""

    code = "DOC_MALFORMED_JSON"
    kind = ErrorKind.INVALID_INPUT


class UnknownMetadataField(MetadataError):
    code = "DOC_UNKNOWN_FIELD"
    kind = ErrorKind.INVALID_INPUT


class MissingMetadataField(MetadataError):
    code = "DOC_MISSING_FIELD"
    kind = ErrorKind.INVALID_INPUT


class MetadataWrongType(MetadataError):
    code = "DOC_WRONG_TYPE"
    kind = ErrorKind.INVALID_INPUT


class InvalidMetadataValue(MetadataError):
    """A field of the right type whose value is not allowed (empty title, bad date, …)."""

    code = "DOC_INVALID_FIELD"
    kind = ErrorKind.INVALID_INPUT


class InvalidDocumentId(InvalidMetadataValue):
    """A 公文标识 outside :data:`exchange_protocol.model.DOC_ID_PATTERN` (it could never be addressed)."""

    code = "DOC_INVALID_ID"
    kind = ErrorKind.INVALID_INPUT


class DeadlinePassed(InvalidMetadataValue):
    """A document sent with a 办理时限 already past: every recipient would be overdue on arrival."""

    code = "DOC_DEADLINE_PASSED"
    kind = ErrorKind.INVALID_INPUT


class DatesOutOfOrder(InvalidMetadataValue):
    """A document sent with a 成文日期 after the day it is sent, or a 印发日期 before its 成文日期:
    a document is printed and sent after it is signed, never before (GB/T 9704)."""

    code = "DOC_DATES_OUT_OF_ORDER"
    kind = ErrorKind.INVALID_INPUT


class UnknownKind(MetadataError):
    code = "DOC_UNKNOWN_KIND"
    kind = ErrorKind.INVALID_INPUT


class InvalidDocNumber(MetadataError):
    code = "DOC_INVALID_DOC_NUMBER"
    kind = ErrorKind.INVALID_INPUT


class InvalidRecipientCode(MetadataError):
    """A 主送/抄送/发文机关 entry that is not a valid 统一社会信用代码."""

    code = "DOC_INVALID_UNIT_CODE"
    kind = ErrorKind.INVALID_INPUT


class DuplicateRecipient(MetadataError):
    code = "DOC_DUPLICATE_RECIPIENT"
    kind = ErrorKind.INVALID_INPUT


class NoMainRecipient(MetadataError):
    code = "DOC_NO_MAIN_RECIPIENT"
    kind = ErrorKind.INVALID_INPUT


class SignerRequired(MetadataError):
    """签发人 missing on an upward document (请示, 报告)."""

    code = "DOC_SIGNER_REQUIRED"
    kind = ErrorKind.INVALID_INPUT


class ClassifiedRefused(MetadataError):
    """密级 other than 非密 on a node not configured for a classified network."""

    code = "DOC_CLASSIFIED_REFUSED"
    kind = ErrorKind.FORBIDDEN


class CopyNumberRequired(MetadataError):
    code = "DOC_COPY_NUMBER_REQUIRED"
    kind = ErrorKind.INVALID_INPUT


# --- sealed packages (ZIP) ------------------------------------------------------------------
class PackageError(ProtocolError):
    code = "PKG_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageInputError(PackageError):
    """What a sender hands the builder cannot make a package (bad name, body too big, not a PDF)."""

    code = "PKG_BAD_INPUT"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("PKG_SEAL_NOT_ISSUER",)


class PackageExists(PackageError):
    """``gwx doc pack --out`` names a package that exists: replaced only when asked (--force)."""

    code = "PKG_EXISTS"
    kind = ErrorKind.CONFLICT


class PackageBodyTooLarge(PackageInputError):
    code = "PKG_BODY_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class PackageNotPdf(PackageInputError):
    code = "PKG_NOT_PDF"
    kind = ErrorKind.INVALID_INPUT


class PackageMalformed(PackageError):
    """Not a ZIP we can read: truncated, corrupt, CRC errors, header/directory disagreement."""

    code = "PKG_MALFORMED"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageOverlappingMembers(PackageError):
    """Members whose data overlap (the overlapping-file zip bomb)."""

    code = "PKG_OVERLAPPING_MEMBERS"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageZipBomb(PackageError):
    """A member decompresses to more than the allowed ratio of its compressed size."""

    code = "PKG_ZIP_BOMB"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageTooLarge(PackageError):
    """The members together decompress to more than the package limit."""

    code = "PKG_TOO_LARGE"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageMemberTooLarge(PackageError):
    code = "PKG_MEMBER_TOO_LARGE"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageTooManyMembers(PackageError):
    code = "PKG_TOO_MANY_MEMBERS"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageEncryptedMember(PackageError):
    code = "PKG_ENCRYPTED_MEMBER"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageUnsupportedCompression(PackageError):
    code = "PKG_UNSUPPORTED_COMPRESSION"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageNameNotUtf8(PackageError):
    """A member name that is not flagged UTF-8 and not plain ASCII, or flagged but not decodable."""

    code = "PKG_NAME_NOT_UTF8"
    kind = ErrorKind.VERIFICATION_FAILED


class PackagePathTraversal(PackageError):
    code = "PKG_PATH_TRAVERSAL"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageAbsolutePath(PackageError):
    code = "PKG_ABSOLUTE_PATH"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageBadPath(PackageError):
    """Backslashes, drive letters, control characters, empty segments or other unusable names."""

    code = "PKG_BAD_PATH"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageDuplicateName(PackageError):
    code = "PKG_DUPLICATE_NAME"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageSymlink(PackageError):
    code = "PKG_SYMLINK"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageNestedArchive(PackageError):
    """An attachment that is itself an archive (zip, jar, 7z, rar, gzip, …) by its magic bytes."""

    code = "PKG_NESTED_ARCHIVE"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageMissingPart(PackageError):
    """A required member is absent; the code names which (PKG_MISSING_METADATA, …_BODY, …)."""

    code = "PKG_MISSING_PART"
    kind = ErrorKind.VERIFICATION_FAILED
    subcodes = ("PKG_MISSING_METADATA", "PKG_MISSING_BODY", "PKG_MISSING_MANIFEST", "PKG_MISSING_SIGNATURE",
                "PKG_MISSING_SEAL")


class PackageManifestInvalid(PackageError):
    code = "PKG_BAD_MANIFEST"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageUnlistedFile(PackageError):
    """A member the manifest does not list (extra to the manifest)."""

    code = "PKG_UNLISTED_FILE"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageMissingFile(PackageError):
    """A file the manifest lists that the archive lacks."""

    code = "PKG_MISSING_FILE"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageDigestMismatch(PackageError):
    code = "PKG_DIGEST_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageSizeMismatch(PackageError):
    code = "PKG_SIZE_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageBadSignature(PackageError):
    """The manifest signature (META-INF/signature.p7s) does not verify or is not trusted."""

    code = "PKG_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class PackageSealInvalid(PackageError):
    """The PAdES seal on body.pdf is missing, broken, untrusted or not made with the package's seal."""

    code = "PKG_PDF_SEAL_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED


class PdfByteRangeInvalid(PackageSealInvalid):
    """The PAdES seal's /ByteRange leaves out bytes other than its own signature (or lies outside the file)."""

    code = "PKG_PDF_BYTE_RANGE"
    kind = ErrorKind.VERIFICATION_FAILED


class PdfSealNotLast(PackageSealInvalid):
    """Bytes follow the sealed range: a revision (incremental update) or anything else appended after sealing."""

    code = "PKG_PDF_SEAL_APPENDED"
    kind = ErrorKind.VERIFICATION_FAILED


class PdfSealWrongSigner(PackageSealInvalid):
    """body.pdf is sealed, validly, by another certificate than the one that signed the package's manifest."""

    code = "PKG_PDF_SEAL_WRONG_SIGNER"
    kind = ErrorKind.VERIFICATION_FAILED


# --- envelopes (node to node) ---------------------------------------------------------------
class EnvelopeError(ProtocolError):
    code = "ENV_INVALID"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeReplayed(EnvelopeError):
    """A message id already received with different envelope bytes (a replay or an id collision)."""

    code = "ENV_REPLAYED"
    kind = ErrorKind.CONFLICT


# Framing (the binary frame around header, signature and payload).
class EnvelopeTruncated(EnvelopeError):
    code = "ENV_TRUNCATED"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeMalformedFrame(EnvelopeError):
    """Reserved bits set, bytes after the end of the frame, lengths that do not add up."""

    code = "ENV_MALFORMED_FRAME"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeBadMagic(EnvelopeError):
    code = "ENV_BAD_MAGIC"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeTooLarge(EnvelopeError):
    code = "ENV_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeHeaderTooLarge(EnvelopeTooLarge):
    code = "ENV_HEADER_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeSignatureTooLarge(EnvelopeTooLarge):
    code = "ENV_SIGNATURE_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class EnvelopePayloadTooLarge(EnvelopeTooLarge):
    code = "ENV_PAYLOAD_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeTooManyHeaders(EnvelopeTooLarge):
    """More signed headers in one frame (a bundle's K) than the reader accepts."""

    code = "ENV_TOO_MANY_HEADERS"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeHeadTooLarge(EnvelopeTooLarge):
    """A frame's headers and signatures together are more bytes than the reader holds in memory."""

    code = "ENV_HEAD_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeBundleUnsupported(EnvelopeError):
    """A bundle (several signed headers) where the reader handles one destination per frame."""

    code = "ENV_BUNDLE_UNSUPPORTED"
    kind = ErrorKind.INVALID_INPUT


# The rules between the headers of one bundle (exchange_protocol.envelope.check_bundle).
class EnvelopeBundleInvalid(EnvelopeError):
    code = "ENV_BUNDLE_INVALID"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeBundleMixedOrigins(EnvelopeBundleInvalid):
    """Headers of one bundle naming different origin nodes: one origin seals a bundle."""

    code = "ENV_BUNDLE_MIXED_ORIGINS"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeBundleDuplicateDestination(EnvelopeBundleInvalid):
    """Two headers of one bundle for the same destination node."""

    code = "ENV_BUNDLE_DUPLICATE_DESTINATION"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeBundleDuplicateId(EnvelopeBundleInvalid):
    """Two headers of one bundle with the same message id."""

    code = "ENV_BUNDLE_DUPLICATE_ID"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeBundlePayloadMismatch(EnvelopeBundleInvalid):
    """Headers of one bundle disagreeing on the payload's length or digest: they share one payload."""

    code = "ENV_BUNDLE_PAYLOAD_MISMATCH"
    kind = ErrorKind.INVALID_INPUT


# The routing header (canonical JSON).
class EnvelopeHeaderInvalid(EnvelopeError):
    code = "ENV_BAD_HEADER"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeMalformedHeader(EnvelopeHeaderInvalid):
    """Header bytes that are not a strict UTF-8 JSON object, or not in canonical form."""

    code = "ENV_MALFORMED_HEADER"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeUnknownField(EnvelopeHeaderInvalid):
    code = "ENV_UNKNOWN_FIELD"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeMissingField(EnvelopeHeaderInvalid):
    code = "ENV_MISSING_FIELD"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeWrongType(EnvelopeHeaderInvalid):
    code = "ENV_WRONG_TYPE"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeInvalidField(EnvelopeHeaderInvalid):
    """A field of the right type with a value not allowed (bad id, bad unit code, expiry before creation)."""

    code = "ENV_INVALID_FIELD"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeUnsupportedVersion(EnvelopeInvalidField):
    """A protocol version we do not speak: the header's ``v`` or the frame's version byte."""

    code = "ENV_UNSUPPORTED_VERSION"
    kind = ErrorKind.INVALID_INPUT


# Routing decisions about a well-formed envelope.
class EnvelopeWrongRecipient(EnvelopeError):
    code = "ENV_WRONG_RECIPIENT"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeExpired(EnvelopeError):
    code = "ENV_EXPIRED"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeTooManyHops(EnvelopeError):
    code = "ENV_TOO_MANY_HOPS"
    kind = ErrorKind.INVALID_INPUT


# Signature and trust.
class EnvelopeBadSignature(EnvelopeError):
    code = "ENV_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class EnvelopeRevocationUnknown(EnvelopeError):
    """The receiver could not tell whether the signer is revoked (stale or missing CRL): transient."""

    code = "ENV_REVOCATION_UNKNOWN"
    kind = ErrorKind.TRANSIENT


class EnvelopeSignerUntrusted(EnvelopeError):
    """The header's signer certificate does not chain to our roots (expired, revoked, wrong usage …)."""

    code = "ENV_SIGNER_UNTRUSTED"
    kind = ErrorKind.VERIFICATION_FAILED


class EnvelopeSignerNotOrigin(EnvelopeError):
    """A trusted certificate, but of another node than the header's origin."""

    code = "ENV_SIGNER_NOT_ORIGIN"
    kind = ErrorKind.VERIFICATION_FAILED


# The encrypted payload.
class EnvelopePayloadDigestMismatch(EnvelopeError):
    code = "ENV_PAYLOAD_DIGEST_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class EnvelopeMalformedPayload(EnvelopeError):
    """Payload bytes that are not the CMS AuthEnvelopedData this protocol writes."""

    code = "ENV_MALFORMED_PAYLOAD"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("ENV_SOURCE_TRUNCATED",)


class EnvelopeUnsupportedAlgorithm(EnvelopeMalformedPayload):
    code = "ENV_UNSUPPORTED_ALGORITHM"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeNotForMe(EnvelopeError):
    """No RecipientInfo in the payload names our encryption certificate."""

    code = "ENV_NO_RECIPIENT_INFO"
    kind = ErrorKind.INVALID_INPUT


class EnvelopeDecryptionFailed(EnvelopeError):
    """The content key could not be unwrapped with our key (wrong key or altered key material)."""

    code = "ENV_DECRYPTION_FAILED"
    kind = ErrorKind.VERIFICATION_FAILED


class EnvelopeTagMismatch(EnvelopeError):
    """GCM authentication (AES or SM4) failed: ciphertext, nonce or tag altered. Discard all output."""

    code = "ENV_TAG_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class EnvelopeRecipientUnusable(EnvelopeError):
    """An encryption certificate we cannot encrypt for (key type, curve, key usage, node id)."""

    code = "ENV_RECIPIENT_UNUSABLE"
    kind = ErrorKind.INVALID_INPUT


# Transport receipts.
class TransportReceiptInvalid(EnvelopeError):
    code = "ENV_RECEIPT_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED


class TransportReceiptBadSignature(TransportReceiptInvalid):
    code = "ENV_RECEIPT_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class TransportReceiptMismatch(TransportReceiptInvalid):
    """A valid receipt, but for other bytes, another message or from another node than expected."""

    code = "ENV_RECEIPT_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


# --- state machines -------------------------------------------------------------------------
class IllegalTransition(ProtocolError):
    code = "STATE_ILLEGAL_TRANSITION"
    kind = ErrorKind.CONFLICT


class ConflictingDuplicate(IllegalTransition):
    """The same event again with different facts (a second 签收 by someone else)."""

    code = "STATE_CONFLICTING_DUPLICATE"
    kind = ErrorKind.CONFLICT


class InvalidRecipientRow(ProtocolError):
    code = "STATE_INVALID_ROW"
    kind = ErrorKind.INTERNAL


class EventDataMissing(ProtocolError):
    """An event without the facts it must record (签收 without who, 退回 without a reason)."""

    code = "STATE_EVENT_DATA_MISSING"
    kind = ErrorKind.INVALID_INPUT


# --- shared encodings, ids and retry timing ----------------------------------------------------
class MalformedJson(ProtocolError):
    code = "PROTO_MALFORMED_JSON"
    kind = ErrorKind.INVALID_INPUT


class NotCanonicalEncodable(ProtocolError):
    """A value canonical JSON refuses (float, non-string key, lone surrogate, unknown type)."""

    code = "PROTO_NOT_ENCODABLE"
    kind = ErrorKind.INVALID_INPUT


class InvalidId(ProtocolError):
    code = "PROTO_INVALID_ID"
    kind = ErrorKind.INVALID_INPUT


class InvalidRetryPolicy(ProtocolError):
    code = "RETRY_INVALID_POLICY"
    kind = ErrorKind.INVALID_INPUT


class InvalidRetryInput(ProtocolError):
    code = "RETRY_INVALID_INPUT"
    kind = ErrorKind.INVALID_INPUT


# --- the peer protocol's answer to a batch of frames (exchange_protocol.batch_answer) ----------
class BatchAnswerInvalid(ProtocolError):
    """A peer's answer to ``POST /peer/v1/envelopes`` that cannot be trusted to say what it did."""

    code = "PEER_ANSWER_INVALID"
    kind = ErrorKind.TRANSIENT  # the peer's trouble, not the envelope's: the sender tries again


class BatchAnswerMalformed(BatchAnswerInvalid):
    """Not JSON, not the documented shape, a field of the wrong type, a receipt that is not base64."""

    code = "PEER_ANSWER_MALFORMED"
    kind = ErrorKind.TRANSIENT


class BatchAnswerTooLarge(BatchAnswerInvalid):
    code = "PEER_ANSWER_TOO_LARGE"
    kind = ErrorKind.TRANSIENT


class BatchAnswerMismatch(BatchAnswerInvalid):
    """More answers than frames sent: the answer cannot be paired with the batch."""

    code = "PEER_ANSWER_MISMATCH"
    kind = ErrorKind.TRANSIENT


class BatchAnswerMissing(BatchAnswerInvalid):
    """No answer for a frame: the peer stopped reading at a break in the stream. Tried again."""

    code = "PEER_BATCH_BROKEN"
    kind = ErrorKind.TRANSIENT


# --- the network directory (exchange_protocol.directory) -------------------------------------
class DirectoryError(ProtocolError):
    """A network directory that cannot be used: its content (the root operator's input or a copy
    received) is not a well-formed directory."""

    code = "DIR_INVALID"
    kind = ErrorKind.INVALID_INPUT


class DirectoryMalformed(DirectoryError):
    """Not a bounded, well-formed UTF-8 JSON object of the directory's shape."""

    code = "DIR_MALFORMED"
    kind = ErrorKind.INVALID_INPUT


class DirectoryTooLarge(DirectoryMalformed):
    code = "DIR_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class DirectoryBadField(DirectoryError):
    """A field missing, unknown, of the wrong type or with a value not allowed; ``path`` names it."""

    code = "DIR_BAD_FIELD"
    kind = ErrorKind.INVALID_INPUT


class DirectoryBadUnitCode(DirectoryBadField):
    """A unit's 统一社会信用代码 that is not one (shape or check character)."""

    code = "DIR_BAD_UNIT_CODE"
    kind = ErrorKind.INVALID_INPUT


class DirectoryBadCertificate(DirectoryBadField):
    """A node's certificate that does not parse, names another node, or (when built) is not valid
    for its role under the network's root."""

    code = "DIR_BAD_CERTIFICATE"
    kind = ErrorKind.INVALID_INPUT


class DirectoryDuplicate(DirectoryError):
    """Two nodes with one id, two units with one code, a direct link listed twice."""

    code = "DIR_DUPLICATE"
    kind = ErrorKind.INVALID_INPUT


class DirectoryUnknownReference(DirectoryError):
    """A unit hosted by a node the directory does not list, a parent or supervisor that is not there."""

    code = "DIR_UNKNOWN_REFERENCE"
    kind = ErrorKind.INVALID_INPUT


class DirectoryCycle(DirectoryError):
    """Nodes (or units) that are their own ancestors: no tree, so no route up or down it."""

    code = "DIR_CYCLE"
    kind = ErrorKind.INVALID_INPUT


class DirectoryBadSignature(DirectoryError):
    """The signature does not verify over the directory: forged, or the content changed since."""

    code = "DIR_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class DirectorySignerUntrusted(DirectoryError):
    """The signer's certificate does not chain to our root, has expired, is revoked, or is not a
    directory signer's (a node's signing key, a seal maker…); ``cause`` is the certificate's code."""

    code = "DIR_SIGNER_UNTRUSTED"
    kind = ErrorKind.VERIFICATION_FAILED


class DirectoryRollback(DirectoryError):
    """A version lower than the one we hold: an old directory replayed, refused."""

    code = "DIR_ROLLBACK"
    kind = ErrorKind.VERIFICATION_FAILED


class DirectoryVersionReused(DirectoryError):
    """The version we hold with other content: versions only grow, each names one content."""

    code = "DIR_VERSION_REUSED"
    kind = ErrorKind.VERIFICATION_FAILED
