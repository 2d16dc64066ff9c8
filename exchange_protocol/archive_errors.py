"""The archive package's typed errors (一键归档: :mod:`.archive`, :mod:`.archive_verify`, :mod:`.audit_chain`).

Kept apart from :mod:`.errors` (the exchange protocol's own) so each module stays one purpose and readable.
"""

from __future__ import annotations

from pki.errors import ErrorKind

from .errors import ProtocolError


class ArchiveError(ProtocolError):
    code = "ARCHIVE_ERROR"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveMalformed(ArchiveError):
    """Not an archive package we can read: not a ZIP, corrupt, a manifest or index that does not parse."""

    code = "ARCHIVE_MALFORMED"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveUnsafeName(ArchiveError):
    """A member name that could escape an extraction directory or hide another (absolute, ``..``,
    backslash, a drive, control characters, a duplicate)."""

    code = "ARCHIVE_UNSAFE_NAME"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveZipBomb(ArchiveError):
    """A member that decompresses (or claims to) beyond the ratio or size allowed."""

    code = "ARCHIVE_ZIP_BOMB"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveTooLarge(ArchiveError):
    """Too many members, or more bytes in all than an archive of one document may hold."""

    code = "ARCHIVE_TOO_LARGE"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveFileMissing(ArchiveError):
    """The manifest lists a file the archive does not hold (removed)."""

    code = "ARCHIVE_FILE_MISSING"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveFileUnlisted(ArchiveError):
    """The archive holds a file its manifest does not list (added)."""

    code = "ARCHIVE_FILE_UNLISTED"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveDigestMismatch(ArchiveError):
    """A file's SHA-256 or size is not the one its manifest lists (changed)."""

    code = "ARCHIVE_DIGEST_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveEvidenceInvalid(ArchiveError):
    """A signed evidence item (receipt, envelope header, statement) does not verify at the time-stamp's
    time; ``cause`` is the underlying code."""

    code = "ARCHIVE_EVIDENCE_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveAuditBroken(ArchiveError):
    """The audit-log excerpt's hashes do not recompute, or its events do not link."""

    code = "ARCHIVE_AUDIT_CHAIN_BROKEN"
    kind = ErrorKind.VERIFICATION_FAILED


class ArchiveInputError(ArchiveError):
    """What the archive builder was handed cannot go into an archive (a bad path, a duplicate)."""

    code = "ARCHIVE_INPUT_INVALID"
    kind = ErrorKind.INVALID_INPUT
