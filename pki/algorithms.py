"""Signature algorithms by name, so no format hard-codes one.

A :class:`SignatureAlgorithm` couples a key type with a hash and knows its X.509/CMS object
identifier, how to generate a key, and how to verify. Formats (seals, CMS, envelopes) carry the
OID they got from here; readers look the OID up with :func:`by_oid`. SM2/SM3 will be one more
entry (backed by OpenSSL 3 rather than pyca/cryptography) without touching the formats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .errors import BadSignature, UnsupportedAlgorithm
from .sm2 import Sm2PrivateKey, Sm2PublicKey

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | Sm2PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | Sm2PublicKey


@dataclass(frozen=True)
class SignatureAlgorithm:
    name: str  # our stable name, used in configs and on the command line
    oid: str  # signature algorithm OID (e.g. ecdsa-with-SHA256)
    asn1crypto_name: str  # the name asn1crypto uses for ``SignedDigestAlgorithmId``
    hash_name: str  # "sha256", "sm3", … (asn1crypto / hashlib naming)
    hash_oid: str
    key_type: str  # "ec" | "rsa" | "sm2"
    generate: Callable[[], PrivateKey]

    def hash(self) -> hashes.HashAlgorithm:
        return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sm3": hashes.SM3()}[self.hash_name]

    def sign_with_key(self, key: PrivateKey, data: bytes) -> bytes:
        if self.key_type == "sm2":
            if not isinstance(key, Sm2PrivateKey):
                raise UnsupportedAlgorithm(f"{self.name} signs with an SM2 key, not {type(key).__name__}")
            return key.sign(data)  # SM3 and the default distinguishing id
        if self.key_type == "ec":
            return key.sign(data, ec.ECDSA(self.hash()))  # type: ignore[union-attr]
        return key.sign(data, padding.PKCS1v15(), self.hash())  # type: ignore[union-attr,call-arg]

    def verify(self, public_key: PublicKey, signature: bytes, data: bytes) -> None:
        """Raise :class:`BadSignature` unless ``signature`` is this algorithm's over ``data``."""
        if self.key_type == "sm2":
            if not isinstance(public_key, Sm2PublicKey):
                raise BadSignature("key is not an SM2 key", algorithm=self.name)
            public_key.verify(signature, data)  # raises BadSignature itself
            return
        try:
            if self.key_type == "ec":
                if not isinstance(public_key, ec.EllipticCurvePublicKey):
                    raise BadSignature("key is not an EC key", algorithm=self.name)
                public_key.verify(signature, data, ec.ECDSA(self.hash()))
            else:
                if not isinstance(public_key, rsa.RSAPublicKey):
                    raise BadSignature("key is not an RSA key", algorithm=self.name)
                public_key.verify(signature, data, padding.PKCS1v15(), self.hash())
        except InvalidSignature:
            raise BadSignature("signature does not verify", algorithm=self.name) from None


ECDSA_P256_SHA256 = SignatureAlgorithm(
    name="ecdsa-p256-sha256",
    oid="1.2.840.10045.4.3.2",
    asn1crypto_name="sha256_ecdsa",
    hash_name="sha256",
    hash_oid="2.16.840.1.101.3.4.2.1",
    key_type="ec",
    generate=lambda: ec.generate_private_key(ec.SECP256R1()),
)

RSA3072_SHA256 = SignatureAlgorithm(
    name="rsa3072-sha256",
    oid="1.2.840.113549.1.1.11",
    asn1crypto_name="sha256_rsa",
    hash_name="sha256",
    hash_oid="2.16.840.1.101.3.4.2.1",
    key_type="rsa",
    generate=lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
)

# SM2 with SM3 (GB/T 32918, GM/T 0006 OIDs): signatures carry the default distinguishing id
# 1234567812345678 (GM/T 0009), as SM2 certificates and `openssl verify` expect.
SM2_SM3 = SignatureAlgorithm(
    name="sm2-sm3",
    oid="1.2.156.10197.1.501",
    asn1crypto_name="1.2.156.10197.1.501",  # asn1crypto has no name for it: the dotted OID passes through
    hash_name="sm3",
    hash_oid="1.2.156.10197.1.401",
    key_type="sm2",
    generate=Sm2PrivateKey.generate,
)

DEFAULT = ECDSA_P256_SHA256
_BY_NAME = {a.name: a for a in (ECDSA_P256_SHA256, RSA3072_SHA256, SM2_SM3)}
_ALIASES = {"ecdsa": ECDSA_P256_SHA256, "ec": ECDSA_P256_SHA256, "p256": ECDSA_P256_SHA256,
            "rsa": RSA3072_SHA256, "rsa3072": RSA3072_SHA256, "sm2": SM2_SM3, "sm": SM2_SM3}
