"""Certificate profiles: what each kind of certificate gwx issues may be used for.

One table decides key usages and extended key usages, so the CA never improvises them and the
verifiers (pki.trust) check the same purposes the CA granted; :func:`build_certificate` is the one
place a certificate is made from a profile.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import x509_sm2
from .algorithms import PrivateKey, PublicKey, SignatureAlgorithm, for_public_key

# The seal-making authority's extended key usage: only a certificate carrying it may sign SESeal
# structures, so a unit's seal key cannot make seals for other units. A UUID-derived OID (X.667,
# arc 2.25) needs no registration: uuid5(NAMESPACE_URL, "urn:gwx:eku:seal-making").
SEAL_MAKING = x509.ObjectIdentifier("2.25.133215851074313270600976853293594904732")
# The network directory signer's: only a certificate carrying it may sign the network directory
# (exchange_protocol.directory), and it carries nothing else, so it cannot sign envelopes, seals or
# TLS handshakes, and a node's signing key cannot sign a directory.
# uuid5(NAMESPACE_URL, "urn:gwx:eku:directory-signing").
DIRECTORY_SIGNING = x509.ObjectIdentifier("2.25.313261549175959191073069586593629093356")

# A little slack so a certificate issued "now" is valid on a peer whose clock lags.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Profile:
    name: str
    key_usage: frozenset[str]  # names of x509.KeyUsage flags
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    eku_critical: bool = False
    is_ca: bool = False
    path_length: int | None = None
    default_days: int = 730
    ocsp_nocheck: bool = False


_KU_FIELDS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")


def key_usage_extension(profile: Profile, key_type: str) -> x509.KeyUsage:
    usage = set(profile.key_usage)
    # An encryption certificate's usage depends on the key: EC keys agree (ECDH), RSA and SM2 keys
    # encipher (SM2 encryption carries the content key, GM/T 0009).
    if "encryption" in usage:
        usage.discard("encryption")
        usage.add("key_agreement" if key_type == "ec" else "key_encipherment")
    flags = {f: (f in usage) for f in _KU_FIELDS}
    return x509.KeyUsage(**flags)


ROOT_CA = Profile("root-ca", frozenset({"key_cert_sign", "crl_sign"}), is_ca=True, default_days=20 * 365)
INTERMEDIATE_CA = Profile("intermediate-ca", frozenset({"key_cert_sign", "crl_sign"}), is_ca=True,
                          path_length=0, default_days=10 * 365)
NODE_TLS = Profile("node-tls", frozenset({"digital_signature"}),
                   (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH), default_days=825)
# emailProtection is the EKU CMS verifiers (openssl cms's default smimesign purpose) look for; it
# also keeps a signing certificate from passing as a TLS certificate.
NODE_SIGNING = Profile("node-signing", frozenset({"digital_signature", "content_commitment"}),
                       (ExtendedKeyUsageOID.EMAIL_PROTECTION,), default_days=825)
NODE_ENCRYPTION = Profile("node-encryption", frozenset({"encryption"}), default_days=825)
SEAL = Profile("seal", frozenset({"digital_signature", "content_commitment"}), default_days=3 * 365)
SEAL_MAKER = Profile("seal-maker", frozenset({"digital_signature", "content_commitment"}),
                     (SEAL_MAKING,), default_days=10 * 365)
DIRECTORY_SIGNER = Profile("directory-signer", frozenset({"digital_signature", "content_commitment"}),
                           (DIRECTORY_SIGNING,), default_days=5 * 365)
OCSP_RESPONDER = Profile("ocsp-responder", frozenset({"digital_signature"}),
                         (ExtendedKeyUsageOID.OCSP_SIGNING,), default_days=5 * 365, ocsp_nocheck=True)
TIME_STAMPING = Profile("time-stamping", frozenset({"digital_signature", "content_commitment"}),
                        (ExtendedKeyUsageOID.TIME_STAMPING,), eku_critical=True, default_days=10 * 365)

# A 国密 network's transport CA (pki.ca, docs/architecture.md "TLS on a 国密 network"): P-256, beside
# the SM2 root, for node TLS certificates alone. Its EKU limits every certificate under it to TLS:
# OpenSSL refuses a CA whose EKU lacks the handshake's purpose, and pki.trust refuses a leaf whose
# purpose a CA above it does not list.
TLS_ONLY = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
TRANSPORT_ROOT_CA = Profile("transport-root-ca", frozenset({"key_cert_sign", "crl_sign"}), TLS_ONLY, is_ca=True,
                            default_days=20 * 365)
TRANSPORT_INTERMEDIATE_CA = Profile("transport-intermediate-ca", frozenset({"key_cert_sign", "crl_sign"}),
                                    TLS_ONLY, is_ca=True, path_length=0, default_days=10 * 365)

# A node's three certificates by role — the stem of its key and certificate files in a credentials
# directory (tls.key, tls.crt, …) and the subject's OU — and the profile each is issued with, whether
# the CA makes the keys (gwx pki issue-node) or the node does (gwx node request, pki.node_enrolment).
NODE_ROLES: dict[str, Profile] = {"tls": NODE_TLS, "sign": NODE_SIGNING, "enc": NODE_ENCRYPTION}

BY_NAME = {p.name: p for p in (ROOT_CA, INTERMEDIATE_CA, TRANSPORT_ROOT_CA, TRANSPORT_INTERMEDIATE_CA, NODE_TLS,
                               NODE_SIGNING, NODE_ENCRYPTION, SEAL, SEAL_MAKER, DIRECTORY_SIGNER, OCSP_RESPONDER,
                               TIME_STAMPING)}


def build_certificate(subject: x509.Name, public_key: PublicKey, issuer: x509.Name, issuer_key: PrivateKey,
                      profile: Profile, valid_days: int | None, now: dt.datetime,
                      algorithm: SignatureAlgorithm, sans: list[x509.GeneralName] | None = None,
                      not_after: dt.datetime | None = None,
                      issuer_cert: x509.Certificate | None = None) -> x509.Certificate:
    """A certificate of ``profile``: its basic constraints, key usages, EKUs and OCSP no-check
    exactly as the table says, key identifiers, ``sans``, valid from :data:`BACKDATE` ago.
    pyca's builder makes it when it can hold both keys; an SM2 key on either side has it assembled
    by :mod:`pki.x509_sm2` from the same extensions."""
    not_after = not_after or now + dt.timedelta(days=valid_days or profile.default_days)
    key_type = for_public_key(public_key).key_type
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=profile.is_ca, path_length=profile.path_length), True),
        (key_usage_extension(profile, key_type), True),
        (x509_sm2.subject_key_identifier(public_key), False)]
    if issuer_cert is not None:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        extensions.append((x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False))
    if profile.extended_key_usage:
        extensions.append((x509.ExtendedKeyUsage(list(profile.extended_key_usage)), profile.eku_critical))
    if profile.ocsp_nocheck:
        extensions.append((x509.OCSPNoCheck(), False))
    if sans:
        extensions.append((x509.SubjectAlternativeName(sans), False))
    serial = x509.random_serial_number()
    if not x509_sm2.pyca_can_sign(public_key, issuer_key):
        return x509_sm2.assemble_certificate(subject=subject, public_key=public_key, issuer=issuer,
                                             serial=serial, not_before=now - BACKDATE, not_after=not_after,
                                             extensions=extensions, algorithm=algorithm, issuer_key=issuer_key)
    b = (x509.CertificateBuilder()
         .subject_name(subject).issuer_name(issuer).public_key(public_key)  # type: ignore[arg-type]
         .serial_number(serial)
         .not_valid_before(now - BACKDATE).not_valid_after(not_after))
    for value, critical in extensions:
        b = b.add_extension(value, critical=critical)
    return b.sign(issuer_key, algorithm.hash())  # type: ignore[arg-type]
