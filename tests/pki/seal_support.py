"""Helpers shared by the seal tests: real seals from a real CA, CRLs signed by that CA."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pki.algorithms import DEFAULT, PrivateKey
from pki.ca import CertificateAuthority
from pki.seal import Seal, SealBuilder
from pki.seal_picture import render_round_seal

UNIT = "91350100M000100Y43"
UNIT_NAME = "福州市鼓楼区人民政府办公室"
OTHER_UNIT = "11100000000013127D"

_PICTURES: dict[str, bytes] = {}


def picture(name: str = UNIT_NAME) -> bytes:
    if name not in _PICTURES:
        _PICTURES[name] = render_round_seal(name)
    return _PICTURES[name]


@dataclass(frozen=True)
class MadeSeal:
    seal: Seal
    key: PrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.seal.der


def make_seal(ca: CertificateAuthority, unit: str = UNIT, name: str = UNIT_NAME, valid_days: int = 365,
              builder: SealBuilder | None = None, now: dt.datetime | None = None) -> MadeSeal:
    key = DEFAULT.generate()
    cert = ca.issue_seal_certificate(unit, name, key.public_key(), valid_days, now=now)
    b = builder or SealBuilder()
    seal = (b.with_unit(unit, name).with_certificate(cert).with_picture(picture(name))
            .build(ca.seal_maker_signer(), now=now))
    return MadeSeal(seal, key, cert)


def make_crl(ca: CertificateAuthority, revoked: list[x509.Certificate] = (), *,
             this_update: dt.datetime | None = None, next_update: dt.datetime | None = None,
             signer_ca: CertificateAuthority | None = None) -> x509.CertificateRevocationList:
    """A CRL naming ``ca`` as issuer, signed by ``signer_ca`` (default: ``ca`` itself) with cryptography."""
    now = this_update or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject)
         .last_update(now).next_update(next_update or now + dt.timedelta(days=7)))
    for cert in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
            .revocation_date(now - dt.timedelta(seconds=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False).build())
    key = (signer_ca or ca).signer().private_key_for_tls()
    return b.sign(key, (signer_ca or ca).algorithm.hash())


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)
