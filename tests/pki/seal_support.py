"""Helpers shared by the seal tests: real seals from a real CA, and a forged CRL."""

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


def foreign_crl(ca: CertificateAuthority, signer_ca: CertificateAuthority) -> x509.CertificateRevocationList:
    """A CRL that claims to be ``ca``'s but is signed with ``signer_ca``'s key (a forgery)."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject)
         .last_update(now).next_update(now + dt.timedelta(days=7)))
    return b.sign(signer_ca.signer().private_key_for_tls(), signer_ca.algorithm.hash())


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)
