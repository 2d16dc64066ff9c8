"""Revocation checking: is this certificate revoked, according to a CRL or an OCSP response?

Validation only, no fetching. :func:`check_crl` and :func:`check_ocsp` judge one piece of
evidence; the checkers (:class:`CrlChecker`, :class:`CrlCheckerAt` for a time-stamp's past moment,
:class:`OcspChecker`, :func:`first_conclusive`)
are ``(cert, issuer, now) -> None`` callables, the shape :func:`pki.trust.verify_certificate`
takes as its ``revocation`` argument. An OCSP checker is given a ``fetch(request_der) ->
response_der`` callable: the node does the HTTP, this module never does I/O.

Outcomes are typed: ``None`` means "not revoked, and the evidence is authentic and fresh";
:class:`~pki.errors.CertificateRevoked` (``PKI_CERT_REVOKED``, with serial, reason and date in
``details``) means revoked; every form of "could not tell" is a
:class:`~pki.errors.RevocationUnknown`: ``PKI_CRL_BAD_SIGNATURE``, ``PKI_OCSP_BAD_SIGNATURE``,
``PKI_REVOCATION_STALE`` (nextUpdate passed, or thisUpdate in the future beyond the clock skew),
or plain ``PKI_REVOCATION_UNKNOWN`` (wrong issuer, OCSP status unknown, nonce mismatch,
responder unreachable). A caller that must fail closed catches RevocationUnknown once.

OCSP signatures are accepted from the issuing CA itself or from a responder certificate the
issuer signed that carries the OCSPSigning EKU and is valid at ``now`` (RFC 6960 §4.2.2.2); the
id-pkix-ocsp-nocheck extension is why the responder's own status is not checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as xocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import x509_sm2
from .algorithms import by_oid
from .errors import (
    BadSignature,
    CertificateRevoked,
    CrlBadSignature,
    GwxError,
    OcspBadSignature,
    RevocationStale,
    RevocationUnknown,
    UnsupportedAlgorithm,
)
from .ocsp import issuer_hashes, make_request, public_key_bits

# How far a producer's clock may run ahead of ours before its "thisUpdate" looks like the future.
CLOCK_SKEW = dt.timedelta(minutes=5)
# An OCSP response without nextUpdate is trusted this long after its thisUpdate.
DEFAULT_OCSP_MAX_AGE = dt.timedelta(hours=24)


class RevocationChecker(Protocol):
    def __call__(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None: ...


def _revoked(cert: x509.Certificate, reason: str, revoked_at: dt.datetime, source: str,
             invalid_since: dt.datetime | None = None) -> CertificateRevoked:
    extra = {"invalid_since": invalid_since.isoformat()} if invalid_since is not None else {}
    return CertificateRevoked(
        f"certificate '{cert.subject.rfc4514_string()}' (serial {cert.serial_number:x}) was revoked on "
        f"{revoked_at.isoformat()} ({reason})", serial=f"{cert.serial_number:x}", reason=reason,
        revoked_at=revoked_at.isoformat(), source=source, **extra)


def _check_window(this_update: dt.datetime, next_update: dt.datetime | None, now: dt.datetime,
                  what: str) -> None:
    if this_update > now + CLOCK_SKEW:
        raise RevocationStale(f"{what} claims to be issued in the future ({this_update.isoformat()})",
                              this_update=this_update.isoformat())
    if next_update is None or next_update < now:
        raise RevocationStale(f"{what} is out of date (next update was due "
                              f"{next_update.isoformat() if next_update else 'never announced'})",
                              next_update=next_update.isoformat() if next_update else None)


# ---- CRL ------------------------------------------------------------------------------------------

def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key signed ``crl``. A fixed pair never changes its answer, and every
    certificate checked against the same CRL asks again: remembered, keyed by both DER digests."""
    key = (hashlib.sha256(crl.public_bytes(serialization.Encoding.DER)).digest(),
           issuer.fingerprint(hashes.SHA256()))
    known = _CRL_SIGNED.get(key)
    if known is None:
        known = x509_sm2.signed_by(crl, issuer)  # False for a key neither pyca nor pki.sm2 can use
        if len(_CRL_SIGNED) >= 256:
            _CRL_SIGNED.pop(next(iter(_CRL_SIGNED)))
        _CRL_SIGNED[key] = known
    return known


