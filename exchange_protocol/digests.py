"""The protocol's digests by network profile: SHA-256 on an international network, SM3 on a 国密 one.

One network, one profile (:mod:`exchange_protocol.envelope_ciphers`): where the exchange protocol
binds bytes by a digest that travels or is signed, a 国密 network uses SM3 (GB/T 32905) as it uses
SM2 for the signatures and SM4 for the payload. The algorithm is carried as data, in the name of the
field that holds the digest, so a reader never guesses it and one network's reader refuses the
other's:

- the envelope header's payload digest: ``payload_sha256`` or ``payload_sm3``
  (:class:`~exchange_protocol.envelope.EnvelopeHeader`), signed by the origin;
- the transport receipt's digest of every frame byte received: ``envelope_sha256`` or
  ``envelope_sm3`` (:mod:`exchange_protocol.transport_receipt`), signed by the receiver;
- the replay identity (:func:`exchange_protocol.replay.envelope_identity`): not on the wire, but
  the receiver's record of what it accepted; it takes the digest the header names;
- the 签收/退回 statement's package digest: ``package_sha256`` or ``package_sm3``
  (:mod:`exchange_protocol.statements`), signed by the unit's seal key, whose algorithm fixes it;
- the archive package's manifest (``"hash": "sha256"`` or ``"sm3"``, each file's digest under that
  name), its index's ``package_sha256`` / ``package_sm3`` and its time-stamp's imprint
  (:mod:`exchange_protocol.archive`); its verifier reads either.

A verifier takes the network's digest from its policy (:attr:`TrustPolicy.profile
<exchange_protocol.envelope_seal.TrustPolicy.profile>`) and refuses a header naming the other with
``PKI_PROFILE_MISMATCH`` before any byte of the payload is used.

Not the protocol's, and SHA-256 on every network: the node's content-addressed blob names
(``node.store.blobs``; a name inside one node's disk, never compared with another node's), HTTP
ETags, the audit chain's links, the checksum of a downloaded archive file. They bind nothing a peer
signs or checks.

SM3 comes from the system OpenSSL through :mod:`hashlib` (``hashlib.new("sm3")``, in C) when it has
it, else from pyca/cryptography's bundled OpenSSL (:func:`pki.sm3_sm4.sm3`'s library); both are
OpenSSL's C SM3, checked against ``openssl dgst -sm3`` in the tests.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from cryptography.hazmat.primitives import hashes

from .envelope_ciphers import INTERNATIONAL, SM

SHA256, SM3 = "sha256", "sm3"
NAMES = (SHA256, SM3)
_BY_PROFILE = {INTERNATIONAL: SHA256, SM: SM3}


class Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


def for_profile(profile: str) -> str:
    """The digest of a network ``profile`` (``"international"`` or ``"sm"``)."""
    return _BY_PROFILE[profile]


def profile_of(name: str) -> str:
    """The network profile whose digest is ``name``."""
    return SM if name == SM3 else INTERNATIONAL


class _PycaSm3:
    """SM3 through pyca/cryptography, with :mod:`hashlib`'s interface (for a Python whose OpenSSL lacks it)."""

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SM3())
        self._done: bytes | None = None

    def update(self, data: bytes, /) -> None:
        self._h.update(bytes(data))

    def digest(self) -> bytes:
        if self._done is None:
            self._done = self._h.finalize()
        return self._done

    def hexdigest(self) -> str:
        return self.digest().hex()


def _has_hashlib_sm3() -> bool:
    try:
        return hashlib.new(SM3, b"abc").hexdigest() == \
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"  # GB/T 32905 A.1
    except ValueError:
        return False


_HASHLIB_SM3 = _has_hashlib_sm3()


def new(name: str, data: bytes = b"") -> Hash:
    """A running digest of ``name`` (one of :data:`NAMES`), fed ``data`` first."""
    if name == SHA256:
        return hashlib.sha256(data)
    if name != SM3:
        raise ValueError(f"{name!r} is not one of the protocol's digests {NAMES}")
    h: Hash = hashlib.new(SM3) if _HASHLIB_SM3 else _PycaSm3()
    if data:
        h.update(data)
    return h


def hexdigest(name: str, data: bytes) -> str:
    """Lower-case hex of ``name`` over ``data``."""
    return new(name, data).hexdigest()
