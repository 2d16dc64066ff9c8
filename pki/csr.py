"""Certificate requests (PKCS#10, RFC 2986): made where the key lives, judged by the CA.

Enrolment without handing out the CA (issue 8 §2): a node, or a unit for its seal, makes its keys
itself and hands the PKI admin requests — public keys, each signed by its own private key to prove
the requester holds it. The CA signs certificates for them with its own profiles
(:mod:`pki.profiles`); a node operator never holds the CA directory or its passphrase.

:func:`make_request` builds a request with asn1crypto and signs it through a :class:`Signer`, so a
key on a PKCS#11 token (:class:`pki.pkcs11.Pkcs11Signer`) makes one the same way as a software key.
A request's subject says only who asks: a node's names its role (OU) and node id (CN), a seal's the
unit's 统一社会信用代码 (organizationIdentifier) and name (CN). It carries no attributes: the CA decides
every extension.

:func:`read_requests` is the CA's side: every request in a PEM file, each checked by
:func:`check_request` — the self-signature verifies (a forged or altered request is
``PKI_REQUEST_BAD_SIGNATURE``), the key is one the network uses (EC P-256, RSA 3072–8192 bits, SM2
on a 国密 network: ``PKI_REQUEST_KEY_TYPE``), the signature hash is SHA-2 (SM3 with SM2, checked by
:mod:`pki.sm2`: pyca cannot read SM2 keys), and it asks for nothing: a request carrying
attributes — an extension request for CA:TRUE, key usages or names, a challenge password — is
refused (``PKI_REQUEST_EXTENSIONS``) rather than silently trimmed, so nobody believes they got what
they asked for.

PEM helpers for the enrolment files (:func:`pem_block`, :func:`pem_blocks`) live here too: a request
file, a response file and a seal response are PEM blocks with a readable header above them
(RFC 7468 explanatory text, which openssl skips).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import algos as a_algos
from asn1crypto import csr as a_csr
from asn1crypto import keys as a_keys
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as CryptographyUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from .algorithms import SM2_SM3, SignatureAlgorithm, takes_key, transport_algorithm
from .errors import BadSignature, MalformedEncoding, RequestBadSignature, RequestInvalid, UnsupportedAlgorithm
from .signer import Signer
from .sm2 import Sm2PublicKey

REQUEST_LABEL = "CERTIFICATE REQUEST"
MAX_REQUESTS = 8  # a node's three, a seal's one: anything much bigger is not ours
MAX_REQUEST_FILE = 64 * 1024
RSA_SIZES = range(3072, 8193)
EXTENSION_REQUEST = x509.ObjectIdentifier("1.2.840.113549.1.9.14")  # PKCS#9 extensionRequest
_SHA2 = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
_PEM = re.compile(rb"-----BEGIN ([^-\r\n]+)-----\r?\n(.*?)-----END \1-----", re.S)


@dataclass(frozen=True)
class CheckedRequest:
    """A request whose self-signature verified, with what its subject says."""

    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | Sm2PublicKey
    common_name: str | None
    role: str | None  # OU: a node's tls / sign / enc
    unit_code: str | None  # organizationIdentifier: a seal's unit
    der: bytes

    @property
    def key_fingerprint(self) -> str:
        return key_fingerprint([self.public_key])


def make_request(signer: Signer, *, common_name: str, role: str | None = None,
                 unit_code: str | None = None) -> bytes:
    """A PKCS#10 request (DER) for ``signer``'s key, naming ``common_name`` and, for a node's key,
    its ``role`` (OU), for a seal's key its ``unit_code`` (organizationIdentifier). No attributes."""
    names = {"common_name": common_name}
    if role is not None:
        names["organizational_unit_name"] = role
    if unit_code is not None:
        names["organization_identifier"] = unit_code
    spki = signer.public_key.public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    info = a_csr.CertificationRequestInfo({
        "version": "v1",
        "subject": a_x509.Name.build(names, use_printable=False),
        "subject_pk_info": a_keys.PublicKeyInfo.load(spki),
        "attributes": [],
    })
    request = a_csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": a_algos.SignedDigestAlgorithm({"algorithm": signer.algorithm.asn1crypto_name}),
        "signature": signer.sign(info.dump()),
    })
    return request.dump()


