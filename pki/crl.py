"""Certificate revocation lists (RFC 5280 §5) signed by a gwx CA.

A CRL lists every certificate the CA revoked, with the revocation date and a reason code (the
reason is left out for ``unspecified``, as RFC 5280 §5.3.1 recommends), the CRL number taken
from the CA (persisted before use, so numbers never repeat) and the CA's key identifier (AKI),
so a verifier finds the right key when the CA has renewed. Only the CA's own records are read;
publishing (files, HTTP) is the caller's business.

:func:`publish_crl` also keeps the CRL it made in the CA directory (``crl-latest.pem``), and
:func:`current_crl` hands that one out again while it lists every revocation and has not expired.
A node made with the CA (``gwx node init --ca``) is given the network's *current* CRL that way —
what the operator published to the root node — not a newly numbered one: a CRL numbered past the
one the root node serves would make the new node refuse the root's as a rollback until the operator
published again. (The node fetches the next one from its parent before this one's next-update.)

The CA key signs through pyca's ``CertificateRevocationListBuilder``, which needs the private key
object: the CA's software signer hands it over. An SM2 CA's CRL (the 国密 profile) is assembled by
:mod:`pki.x509_sm2` from the same parts and signed through ``Signer.sign``; a P-256 CA key on a
token could take that road too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import x509_sm2
from .ca_records import Revocation
from .errors import CrlUpdateRefused, InvalidInput, MalformedEncoding
from .keystore import write_public_file
from .profiles import BACKDATE
from .signer import Signer

DEFAULT_NEXT_UPDATE = dt.timedelta(days=7)


class CrlIssuer(Protocol):
    """What :func:`build_crl` needs of a CA (``pki.ca.CertificateAuthority`` is one)."""

    certificate: x509.Certificate
    directory: Path

    def signer(self) -> Signer: ...

    def revocations(self) -> Mapping[int, Revocation]: ...

    def take_crl_number(self) -> int: ...


def build_crl(ca: CrlIssuer, now: dt.datetime,
              next_update_in: dt.timedelta = DEFAULT_NEXT_UPDATE) -> x509.CertificateRevocationList:
    """A freshly numbered CRL of everything ``ca`` revoked, valid from ``now`` for ``next_update_in``."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    if next_update_in <= dt.timedelta(0):
        raise InvalidInput("next_update_in must be positive")
    signer = ca.signer()
    issuer = ca.certificate
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.CRLNumber(ca.take_crl_number()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)]
    revoked = [(serial, entry.revoked_at,
                ([] if entry.reason == "unspecified" else [(x509.CRLReason(x509.ReasonFlags[entry.reason]), False)])
                + ([(x509.InvalidityDate(entry.invalid_since.replace(tzinfo=None)), False)]
                   if getattr(entry, "invalid_since", None) else []))
               for serial, entry in sorted(ca.revocations().items())]
    # thisUpdate slightly in the past, like certificates: peers' clocks lag.
    this_update, next_update = now - BACKDATE, now + next_update_in
    if signer.algorithm.key_type == "sm2":  # pyca cannot sign with SM2: assembled, signed by the signer
        return x509_sm2.assemble_crl(issuer=issuer.subject, this_update=this_update, next_update=next_update,
                                     extensions=extensions, revoked=revoked, algorithm=signer.algorithm,
                                     sign=signer.sign)
    key_getter = getattr(signer, "private_key_for_tls", None)
    if key_getter is None:
        raise InvalidInput("CRL signing needs a software CA key (token-held CA keys are not supported yet)")
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.subject).last_update(this_update).next_update(next_update))
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    for serial, revoked_at, entry_extensions in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
        for value, critical in entry_extensions:
            entry = entry.add_extension(value, critical=critical)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key_getter(), signer.algorithm.hash())


LATEST_CRL = "crl-latest.pem"


def publish_crl(ca: CrlIssuer, now: dt.datetime,
                next_update_in: dt.timedelta = DEFAULT_NEXT_UPDATE) -> x509.CertificateRevocationList:
    """:func:`build_crl`, kept in the CA directory as the CA's latest (what :func:`current_crl` reuses)."""
    crl = build_crl(ca, now, next_update_in)
    write_public_file(ca.directory / LATEST_CRL, crl_pem(crl))
    return crl


def current_crl(ca: CrlIssuer, now: dt.datetime) -> x509.CertificateRevocationList:
    """The CA's latest CRL while it lists exactly what the CA revoked and has not expired (an hour
    to spare); otherwise a newly published one — which the operator must then publish to the root
    node too (``gwx pki crl``)."""
    path = ca.directory / LATEST_CRL
    if path.exists():
        try:
            latest = load_crl(path.read_bytes())
        except MalformedEncoding:
            latest = None
        if latest is not None and _still_current(ca, latest, now):
            return latest
    return publish_crl(ca, now)


