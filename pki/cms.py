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

Verification checks, in order: structure, the digest of the data against messageDigest, the
contentType attribute against eContentType, the ESS certificate hash when present, the signature
with the certificate the SignerInfo names, then (when trust roots are given) the certificate path
through :func:`pki.trust.verify_certificate`. Every failure is a typed error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import algos, core, tsp  # tsp also registers the ESS attribute specs
from asn1crypto import cms as acms
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .algorithms import RSA3072_SHA256, SignatureAlgorithm, by_oid, for_public_key
from .errors import (
    BadSignature,
    CmsBadSignature,
    CmsDigestMismatch,
    CmsMalformed,
    InvalidInput,
    UnsupportedAlgorithm,
)
from .signer import Signer
from .trust import Purpose, RevocationCheck, TrustStore, verify_certificate

RSA_ENCRYPTION_OID = "1.2.840.113549.1.1.1"  # what many CMS producers put for PKCS#1 v1.5
_HASHLIB = {"sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


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


def _attribute(oid: str, value_der: bytes) -> bytes:
    return _tlv(0x30, core.ObjectIdentifier(oid).dump() + _tlv(0x31, value_der))


def _ess_signing_certificate_v2(cert: x509.Certificate) -> bytes:
    """DER SigningCertificateV2 {certs: [ESSCertIDv2 {certHash, issuerSerial}]}, SHA-256 (the default)."""
    issuer_serial = _tlv(0x30, _tlv(0x30, _tlv(0xA4, cert.issuer.public_bytes()))  # GeneralNames{[4] Name}
                         + core.Integer(cert.serial_number).dump())
    cert_id = _tlv(0x30, core.OctetString(hashlib.sha256(_der(cert)).digest()).dump() + issuer_serial)
    return _tlv(0x30, _tlv(0x30, cert_id))


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

    ct = acms.ContentType(content_type)
    # The attributes are encoded by hand: asn1crypto re-encodes nested values it is given, which
    # made a signature cost ~6 ms. DER SET OF order is the order of the encodings (X.690 §11.6).
    attrs = [_attribute("1.2.840.113549.1.9.3", ct.dump()),
             _attribute("1.2.840.113549.1.9.4", core.OctetString(digest).dump())]
    if signing_time is not None:
        if signing_time.tzinfo is None:
            raise InvalidInput("signing_time must be timezone-aware")
        when = signing_time.astimezone(dt.UTC)
        # RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
        value = core.UTCTime(when) if 1950 <= when.year < 2050 else core.GeneralizedTime(when)
        attrs.append(_attribute("1.2.840.113549.1.9.5", value.dump()))
    if include_signing_cert_v2:
        attrs.append(_attribute("1.2.840.113549.1.9.16.2.47", _ess_signing_certificate_v2(cert)))
    signed_attrs_der = _tlv(0x31, b"".join(sorted(attrs)))
    # The signature covers the attributes encoded as a universal SET (tag 0x31), not as [0].
    signature = signer.sign(signed_attrs_der)

    signer_info = acms.SignerInfo({
        "version": "v1",
        "sid": acms.SignerIdentifier({"issuer_and_serial_number": acms.IssuerAndSerialNumber(
            {"issuer": ax509.Name.load(cert.issuer.public_bytes()), "serial_number": cert.serial_number})}),
        "digest_algorithm": algos.DigestAlgorithm({"algorithm": algorithm.hash_name}),
        # Re-loaded from DER: asn1crypto then re-tags cached bytes instead of re-encoding the tree.
        "signed_attrs": acms.CMSAttributes.load(signed_attrs_der),
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": algorithm.asn1crypto_name}),
        "signature": signature,
    })
    certs, seen = [], set()
    for c in ((cert,) if include_signer_certificate else ()) + tuple(extra_certs):
        der = _der(c)
        if der not in seen:
            seen.add(der)
            certs.append(acms.CertificateChoices(name="certificate", value=ax509.Certificate.load(der)))
    encap = {"content_type": ct}
    if encapsulate:
        # asn1crypto wants known content types (TSTInfo) as their parsed class, others as bytes.
        spec = acms.EncapsulatedContentInfo._oid_specs.get(ct.native)
        try:
            encap["content"] = data if spec is None or issubclass(spec, core.OctetString) else spec.load(data)
        except ValueError as exc:
            raise InvalidInput(f"content does not parse as {ct.native}: {exc}") from None
    fields = {
        # RFC 5652 §5.1: version 3 whenever eContentType is not id-data.
        "version": "v1" if ct.native == "data" else "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": algorithm.hash_name})],
        "encap_content_info": encap,
        "signer_infos": [signer_info],
    }
    if certs:
        fields["certificates"] = certs
    signed_data = acms.SignedData(fields)
    return acms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def parse_signed_data(cms_der: bytes) -> acms.SignedData:
    """The SignedData inside a DER ContentInfo, fully parsed (typed error on anything else)."""
    try:
        info = acms.ContentInfo.load(cms_der, strict=True)
        if info["content_type"].native != "signed_data":
            raise CmsMalformed(f"CMS content is {info['content_type'].native}, not signed data")
        signed_data = info["content"]
        _ = signed_data.native  # force a full parse now, so later access cannot raise
        return signed_data
    except CmsMalformed:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise CmsMalformed(f"not a DER CMS SignedData: {exc}") from None