def read_requests(data: bytes, network: SignatureAlgorithm | None = None) -> list[CheckedRequest]:
    """Every request in a PEM file, each checked (:func:`check_request`, for ``network``); typed errors otherwise."""
    if len(data) > MAX_REQUEST_FILE:
        raise RequestInvalid(f"a request file is a few kilobytes; this one is {len(data)} bytes",
                             code="PKI_REQUEST_MALFORMED")
    try:
        blocks = pem_blocks(data, REQUEST_LABEL)
    except MalformedEncoding as exc:
        raise RequestInvalid(exc.message, code="PKI_REQUEST_MALFORMED") from None
    if not blocks:
        raise RequestInvalid("no certificate request in this file (expected PEM '-----BEGIN CERTIFICATE "
                             "REQUEST-----' blocks, as gwx node request writes)", code="PKI_REQUEST_MALFORMED")
    if len(blocks) > MAX_REQUESTS:
        raise RequestInvalid(f"{len(blocks)} requests in one file; a node's request holds 3, a seal's 1",
                             code="PKI_REQUEST_MALFORMED")
    return [check_request(der, index, network) for index, der in enumerate(blocks, 1)]


def check_request(der: bytes, index: int = 1, network: SignatureAlgorithm | None = None) -> CheckedRequest:
    """Parse one request and hold it to what the CA signs (see the module docstring) — with ``network``,
    the algorithm of the CA that will sign it, also to that network's profile (SM2 keys or none)."""
    where = f"request {index}"
    try:
        csr = x509.load_der_x509_csr(der)
        subject = csr.subject
        public_key = _request_key(csr, where)
    except ValueError as exc:
        raise RequestInvalid(f"{where} does not parse as PKCS#10: {exc}", code="PKI_REQUEST_MALFORMED") from None
    _check_key(public_key, where)
    if network is not None and transport_algorithm(network) is not None and _asks_for_tls(subject):
        network = transport_algorithm(network)  # a 国密 network's TLS keys are its transport CA's: P-256
    if network is not None and not takes_key(network, public_key):
        raise RequestInvalid(f"{where} holds {'an SM2' if isinstance(public_key, Sm2PublicKey) else 'a non-SM2'} "
                             f"key; this CA signs with {network.name} and its network takes "
                             + ("SM2 keys only" if network is SM2_SM3 else "no SM2 keys"),
                             code="PKI_REQUEST_KEY_TYPE", network=network.name)
    if isinstance(public_key, Sm2PublicKey):
        _check_sm2_signature(csr, public_key, where)
    else:
        _check_signature(csr, where)
    _check_asks_nothing(csr, where)
    try:
        return CheckedRequest(public_key, _one(subject, NameOID.COMMON_NAME, where),
                              _one(subject, NameOID.ORGANIZATIONAL_UNIT_NAME, where),
                              _one(subject, NameOID.ORGANIZATION_IDENTIFIER, where), der)
    except ValueError as exc:
        raise RequestInvalid(f"{where}'s subject does not decode: {exc}", code="PKI_REQUEST_SUBJECT") from None


