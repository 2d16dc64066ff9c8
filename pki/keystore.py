"""Private keys at rest: PKCS#8 PEM, encrypted with a passphrase, files mode 0600.

Every key is written by OpenSSL (:mod:`pki.sm2`) as PBES2: PBKDF2-HMAC-SHA256 with a random 16-byte
salt and 100 000 iterations (``pki.sm2.KDF_ITERATIONS``; OpenSSL's default, which pyca writes, is 2048
and 8 bytes; this OpenSSL 3.0 has no HMAC-SM3 PRF for PBKDF2), then AES-256-CBC for P-256 and RSA
keys, SM4-CBC for SM2 keys. pyca reads P-256 and RSA keys back, OpenSSL SM2 keys.

Writing goes through a temporary file in the same directory, fsync, then rename, so a crash
never leaves a half-written key. The temporary file is made by :func:`tempfile.mkstemp`
(unpredictable name, ``O_EXCL``, mode 0600): nobody can plant a file or a symlink where it will be
created, and a temp file a crash left behind is never reused. Reading refuses a key file that others can read: a key that
leaked through permissions is a key to rotate, not to use silently.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm as PycaUnsupported
from cryptography.hazmat.primitives import serialization

from .algorithms import PrivateKey
from .errors import (
    InsecureKeyFile,
    InvalidInput,
    KeyStoreError,
    MalformedEncoding,
    UnsupportedAlgorithm,
    WeakPassphrase,
    WrongPassphrase,
)
from .sm2 import Sm2PrivateKey, encrypt_private_key

MIN_PASSPHRASE_LEN = 8


def write_private_key(path: str | os.PathLike[str], key: PrivateKey, passphrase: bytes) -> Path:
    if len(passphrase) < MIN_PASSPHRASE_LEN:
        raise WeakPassphrase(f"passphrase must be at least {MIN_PASSPHRASE_LEN} bytes")
    if isinstance(key, Sm2PrivateKey):
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(passphrase))
    else:  # the same PBES2 parameters as SM2 keys (pki.sm2.KDF_ITERATIONS), not pyca's 2048 iterations
        pem = encrypt_private_key(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()), passphrase)
    return write_secret_file(path, pem)


def write_secret_file(path: str | os.PathLike[str], data: bytes) -> Path:
    """Durably write ``data`` readable by its owner only (0600)."""
    return _write_atomically(Path(path), data, 0o600)


def write_public_file(path: str | os.PathLike[str], data: bytes, *, parents: bool = True) -> Path:
    """Durably write a non-secret file (certificates, seals, CRLs): temp, fsync, rename, fsync of the
    directory. ``parents=False``: a missing directory is an error (FileNotFoundError), not made."""
    return _write_atomically(Path(path), data, 0o644, parents=parents)


def write_public_files(files: dict[Path, bytes]) -> None:
    """Several non-secret files replaced together: every one is written and fsynced under a temporary
    name first, then all are renamed in a row, so a failure while writing changes none of them (only a
    crash between the renames, a matter of microseconds, can leave some replaced)."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o644)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for directory in {path.parent for path in files}:
        fsync_dir(directory)


def _write_atomically(path: Path, data: bytes, mode: int, *, parents: bool = True) -> Path:
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as f:  # file.write loops over short writes
            if mode != 0o600:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable (used by the node's blob store too)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private_key(path: str | os.PathLike[str], passphrase: bytes) -> PrivateKey:
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyStoreError(f"key file {path} does not exist", code="PKI_KEY_MISSING") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureKeyFile(
            f"key file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it",
            path=str(path))
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except PycaUnsupported:
        # pyca decrypted it but cannot hold the key: an SM2 key (the 国密 profile), read by OpenSSL.
        return _read_sm2(path, data, passphrase)
    except (ValueError, TypeError) as exc:
        if b"ENCRYPTED" in data:
            # pyca cannot decrypt SM4-CBC, what SM2 keys are encrypted with: OpenSSL tells a wrong
            # passphrase from an SM2 key.
            return _read_sm2(path, data, passphrase)
        raise KeyStoreError(f"cannot read key {path}: {exc}", code="PKI_KEY_MALFORMED") from None
    return key  # type: ignore[return-value]


def _read_sm2(path: Path, data: bytes, passphrase: bytes) -> Sm2PrivateKey:
    try:
        return Sm2PrivateKey.from_pem(data, passphrase)
    except WrongPassphrase:
        raise WrongPassphrase(f"cannot decrypt {path}: wrong passphrase", path=str(path)) from None
    except (UnsupportedAlgorithm, MalformedEncoding, InvalidInput) as exc:
        raise KeyStoreError(f"cannot read key {path}: {exc.message}", code="PKI_KEY_MALFORMED") from None
