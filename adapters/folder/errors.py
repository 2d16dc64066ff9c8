"""Why a drop in a watched folder was refused: the codes an OA system reads in ``error.json``.

Every refusal of the drop itself is a :class:`DropRefused` (invalid input: the drop moves to
``rejects/`` at once and nothing is sent); the document service's own refusals (``DOC_*``,
``PKG_*``, ``API_FORBIDDEN`` …) reach ``error.json`` with their codes unchanged. Codes are a
contract with the OA integrator: never reworded once shipped.
"""

from __future__ import annotations

from pki.errors import ErrorKind, GwxError


class DropRefused(GwxError):
    """A drop that cannot be sent as it is; ``details`` name the file or member at fault."""

    code = "DROP_REFUSED"
    kind = ErrorKind.INVALID_INPUT


class DropNoMeta(DropRefused):
    code = "DROP_NO_META"
    kind = ErrorKind.INVALID_INPUT


class DropNoBody(DropRefused):
    code = "DROP_NO_BODY"
    kind = ErrorKind.INVALID_INPUT


class DropSymlink(DropRefused):
    """A symbolic link anywhere in a drop (or a zip member that is one): it could point out of the folder."""

    code = "DROP_SYMLINK"
    kind = ErrorKind.INVALID_INPUT


class DropHardLink(DropRefused):
    """A file that has other names elsewhere: its content may not be the OA's to send."""

    code = "DROP_HARD_LINK"
    kind = ErrorKind.INVALID_INPUT


class DropUnexpectedEntry(DropRefused):
    """Something in a drop that is none of META.json, body.pdf, attachments/<file>, .ready."""

    code = "DROP_UNEXPECTED_ENTRY"
    kind = ErrorKind.INVALID_INPUT


class DropBadName(DropRefused):
    """A name that climbs out (``..``), is absolute, has control characters or cannot be an attachment's."""

    code = "DROP_BAD_NAME"
    kind = ErrorKind.INVALID_INPUT


class DropTooLarge(DropRefused):
    code = "DROP_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


class DropUnreadable(DropRefused):
    """A file of the drop the node may not open (another user's, mode 0600): retrying would not help."""

    code = "DROP_UNREADABLE"
    kind = ErrorKind.INVALID_INPUT


class DropBadZip(DropRefused):
    """Not a zip we can read: truncated, encrypted, an unknown compression, a checksum that fails."""

    code = "DROP_BAD_ZIP"
    kind = ErrorKind.INVALID_INPUT


class DropZipBomb(DropRefused):
    """A member that inflates far beyond its compressed size, or more members than a drop may have."""

    code = "DROP_ZIP_BOMB"
    kind = ErrorKind.INVALID_INPUT


class DropAlreadySent(DropRefused):
    """META.json names a 公文标识 this unit has already sent (the OA dropped the same document again)."""

    code = "DROP_ALREADY_SENT"
    kind = ErrorKind.CONFLICT


class DropDuplicateId(DropRefused):
    """META.json names a 公文标识 another drop of this unit, claimed and not yet sent, already holds:
    sending this one under it would let the other drop be reported as sent with this one's content."""

    code = "DROP_DUPLICATE_ID"
    kind = ErrorKind.CONFLICT


class DropIdTaken(DropRefused):
    """The drop's 公文标识 was sent meanwhile with other content (a clerk sent a document under the same
    id through the API after the drop was keyed): the drop was not sent, and is not reported as sent."""

    code = "DROP_ID_TAKEN"
    kind = ErrorKind.CONFLICT


class DropSentUnreadable(GwxError):
    """A drop whose key is found sent can no longer be read as a drop (the operator lowered [limits]
    after it was sent, say), so it cannot be compared with what was sent: it is neither adopted nor
    refused — it was sent, and a reject would tell the OA otherwise. Its claim stays in ``work/`` and
    it is tried again (adopted once it can be read), or the operator removes it."""

    code = "DROP_SENT_UNREADABLE"
    kind = ErrorKind.TRANSIENT


class InboxUnwritable(GwxError):
    """The inbox folder cannot be written (disk full, unmounted share): the event is tried again later."""

    code = "FOLDER_INBOX_UNWRITABLE"
    kind = ErrorKind.TRANSIENT


class FolderRootMissing(GwxError):
    """A watched folder's configured root is not there (the share not mounted, the path mistyped). The
    node never creates it — under a bare mount point the tree would land on the wrong disk, where the
    OA never looks — and tries again each round until the operator mounts or creates it."""

    code = "FOLDER_ROOT_MISSING"
    kind = ErrorKind.TRANSIENT


class FolderRootUnreadable(FolderRootMissing):
    """A watched folder's root cannot even be looked at (EACCES on a folder above it, a stale NFS
    handle, EIO): as good as missing for the node, said with the system's reason."""

    code = "FOLDER_ROOT_UNREADABLE"
    kind = ErrorKind.TRANSIENT


class FolderIncomplete(FolderRootMissing):
    """The root is there but a subfolder is not (the share came back empty, an operator recreated the
    root): the watcher makes them again within a round; until then the OA's drops are not looked at."""

    code = "FOLDER_SUBFOLDERS_MISSING"
    kind = ErrorKind.TRANSIENT