def _asks_for_tls(subject: x509.Name) -> bool:
    try:
        return [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == ["tls"]
    except ValueError:  # an undecodable subject is refused below, with its own code
        return False


def _request_key(csr: x509.CertificateSigningRequest, where: str) -> object:
    try:
        return csr.public_key()
    except CryptographyUnsupported as exc:  # a key type pyca does not know: SM2, or not ours at all
        try:
            info = a_csr.CertificationRequest.load(csr.public_bytes(serialization.Encoding.DER))
            return Sm2PublicKey.from_der(info["certification_request_info"]["subject_pk_info"].dump())
        except (ValueError, UnsupportedAlgorithm, MalformedEncoding):
            raise RequestInvalid(f"{where} holds a key this CA does not sign for ({exc})",
                                 code="PKI_REQUEST_KEY_TYPE") from None


def _check_sm2_signature(csr: x509.CertificateSigningRequest, public_key: Sm2PublicKey, where: str) -> None:
    if csr.signature_algorithm_oid.dotted_string != SM2_SM3.oid:
        raise RequestInvalid(f"{where} holds an SM2 key but is signed with "
                             f"{csr.signature_algorithm_oid.dotted_string}; the CA accepts SM2 with SM3",
                             code="PKI_REQUEST_KEY_TYPE")
    try:
        SM2_SM3.verify(public_key, csr.signature, csr.tbs_certrequest_bytes)
    except BadSignature:
        raise RequestBadSignature(f"{where}'s signature does not verify with the key it names: it was forged "
                                  "or altered after it was signed — ask the requester for a new one") from None


def _check_signature(csr: x509.CertificateSigningRequest, where: str) -> None:
    try:
        digest = csr.signature_hash_algorithm
    except CryptographyUnsupported:  # a signature algorithm the library does not know
        digest = None
    if not isinstance(digest, _SHA2):
        name = digest.name if digest is not None else csr.signature_algorithm_oid.dotted_string
        raise RequestInvalid(f"{where} is signed with {name}; the CA accepts SHA-256, -384 or -512",
                             code="PKI_REQUEST_KEY_TYPE")
    if not csr.is_signature_valid:
        raise RequestBadSignature(f"{where}'s signature does not verify with the key it names: it was forged "
                                  "or altered after it was signed — ask the requester for a new one")


def _check_key(public_key: object, where: str) -> None:
    if isinstance(public_key, Sm2PublicKey):  # the 国密 profile's key (its curve checked by OpenSSL)
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name != "secp256r1":
            raise RequestInvalid(f"{where} holds an EC key on {public_key.curve.name}; the network uses P-256",
                                 code="PKI_REQUEST_KEY_TYPE", curve=public_key.curve.name)
        return
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size not in RSA_SIZES:
            raise RequestInvalid(f"{where} holds a {public_key.key_size}-bit RSA key; the CA signs RSA keys of "
                                 "3072 to 8192 bits", code="PKI_REQUEST_KEY_TYPE", bits=public_key.key_size)
        return
    raise RequestInvalid(f"{where} holds a {type(public_key).__name__.lstrip('_')} key; the network uses EC "
                         "P-256 or RSA keys", code="PKI_REQUEST_KEY_TYPE")


def _check_asks_nothing(csr: x509.CertificateSigningRequest, where: str) -> None:
    """The CA decides every extension: a request that asks for any is refused, with what it asked."""
    try:
        attributes = list(csr.attributes)
    except ValueError as exc:
        raise RequestInvalid(f"{where}'s attributes do not decode: {exc}", code="PKI_REQUEST_MALFORMED") from None
    if not attributes:
        return
    asked = []
    try:
        for ext in csr.extensions:
            if ext.oid == ExtensionOID.BASIC_CONSTRAINTS and ext.value.ca:
                asked.append("CA:TRUE")
            else:
                asked.append(ext.oid._name if ext.oid._name != "Unknown OID" else ext.oid.dotted_string)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        asked.append(f"extensions that do not decode ({exc})")
    others = [a.oid._name for a in attributes if a.oid != EXTENSION_REQUEST] if asked \
        else [a.oid._name if a.oid._name != "Unknown OID" else a.oid.dotted_string for a in attributes]
    what = ", ".join(asked + others)
    raise RequestInvalid(f"{where} asks for {what}; the CA decides every extension of what it issues — make "
                         "the request with gwx node request (or request-seal), which asks for none",
                         code="PKI_REQUEST_EXTENSIONS", asked=asked + others)


def _one(name: x509.Name, oid: x509.ObjectIdentifier, where: str) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) > 1:
        raise RequestInvalid(f"{where} names {len(values)} {oid._name} in its subject; one is expected",
                             code="PKI_REQUEST_SUBJECT")
    return str(values[0].value) if values else None


def key_fingerprint(public_keys: Iterable[object]) -> str:
    """SHA-256 over the keys' SubjectPublicKeyInfo, in order, as ``ab:cd:…`` (first 16 bytes): what a
    requester reads out to the PKI admin so that both know the request signed is the one made."""
    digest = hashlib.sha256()
    for key in public_keys:
        digest.update(key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return ":".join(f"{b:02x}" for b in digest.digest()[:16])


def pem_block(label: str, der: bytes) -> bytes:
    """``der`` as one PEM block (64-character lines)."""
    text = base64.b64encode(der).decode("ascii")
    lines = "\n".join(text[i:i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode("ascii")


def pem_blocks(data: bytes, label: str) -> list[bytes]:
    """The DER of every PEM block labelled ``label`` in ``data`` (other blocks and text are skipped)."""
    out = []
    for match in _PEM.finditer(data):
        if match.group(1).decode("ascii", "replace") != label:
            continue
        try:
            out.append(base64.b64decode(b"".join(match.group(2).split()), validate=True))
        except (binascii.Error, ValueError):
            raise MalformedEncoding(f"a PEM '{label}' block is not valid base64") from None
    return out
