"""The :class:`Signer` interface: sign bytes without knowing where the key lives.

Callers (seal builder, CMS, envelopes, pyHanko adapter) hold a ``Signer`` and never a raw key.
A software signer wraps a key decrypted from the keystore; a PKCS#11 signer (``pki.pkcs11``)
asks a token. Both produce the same signature encoding for the same algorithm (DER ECDSA
``SEQUENCE{r, s}``, PKCS#1 v1.5 for RSA), so a verifier cannot tell them apart.
"""

from __future__ import annotations

import abc

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .algorithms import PrivateKey, PublicKey, SignatureAlgorithm, for_public_key
from .errors import KeyCertificateMismatch
from .x509_sm2 import public_key_of


class Signer(abc.ABC):
    """Something that can sign with one key, and names its algorithm and certificate."""

    @property
    @abc.abstractmethod
    def algorithm(self) -> SignatureAlgorithm: ...

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey: ...

    @property
    def certificate(self) -> x509.Certificate | None:
        """The certificate for this key, when the signer was given one."""
        return None

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (hashing it with the algorithm's hash) and return the signature."""


class SoftwareSigner(Signer):
    """A signer over an in-memory private key (loaded from an encrypted key file)."""

    def __init__(self, key: PrivateKey, certificate: x509.Certificate | None = None,
                 algorithm: SignatureAlgorithm | None = None) -> None:
        if certificate is not None and _spki(public_key_of(certificate)) != _spki(key.public_key()):
            # Caught here, not by a receiver that would only see signatures that never verify.
            raise KeyCertificateMismatch(
                f"certificate {certificate.subject.rfc4514_string()} does not certify this key",
                serial=certificate.serial_number)
        self._key = key
        self._certificate = certificate
        self._algorithm = algorithm or for_public_key(key.public_key())

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return self._algorithm

    @property
    def public_key(self) -> PublicKey:
        return self._key.public_key()

    @property
    def certificate(self) -> x509.Certificate | None:
        return self._certificate

    def with_certificate(self, certificate: x509.Certificate) -> SoftwareSigner:
        return SoftwareSigner(self._key, certificate, self._algorithm)

    def sign(self, data: bytes) -> bytes:
        return self._algorithm.sign_with_key(self._key, data)

    def private_key_for_tls(self) -> PrivateKey:
        """The raw key, for the one consumer that needs it: an ``ssl`` context or key decryption."""
        return self._key


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
