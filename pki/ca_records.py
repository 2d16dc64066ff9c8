"""A CA directory's records: its ``ca.json``, the certificates it issued and its revocations.

The files (:mod:`pki.ca` has the whole layout)::

    ca.json           name, algorithm, kind, next CRL number
    issued/SERIAL.pem every certificate this CA issued (what revocation and OCSP look up)
    revocations.json  serial → reason, time and invalidity date, rewritten atomically on each revocation

:class:`CaRecords` is the part of :class:`pki.ca.CertificateAuthority` that reads and writes them:
recording what it issues, looking certificates up, revoking (RFC 5280 reasons, the first date kept)
and handing out CRL numbers that never repeat. Every write is temp file, fsync, rename
(:func:`pki.keystore.write_public_file`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .algorithms import by_name
from .certificates import load_certificate, pem, utcnow
from .errors import CaError, InvalidInput, UnknownCertificate, UnsupportedAlgorithm
from .keystore import write_public_file

REVOCATION_REASONS = {r.name: r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl}


@dataclass(frozen=True)
class Revocation:
    serial: int
    reason: str
    revoked_at: dt.datetime
    # RFC 5280 §5.3.2 invalidityDate: when the key is known or suspected to have been compromised, if
    # earlier than revoked_at (written into the CRL entry; a checker at a past moment honours it)
    invalid_since: dt.datetime | None = None


def read_config(path: Path) -> dict:
    """ca.json, checked for the fields the CA reads: a damaged file is a typed error, not a traceback."""
    try:
        config = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaError(f"{path} is corrupt: {exc}", code="PKI_CA_CORRUPT", path=str(path)) from None
    if (not isinstance(config, dict) or not isinstance(config.get("name"), str)
            or not isinstance(config.get("algorithm"), str)
            or not isinstance(config.get("next_crl_number", 1), int)):
        raise CaError(f"{path} is corrupt: it needs a name, an algorithm and a CRL number",
                      code="PKI_CA_CORRUPT", path=str(path))
    try:
        by_name(config["algorithm"])
    except UnsupportedAlgorithm as exc:
        raise CaError(f"{path} is corrupt: {exc.message}", code="PKI_CA_CORRUPT", path=str(path)) from None
    return config


class CaRecords:
    """The records of the CA directory ``directory`` (a mixin of :class:`pki.ca.CertificateAuthority`,
    which provides ``directory``, ``_config`` and ``separate_transport``)."""

    directory: Path
    _config: dict

    def separate_transport(self) -> CaRecords | None:
        raise NotImplementedError

    def _record(self, cert: x509.Certificate) -> None:
        write_public_file(self.directory / "issued" / f"{cert.serial_number:x}.pem", pem(cert))

    def lookup(self, serial: int) -> x509.Certificate | None:
        path = self.directory / "issued" / f"{serial:x}.pem"
        return load_certificate(path.read_bytes()) if path.exists() else None

    def has_issued(self, serial: int) -> bool:
        """Whether this CA issued ``serial`` (what its OCSP answers ``unknown`` for when not)."""
        return (self.directory / "issued" / f"{serial:x}.pem").exists()

    def issued(self) -> list[x509.Certificate]:
        return [load_certificate(p.read_bytes()) for p in sorted((self.directory / "issued").glob("*.pem"))]

    def active_certificates(self, match: Callable[[x509.Certificate], bool],
                            now: dt.datetime | None = None) -> list[x509.Certificate]:
        """Certificates this CA issued that ``match``, are unrevoked and have not expired at ``now``."""
        now = now or utcnow()
        revoked = self.revocations()
        return [c for c in self.issued()
                if c.serial_number not in revoked and c.not_valid_after_utc > now and match(c)]

    def revocations(self) -> dict[int, Revocation]:
        path = self.directory / "revocations.json"
        if not path.exists():
            return {}
        raw = json.loads(path.read_text("utf-8"))
        return {int(s, 16): Revocation(int(s, 16), r["reason"], dt.datetime.fromisoformat(r["revoked_at"]),
                                       dt.datetime.fromisoformat(r["invalid_since"]) if r.get("invalid_since") else None)
                for s, r in raw.items()}

    def revoke(self, serial_or_cert: int | x509.Certificate, reason: str = "unspecified",
               now: dt.datetime | None = None, invalid_since: dt.datetime | None = None) -> Revocation:
        serial = serial_or_cert if isinstance(serial_or_cert, int) else serial_or_cert.serial_number
        if reason not in REVOCATION_REASONS:
            raise InvalidInput(f"unknown revocation reason {reason!r}", known=sorted(REVOCATION_REASONS))
        if self.lookup(serial) is None and (other := self.separate_transport()) is not None \
                and other.lookup(serial) is not None:  # a node's TLS certificate, on a 国密 network
            return other.revoke(serial, reason, now, invalid_since)
        if self.lookup(serial) is None:
            raise UnknownCertificate(f"this CA never issued a certificate with serial {serial:x}",
                                     serial=f"{serial:x}")
        current = self.revocations()
        if serial in current:
            return current[serial]  # revoking twice keeps the first date: that is when trust ended
        revoked_at = (now or utcnow()).replace(microsecond=0)
        if invalid_since is not None:
            if invalid_since.tzinfo is None:
                raise InvalidInput("invalid_since must be timezone-aware")
            invalid_since = invalid_since.replace(microsecond=0)
            if invalid_since >= revoked_at:
                invalid_since = None  # only an earlier date says anything more than the revocation date
        entry = Revocation(serial, reason, revoked_at, invalid_since)
        current[serial] = entry
        data = {f"{s:x}": {"reason": r.reason, "revoked_at": r.revoked_at.isoformat(),
                           **({"invalid_since": r.invalid_since.isoformat()} if r.invalid_since else {})}
                for s, r in sorted(current.items())}
        write_public_file(self.directory / "revocations.json",
                          json.dumps(data, indent=1, ensure_ascii=False).encode())
        return entry

    def take_crl_number(self) -> int:
        """The next CRL number, persisted before it is used so numbers never repeat. Read from ca.json
        each time: another opening of this CA (``gwx pki crl`` while a process holds it open) may have
        taken numbers since this one was opened, and a repeated number looks like a rollback."""
        self._config = read_config(self.directory / "ca.json")
        number = int(self._config.get("next_crl_number", 1))
        self._config["next_crl_number"] = number + 1
        self._save_config()
        return number

    def _save_config(self) -> None:
        write_public_file(self.directory / "ca.json",
                          json.dumps(self._config, indent=1, ensure_ascii=False).encode())
