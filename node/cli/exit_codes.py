"""The one place that maps typed errors to CLI exit codes.

0 success; 1 a verification said no (bad signature, revoked, expired, digest mismatch);
2 usage or input errors, including files that cannot be read or written (``IO_ERROR``);
3 key/passphrase problems; 4 anything else typed.
"""

from __future__ import annotations

from pki.errors import (
    BadSignature,
    CertificateInvalid,
    GwxError,
    InvalidInput,
    InvalidUnitCode,
    KeyStoreError,
    MalformedEncoding,
)

VERIFY_FAILED = 1
BAD_INPUT = 2
KEY_PROBLEM = 3
OTHER = 4


class FileProblem(GwxError):
    """An ``OSError`` met by a command (missing file, permission, a directory given for a file…),
    reported as a typed error so the user sees what and where instead of a traceback."""

    code = "IO_ERROR"
    exit_code = BAD_INPUT

    @classmethod
    def from_os_error(cls, exc: OSError) -> FileProblem:
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        details = {"path": str(where)} if where else {}
        return cls(f"{what}: {where}" if where else what, errno=exc.errno, **details)


def exit_code_for(exc: GwxError) -> int:
    if isinstance(exc, (BadSignature, CertificateInvalid)) or exc.code.endswith("_VERIFY_FAILED"):
        return VERIFY_FAILED
    if isinstance(exc, (InvalidInput, InvalidUnitCode, MalformedEncoding)):
        return BAD_INPUT
    if isinstance(exc, KeyStoreError):
        return KEY_PROBLEM
    return getattr(exc, "exit_code", OTHER)