def _signer_algorithm(sig_oid: str, cert: x509.Certificate) -> SignatureAlgorithm:
    expected = for_public_key(cert.public_key())
    if sig_oid == RSA_ENCRYPTION_OID and expected.key_type == "rsa":
        return RSA3072_SHA256
    declared = by_oid(sig_oid)
    if declared.key_type != expected.key_type:
        raise CmsBadSignature(f"signature algorithm {sig_oid} does not fit the signer's key")
    return declared


def _find_signer_cert(sid: acms.SignerIdentifier, certs: list[ax509.Certificate]) -> ax509.Certificate:
    for c in certs:
        if sid.name == "issuer_and_serial_number":
            if c.issuer == sid.chosen["issuer"] and c.serial_number == sid.chosen["serial_number"].native:
                return c
        elif c.key_identifier == sid.chosen.native:
            return c
    raise CmsBadSignature("the signer's certificate is not in the CMS signature")


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
    signed_data = parse_signed_data(cms_der)
    encap = signed_data["encap_content_info"]
    content_type = encap["content_type"].dotted
    content = None if isinstance(encap["content"], core.Void) else encap["content"].contents
    if data is None and digest is None:
        if content is None:
            raise InvalidInput("a detached CMS signature needs the signed data to verify")
        data = content
    certs = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"] \
        if signed_data["certificates"].native is not None else []
    if not signed_data["signer_infos"]:
        raise CmsMalformed("CMS SignedData has no signer")
    # The signer certificate may travel outside the CMS (an RFC 3161 token made without certReq).
    pool = certs + [ax509.Certificate.load(_der(c)) for c in intermediates]
    results = [_verify_signer_info(si, pool, data, digest, content_type, require_signing_cert_v2)
               for si in signed_data["signer_infos"]]
    signer_cert, hash_name, message_digest, signing_time = results[0]
    all_certs = tuple(x509.load_der_x509_certificate(c.dump()) for c in certs)
    path: tuple[x509.Certificate, ...] = ()
    if trust_roots is not None:
        if now is None:
            raise InvalidInput("verifying a certificate path needs the time (now)")
        store = trust_roots if isinstance(trust_roots, TrustStore) else TrustStore.of(trust_roots)
        paths = [verify_certificate(cert, store, now, [*all_certs, *intermediates], purpose, revocation)
                 for cert, *_ in results]
        path = tuple(paths[0])
    return CmsSignature(signer_cert, content_type, hash_name, message_digest, signing_time, content,
                        all_certs, path)


def _verify_signer_info(si: acms.SignerInfo, certs: list[ax509.Certificate], data: bytes | None,
                        digest: bytes | None, content_type: str, require_ess: bool,
                        ) -> tuple[x509.Certificate, str, bytes, dt.datetime | None]:
    acert = _find_signer_cert(si["sid"], certs)
    try:
        cert = x509.load_der_x509_certificate(acert.dump())
    except ValueError as exc:
        raise CmsMalformed(f"signer certificate does not parse: {exc}") from None
    hash_name = si["digest_algorithm"]["algorithm"].native
    try:
        algorithm = _signer_algorithm(si["signature_algorithm"]["algorithm"].dotted, cert)
    except UnsupportedAlgorithm as exc:
        raise CmsBadSignature(f"unsupported CMS signature: {exc.message}") from None
    if hash_name != algorithm.hash_name:
        raise CmsBadSignature(f"digest algorithm {hash_name} does not match {algorithm.name}")
    actual = digest if digest is not None else _digest(hash_name, data)  # type: ignore[arg-type]
    signature = si["signature"].native
    signed_attrs = si["signed_attrs"]
    signing_time = None
    if not signed_attrs:  # a bare signature over the content (openssl cms -noattr)
        if data is None:
            raise InvalidInput("a CMS signature without signed attributes needs the data, not a digest")
        signed_bytes = data
        message_digest = actual
    else:
        values = {}
        for attr in signed_attrs:
            name = attr["type"].native
            if name in values or len(attr["values"]) != 1:
                raise CmsMalformed(f"signed attribute {name} must occur once with one value")
            values[name] = attr["values"][0]
        if "message_digest" not in values or "content_type" not in values:
            raise CmsMalformed("signed attributes lack messageDigest or contentType")
        message_digest = values["message_digest"].native
        if values["content_type"].dotted != content_type:
            raise CmsBadSignature("contentType attribute differs from the encapsulated content type")
        if "signing_time" in values:
            signing_time = values["signing_time"].native
        ess = values.get("signing_certificate_v2")
        if ess is not None:
            _check_ess(ess, acert)
        elif require_ess:
            raise CmsBadSignature("the signature lacks the ESS signing-certificate-v2 attribute")
        if message_digest != actual:
            raise CmsDigestMismatch("the data is not what was signed (message digest differs)")
        # What was signed is the attributes as a universal SET: swap the [0] IMPLICIT tag back.
        raw = signed_attrs.dump()
        signed_bytes = b"\x31" + raw[1:]
    try:
        algorithm.verify(cert.public_key(), signature, signed_bytes)
    except BadSignature:
        raise CmsBadSignature("CMS signature does not verify with the signer's certificate",
                              subject=cert.subject.rfc4514_string()) from None
    return cert, hash_name, message_digest, signing_time


def _check_ess(ess: tsp.SigningCertificateV2, acert: ax509.Certificate) -> None:
    ids = ess["certs"]
    if not ids:
        raise CmsMalformed("empty ESS signing-certificate-v2 attribute")
    first = ids[0]
    hash_name = first["hash_algorithm"]["algorithm"].native
    if first["cert_hash"].native != _digest(hash_name, acert.dump()):
        raise CmsBadSignature("the ESS signing certificate names another certificate than the signer's")
