"""The signed network directory: one file, signed by the directory signer, judged by every node.

The file is canonical JSON (:mod:`exchange_protocol.canonical`)::

    {"format": "gwx-signed-directory/1", "directory": {…}, "signature": "<base64 DER CMS>"}

``signature`` is a detached CMS SignedData (:mod:`pki.cms`) over the canonical JSON of
``directory`` (:meth:`~exchange_protocol.directory.Directory.canonical`), made by a key whose
certificate has the directory-signing purpose (:mod:`pki.directory_signer`) and carrying the
intermediates up to the root, so any verifier — ``openssl cms -verify`` too — needs only the root.

:func:`verify_directory` judges a copy received: signature, chain to our root at ``now``, the
directory-signing purpose, well-formedness, and, against the directory we hold, that the version
only grows (a lower one is a rollback; the same one with other content is refused). Expiry is
reported (:class:`~exchange_protocol.directory.DirectoryStatus`), never refused: the caller keeps
routing on the last good directory and raises the alarm.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from pki import cms
from pki.errors import CertificateInvalid, PkiError, RevocationUnknown
from pki.signer import Signer
from pki.trust import Purpose, RevocationCheck, TrustStore

from .canonical import canonical_json, load_json
from .directory import MAX_DIRECTORY_BYTES, Directory, DirectoryStatus
from .errors import (
    DirectoryBadField,
    DirectoryBadSignature,
    DirectoryMalformed,
    DirectoryRollback,
    DirectorySignerUntrusted,
    DirectoryTooLarge,
    DirectoryVersionReused,
    ProtocolError,
)

SIGNED_FORMAT = "gwx-signed-directory/1"
_MAX_FILE = MAX_DIRECTORY_BYTES + 256 * 1024  # the directory, its signature and certificates


@dataclass(frozen=True)
class VerifiedDirectory:
    directory: Directory
    status: DirectoryStatus
    signer_certificate: x509.Certificate
    content_sha256: str  # of the signed canonical content: the same directory has the same digest
    unchanged: bool  # the very directory we already hold (same version, same content)


def sign_directory(directory: Directory, signer: Signer, chain: Sequence[x509.Certificate] = (), *,
                   signing_time: dt.datetime | None = None) -> bytes:
    """The signed directory file. ``chain``: the signer's issuing CAs below the root."""
    content = directory.canonical()
    signature = cms.sign_detached(content, signer, extra_certs=chain, signing_time=signing_time)
    return canonical_json({"format": SIGNED_FORMAT, "directory": directory.to_json(),
                           "signature": base64.b64encode(signature).decode("ascii")})


def signed_parts(data: bytes) -> tuple[bytes, bytes]:
    """(the signed content, the DER signature) of a directory file, unjudged — what
    :func:`verify_directory` checks, and what a tool of its own (openssl cms) can be given."""
    return _parts(_outer(data))


def _parts(outer: dict[str, Any]) -> tuple[bytes, bytes]:
    try:
        content = canonical_json(outer["directory"])
    except ProtocolError as exc:  # a float, a lone surrogate: nothing we sign
        raise DirectoryMalformed(f"directory cannot be encoded canonically: {exc.message}") from None
    try:
        signature = base64.b64decode(outer["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise DirectoryMalformed("signature is not base64") from None
    return content, signature


def verify_directory(data: bytes, trust: TrustStore | Sequence[x509.Certificate], now: dt.datetime, *,
                     current: Directory | None = None,
                     revocation: RevocationCheck | None = None) -> VerifiedDirectory:
    """Judge a directory file against our roots and the directory we hold (``current``)."""
    outer = _outer(data)
    content, signature = _parts(outer)
    try:
        result = cms.verify_detached(signature, content, trust_roots=trust, now=now,
                                     purpose=Purpose.DIRECTORY_SIGNING, revocation=revocation)
    except (CertificateInvalid, RevocationUnknown) as exc:
        raise DirectorySignerUntrusted(f"the directory's signer is not trusted: {exc.message}",
                                       cause=exc.code) from None
    except PkiError as exc:
        raise DirectoryBadSignature(f"the directory's signature does not verify: {exc.message}",
                                    cause=exc.code) from None
    directory = Directory.from_json(outer["directory"])
    unchanged = False
    if current is not None:
        if directory.version < current.version:
            raise DirectoryRollback(f"directory version {directory.version} is older than the version "
                                    f"{current.version} we hold", version=directory.version,
                                    current=current.version)
        if directory.version == current.version:
            if directory.canonical() != current.canonical():
                raise DirectoryVersionReused(f"directory version {directory.version} has other content than "
                                             "the one we hold under that version", version=directory.version)
            unchanged = True
    return VerifiedDirectory(directory, directory.status(now), result.signer_certificate,
                             hashlib.sha256(content).hexdigest(), unchanged)


def read_unverified(data: bytes) -> Directory:
    """The directory a file holds, well-formedness checked but its signature NOT: for showing and
    comparing files by hand (``gwx net show`` without ``--trust``), never for routing."""
    return Directory.from_json(_outer(data)["directory"])


def _outer(data: bytes) -> dict[str, Any]:
    if isinstance(data, (bytes, bytearray)) and len(data) > _MAX_FILE:
        raise DirectoryTooLarge(f"directory file is {len(data)} bytes, more than the {_MAX_FILE} allowed",
                                size=len(data), limit=_MAX_FILE)
    outer = load_json(data, max_bytes=_MAX_FILE, what="directory file", error=DirectoryMalformed)
    if not isinstance(outer, dict) or set(outer) != {"format", "directory", "signature"}:
        raise DirectoryMalformed("a directory file is an object with format, directory and signature")
    if outer["format"] != SIGNED_FORMAT:
        raise DirectoryBadField(f"format must be {SIGNED_FORMAT!r}", path="$.format")
    if not isinstance(outer["signature"], str) or not isinstance(outer["directory"], dict):
        raise DirectoryMalformed("the directory must be an object and its signature a base64 string")
    return outer
