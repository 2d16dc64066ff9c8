"""X.509 certificates and CRLs that pyca/cryptography can read but not make or check: SM2 ones.

pyca's builders sign only with pyca keys, and pyca cannot load an SM2 key, so a certificate whose
subject key or issuer key is SM2 is assembled here with asn1crypto from the parts pyca's builder
would take — pyca's own ``x509.Name`` and extension objects, encoded by pyca, so the one table in
:mod:`pki.profiles` still decides every extension — and signed through the algorithm (SM2 with SM3
and the default distinguishing id: GM/T 0015's SM2-with-SM3 certificate, which ``openssl verify``
checks). CRLs likewise, signed through a :class:`~pki.signer.Signer`.

pyca still *reads* these certificates and CRLs (names, extensions, validity, serials); what it
cannot do for them is hand out the public key or check the signature. :func:`public_key_of` and
:func:`signed_by` do both for every certificate gwx meets, SM2 or not, and are what the trust,
revocation, seal and CMS code call.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence

from asn1crypto import core
from asn1crypto import crl as acrl
from asn1crypto import keys as akeys
from asn1crypto import x509 as ax
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as PycaUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .algorithms import DEFAULT, SM2_SM3, PrivateKey, PublicKey, SignatureAlgorithm
from .errors import GwxError, MalformedEncoding, UnsupportedAlgorithm
from .sm2 import Sm2PublicKey

# (extension value, critical), in the order they are to appear.
ExtensionList = Sequence[tuple[x509.ExtensionType, bool]]


def pyca_can_sign(subject_key: PublicKey, issuer_key: PrivateKey) -> bool:
    """Whether pyca's builder can make this certificate (both keys are pyca's)."""
    return (isinstance(subject_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
            and isinstance(issuer_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey))


def spki_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def subject_key_identifier(public_key: PublicKey) -> x509.SubjectKeyIdentifier:
    """RFC 5280 §4.2.1.2 method 1 (SHA-1 of the subjectPublicKey bits), as pyca and OpenSSL compute
    it: an identifier to find a key by, not a security function."""
    if isinstance(public_key, Sm2PublicKey):
        return x509.SubjectKeyIdentifier(hashlib.sha1(public_key.point()).digest())
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


@functools.lru_cache(maxsize=1024)
def public_key_of(cert: x509.Certificate) -> PublicKey:
    """The certificate's public key: pyca's, or an :class:`~pki.sm2.Sm2PublicKey` for an SM2 key.
    (Remembered per certificate: they hash by their DER.)"""
    try:
        return cert.public_key()  # type: ignore[return-value]
    except PycaUnsupported:
        pass
    try:
        spki = ax.Certificate.load(cert.public_bytes(serialization.Encoding.DER))[
            "tbs_certificate"]["subject_public_key_info"].dump()
    except ValueError as exc:
        raise MalformedEncoding(f"the certificate's public key does not decode: {exc}") from None
    return Sm2PublicKey.from_der(spki)  # UnsupportedAlgorithm for any other key pyca cannot hold


def network_algorithm(root: x509.Certificate) -> SignatureAlgorithm:
    """The algorithm a network's keys use, read from its root: SM2 with SM3 under an SM2 root (the 国密
    profile), else the default (P-256), whatever an RSA root signs with, as before."""
    return SM2_SM3 if root.signature_algorithm_oid.dotted_string == SM2_SM3.oid else DEFAULT


def signed_by(signed: x509.Certificate | x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` issued ``signed``: its name is ``signed``'s issuer and its key made the signature.
    One behaviour for every algorithm, certificates and CRLs alike (pyca's ``verify_directly_issued_by``
    also compares names, its ``is_signature_valid`` does not); an SM2 signature also needs the algorithm
    inside the signed part to be the outer one (RFC 5280 §4.1.1.2; pyca's parser holds its own to it)."""
    if signed.issuer != issuer.subject:
        return False
    if signed.signature_algorithm_oid.dotted_string != SM2_SM3.oid:
        try:
            if isinstance(signed, x509.Certificate):
                signed.verify_directly_issued_by(issuer)
                return True
            return signed.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        except (InvalidSignature, PycaUnsupported, ValueError, TypeError):
            return False
    tbs = signed.tbs_certificate_bytes if isinstance(signed, x509.Certificate) else signed.tbs_certlist_bytes
    if not _inner_algorithm_is_outer(signed):
        return False
    try:
        SM2_SM3.verify(public_key_of(issuer), signed.signature, tbs)
    except (GwxError, ValueError):
        return False
    return True


