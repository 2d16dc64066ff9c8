"""CMS SignedData (RFC 5652) made with a :class:`~pki.signer.Signer`, and its verification.

Why not pyca's ``PKCS7SignatureBuilder``: it needs the raw private key, so a PKCS#11 token could
not sign, and it cannot add the ESS signing-certificate-v2 attribute that CAdES-BES and RFC 3161
(``openssl ts -verify``) require. Here the structure is assembled with asn1crypto and only the DER
of the signed attributes (a ``SET OF Attribute``, RFC 5652 §5.4) goes to ``Signer.sign``.

Signed attributes, in DER SET order: contentType, signingTime (only when the caller passes a
time: this module reads no clock), messageDigest, signingCertificateV2 (ESSCertIDv2 with the
SHA-256 of the signer certificate and its issuer/serial). The signer is identified by issuer and
serial; the signer certificate and ``extra_certs`` (intermediates, so a verifier can build the
path) travel in ``certificates``. Algorithms come from the signer (:mod:`pki.algorithms`).

An SM2 signer (the 国密 profile) writes GB/T 35275's identifiers instead: ContentInfo type
``1.2.156.10197.6.1.4.2.2`` (signedData), eContentType ``1.2.156.10197.6.1.4.2.1`` (data) for plain
data, digest SM3 ``1.2.156.10197.1.401``, signature ``1.2.156.10197.1.301.1`` (SM2-1, over the
signed attributes with SM3 and the default distinguishing id), and the ESS certificate hash by SM3
(hashAlgorithm then written out). Verification reads both vocabularies.

Verification checks, in order: structure, the digest of the data against messageDigest, the
contentType attribute against eContentType, the ESS certificate hash when present, the signature
with the certificate the SignerInfo names, then (when trust roots are given) the certificate path
through :func:`pki.trust.verify_certificate`. Every failure is a typed error.

Speed (an envelope is one signature and one verification): the SignedData DER is written by hand
(asn1crypto construction re-encodes every nested value, ~10 ms a signature), and what depends only
on the signer certificate — its DER, the issuer-and-serial identifier, the ESS attribute — is
cached per certificate. Verification works from a :class:`~pki.cms_view.SignedDataView`: read by
hand from DER in the common shape (:mod:`pki.cms_view`), through asn1crypto otherwise — lazily, and
never asking for ``.native`` of a container, which would mark values as changed and make every
``.dump()`` re-encode. The signed attributes are verified over the bytes as received (tag swapped
to SET); certificates are the bytes they arrived as, loaded into pyca/cryptography through a
bounded cache keyed by their DER; certificate links are cached in :mod:`pki.trust`. Every
structural error met on the way is still a :class:`CmsMalformed`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import algos, core, tsp  # noqa: F401  (tsp registers the ESS attribute specs)
from asn1crypto import cms as acms
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as PycaUnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .algorithms import RSA3072_SHA256, SM2_SM3, SignatureAlgorithm, by_oid, for_public_key
from .cms_view import AttributesView, SignedDataView, SignerView, read_common
from .errors import (
    BadSignature,
    CmsBadSignature,
    CmsDigestMismatch,
    CmsMalformed,
    InvalidInput,
    MalformedEncoding,
    UnsupportedAlgorithm,
)
from .signer import Signer
from .sm2 import Sm2PublicKey
from .sm3_sm4 import sm3
from .trust import Purpose, RevocationCheck, TrustStore, verify_certificate
from .x509_sm2 import public_key_of

RSA_ENCRYPTION_OID = "1.2.840.113549.1.1.1"  # what many CMS producers put for PKCS#1 v1.5
_HASHLIB = {"sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}
# GB/T 35275-2017 (SM2 cryptographic message syntax): its content types, and the SM2-1 signature OID
# it names in SignerInfo. asn1crypto is taught the content types so its general reader parses them.
GBT_DATA = "1.2.156.10197.6.1.4.2.1"
GBT_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
GBT_SM2_SIGNATURE = "1.2.156.10197.1.301.1"
SM3_OID = "1.2.156.10197.1.401"
acms.ContentType._map.update({GBT_DATA: "gbt_data", GBT_SIGNED_DATA: "gbt_signed_data"})
acms.ContentType._reverse_map = None  # rebuilt from _map on next use
acms.ContentInfo._oid_specs["gbt_signed_data"] = acms.SignedData
# SM3 by name, so asn1crypto's users (pyHanko sealing a PDF with an SM2 key: exchange_protocol.pades)
# can ask for it; readers here take the name or the OID (_digest).
algos.DigestAlgorithmId._map[SM3_OID] = "sm3"
algos.DigestAlgorithmId._reverse_map = None
_PLAIN_DATA = ("data", "gbt_data")
# What asn1crypto raises from a lazily parsed value that turns out to be malformed.
_ASN1_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)
_CACHE_SIZE = 1024  # certificates; a node sees a few hundred peers, a bound keeps hostile input harmless

_OID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()
_OID_GBT_SIGNED_DATA = core.ObjectIdentifier(GBT_SIGNED_DATA).dump()
_OID_CONTENT_TYPE = core.ObjectIdentifier("1.2.840.113549.1.9.3").dump()
_OID_MESSAGE_DIGEST = core.ObjectIdentifier("1.2.840.113549.1.9.4").dump()
_OID_SIGNING_TIME = core.ObjectIdentifier("1.2.840.113549.1.9.5").dump()
_OID_SIGNING_CERT_V2 = core.ObjectIdentifier("1.2.840.113549.1.9.16.2.47").dump()
_VERSION_1, _VERSION_3 = core.Integer(1).dump(), core.Integer(3).dump()


@dataclass(frozen=True)
class CmsSignature:
    """What a verified SignedData says. ``path`` is empty when no trust roots were given."""

    signer_certificate: x509.Certificate
    content_type: str  # dotted OID of eContentType
    digest_algorithm: str  # "sha256", …
    message_digest: bytes
    signing_time: dt.datetime | None
    content: bytes | None  # the encapsulated content, None for a detached signature
    certificates: tuple[x509.Certificate, ...]
    path: tuple[x509.Certificate, ...]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _digest(hash_name: str, data: bytes) -> bytes:
    if hash_name in ("sm3", SM3_OID):
        return sm3(data)
    try:
        return hashlib.new(_HASHLIB[hash_name], data).digest()
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported digest algorithm {hash_name}") from None


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _attribute(oid_der: bytes, value_der: bytes) -> bytes:
    return _tlv(0x30, oid_der + _tlv(0x31, value_der))


# ---- what depends only on a certificate, computed once per certificate ------------------------------
@dataclass(frozen=True)
class _CertFacts:
    certificate: x509.Certificate
    der: bytes
    sha256: bytes
    issuer_der: bytes
    serial_number: int


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _facts_from_der(der: bytes) -> _CertFacts:
    """Raises ValueError when ``der`` is not a certificate (not cached: lru_cache keeps no errors)."""
    cert = x509.load_der_x509_certificate(der)
    # pyca decodes names lazily: decode them now, so no later use (path building, messages) meets a
    # name that does not decode.
    cert.subject.rfc4514_string()
    return _CertFacts(cert, der, hashlib.sha256(der).digest(), cert.issuer.public_bytes(), cert.serial_number)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _facts_of(cert: x509.Certificate) -> _CertFacts:
    # Keyed by the certificate object, which hashes and compares by its DER: equal DER, same facts.
    return _facts_from_der(_der(cert))


def _subject_key_id(facts: _CertFacts) -> bytes | None:
    try:
        ext = facts.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # pyca decodes extensions only now: a malformed one identifies nothing
        return None
    return ext.value.digest


@dataclass(frozen=True)
class _SignerParts:
    """The DER pieces of a SignerInfo that depend only on the signer certificate."""

    certificate_der: bytes
    signer_id: bytes  # IssuerAndSerialNumber
    signing_certificate_v2: bytes  # the whole signed attribute


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _signer_parts(cert: x509.Certificate) -> _SignerParts:
    facts = _facts_of(cert)
    serial = core.Integer(facts.serial_number).dump()
    # SigningCertificateV2 {certs: [ESSCertIDv2 {certHash (SHA-256, the default), issuerSerial}]},
    # issuerSerial = {GeneralNames{[4] Name}, serial}. An SM2 signer's hash is SM3, named explicitly.
    issuer_serial = _tlv(0x30, _tlv(0x30, _tlv(0xA4, facts.issuer_der)) + serial)
    if isinstance(public_key_of(cert), Sm2PublicKey):
        cert_id = _tlv(0x30, algos.DigestAlgorithm({"algorithm": SM3_OID}).dump()
                       + core.OctetString(sm3(facts.der)).dump() + issuer_serial)
    else:
        cert_id = _tlv(0x30, core.OctetString(facts.sha256).dump() + issuer_serial)
    ess = _attribute(_OID_SIGNING_CERT_V2, _tlv(0x30, _tlv(0x30, cert_id)))
    return _SignerParts(facts.der, _tlv(0x30, facts.issuer_der + serial), ess)


@functools.lru_cache(maxsize=64)
def _content_type(name: str) -> tuple[str, str, bytes]:
    """(asn1crypto name or dotted OID, dotted OID, DER) of a content type; ValueError if unknown."""
    ct = acms.ContentType(name)
    return ct.native, ct.dotted, ct.dump()


@functools.lru_cache(maxsize=16)
def _algorithm_ids(algorithm: SignatureAlgorithm) -> tuple[bytes, bytes]:
    """DER AlgorithmIdentifiers (digest, signature) exactly as asn1crypto writes them (NULL params for RSA)."""
    if algorithm.key_type == "sm2":  # GB/T 35275: SM3, and SM2-1 in SignerInfo; no parameters
        return (algos.DigestAlgorithm({"algorithm": algorithm.hash_oid}).dump(),
                algos.SignedDigestAlgorithm({"algorithm": GBT_SM2_SIGNATURE}).dump())
    return (algos.DigestAlgorithm({"algorithm": algorithm.hash_name}).dump(),
            algos.SignedDigestAlgorithm({"algorithm": algorithm.asn1crypto_name}).dump())


# ---- signing -----------------------------------------------------------------------------------------
def sign_detached(data: bytes | None, signer: Signer, *, digest: bytes | None = None,
                  content_type: str = "data", signing_time: dt.datetime | None = None,
                  extra_certs: Sequence[x509.Certificate] = (), include_signing_cert_v2: bool = True,
                  encapsulate: bool = False, include_signer_certificate: bool = True) -> bytes:
    """A DER ``ContentInfo`` holding SignedData over ``data`` (or over a precomputed ``digest``).

    ``content_type`` is an asn1crypto name (``"data"``, ``"tst_info"``) or a dotted OID.
    ``encapsulate=True`` embeds ``data`` (what a time-stamp token does with its TSTInfo);
    by default the signature is detached and the content travels separately.
    ``include_signer_certificate=False`` leaves the signer certificate out of ``certificates``
    (RFC 3161 when the request did not ask for it); the verifier must then be given it.
    """
    cert = signer.certificate
    if cert is None:
        raise InvalidInput("a CMS signature needs the signer's certificate; the signer has none")
    algorithm = signer.algorithm
    if (data is None) == (digest is None):
        raise InvalidInput("give exactly one of data and digest")
    if encapsulate and data is None:
        raise InvalidInput("encapsulated content needs the data itself, not a digest")
    if digest is None:
        digest = _digest(algorithm.hash_name, data)  # type: ignore[arg-type]
    elif len(digest) != len(_digest(algorithm.hash_name, b"")):
        raise InvalidInput(f"digest is {len(digest)} bytes, not a {algorithm.hash_name} digest")

    gbt = algorithm.key_type == "sm2"
    ct_name, _, ct_der = _content_type(GBT_DATA if gbt and content_type == "data" else content_type)
    parts = _signer_parts(cert)
    # DER SET OF order is the order of the encodings (X.690 §11.6).
    attrs = [_attribute(_OID_CONTENT_TYPE, ct_der), _attribute(_OID_MESSAGE_DIGEST, _tlv(0x04, digest))]
    if signing_time is not None:
        if signing_time.tzinfo is None:
            raise InvalidInput("signing_time must be timezone-aware")
        when = signing_time.astimezone(dt.UTC)
        # RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
        value = core.UTCTime(when) if 1950 <= when.year < 2050 else core.GeneralizedTime(when)
        attrs.append(_attribute(_OID_SIGNING_TIME, value.dump()))
    if include_signing_cert_v2:
        attrs.append(parts.signing_certificate_v2)
    attrs_content = b"".join(sorted(attrs))
    # The signature covers the attributes encoded as a universal SET (tag 0x31), not as [0].
    signature = signer.sign(_tlv(0x31, attrs_content))

    digest_alg, signature_alg = _algorithm_ids(algorithm)
    signer_info = _tlv(0x30, _VERSION_1 + parts.signer_id + digest_alg + _tlv(0xA0, attrs_content)
                       + signature_alg + _tlv(0x04, signature))
    cert_ders = [parts.certificate_der] if include_signer_certificate else []
    for c in extra_certs:
        der = _facts_of(c).der
        if der not in cert_ders:
            cert_ders.append(der)
    econtent = b""
    if encapsulate:
        # A content type asn1crypto knows (TSTInfo) must parse as such; others travel as given.
        spec = acms.EncapsulatedContentInfo._oid_specs.get(ct_name)
        if spec is not None and not issubclass(spec, core.OctetString):
            try:
                spec.load(data, strict=True)
            except ValueError as exc:
                raise InvalidInput(f"content does not parse as {ct_name}: {exc}") from None
        econtent = _tlv(0xA0, _tlv(0x04, data))  # type: ignore[arg-type]
    signed_data = _tlv(0x30, (
        # RFC 5652 §5.1: version 3 whenever eContentType is not id-data (GB/T 35275's data counts as data).
        (_VERSION_1 if ct_name in _PLAIN_DATA else _VERSION_3)
        + _tlv(0x31, digest_alg)
        + _tlv(0x30, ct_der + econtent)
        # [0] IMPLICIT CertificateSet, a SET OF: DER wants the encodings in ascending order.
        + (_tlv(0xA0, b"".join(sorted(cert_ders))) if cert_ders else b"")
        + _tlv(0x31, signer_info)))
    return _tlv(0x30, (_OID_GBT_SIGNED_DATA if gbt else _OID_SIGNED_DATA) + _tlv(0xA0, signed_data))


# ---- verification ------------------------------------------------------------------------------------
def _load_signed_data(cms_der: bytes) -> acms.SignedData:
    """The SignedData of a ContentInfo, parsed lazily (fields decode when first read)."""
    try:
        info = acms.ContentInfo.load(cms_der, strict=True)
        if info["content_type"].native not in ("signed_data", "gbt_signed_data"):
            raise CmsMalformed(f"CMS content is {info['content_type'].native}, not signed data")
        signed_data = info["content"]
        signed_data["signer_infos"]  # parses the SignedData's own fields: their tags and lengths
        return signed_data
    except CmsMalformed:
        raise
    except _ASN1_ERRORS as exc:
        raise CmsMalformed(f"not a DER CMS SignedData: {exc}") from None


def parse_signed_data(cms_der: bytes) -> acms.SignedData:
    """The SignedData inside a DER ContentInfo, checked to decode completely (typed error otherwise).

    The check decodes a second copy: ``.native`` marks asn1crypto values as changed, after which
    every ``.dump()`` of the returned structure would re-encode instead of giving the bytes received.
    """
    signed_data = _load_signed_data(cms_der)
    try:
        _ = _load_signed_data(cms_der).native
    except _ASN1_ERRORS as exc:
        raise CmsMalformed(f"not a DER CMS SignedData: {exc}") from None
    return signed_data


def _general_view(cms_der: bytes) -> SignedDataView:
    """The view through asn1crypto: any BER the common reader declines; raises the typed errors."""
    signed_data = _load_signed_data(cms_der)
    try:
        encap = signed_data["encap_content_info"]
        content = None if isinstance(encap["content"], core.Void) else encap["content"].contents
        field = signed_data["certificates"]
        certs = () if isinstance(field, core.Void) else \
            tuple(c.chosen.dump() for c in field if c.name == "certificate")
        signers = tuple(_general_signer(si) for si in signed_data["signer_infos"])
        return SignedDataView(encap["content_type"].dotted, content, certs, signers)
    except _ASN1_ERRORS as exc:
        raise CmsMalformed(f"not a DER CMS SignedData: {exc}") from None


def _general_signer(si: acms.SignerInfo) -> SignerView:
    signed_attrs = si["signed_attrs"]
    # What was signed is the attributes as a universal SET: the [0] IMPLICIT tag swapped back on
    # the bytes as received, taken before reading any attribute can mark the value as changed.
    signed_bytes = None if isinstance(signed_attrs, core.Void) else b"\x31" + signed_attrs.dump()[1:]
    sid = si["sid"]
    issuer = serial = key_id = None
    if sid.name == "issuer_and_serial_number":
        issuer, serial = sid.chosen["issuer"].dump(), sid.chosen["serial_number"].native
    else:
        key_id = sid.chosen.native
    attributes = None
    if signed_attrs:  # an empty set counts as none: a bare signature over the content
        values = {}
        for attr in signed_attrs:
            name = attr["type"].native
            if name in values or len(attr["values"]) != 1:
                raise CmsMalformed(f"signed attribute {name} must occur once with one value")
            values[name] = attr["values"][0]
        ess = values.get("signing_certificate_v2")
        if ess is not None:
            if not ess["certs"]:
                raise CmsMalformed("empty ESS signing-certificate-v2 attribute")
            first = ess["certs"][0]
            ess = (first["hash_algorithm"]["algorithm"].native, first["cert_hash"].native)
        attributes = AttributesView(
            values["content_type"].dotted if "content_type" in values else None,
            values["message_digest"].native if "message_digest" in values else None,
            values["signing_time"].native if "signing_time" in values else None, ess)
    else:
        signed_bytes = None
    return SignerView(issuer, serial, key_id, si["digest_algorithm"]["algorithm"].native,
                      si["signature_algorithm"]["algorithm"].dotted, si["signature"].native,
                      signed_bytes, attributes)


def _signer_algorithm(sig_oid: str, cert: x509.Certificate) -> SignatureAlgorithm:
    try:
        public_key = public_key_of(cert)  # decoded only now: pyca's, or SM2 through pki.sm2
    except (ValueError, MalformedEncoding) as exc:
        raise CmsMalformed(f"the signer certificate's public key does not decode: {exc}") from None
    except PycaUnsupportedAlgorithm as exc:  # e.g. a curve pyca does not know
        raise UnsupportedAlgorithm(f"the signer certificate's key: {exc}") from None
    expected = for_public_key(public_key)
    if sig_oid == RSA_ENCRYPTION_OID and expected.key_type == "rsa":
        return RSA3072_SHA256
    # GB/T 35275 names the SM2 signature in a SignerInfo by the key's algorithm (SM2-1), as PKCS#7 named
    # rsaEncryption: with the SM3 digest beside it, it is SM2 with SM3 — here only, not in by_oid.
    declared = SM2_SM3 if sig_oid == GBT_SM2_SIGNATURE else by_oid(sig_oid)
    if declared.key_type != expected.key_type:
        raise CmsBadSignature(f"signature algorithm {sig_oid} does not fit the signer's key")
    return declared


def _find_signer_cert(signer: SignerView, carried: Sequence[_CertFacts],
                      intermediates: Sequence[x509.Certificate] = ()) -> _CertFacts:
    """The signer's certificate: the first of ``carried`` (the CMS's own), then of ``intermediates``,
    that the signer identifier names exactly; else the first whose issuer name matches under X.520
    rules. The intermediates' facts are looked up only when the CMS does not carry the signer's
    certificate exactly (the common case carries it: a node's nine county CAs cost ~3 µs each)."""
    for facts in carried:
        if _names_exactly(signer, facts):
            return facts
    pool = [*carried, *(_facts_of(c) for c in intermediates)]
    if signer.issuer is not None:
        for facts in pool:
            if facts.serial_number == signer.serial and facts.issuer_der == signer.issuer:
                return facts
        issuer = None
        for facts in pool:  # names equal under X.520 matching rules though encoded differently
            if facts.serial_number == signer.serial:
                try:
                    issuer = issuer or ax509.Name.load(signer.issuer)
                    if ax509.Name.load(facts.issuer_der) == issuer:
                        return facts
                except ValueError as exc:  # a name whose strings do not decode
                    raise CmsMalformed(f"malformed name in the CMS signature: {exc}") from None
    else:
        for facts in pool:
            if _subject_key_id(facts) == signer.key_id:
                return facts
    raise CmsBadSignature("the signer's certificate is not in the CMS signature")


def _names_exactly(signer: SignerView, facts: _CertFacts) -> bool:
    """Whether ``signer``'s identifier names ``facts`` byte for byte (issuer and serial) or by key id:
    the first test :func:`_find_signer_cert` applies, in the same order, to every certificate."""
    if signer.issuer is not None:
        return facts.serial_number == signer.serial and facts.issuer_der == signer.issuer
    return _subject_key_id(facts) == signer.key_id


def _certificate_facts(ders: Sequence[bytes]) -> list[_CertFacts]:
    try:
        return [_facts_from_der(der) for der in ders]
    except (ValueError, x509.InvalidVersion) as exc:
        raise CmsMalformed(f"a certificate in the CMS signature does not parse: {exc}") from None


def carried_certificates(cms_der: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates a SignedData carries, unjudged: the issuers' chain a signer sends along,
    which other checks of the same object (its seal's maker) may need to reach the root."""
    view = read_common(cms_der) or _general_view(cms_der)
    return tuple(f.certificate for f in _certificate_facts(view.certificates))


def first_signer(cms_der: bytes) -> tuple[str, bytes]:
    """The (first) SignerInfo's digest algorithm ("sha256", "sm3", or a dotted OID) and signature
    value, unjudged: what a time stamp over the signature takes. Read through the same view as
    :func:`verify_detached` (the fast reader, else asn1crypto), not a full decode of the whole
    structure, certificates included, that a profile found was a third of a receiver's CPU."""
    view = read_common(cms_der) or _general_view(cms_der)
    if not view.signers:
        raise CmsMalformed("CMS SignedData has no SignerInfo")
    signer = view.signers[0]
    return ("sm3" if signer.digest_algorithm == SM3_OID else signer.digest_algorithm), signer.signature


def verify_detached(cms_der: bytes, data: bytes | None = None, *, digest: bytes | None = None,
                    trust_roots: TrustStore | Sequence[x509.Certificate] | None = None,
                    now: dt.datetime | None = None, intermediates: Sequence[x509.Certificate] = (),
                    purpose: Purpose = Purpose.ANY, revocation: RevocationCheck | None = None,
                    require_signing_cert_v2: bool = False) -> CmsSignature:
    """Verify SignedData over ``data`` (or ``digest``; or the encapsulated content if neither).

    With ``trust_roots`` the signer certificate must chain to one of them at ``now`` (required
    then), using the CMS certificates and ``intermediates`` (also searched for the signer
    certificate); without, only the cryptography is checked and the caller decides about the
    certificate.
    """
    view = read_common(cms_der) or _general_view(cms_der)
    if data is None and digest is None:
        if view.content is None:
            raise InvalidInput("a detached CMS signature needs the signed data to verify")
        data = view.content
    certs = _certificate_facts(view.certificates)
    if not view.signers:
        raise CmsMalformed("CMS SignedData has no signer")
    # The signer certificate may travel outside the CMS (an RFC 3161 token made without certReq).
    results = [_verify_signer(si, certs, intermediates, data, digest, view.content_type, require_signing_cert_v2)
               for si in view.signers]
    signer_cert, hash_name, message_digest, signing_time = results[0]
    all_certs = tuple(f.certificate for f in certs)
    path: tuple[x509.Certificate, ...] = ()
    if trust_roots is not None:
        if now is None:
            raise InvalidInput("verifying a certificate path needs the time (now)")
        store = trust_roots if isinstance(trust_roots, TrustStore) else TrustStore.of(trust_roots)
        paths = [verify_certificate(cert, store, now, [*all_certs, *intermediates], purpose, revocation)
                 for cert, *_ in results]
        path = tuple(paths[0])
    return CmsSignature(signer_cert, view.content_type, hash_name, message_digest, signing_time,
                        view.content, all_certs, path)


def _verify_signer(si: SignerView, carried: Sequence[_CertFacts], intermediates: Sequence[x509.Certificate],
                   data: bytes | None, digest: bytes | None, content_type: str,
                   require_ess: bool) -> tuple[x509.Certificate, str, bytes, dt.datetime | None]:
    facts = _find_signer_cert(si, carried, intermediates)
    cert = facts.certificate
    hash_name = "sm3" if si.digest_algorithm == SM3_OID else si.digest_algorithm  # asn1crypto has no name
    try:
        algorithm = _signer_algorithm(si.signature_algorithm, cert)
    except UnsupportedAlgorithm as exc:
        raise CmsBadSignature(f"unsupported CMS signature: {exc.message}") from None
    if hash_name != algorithm.hash_name:
        raise CmsBadSignature(f"digest algorithm {hash_name} does not match {algorithm.name}")
    actual = digest if digest is not None else _digest(hash_name, data)  # type: ignore[arg-type]
    attrs = si.attributes
    signing_time = None
    if attrs is None:  # a bare signature over the content (openssl cms -noattr)
        if data is None:
            raise InvalidInput("a CMS signature without signed attributes needs the data, not a digest")
        signed_bytes = data
        message_digest = actual
    else:
        if attrs.message_digest is None or attrs.content_type is None:
            raise CmsMalformed("signed attributes lack messageDigest or contentType")
        message_digest = attrs.message_digest
        if attrs.content_type != content_type:
            raise CmsBadSignature("contentType attribute differs from the encapsulated content type")
        signing_time = attrs.signing_time
        if attrs.ess is not None:
            ess_hash, cert_hash = attrs.ess
            if cert_hash != (facts.sha256 if ess_hash == "sha256" else _digest(ess_hash, facts.der)):
                raise CmsBadSignature("the ESS signing certificate names another certificate than the signer's")
        elif require_ess:
            raise CmsBadSignature("the signature lacks the ESS signing-certificate-v2 attribute")
        if message_digest != actual:
            raise CmsDigestMismatch("the data is not what was signed (message digest differs)")
        signed_bytes = si.signed_bytes  # type: ignore[assignment]
    try:
        algorithm.verify(public_key_of(cert), si.signature, signed_bytes)
    except BadSignature:
        raise CmsBadSignature("CMS signature does not verify with the signer's certificate",
                              subject=cert.subject.rfc4514_string()) from None
    return cert, hash_name, message_digest, signing_time