# One OID per algorithm, so by_oid(x).oid == x: CMS's other name for SM2 (SM2-1) stays in pki.cms.
_BY_OID = {a.oid: a for a in _BY_NAME.values()}


# A network's profile, chosen when its root is made (gwx pki init-root --profile): the algorithm its
# CA signs every certificate and CRL with and gives every key it makes.
NETWORK_PROFILES = {"international": ECDSA_P256_SHA256, "sm": SM2_SM3}


def algorithm_for_profile(profile: str | None, algorithm: str | None = None) -> SignatureAlgorithm:
    """The algorithm of a network ``profile``, or of an explicit ``algorithm`` name; both given must agree."""
    if profile is not None and profile not in NETWORK_PROFILES:
        raise UnsupportedAlgorithm(f"unknown network profile {profile!r}", known=sorted(NETWORK_PROFILES))
    chosen = by_name(algorithm) if algorithm is not None else None
    if profile is None:
        return chosen or DEFAULT
    if chosen is not None and chosen is not NETWORK_PROFILES[profile]:
        raise UnsupportedAlgorithm(f"the {profile} profile signs with {NETWORK_PROFILES[profile].name}, "
                                   f"not {chosen.name}: give one of --profile and --algorithm",
                                   profile=profile, algorithm=chosen.name)
    return NETWORK_PROFILES[profile]


def transport_algorithm(network: SignatureAlgorithm) -> SignatureAlgorithm | None:
    """The algorithm of a network's separate TLS transport CA, or None when its own CA issues TLS
    certificates. OpenSSL 3.0 under Python's ``ssl`` neither verifies SM2-signed certificates in a
    handshake nor uses SM2 TLS keys, so a 国密 network's node TLS is P-256 under a root of its own;
    everything else on that network stays SM2 (docs/architecture.md, "TLS on a 国密 network")."""
    return ECDSA_P256_SHA256 if network is SM2_SM3 else None


def takes_key(network: SignatureAlgorithm, public_key: object) -> bool:
    """Whether a network whose CA signs with ``network`` takes ``public_key``: the one place that decides.
    A 国密 network (SM2 with SM3) takes SM2 keys only; any other network never an SM2 key (its CA
    holds P-256 and RSA keys to their curves and sizes itself). A mixed network fails a 密评."""
    return isinstance(public_key, Sm2PublicKey) == (network is SM2_SM3)


def require_network_key(network: SignatureAlgorithm, public_key: object) -> None:
    """Raise ``PKI_PROFILE_MISMATCH`` unless the network of ``network`` takes ``public_key`` (:func:`takes_key`)."""
    if not takes_key(network, public_key):
        raise UnsupportedAlgorithm(f"a network that signs with {network.name} does not take "
                                   f"{_key_name(public_key)} keys: "
                                   + ("the 国密 profile uses SM2 keys only" if network is SM2_SM3
                                      else "SM2 keys belong to a 国密 network (an SM2 root)"),
                                   code="PKI_PROFILE_MISMATCH", network=network.name)


def require_network_algorithm(network: SignatureAlgorithm, algorithm: SignatureAlgorithm) -> None:
    """Raise ``PKI_PROFILE_MISMATCH`` if ``algorithm``'s keys are of the other profile than ``network``'s."""
    if (algorithm is SM2_SM3) != (network is SM2_SM3):
        raise UnsupportedAlgorithm(f"a network that signs with {network.name} does not take {algorithm.name} "
                                   "keys: keys of one network are all SM2 or none are",
                                   code="PKI_PROFILE_MISMATCH", network=network.name, algorithm=algorithm.name)


def _key_name(public_key: object) -> str:
    if isinstance(public_key, Sm2PublicKey):
        return "SM2"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    return "RSA" if isinstance(public_key, rsa.RSAPublicKey) else type(public_key).__name__.lstrip("_")


def by_name(name: str) -> SignatureAlgorithm:
    try:
        return _BY_NAME.get(name) or _ALIASES[name]
    except KeyError:
        raise UnsupportedAlgorithm(f"unknown signature algorithm {name!r}",
                                   known=sorted(_BY_NAME)) from None


def by_oid(oid: str) -> SignatureAlgorithm:
    try:
        return _BY_OID[oid]
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported signature algorithm OID {oid}", oid=oid) from None


def for_public_key(public_key: PublicKey) -> SignatureAlgorithm:
    """The algorithm gwx uses with a key of this type (what a verifier expects from a cert)."""
    if isinstance(public_key, Sm2PublicKey):
        return SM2_SM3
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name != "secp256r1":
            raise UnsupportedAlgorithm(f"unsupported EC curve {public_key.curve.name}")
        return ECDSA_P256_SHA256
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise UnsupportedAlgorithm(f"RSA key too small ({public_key.key_size} bits)")
        return RSA3072_SHA256
    raise UnsupportedAlgorithm(f"unsupported key type {type(public_key).__name__}")
