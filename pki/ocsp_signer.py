"""The delegated OCSP responder's key, kept apart from the CA so the CA key can stay offline.

``gwx pki issue-ocsp-signer`` has the CA issue a key whose certificate carries only the
OCSPSigning extended key usage and id-pkix-ocsp-nocheck (:data:`pki.profiles.OCSP_RESPONDER`),
and writes it to a signer directory the root node's operator installs (``[revocation] ocsp_signer``
in node.toml)::

    signer.key   the key, encrypted with the passphrase given (mode 0600)
    signer.crt   its certificate
    ca.crt       the issuing CA's certificate: the CA whose certificates the responder answers for

Verifiers accept its answers because the issuing CA signed it for exactly this purpose
(RFC 6960 §4.2.2.2, :func:`pki.revocation.check_ocsp`); it can sign nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from . import profiles
from .ca import CertificateAuthority
from .certificates import load_certificate, pem
from .errors import CaMissing
from .keystore import read_private_key, write_public_file
from .signer import SoftwareSigner


@dataclass(frozen=True)
class OcspSigner:
    signer: SoftwareSigner
    issuer: x509.Certificate  # the CA it answers for

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate  # type: ignore[return-value]


def issue(ca: CertificateAuthority, out_dir: str | Path, key_passphrase: bytes, *,
          valid_days: int | None = None, now: dt.datetime | None = None) -> OcspSigner:
    """A new OCSP signer issued by ``ca``, written to ``out_dir`` (layout above)."""
    out = Path(out_dir)
    key, cert = ca.issue_signer_key(out, key_passphrase, profiles.OCSP_RESPONDER, "OCSP 响应", valid_days, now)
    write_public_file(out / "signer.crt", pem(cert))
    write_public_file(out / "ca.crt", pem(ca.certificate))
    return OcspSigner(SoftwareSigner(key, cert), ca.certificate)


def open_directory(directory: str | Path, passphrase: bytes) -> OcspSigner:
    """A signer directory written by :func:`issue`; a wrong passphrase is ``PKI_WRONG_PASSPHRASE``."""
    directory = Path(directory)
    if not (directory / "signer.key").exists():
        raise CaMissing(f"{directory} is not an OCSP signer (no signer.key): make one with "
                        "gwx pki issue-ocsp-signer", path=str(directory))
    cert = load_certificate((directory / "signer.crt").read_bytes())
    issuer = load_certificate((directory / "ca.crt").read_bytes())
    return OcspSigner(SoftwareSigner(read_private_key(directory / "signer.key", passphrase), cert), issuer)
