"""A unit's seal on disk: making it with our CA, and loading it back as something that signs.

A seal directory holds three files::

    seal.esl   the SESeal, DER (GB/T 38540 v4) — public, travels inside sealed documents
    seal.crt   the unit's seal certificate (PEM), the one listed in the seal's certList, followed
               by the intermediate CAs above it when it was issued under one (not the root): an
               SESeal carries its own certificate alone, and a package sealed with it carries
               these so that a verifier needs nothing but the root
    seal.key   the seal certificate's private key, encrypted PKCS#8, mode 0600

:func:`issue_seal` asks the CA for a seal certificate, builds and signs the SESeal with the
CA's seal-maker (制章者) credential and writes the directory. :func:`load_seal_credential`
opens it for signing and checks the three files belong together (the key certifies the
certificate, the certificate is one the seal lists), so a package builder never pairs a seal
with the wrong key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .algorithms import PublicKey, SignatureAlgorithm, by_name
from .ca import CertificateAuthority
from .certificates import load_certificate, load_certificates, unit_code_of
from .errors import AlreadyIssued, KeyCertificateMismatch, SealExists, SealMalformed, SealPictureInvalid
from .keystore import read_private_key, write_private_key, write_public_file
from .seal import Seal, SealBuilder, parse_seal
from .seal_picture import STANDARD_DIAMETER_MM, render_round_seal, validate_png
from .seal_token import read_token_ref
from .signer import Signer, SoftwareSigner
from .unit_code import validate_unit_code
from .x509_sm2 import public_key_of

SEAL_FILE = "seal.esl"
CERT_FILE = "seal.crt"
KEY_FILE = "seal.key"


@dataclass(frozen=True)
class SealCredential:
    """A seal together with the key that may sign under it."""

    directory: Path
    seal: Seal
    certificate: x509.Certificate
    signer: Signer  # software, or a token's (pki.seal_token); signer.certificate is ``certificate``
    chain: tuple[x509.Certificate, ...] = ()  # intermediate CAs above ``certificate``, root excluded

    @property
    def seal_der(self) -> bytes:
        return self.seal.der

    @property
    def picture_png(self) -> bytes:
        return self.seal.picture.data


def issue_seal(ca: CertificateAuthority, unit_code: str, name: str, out_dir: str | Path,
               key_passphrase: bytes, *, image_png: bytes | None = None,
               size_mm: int = STANDARD_DIAMETER_MM, valid_days: int | None = None,
               algorithm: SignatureAlgorithm | str | None = None,
               now: dt.datetime | None = None, replace: bool = False) -> SealCredential:
    """Make a unit seal: key, CA-issued seal certificate, signed SESeal, written to ``out_dir``.

    Without ``image_png`` the standard red round seal is drawn for ``name``. The seal's validity
    is the certificate's: a seal cannot outlive the key that signs under it.

    A unit has one seal from a CA at a time: while an earlier seal certificate for ``unit_code`` is
    valid and unrevoked this is :class:`~pki.errors.AlreadyIssued`, unless ``replace``. Replacing
    does *not* revoke the earlier seal: documents already sealed with it must keep verifying (a
    revoked seal certificate fails every later verification of them), so it stays valid until it
    expires; a compromised seal is revoked explicitly (``gwx pki revoke OLD.esl``).
    """
    out = Path(out_dir)
    if (out / SEAL_FILE).exists() or (out / KEY_FILE).exists():
        raise SealExists(f"{out} already holds a seal; refusing to overwrite it")
    algorithm = by_name(algorithm) if isinstance(algorithm, str) else (algorithm or ca.algorithm)
    key = algorithm.generate()
    cert, seal = make_seal(ca, unit_code, name, key.public_key(), image_png=image_png, size_mm=size_mm,
                           valid_days=valid_days, now=now, replace=replace)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)  # holds a private key, like a node's credential directory
    write_private_key(out / KEY_FILE, key, key_passphrase)
    write_public_file(out / CERT_FILE, ca.certificate_file(cert))
    write_public_file(out / SEAL_FILE, seal.der)
    chain = tuple(ca.chain[:-1])  # the issuing CA and those above it, up to (not with) the root
    return SealCredential(out, seal, cert, SoftwareSigner(key, cert), chain)


def make_seal(ca: CertificateAuthority, unit_code: str, name: str, public_key: PublicKey, *,
              image_png: bytes | None = None, size_mm: int = STANDARD_DIAMETER_MM,
              valid_days: int | None = None, now: dt.datetime | None = None,
              replace: bool = False) -> tuple[x509.Certificate, Seal]:
    """The seal certificate for ``public_key`` and the SESeal the CA's seal maker signs over it —
    whether the CA made the key (:func:`issue_seal`) or the unit did (pki.seal_enrolment)."""
    # Validate everything cheap before the CA issues (and records) a certificate.
    picture = image_png if image_png is not None else render_round_seal(name, diameter_mm=size_mm)
    validate_unit_code(unit_code)
    earlier = ca.active_certificates(lambda c: unit_code_of(c) == unit_code, now)  # only seal certs name a unit
    if earlier and not replace:
        raise AlreadyIssued(f"this CA already made a seal for unit {unit_code} (valid until "
                            f"{max(c.not_valid_after_utc for c in earlier):%Y-%m-%d}); to make another, replace it "
                            "explicitly (--replace): the earlier seal stays valid until it expires unless revoked",
                            unit=unit_code, serials=[f"{c.serial_number:x}" for c in earlier])
    try:
        validate_png(picture)
    except SealPictureInvalid as exc:
        raise SealPictureInvalid(exc.message, field="picture") from None
    cert = ca.issue_seal_certificate(unit_code, name, public_key, valid_days, now=now)
    seal = (SealBuilder().with_unit(unit_code, name).with_certificate(cert)
            .with_picture(picture, size_mm).build(ca.seal_maker_signer(), now=now))
    return cert, seal


def seal_installed(directory: str | Path) -> bool:
    """Whether a seal was installed in ``directory`` at all (a unit may be hosted without one: it
    receives and 签收s, unsigned, but cannot send); a half-installed one counts, and fails to load."""
    d = Path(directory)
    return (d / SEAL_FILE).exists() or (d / CERT_FILE).exists()


def load_seal_credential(directory: str | Path, passphrase: bytes) -> SealCredential:
    """Open a seal directory for signing (typed errors for missing, mismatched or bad files)."""
    d = Path(directory)
    try:
        seal_der = (d / SEAL_FILE).read_bytes()
        cert_pem = (d / CERT_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise SealMalformed(f"seal directory {d} lacks {Path(exc.filename).name}", code="SEAL_MISSING") from None
    seal = parse_seal(seal_der)
    certs = load_certificates(cert_pem) if cert_pem.lstrip().startswith(b"-----BEGIN") \
        else [load_certificate(cert_pem)]
    cert, chain = certs[0], tuple(certs[1:])
    if not seal.matches_certificate(cert):
        raise KeyCertificateMismatch(f"{d / CERT_FILE} is not one of the certificates {d / SEAL_FILE} lists")
    token = read_token_ref(d)
    if token is not None:  # the key stays on the token; the signer logs in now and checks it is cert's key
        return SealCredential(d, seal, cert, token.signer(cert).open(), chain)
    key = read_private_key(d / KEY_FILE, passphrase)
    if key.public_key() != public_key_of(cert):
        raise KeyCertificateMismatch(f"{d / KEY_FILE} is not the key of {d / CERT_FILE}")
    return SealCredential(d, seal, cert, SoftwareSigner(key, cert), chain)
