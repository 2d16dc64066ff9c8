"""The time-stamping unit's key, kept apart from the CA so the CA key can stay offline.

``gwx pki issue-tsa-signer`` has the CA issue a key whose certificate carries only the
timeStamping extended key usage, marked critical (:data:`pki.profiles.TIME_STAMPING`, RFC 3161
§2.3), and writes it to a signer directory the root node's operator installs (``[archive]
tsa_signer`` in node.toml); the node answers ``POST /peer/v1/tsa`` with it
(:mod:`node.federation.tsa_api`)::

    signer.key   the key, encrypted with the passphrase given (mode 0600)
    signer.crt   its certificate
    chain.pem    the issuing CA's certificates up to (not including) the root: sent with each token
                 that asks for certificates, so a verifier holding only the root builds the path

Verifiers accept its tokens because a CA under their root signed it for exactly this purpose
(:func:`pki.tsa.verify_token`); it can sign nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from . import profiles, tsa
from .ca import CertificateAuthority
from .certificates import load_certificate, load_certificates, pem
from .errors import CaMissing
from .keystore import read_private_key, write_public_file
from .signer import SoftwareSigner


@dataclass(frozen=True)
class TsaSigner:
    signer: SoftwareSigner
    chain: tuple[x509.Certificate, ...]  # issuing CAs below the root

    @property
    def certificate(self) -> x509.Certificate:
        return self.signer.certificate  # type: ignore[return-value]

    def respond(self, request_der: bytes, now: dt.datetime) -> bytes:
        """A DER TimeStampResp (a token, or the protocol's own rejection) for ``request_der``."""
        return tsa.respond(request_der, self.signer, now, tsa.random_serial(), extra_certs=self.chain)


def issue(ca: CertificateAuthority, out_dir: str | Path, key_passphrase: bytes, *,
          valid_days: int | None = None, now: dt.datetime | None = None) -> TsaSigner:
    """A new TSA signer issued by ``ca``, written to ``out_dir`` (layout above)."""
    out = Path(out_dir)
    key, cert = ca.issue_signer_key(out, key_passphrase, profiles.TIME_STAMPING, "时间戳服务", valid_days, now)
    chain = tuple(ca.chain[:-1])
    write_public_file(out / "signer.crt", pem(cert))
    write_public_file(out / "chain.pem", b"".join(pem(c) for c in chain))
    return TsaSigner(SoftwareSigner(key, cert), chain)


def open_directory(directory: str | Path, passphrase: bytes) -> TsaSigner:
    """A signer directory written by :func:`issue`; a wrong passphrase is ``PKI_WRONG_PASSPHRASE``."""
    directory = Path(directory)
    if not (directory / "signer.key").exists():
        raise CaMissing(f"{directory} is not a TSA signer (no signer.key): make one with "
                        "gwx pki issue-tsa-signer", path=str(directory))
    cert = load_certificate((directory / "signer.crt").read_bytes())
    chain_file = directory / "chain.pem"
    chain = tuple(load_certificates(chain_file.read_bytes())) if chain_file.exists() and chain_file.stat().st_size else ()
    return TsaSigner(SoftwareSigner(read_private_key(directory / "signer.key", passphrase), cert), chain)
