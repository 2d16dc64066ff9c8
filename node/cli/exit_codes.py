"""``gwx`` exit codes: the table over error kinds in :mod:`node.error_kinds`, re-exported here.

0 success; 1 a verification said no (bad signature, revoked, expired, digest mismatch);
2 the input cannot be used as given — bad or missing files (``IO_ERROR``), usage errors, config
errors, something named that does not exist or already does; 3 refused: a wrong passphrase or PIN,
a key file others can read, a token the node does not accept; 4 try again later (the node is
unreachable or busy, a CRL is stale); 5 an internal error.
"""

from __future__ import annotations

from node.error_kinds import (
    BAD_INPUT,
    INTERNAL,
    REFUSED,
    SUCCESS,
    TRY_AGAIN,
    VERIFY_FAILED,
    exit_code_for,
)
from pki.errors import ErrorKind, GwxError

__all__ = ["BAD_INPUT", "INTERNAL", "REFUSED", "SUCCESS", "TRY_AGAIN", "VERIFY_FAILED", "FileProblem",
           "exit_code_for"]


class FileProblem(GwxError):
    """An ``OSError`` met by a command (missing file, permission, a directory given for a file…),
    reported as a typed error so the user sees what and where instead of a traceback."""

    code = "IO_ERROR"
    kind = ErrorKind.INVALID_INPUT  # the path given cannot be used; the message says why

    @classmethod
    def from_os_error(cls, exc: OSError) -> FileProblem:
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        details = {"path": str(where)} if where else {}
        return cls(f"{what}: {where}" if where else what, errno=exc.errno, **details)