def _inner_algorithm_is_outer(signed: x509.Certificate | x509.CertificateRevocationList) -> bool:
    try:
        if isinstance(signed, x509.Certificate):
            parsed = ax.Certificate.load(signed.public_bytes(serialization.Encoding.DER))
            inner = parsed["tbs_certificate"]["signature"]
        else:
            parsed = acrl.CertificateList.load(signed.public_bytes(serialization.Encoding.DER))
            inner = parsed["tbs_cert_list"]["signature"]
        return inner.dump() == parsed["signature_algorithm"].dump()
    except ValueError:
        return False


def _time(at: dt.datetime) -> ax.Time:
    # RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
    at = at.astimezone(dt.UTC).replace(microsecond=0)
    return ax.Time(name="utc_time" if at.year < 2050 else "general_time", value=at)


def _extensions(extensions: ExtensionList, cls: type[core.Sequence]) -> list:
    """Each extension as ``cls`` (certificate, CRL or CRL entry extension), its value encoded by pyca
    and wrapped as DER here, so asn1crypto never re-encodes what pyca wrote."""
    out = []
    for value, critical in extensions:
        parts = core.ObjectIdentifier(value.oid.dotted_string).dump()
        if critical:  # DEFAULT FALSE: written only when true (DER)
            parts += core.Boolean(True).dump()
        parts += core.OctetString(value.public_bytes()).dump()
        out.append(cls.load(_der_sequence(parts)))
    return out


def _der_sequence(contents: bytes) -> bytes:
    n = len(contents)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")
    return b"\x30" + length + contents


def _algorithm_identifier(algorithm: SignatureAlgorithm) -> dict:
    # RSA's carries an explicit NULL; ECDSA's and SM2-with-SM3's carry no parameters (RFC 5758, GM/T 0015).
    if algorithm.key_type == "rsa":
        return {"algorithm": algorithm.oid, "parameters": core.Null()}
    return {"algorithm": algorithm.oid}


def assemble_certificate(*, subject: x509.Name, public_key: PublicKey, issuer: x509.Name, serial: int,
                         not_before: dt.datetime, not_after: dt.datetime, extensions: ExtensionList,
                         algorithm: SignatureAlgorithm, issuer_key: PrivateKey) -> x509.Certificate:
    """A v3 certificate of these parts, signed with ``issuer_key`` by ``algorithm``."""
    sig_alg = _algorithm_identifier(algorithm)
    tbs = ax.TbsCertificate({
        "version": "v3",
        "serial_number": serial,
        "signature": sig_alg,
        "issuer": ax.Name.load(issuer.public_bytes()),
        "validity": {"not_before": _time(not_before), "not_after": _time(not_after)},
        "subject": ax.Name.load(subject.public_bytes()),
        "subject_public_key_info": akeys.PublicKeyInfo.load(spki_der(public_key)),
        "extensions": _extensions(extensions, ax.Extension),
    })
    tbs_der = tbs.dump()
    signature = algorithm.sign_with_key(issuer_key, tbs_der)
    cert = ax.Certificate({"tbs_certificate": tbs,
                           "signature_algorithm": sig_alg, "signature_value": signature})
    try:
        return x509.load_der_x509_certificate(cert.dump())
    except ValueError as exc:  # our own assembly: a bug, not bad input
        raise UnsupportedAlgorithm(f"assembled certificate does not load: {exc}") from None


def assemble_crl(*, issuer: x509.Name, this_update: dt.datetime, next_update: dt.datetime,
                 extensions: ExtensionList, revoked: Sequence[tuple[int, dt.datetime, ExtensionList]],
                 algorithm: SignatureAlgorithm, sign) -> x509.CertificateRevocationList:
    """A v2 CRL (RFC 5280 §5) of these parts; ``sign(tbs_der) -> signature`` signs it."""
    sig_alg = _algorithm_identifier(algorithm)
    entries = []
    for serial, revoked_at, entry_extensions in revoked:
        entry = {"user_certificate": serial, "revocation_date": _time(revoked_at)}
        if entry_extensions:
            entry["crl_entry_extensions"] = _extensions(entry_extensions, acrl.CRLEntryExtension)
        entries.append(entry)
    fields = {"version": "v2", "signature": sig_alg, "issuer": ax.Name.load(issuer.public_bytes()),
              "this_update": _time(this_update), "next_update": _time(next_update),
              "crl_extensions": _extensions(extensions, acrl.TBSCertListExtension)}
    if entries:  # an empty revokedCertificates is left out, not written empty (RFC 5280 §5.1.2.6)
        fields["revoked_certificates"] = entries
    tbs = acrl.TbsCertList(fields)
    signature = sign(tbs.dump())
    crl = acrl.CertificateList({"tbs_cert_list": tbs, "signature_algorithm": sig_alg,
                                "signature": signature})
    try:
        return x509.load_der_x509_crl(crl.dump())
    except ValueError as exc:
        raise UnsupportedAlgorithm(f"assembled CRL does not load: {exc}") from None