_CRL_SIGNED: dict[tuple[bytes, bytes], bool] = {}


def check_crl(cert: x509.Certificate, issuer: x509.Certificate, crl: x509.CertificateRevocationList,
              now: dt.datetime, *, accept_stale: bool = False) -> None:
    """Judge ``cert`` by ``crl``, which must be ``issuer``'s, authentic and current at ``now``.

    With ``accept_stale`` a CRL past its nextUpdate still judges: what it lists stays revoked, and
    what it does not list passes. Only for fetching a fresh CRL, whose own signature decides its
    worth — never for accepting a peer's envelopes."""
    if crl.issuer != issuer.subject or cert.issuer != issuer.subject:
        raise _not_the_issuers(crl, cert)
    _authenticate(crl, issuer)
    _judge(cert, crl, now, accept_stale)


def _not_the_issuers(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> RevocationUnknown:
    return RevocationUnknown(f"the CRL is issued by '{crl.issuer.rfc4514_string()}', not by the "
                             f"certificate's issuer '{cert.issuer.rfc4514_string()}'")


def _authenticate(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> None:
    """Raise :class:`CrlBadSignature` unless ``issuer`` may sign CRLs and its key signed ``crl`` (whose
    issuer name is ``issuer``'s subject): for a fixed pair the answer never changes."""
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.crl_sign:
            raise CrlBadSignature("the issuer's certificate does not allow CRL signing (keyUsage)")
    except x509.ExtensionNotFound:
        pass
    if not _crl_signed_by(crl, issuer):
        raise CrlBadSignature("the CRL's signature does not verify with the issuer's key",
                              issuer=issuer.subject.rfc4514_string())


def _judge(cert: x509.Certificate, crl: x509.CertificateRevocationList, now: dt.datetime,
           accept_stale: bool, listed: _Listed | None = None) -> None:
    """What an authentic CRL of ``cert``'s issuer says of it at ``now``: its window, then its entry.
    ``listed``: the CRL's window and serials read once (:class:`CrlChecker`); without, read from ``crl``."""
    if not accept_stale:
        if listed is not None:
            _check_window(listed.this_update, listed.next_update, now, "the CRL")
        else:
            _check_window(crl.last_update_utc, crl.next_update_utc, now, "the CRL")
    if listed is not None and listed.lists(cert.serial_number) is False:
        return  # not listed: pyca's lookup walks every entry (85 µs a lookup in a CRL of 1,000)
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        reason = "unspecified"
    try:
        invalid_since = entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc
    except x509.ExtensionNotFound:
        invalid_since = None
    raise _revoked(cert, reason, entry.revocation_date_utc, "crl", invalid_since)


_UNSET = object()  # a CrlChecker's verdict token not yet worked out

# Issuers a CrlChecker remembers its CRLs for (they are the CAs of paths already built to a trust
# root: a network has one per county or so; the bound keeps anything else harmless).
_ISSUERS = 256


class _Listed:
    """What a CRL says that every check asks, read once: its window, and — once a checker has asked
    it about :data:`_SET_AFTER` certificates — the serials it lists, as a set. Reading them costs
    what ~25 of pyca's lookups do in a CRL of 1,000 (2–3 ms): worth it for a node's checker, which
    checks thousands under one CRL file, not for a one-off check (``gwx node check``, a CLI verify)."""

    __slots__ = ("this_update", "next_update", "_crl", "_asked", "_serials")

    def __init__(self, crl: x509.CertificateRevocationList) -> None:
        self.this_update, self.next_update = crl.last_update_utc, crl.next_update_utc
        self._crl, self._asked = crl, 0
        self._serials: frozenset[int] | None = None

    def lists(self, serial: int) -> bool | None:
        """Whether the CRL lists ``serial``; None: not known here yet (ask the CRL)."""
        if self._serials is None:
            self._asked += 1  # threads may race here: a set read twice, never a wrong answer
            if self._asked < _SET_AFTER:
                return None
            try:  # from the bytes as signed (any object that gives them will do)
                entries = x509.load_der_x509_crl(self._crl.public_bytes(serialization.Encoding.DER))
                self._serials = frozenset(entry.serial_number for entry in entries)
            except ValueError:  # an entry that does not decode: each check asks the CRL, as before
                self._asked = -(1 << 62)
                return None
        return serial in self._serials


_SET_AFTER = 8


@dataclass(frozen=True)
class _IssuerCrls:
    """One issuer's CRLs in a checker, newest first, each with whether it is authentic (and, if it
    is, its window and serials: :class:`_Listed`)."""

    subject: x509.Name
    crls: tuple[tuple[x509.CertificateRevocationList, bool, _Listed | None], ...]


class CrlChecker:
    """A checker backed by a set of CRLs (several issuers, or several generations of one).

    The CRL with the latest thisUpdate that is authentic and current decides; CRLs for other
    issuers are ignored; if none is usable, the most telling failure is raised. ``accept_stale``
    is :func:`check_crl`'s.

    Which CRLs are an issuer's, in which order, and whether each is authentic depend only on the
    CRLs (fixed for a checker: new CRLs make a new checker) and the issuer certificate: worked out
    once per issuer and remembered, so checking a certificate costs a name comparison, the window
    and a serial-number lookup. Decoding the names of every CRL on every call was most of the
    cost of a seal certificate's check (a 签收 statement at the sending node: 2.2 of 3.0 ms). The
    serials an authentic CRL lists are read once too, into a set, from its eighth certificate on:
    pyca's lookup walks every entry, which grows with every seal a county ever revoked; the set
    answers "not listed" at once, and a listed certificate is refused from the entry as before.
    """

    def __init__(self, crls: Iterable[x509.CertificateRevocationList], *, accept_stale: bool = False) -> None:
        self._crls = tuple(crls)
        self._accept_stale = accept_stale
        self._issuers: dict[x509.Certificate, _IssuerCrls] = {}  # certificates hash by their DER
        self._token: object = _UNSET

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        return self._crls

    def verdict_token(self) -> tuple[object, dt.datetime, dt.datetime] | None:
        """For :func:`pki.trust.verify_certificate`'s verdict cache: this checker (its CRLs never
        change) and the moments within which every one of its CRLs is current, so that its answer
        for a certificate is the same at any of them; None when a CRL announces no next update."""
        if self._token is _UNSET:  # the CRLs never change: worked out once (asked at every path check)
            self._token = self._work_out_token()
        return self._token  # type: ignore[return-value]

    def _work_out_token(self) -> tuple[object, dt.datetime, dt.datetime] | None:
        if self._accept_stale:
            return self, dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC)
        if not self._crls or any(c.next_update_utc is None for c in self._crls):
            return None
        return (self, max(c.last_update_utc for c in self._crls) - CLOCK_SKEW,
                min(c.next_update_utc for c in self._crls))  # type: ignore[type-var]

    def _of(self, issuer: x509.Certificate) -> _IssuerCrls:
        known = self._issuers.get(issuer)
        if known is None:
            subject = issuer.subject
            judged = []
            for crl in sorted((c for c in self._crls if c.issuer == subject),
                              key=lambda c: c.last_update_utc, reverse=True):
                try:
                    _authenticate(crl, issuer)
                    judged.append((crl, True, _Listed(crl)))
                except RevocationUnknown:  # raised afresh each time it is asked (not kept)
                    judged.append((crl, False, None))
            known = _IssuerCrls(subject, tuple(judged))
            if len(self._issuers) >= _ISSUERS:  # several threads may get here: an entry lost is recomputed
                self._issuers.pop(next(iter(self._issuers)), None)
            self._issuers[issuer] = known
        return known

    def __call__(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
        known = self._of(issuer)
        if known.crls and cert.issuer != known.subject:
            raise _not_the_issuers(known.crls[0][0], cert)
        failure: RevocationUnknown | None = None
        for crl, authentic, listed in known.crls:
            try:
                if not authentic:
                    _authenticate(crl, issuer)  # raises what makes it unusable
                _judge(cert, crl, now, self._accept_stale, listed)
                return
            except CertificateRevoked:
                raise
            except RevocationUnknown as exc:
                failure = failure or exc
        raise failure or RevocationUnknown(
            f"no CRL from '{issuer.subject.rfc4514_string()}' to check "
            f"'{cert.subject.rfc4514_string()}' against")


# A TSA whose key was compromised proves no genTime at all: the thief can back-date tokens, so such a
# revocation fails its certificate whatever its date (ETSI EN 319 102-1). Other keys' signatures made
# before the revocation (or the invalidityDate) stay good.
_COMPROMISE = frozenset({"key_compromise", "ca_compromise"})


def _is_tsa(cert: x509.Certificate) -> bool:
    try:
        return ExtendedKeyUsageOID.TIME_STAMPING in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False


class CrlCheckerAt:
    """A checker for judging at a *past* moment — the time a time-stamp proves a signature existed.

    A CRL is evidence about moment ``t`` when it was current then or issued since (its nextUpdate is
    not before ``t``): a CRL issued years later still lists every revocation up to its thisUpdate.
    A certificate it lists was revoked at ``t`` only if its revocation date — or the entry's
    invalidityDate, when earlier (RFC 5280 §5.3.2) — is not after ``t`` (RFC 3161 §4, long-term
    validation): a key revoked after the time-stamp made nothing sealed before invalid. Except a
    TSA certificate revoked for keyCompromise or cACompromise: that fails whatever its date. Authenticity is checked as :func:`check_crl` does; the newest usable CRL decides.
    :class:`CrlChecker` stays the checker for the present (a CRL from the future is stale there).
    """

    def __init__(self, crls: Iterable[x509.CertificateRevocationList]) -> None:
        self._crls = tuple(crls)

    def __call__(self, cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> None:
        candidates = sorted((c for c in self._crls if c.issuer == issuer.subject),
                            key=lambda c: c.last_update_utc, reverse=True)
        failure: RevocationUnknown | None = None
        for crl in candidates:
            try:
                # accept_stale: the window is judged here, against the moment asked about.
                check_crl(cert, issuer, crl, at, accept_stale=True)
            except CertificateRevoked as exc:
                since = dt.datetime.fromisoformat(exc.details["revoked_at"])
                if exc.details.get("invalid_since"):  # RFC 5280 §5.3.2: compromised earlier than revoked
                    since = min(since, dt.datetime.fromisoformat(exc.details["invalid_since"]))
                if since <= at or (exc.details["reason"] in _COMPROMISE and _is_tsa(cert)):
                    raise
                return  # revoked only after the moment judged
            except RevocationUnknown as exc:
                failure = failure or exc
                continue
            if crl.next_update_utc is not None and crl.next_update_utc >= at:
                return
            failure = failure or RevocationStale(
                f"the newest CRL of '{issuer.subject.rfc4514_string()}' given ended "
                f"{crl.next_update_utc.isoformat() if crl.next_update_utc else '(no next update)'}, before "
                f"{at.isoformat()}: it says nothing about that moment")
        raise failure or RevocationUnknown(
            f"no CRL from '{issuer.subject.rfc4514_string()}' to check "
            f"'{cert.subject.rfc4514_string()}' against")


# ---- OCSP -----------------------------------------------------------------------------------------

def _matches(single: xocsp.OCSPSingleResponse, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if single.serial_number != cert.serial_number:
        return False
    try:
        name_hash, key_hash = issuer_hashes(issuer, single.hash_algorithm.name)
    except ValueError:  # a hash hashlib does not know
        return False
    return single.issuer_name_hash == name_hash and single.issuer_key_hash == key_hash


def _responder_certificate(response: xocsp.OCSPResponse, issuer: x509.Certificate,
                           trusted_responders: Sequence[x509.Certificate],
                           now: dt.datetime) -> x509.Certificate:
    def named(cert: x509.Certificate) -> bool:
        if response.responder_key_hash is not None:
            return hashlib.sha1(public_key_bits(cert)).digest() == response.responder_key_hash
        return response.responder_name == cert.subject

    for cert in (issuer, *trusted_responders):
        if named(cert):
            return cert
    for cert in response.certificates:
        if not named(cert):
            continue
        if cert.issuer != issuer.subject:
            raise OcspBadSignature("the OCSP responder certificate was not issued by the certificate's issuer")
        if not x509_sm2.signed_by(cert, issuer):
            raise OcspBadSignature("the OCSP responder certificate is not signed by the issuer")
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = ()
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise OcspBadSignature("the OCSP responder certificate lacks the OCSPSigning extended key usage")
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise OcspBadSignature("the OCSP responder certificate is not valid now")
        return cert
    raise OcspBadSignature("the OCSP response is signed by neither the issuer nor a responder it delegated to")


def check_ocsp(cert: x509.Certificate, issuer: x509.Certificate, response_der: bytes, now: dt.datetime,
               trust: Sequence[x509.Certificate] = (), nonce: bytes | None = None,
               max_age: dt.timedelta = DEFAULT_OCSP_MAX_AGE) -> None:
    """Judge ``cert`` by a DER OCSP response.

    The response must be signed by ``issuer``, by a delegated responder of ``issuer``, or by one
    of the locally ``trust``-ed responder certificates; it must be current; when ``nonce`` is
    given it must echo it.
    """
    try:
        response = xocsp.load_der_ocsp_response(response_der)
    except ValueError as exc:
        raise RevocationUnknown(f"not a DER OCSP response: {exc}", code="PKI_OCSP_MALFORMED") from None
    if response.response_status != xocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationUnknown(f"the OCSP responder answered {response.response_status.name}",
                                status=response.response_status.name)
    try:
        singles = list(response.responses)
        responder = _responder_certificate(response, issuer, trust, now)
        algorithm = by_oid(response.signature_algorithm_oid.dotted_string)
        algorithm.verify(x509_sm2.public_key_of(responder), response.signature,
                         response.tbs_response_bytes)
    except (BadSignature, UnsupportedAlgorithm) as exc:
        raise OcspBadSignature(f"the OCSP response signature does not verify: {exc.message}") from None
    except ValueError as exc:
        raise RevocationUnknown(f"OCSP response does not decode: {exc}", code="PKI_OCSP_MALFORMED") from None
    if nonce is not None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed != nonce:
            raise RevocationUnknown("the OCSP response does not answer our request (nonce differs)",
                                    code="PKI_OCSP_NONCE_MISMATCH")
    single = next((s for s in singles if _matches(s, cert, issuer)), None)
    if single is None:
        raise RevocationUnknown("the OCSP response says nothing about this certificate",
                                serial=f"{cert.serial_number:x}")
    next_update = single.next_update_utc or single.this_update_utc + max_age
    _check_window(single.this_update_utc, next_update, now, "the OCSP response")
    if single.certificate_status == xocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason.name if single.revocation_reason else "unspecified"
        raise _revoked(cert, reason, single.revocation_time_utc, "ocsp")  # type: ignore[arg-type]
    if single.certificate_status == xocsp.OCSPCertStatus.UNKNOWN:
        raise RevocationUnknown("the OCSP responder does not know this certificate",
                                serial=f"{cert.serial_number:x}")


class OcspChecker:
    """A checker that asks an OCSP responder through an injected ``fetch(request_der) -> bytes``.

    Each request carries a fresh 16-byte nonce (unless ``use_nonce`` is false: responders that
    pre-sign answers drop nonces) which the response must echo. Whatever ``fetch`` raises (network,
    HTTP status) becomes RevocationUnknown: an unreachable responder is not a revoked certificate.
    """

    def __init__(self, fetch: Callable[[bytes], bytes], *, trust: Sequence[x509.Certificate] = (),
                 use_nonce: bool = True, hash_algorithm: hashes.HashAlgorithm | None = None) -> None:
        self._fetch = fetch
        self._trust = tuple(trust)
        self._use_nonce = use_nonce
        self._hash = hash_algorithm or hashes.SHA256()

    def __call__(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
        nonce = secrets.token_bytes(16) if self._use_nonce else None
        request = make_request(cert, issuer, nonce, self._hash)
        try:
            response = self._fetch(request)
        except GwxError as exc:
            raise RevocationUnknown(f"OCSP responder unreachable: {exc.message}", cause=exc.code) from None
        except Exception as exc:  # the injected transport's own errors, whatever they are
            raise RevocationUnknown(f"OCSP responder unreachable: {type(exc).__name__}: {exc}") from None
        check_ocsp(cert, issuer, response, now, self._trust, nonce)


def first_conclusive(*checkers: RevocationChecker) -> RevocationChecker:
    """Try each checker in turn (e.g. OCSP, then CRLs); the first that knows decides.

    A revocation from any checker stands; if all were inconclusive, the first one's reason is raised.
    """
    if not checkers:
        raise ValueError("first_conclusive needs at least one checker")

    def check(cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
        first: RevocationUnknown | None = None
        for checker in checkers:
            try:
                checker(cert, issuer, now)
                return
            except CertificateRevoked:
                raise
            except RevocationUnknown as exc:
                first = first or exc
        assert first is not None
        raise first

    return check
