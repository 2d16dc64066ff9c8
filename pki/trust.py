"""Trust decisions: is this certificate, for this purpose, at this time, anchored in our roots?

The one module that decides certificate paths, so seals, packages, envelopes and TLS peers are
judged by the same rules. It builds the path leaf → intermediates → trust root by matching each
certificate's issuer name to a candidate's subject and checking that candidate's signature on it
(key identifiers are not consulted), checks each signature, validity window, CA flag and path length, then the leaf's
key usage for the requested :class:`Purpose`. Revocation is a separate, injected check
(``pki.revocation``): this module asks it about each non-root certificate and never fetches.

Whether one certificate's signature verifies under another's key is remembered in a bounded
cache keyed by the two certificates (which compare by their whole DER): for a fixed pair the
answer never changes, and it was most of the cost of judging a path.

Whole verdicts are remembered too, but only valid ones, and only while they must stay the same:
keyed by the leaf, the intermediates offered, the trust store, the purpose and the revocation
check's *token* (``verdict_token()``: a :class:`pki.revocation.CrlChecker` is its own token, so a
new CRL — a reloaded file, a fetched one — is another key and judges afresh), and used only for a
moment ``at`` inside the window where nothing the verdict rests on can change: after every
certificate's notBefore, before every notAfter, and inside every CRL's thisUpdate–nextUpdate. A
revocation check without a token (OCSP, the at-the-stamp checker, a test's function) is never
cached. A failure is never remembered: an expired, revoked or untrusted certificate is judged again
each time, and a remembered verdict can only ever be one that the full judgement gives at that moment.

Below the whole verdicts, the part of a path above a leaf is remembered by the same rules: a leaf
never seen before (a unit's seal under its county's CA, one per 签收 statement coming back to the
issuing node) is judged on its own — its names, its issuer found and that issuer's signature on it,
its extensions, validity window, purpose and revocation — while the issuer's chain to the root (each
CA's validity, CA flag and path length, its EKU for the purpose, its revocation) is taken from a
valid judgement of that chain made earlier under the same issuer, the same pool of intermediates
(the leaf left out), trust store, purpose and revocation token, at a moment inside every one of
those CAs' validity and the token's window. The chain above the issuer is a function of exactly
those (the leaf is never in the pool), and the leaf sits at depth 0 in either path, so the checks
are the full judgement's, in its order, and a failure is still the first one the full judgement meets.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import x509_sm2
from .errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateUntrusted,
    CertificateWrongUsage,
)
from .profiles import DIRECTORY_SIGNING, SEAL_MAKING

MAX_PATH = 6

# (certificate, issuer, now) -> None, or raise CertificateRevoked / RevocationUnknown.
RevocationCheck = Callable[[x509.Certificate, x509.Certificate, dt.datetime], None]


class Purpose(enum.Enum):
    ANY = "any"
    TLS_SERVER = "tls-server"
    TLS_CLIENT = "tls-client"
    SIGNING = "signing"  # documents, envelopes, receipts: digitalSignature + nonRepudiation
    SEAL = "seal"
    SEAL_MAKING = "seal-making"  # the seal-making authority (制章者) signing SESeal structures
    DIRECTORY_SIGNING = "directory-signing"  # the network directory's signer (exchange_protocol.directory)
    ENCRYPTION = "encryption"
    OCSP_SIGNING = "ocsp-signing"
    TIME_STAMPING = "time-stamping"


_EKU = {Purpose.SEAL_MAKING: SEAL_MAKING,
        Purpose.DIRECTORY_SIGNING: DIRECTORY_SIGNING,
        Purpose.TLS_SERVER: ExtendedKeyUsageOID.SERVER_AUTH,
        Purpose.TLS_CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH,
        Purpose.OCSP_SIGNING: ExtendedKeyUsageOID.OCSP_SIGNING,
        Purpose.TIME_STAMPING: ExtendedKeyUsageOID.TIME_STAMPING}


@dataclass(frozen=True)
class TrustStore:
    """The roots a verifier trusts. Immutable: a new directory means a new store."""

    roots: tuple[x509.Certificate, ...]

    @classmethod
    def of(cls, roots: Iterable[x509.Certificate]) -> TrustStore:
        roots = tuple(roots)
        if not roots:
            raise CertificateUntrusted("a trust store needs at least one root certificate")
        return cls(roots)


def verify_certificate(leaf: x509.Certificate, trust: TrustStore, at: dt.datetime,
                       intermediates: Sequence[x509.Certificate] = (),
                       purpose: Purpose = Purpose.ANY,
                       revocation: RevocationCheck | None = None) -> list[x509.Certificate]:
    """Return the validated path ``[leaf, …, root]`` or raise a typed certificate error."""
    token = revocation_token(revocation)
    key = _Key((leaf, trust, purpose, token[0])) if token is not None else None
    offered = tuple(intermediates)
    if key is not None:
        hit = _remembered(_verdicts, key, offered, at)
        if hit is not None:
            return list(hit)
    path = _judge(leaf, trust, at, offered, purpose, revocation, token)
    if key is not None:
        _remember(_verdicts, _VERDICTS, key, offered, tuple(path), path, token)
    return path


class _Key:
    """A cache key hashed once (looked up, then stored): its certificates hash by their whole DER,
    which costs more than anything else a key is made of."""

    __slots__ = ("parts", "hash")

    def __init__(self, parts: tuple) -> None:
        self.parts = parts
        self.hash = hash(parts)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self.hash == other.hash and self.parts == other.parts


# A remembered path is found by its key (the leaf or issuing CA, the trust store, the purpose, the
# revocation token), then among that key's few entries by the certificates offered with it, compared
# whole (equal DER; the same objects, as a node passes its own, compare at once): hashing a dozen
# intermediates on every lookup cost more than the judgement it saved.
_PER_KEY = 4


def _remembered(cache: OrderedDict, key: _Key, offered: tuple[x509.Certificate, ...],
                at: dt.datetime) -> tuple[x509.Certificate, ...] | None:
    """The path remembered under ``key`` with ``offered`` if ``at`` is inside its window."""
    with _verdicts_lock:
        entries = cache.get(key)
        if entries is None:
            return None
        cache.move_to_end(key)
        hit = next((e for e in entries if e[0] == offered), None)
    return hit[1] if hit is not None and hit[2] <= at <= hit[3] else None


def _remember(cache: OrderedDict, bound: int, key: _Key, offered: tuple[x509.Certificate, ...],
              value: tuple[x509.Certificate, ...], judged: Sequence[x509.Certificate], token: tuple) -> None:
    """Remember ``value`` under ``key`` with ``offered`` for the moments inside every ``judged``
    certificate's validity and the revocation token's window."""
    not_before = max(c.not_valid_before_utc for c in judged)
    not_after = min(c.not_valid_after_utc for c in judged)
    entry = (offered, value, max(not_before, token[1]), min(not_after, token[2]))
    with _verdicts_lock:
        kept = [e for e in cache.get(key, ()) if e[0] != offered][1 - _PER_KEY:]
        cache[key] = (*kept, entry)
        cache.move_to_end(key)
        while len(cache) > bound:
            cache.popitem(last=False)


_Entry = tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...], dt.datetime, dt.datetime]
_VERDICTS = 1024
_verdicts: OrderedDict[_Key, tuple[_Entry, ...]] = OrderedDict()
# The judged path above an issuing CA (module docstring): by CA, store, purpose, CRLs, then the pool.
_CHAINS = 256
_chains: OrderedDict[_Key, tuple[_Entry, ...]] = OrderedDict()
_verdicts_lock = threading.Lock()
_NO_REVOCATION = (None, dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC))


def revocation_token(revocation: RevocationCheck | None) -> tuple[object, dt.datetime, dt.datetime] | None:
    """What a verdict judged with ``revocation`` may be remembered under, and the moments it holds
    for: None (never remember) for a check that offers no ``verdict_token``."""
    if revocation is None:
        return _NO_REVOCATION
    token = getattr(revocation, "verdict_token", None)
    return token() if token is not None else None


def _judge(leaf: x509.Certificate, trust: TrustStore, at: dt.datetime, intermediates: Sequence[x509.Certificate],
           purpose: Purpose, revocation: RevocationCheck | None,
           token: tuple[object, dt.datetime, dt.datetime] | None = None) -> list[x509.Certificate]:
    if not _names_decode(leaf):
        raise CertificateUntrusted(f"certificate {_describe(leaf)} has a subject or issuer that does not decode")
    pool = tuple(c for c in intermediates if c != leaf and _names_decode(c))
    issuer, done = _step(leaf, leaf, trust, pool, (leaf,))
    if issuer is None:  # the leaf is a root itself
        return _judged([leaf], at, purpose, revocation)
    key = _Key((issuer, trust, purpose, token[0])) if token is not None else None
    above = _remembered(_chains, key, pool, at) if key is not None else None
    if above is not None:  # the CAs' part judged already: the leaf's own checks, in the full order
        path = [leaf, *above]
        _extensions_decode(leaf)
        _check_validity(leaf, at, "certificate")
        _check_purpose(leaf, purpose)
        if revocation is not None:
            revocation(leaf, issuer, at)
        return path
    path = _judged(_build_path(leaf, trust, pool, [leaf, issuer], done), at, purpose, revocation)
    if key is not None:
        _remember(_chains, _CHAINS, key, pool, tuple(path[1:]), path[1:], token)  # type: ignore[arg-type]
    return path


def _judged(path: list[x509.Certificate], at: dt.datetime, purpose: Purpose,
            revocation: RevocationCheck | None) -> list[x509.Certificate]:
    """``path`` if every check of every certificate in it passes at ``at``; the first failure raised."""
    for cert in path:
        _extensions_decode(cert)
    for depth, cert in enumerate(path):
        _check_validity(cert, at, "certificate" if depth == 0 else "issuing CA certificate")
        if depth > 0:
            _check_ca(cert, below=depth - 1)
    _check_purpose(path[0], purpose)
    for ca in path[1:]:
        _check_ca_purpose(ca, purpose)
    if revocation is not None:
        for cert, issuer in zip(path, path[1:], strict=False):
            revocation(cert, issuer, at)
    return path


def _extensions_decode(cert: x509.Certificate) -> None:
    """pyca parses extensions when first asked, and raises ValueError on non-DER ones."""
    try:
        cert.extensions  # noqa: B018
    except ValueError as exc:
        raise CertificateUntrusted(f"certificate {_describe(cert)} has extensions that are not DER: {exc}") from None


def _build_path(leaf: x509.Certificate, trust: TrustStore, pool: Sequence[x509.Certificate],
                path: list[x509.Certificate], done: bool) -> list[x509.Certificate]:
    """``path`` (the leaf and its issuer) continued to a trust root through ``pool``."""
    while not done and len(path) <= MAX_PATH:
        issuer, done = _step(leaf, path[-1], trust, pool, path)
        if issuer is not None:
            path.append(issuer)
    if not done:
        raise CertificateUntrusted(f"certificate path for {_describe(leaf)} is longer than {MAX_PATH}")
    return path


def _step(leaf: x509.Certificate, current: x509.Certificate, trust: TrustStore, pool: Sequence[x509.Certificate],
          path: Sequence[x509.Certificate]) -> tuple[x509.Certificate | None, bool]:
    """The certificate above ``current`` in the path and whether it is a trust root (the path ends
    there): ``(None, True)`` when ``current`` is a root itself. A root is preferred to the pool."""
    for root in trust.roots:
        if current == root:
            return None, True
        if _issued_by(current, root):
            return root, True
    issuer = next((c for c in pool if c not in path and _issued_by(current, c)), None)
    if issuer is None:
        raise CertificateUntrusted(
            f"certificate {_describe(leaf)} does not chain to a trusted root",
            subject=_name(leaf.subject), issuer=_name(current.issuer))
    return issuer, False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    return _signed_by(cert, issuer)


@functools.lru_cache(maxsize=1024)
def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    # Certificates hash and compare by their DER, so a hit is for these exact bytes: another key
    # under the same name, or a changed signature, is another entry.
    return x509_sm2.signed_by(cert, issuer)  # False on a bad signature, an unknown curve…


def _check_validity(cert: x509.Certificate, at: dt.datetime, what: str) -> None:
    if at < cert.not_valid_before_utc:
        raise CertificateNotYetValid(f"{what} {_describe(cert)} is not valid before "
                                     f"{cert.not_valid_before_utc.isoformat()}",
                                     not_before=cert.not_valid_before_utc.isoformat())
    if at > cert.not_valid_after_utc:
        raise CertificateExpired(f"{what} {_describe(cert)} expired on {cert.not_valid_after_utc.isoformat()}",
                                 not_after=cert.not_valid_after_utc.isoformat())


def _check_ca(cert: x509.Certificate, below: int) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise CertificateUntrusted(f"{_describe(cert)} is not a CA certificate but issued another")
    if bc.path_length is not None and below > bc.path_length:
        raise CertificateUntrusted(f"path length constraint of {_describe(cert)} exceeded")
    ku = _key_usage(cert)
    if ku is not None and not ku.key_cert_sign:
        raise CertificateUntrusted(f"{_describe(cert)} may not sign certificates (keyUsage)")


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


# Seal certificates carry no extended key usage; one issued for any of these is not a seal's.
_NOT_A_SEAL = frozenset({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH,
                         ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.OCSP_SIGNING,
                         ExtendedKeyUsageOID.EMAIL_PROTECTION, SEAL_MAKING, DIRECTORY_SIGNING})


def _extended_key_usage(cert: x509.Certificate) -> x509.ExtendedKeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _check_purpose(cert: x509.Certificate, purpose: Purpose) -> None:
    if purpose is Purpose.ANY:
        return
    ku = _key_usage(cert)
    if purpose in (Purpose.SIGNING, Purpose.SEAL):
        if ku is None or not (ku.digital_signature or ku.content_commitment):
            raise CertificateWrongUsage(f"{_describe(cert)} is not a signing certificate", purpose=purpose.value)
        eku = _extended_key_usage(cert)
        if purpose is Purpose.SIGNING and (eku is None or ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku):
            # A node's signing certificate carries emailProtection (what CMS verifiers expect); its
            # TLS, time-stamping or OCSP keys, which also name the node, must not sign for it.
            raise CertificateWrongUsage(f"{_describe(cert)} is not a node signing certificate",
                                        purpose=purpose.value)
        if purpose is Purpose.SEAL and eku is not None and set(eku) & _NOT_A_SEAL:
            raise CertificateWrongUsage(f"{_describe(cert)} is issued for another purpose than sealing",
                                        purpose=purpose.value)
        return
    if purpose is Purpose.ENCRYPTION:
        if ku is None or not (ku.key_agreement or ku.key_encipherment):
            raise CertificateWrongUsage(f"{_describe(cert)} is not an encryption certificate",
                                        purpose=purpose.value)
        return
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateWrongUsage(f"{_describe(cert)} has no extended key usage for {purpose.value}",
                                    purpose=purpose.value) from None
    if _EKU[purpose] not in eku:
        raise CertificateWrongUsage(f"{_describe(cert)} is not allowed for {purpose.value}", purpose=purpose.value)


# The extended key usage a leaf of each purpose carries, for a CA whose own EKU limits what it vouches
# for (a 国密 network's P-256 transport CA lists serverAuth and clientAuth: TLS and nothing else).
_LEAF_EKU = {**_EKU, Purpose.SIGNING: ExtendedKeyUsageOID.EMAIL_PROTECTION}


def _check_ca_purpose(ca: x509.Certificate, purpose: Purpose) -> None:
    """A CA certificate carrying an EKU vouches for those purposes only (as OpenSSL reads it in a
    handshake): a signing, seal or encryption certificate under a TLS-only CA is refused."""
    eku = _extended_key_usage(ca)
    if purpose is Purpose.ANY or eku is None or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return
    if _LEAF_EKU.get(purpose) not in eku:
        raise CertificateWrongUsage(f"CA {_describe(ca)} vouches only for "
                                    f"{', '.join(sorted(o.dotted_string for o in eku))}, not for {purpose.value}",
                                    purpose=purpose.value)


def _names_decode(cert: x509.Certificate) -> bool:
    """pyca decodes names lazily and raises on bad bytes; a peer's certificate must not crash us.
    Remembered per certificate: first by the object itself — every path check asks again about each
    of a node's CAs in the pool (nine at a city), the same objects, and hashing a certificate's DER
    for a lookup costs ~3 µs — then by its DER."""
    known = _decoded_objects.get(id(cert))
    if known is not None and known[0] is cert:  # the object is held in the entry: its id is not reused
        return known[1]
    decodes = _names_decode_der(cert)
    if len(_decoded_objects) >= _DECODED_OBJECTS:
        _decoded_objects.clear()  # a bound, not an order: any entry lost is asked again (thread-safe: one dict op)
    _decoded_objects[id(cert)] = (cert, decodes)
    return decodes


_DECODED_OBJECTS = 256  # the CAs recur; the leaves (one a statement) are asked about once
_decoded_objects: dict[int, tuple[x509.Certificate, bool]] = {}


@functools.lru_cache(maxsize=1024)
def _names_decode_der(cert: x509.Certificate) -> bool:
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
    except ValueError:
        return False
    return True


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:
        return "<undecodable name>"


def _describe(cert: x509.Certificate) -> str:
    try:
        subject = _name(cert.subject)
    except ValueError:
        subject = "<undecodable name>"
    return f"'{subject}' (serial {cert.serial_number:x})"