def _still_current(ca: CrlIssuer, crl: x509.CertificateRevocationList, now: dt.datetime) -> bool:
    if crl.next_update_utc is None or crl.issuer != ca.certificate.subject or not _signed_by(crl, ca.certificate):
        return False
    listed = {entry.serial_number for entry in crl}
    return now < crl.next_update_utc - dt.timedelta(hours=1) and listed == set(ca.revocations())


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL in ``data``: one DER CRL, or PEM holding one or more (a network with intermediate
    CAs publishes one CRL per CA; a node keeps them concatenated in one file)."""
    if not data.lstrip().startswith(b"-----BEGIN"):
        return [load_crl(data)]
    blocks = _PEM_CRL.findall(data)
    if not blocks:
        raise MalformedEncoding("no PEM CRL in the data", code="PKI_CRL_MALFORMED")
    return [load_crl(block) for block in blocks]


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from PEM or DER bytes (typed error on anything else). Not verified: see pki.revocation."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise MalformedEncoding(f"not a CRL: {exc}", code="PKI_CRL_MALFORMED") from None


def crl_number(crl: x509.CertificateRevocationList) -> int:
    """The CRL's number (RFC 5280 §5.2.3); 0 for a CRL without one (older than any numbered one)."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def judge_crl_update(offered: bytes, held: Sequence[x509.CertificateRevocationList],
                     cas: Iterable[x509.Certificate]) -> list[x509.CertificateRevocationList] | None:
    """Whether the CRLs in ``offered`` (one or more, as a node's ``crl.pem`` holds them) may replace
    ``held``: the new list, or None when they are no newer (nothing to install). Refused, with a
    :class:`~pki.errors.CrlUpdateRefused` and the held ones kept, when

    * a CRL is not signed by one of ``cas`` (the CA certificates this node trusts: its root and the
      intermediates it knows), under that CA's name — ``PKI_CRL_UNTRUSTED``;
    * a CA's CRL carries a lower CRL number than the one held for it (a rollback would un-revoke
      what the newer one revoked) — ``PKI_CRL_ROLLBACK``;
    * a CA whose CRL is held has none in ``offered`` — ``PKI_CRL_INCOMPLETE``.

    Staleness is not judged here: a newer CRL is installed even when late, and the node reports
    whether what it holds is current. Malformed bytes are ``PKI_CRL_MALFORMED``.
    """
    crls = load_crls(offered)
    by_name: dict[x509.Name, list[x509.Certificate]] = {}
    for ca in cas:
        if _may_sign_crls(ca):
            by_name.setdefault(ca.subject, []).append(ca)
    newest: dict[x509.Name, x509.CertificateRevocationList] = {}
    for crl in crls:
        issuer = crl.issuer
        if not any(_signed_by(crl, ca) for ca in by_name.get(issuer, ())):
            raise CrlUpdateRefused(f"the CRL of '{issuer.rfc4514_string()}' is not signed by a CA this node trusts "
                                   "(its root, its own intermediates, those the network directory lists)",
                                   issuer=issuer.rfc4514_string())
        if issuer not in newest or crl_number(crl) > crl_number(newest[issuer]):
            newest[issuer] = crl
    held_newest: dict[x509.Name, x509.CertificateRevocationList] = {}
    for crl in held:
        if crl.issuer not in held_newest or crl_number(crl) > crl_number(held_newest[crl.issuer]):
            held_newest[crl.issuer] = crl
    newer = False
    for issuer, mine in held_newest.items():
        theirs = newest.get(issuer)
        if theirs is None:
            raise CrlUpdateRefused(f"the CRLs offered leave out '{issuer.rfc4514_string()}' (number "
                                   f"{crl_number(mine)} held)", code="PKI_CRL_INCOMPLETE",
                                   issuer=issuer.rfc4514_string())
        if crl_number(theirs) < crl_number(mine):
            raise CrlUpdateRefused(f"the CRL of '{issuer.rfc4514_string()}' offered is number {crl_number(theirs)}, "
                                   f"older than number {crl_number(mine)} held", code="PKI_CRL_ROLLBACK",
                                   issuer=issuer.rfc4514_string(), offered=crl_number(theirs),
                                   held=crl_number(mine))
        newer = newer or crl_number(theirs) > crl_number(mine)
    newer = newer or any(issuer not in held_newest for issuer in newest)
    return list(newest.values()) if newer else None


def _may_sign_crls(cert: x509.Certificate) -> bool:
    """A CA certificate whose key usage (when it states one) allows CRL signing."""
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.crl_sign
    except x509.ExtensionNotFound:
        return True


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    return x509_sm2.signed_by(crl, ca)
