"""Console passwords: scrypt (RFC 7914) from Python's standard library, memory-hard.

Parameters: N = 2**15, r = 8, p = 1 — 32 MiB of memory and about 0.15 s of one core per hash on the
project's machine, a 16-byte random salt and a 32-byte key. Why scrypt and not argon2id: both are
memory-hard (what makes guessing on GPUs and ASICs costly); scrypt comes with Python (OpenSSL's),
so the node needs no extra compiled dependency, and these parameters are above the n ≥ 2**14, r = 8
floor. The text kept in the store carries its parameters (``scrypt$15$8$1$SALT$KEY``), so they can
be raised later and old hashes still verify.

The node hashes in a worker thread (it would stall every request otherwise), at most :data:`AT_ONCE`
at a time, so a burst of sign-ins costs bounded memory (:class:`node.console.accounts.Accounts`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from node.console.errors import BadUser

LOG2_N, R, P = 15, 8, 1
KEY_BYTES = 32
MIN_LENGTH, MAX_LENGTH = 10, 256
AT_ONCE = 2  # hashes computed at the same time by one node (node.console.accounts holds the semaphore)


def check_password_rules(password: str) -> str:
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise BadUser(f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters", code="CONSOLE_WEAK_PASSWORD")
    if len(set(password)) < 4:
        raise BadUser("a password needs at least 4 different characters", code="CONSOLE_WEAK_PASSWORD")
    return password


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 2 ** log2_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=256 * n * r + 1024 * 1024)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, LOG2_N, R, P)
    return "$".join(("scrypt", str(LOG2_N), str(R), str(P), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt" or not 14 <= int(log2_n) <= 20:
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password[:MAX_LENGTH], base64.b64decode(salt), int(log2_n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# What an unknown login is checked against, so that it costs the same time as a known one.
DUMMY_HASH = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
