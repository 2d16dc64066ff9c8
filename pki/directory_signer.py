"""The network directory's signer: a key whose certificate has the directory-signing purpose.

The root operator signs the network directory (:mod:`exchange_protocol.directory`) with it, and
with nothing else: its certificate carries only the directory-signing extended key usage
(:data:`pki.profiles.DIRECTORY_SIGNING`), so it cannot sign envelopes or seals, and no node's
signing key can sign a directory (:class:`pki.trust.Purpose` decides both).

Where it lives, two ways:

- in the CA directory (``dirsigner.key``, ``dirsigner.crt``), made by ``init-root`` and
  ``issue-intermediate`` beside the seal maker: :func:`from_ca`;
- in a signer directory of its own, for a CA made before signers existed or for an operator who
  should sign directories without holding the CA (``gwx pki issue-directory-signer``)::

      signer.key   the key, encrypted with the passphrase given (mode 0600)
      signer.crt   its certificate followed by the issuing CAs below the root
      root.crt     the network's trust anchor

  :func:`issue` writes one, :func:`open_directory` reads it back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from . import profiles
from .ca import CertificateAuthority
from .certificates import load_certificate, load_certificates, pem
from .errors import CaMissing
from .keystore import read_private_key, write_public_file
from .signer import SoftwareSigner


@dataclass(frozen=True)
class DirectorySigner:
    """A signer with the certificates a verifier needs to reach the root (leaf excluded)."""

    signer: SoftwareSigner
    chain: tuple[x509.Certificate, ...]
    root: x509.Certificate

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate  # type: ignore[return-value]


def from_ca(ca: CertificateAuthority) -> DirectorySigner:
    """The signer kept in ``ca``'s own directory (made with the CA)."""
    key_path, cert_path = ca.directory / "dirsigner.key", ca.directory / "dirsigner.crt"
    if not key_path.exists() or not cert_path.exists():
        raise CaMissing(f"the CA in {ca.directory} has no directory signer (it was made before they existed): "
                        "make one with gwx pki issue-directory-signer and sign with --signer",
                        path=str(ca.directory))
    return DirectorySigner(ca.directory_signer(), tuple(ca.chain[:-1]), ca.root_certificate)


def issue(ca: CertificateAuthority, out_dir: str | Path, key_passphrase: bytes, *,
          valid_days: int | None = None, now: dt.datetime | None = None) -> DirectorySigner:
    """A new directory signer issued by ``ca``, written to ``out_dir`` (layout above)."""
    out = Path(out_dir)
    key, cert = ca.issue_signer_key(out, key_passphrase, profiles.DIRECTORY_SIGNER, "网络目录签发", valid_days, now)
    chain = tuple(ca.chain[:-1])
    write_public_file(out / "signer.crt", pem(cert) + b"".join(pem(c) for c in chain))
    write_public_file(out / "root.crt", pem(ca.root_certificate))
    return DirectorySigner(SoftwareSigner(key, cert), chain, ca.root_certificate)


def open_directory(directory: str | Path, passphrase: bytes) -> DirectorySigner:
    """A signer directory written by :func:`issue`; a wrong passphrase is ``PKI_WRONG_PASSPHRASE``."""
    directory = Path(directory)
    if not (directory / "signer.key").exists():
        raise CaMissing(f"{directory} is not a directory signer (no signer.key): make one with "
                        "gwx pki issue-directory-signer", path=str(directory))
    certs = load_certificates((directory / "signer.crt").read_bytes())
    if not certs:
        raise CaMissing(f"{directory}/signer.crt holds no certificate", path=str(directory))
    key = read_private_key(directory / "signer.key", passphrase)
    root = load_certificate((directory / "root.crt").read_bytes())
    return DirectorySigner(SoftwareSigner(key, certs[0]), tuple(certs[1:]), root)
