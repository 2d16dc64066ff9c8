"""Machine-readable errors of the PKI layer, and the kinds every gwx error falls into.

Every error gwx raises on purpose derives from :class:`GwxError`: a stable ``code`` (upper snake
case, never reworded once shipped), a human ``message``, optional ``details`` for reports, and a
``kind`` (:class:`ErrorKind`) that every class sets in its own body. What a caller does about an
error — the HTTP status, the CLI exit code, the SOAP fault, retrying or giving up — is a table over
the kind in :mod:`node.error_kinds`; this module only names what went wrong and which kind it is.

A class may be raised with a more precise code than its own (``code=`` at the raise site) only if
it declares that code in ``subcodes``: every code is then known at import time, so a node can tell
the kind of a code a peer answered with (:func:`registered_codes`).
"""

from __future__ import annotations

import enum
import re
from typing import Any, ClassVar

CODE_FORMAT = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")


class ErrorKind(enum.Enum):
    """What kind of failure an error is: the one thing callers decide on."""

    INVALID_INPUT = "invalid_input"  # the request or file cannot be used as given
    VERIFICATION_FAILED = "verification_failed"  # well-formed, but a signature, seal or check said no
    UNAUTHENTICATED = "unauthenticated"  # who is asking (or answering) is not established
    FORBIDDEN = "forbidden"  # who is asking is known and may not do this
    NOT_FOUND = "not_found"  # what was named does not exist here
    CONFLICT = "conflict"  # the state of things does not allow this (already exists, already done)
    TRANSIENT = "transient"  # may pass without anyone changing the request: try again later
    INTERNAL = "internal"  # our own fault: a bug, corrupt state, a broken environment


_CODES: dict[str, list[type[GwxError]]] = {}


def registered_codes() -> dict[str, tuple[type[GwxError], ...]]:
    """Every code of every error class imported so far (own code and ``subcodes``) and its classes."""
    return {code: tuple(classes) for code, classes in _CODES.items()}


class GwxError(Exception):
    """Base of all typed gwx errors. ``code`` is the contract; ``message`` is for people."""

    code: str = "GWX_ERROR"
    kind: ErrorKind = ErrorKind.INTERNAL
    subcodes: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = [cls.__dict__["code"]] if "code" in cls.__dict__ else []
        for code in own + list(cls.__dict__.get("subcodes", ())):
            _CODES.setdefault(code, []).append(cls)

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = {k: _jsonable(v) for k, v in self.details.items()}
        return out


_CODES[GwxError.code] = [GwxError]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class PkiError(GwxError):
    code = "PKI_ERROR"
    kind = ErrorKind.INTERNAL


class InvalidInput(PkiError):
    """A builder was given values that cannot make a valid object (caught at ``build()``)."""

    code = "PKI_INVALID_INPUT"
    kind = ErrorKind.INVALID_INPUT


class UnsupportedAlgorithm(PkiError):
    code = "PKI_UNSUPPORTED_ALGORITHM"
    kind = ErrorKind.INVALID_INPUT
    # PKI_PROFILE_MISMATCH: a key or algorithm of the other network profile (an SM2 key for a P-256
    # network's CA, P-256 on a 国密 network): see pki.algorithms.require_network_key.
    subcodes = ("PKI_PROFILE_MISMATCH",)


class KeyStoreError(PkiError):
    """The key that proves who the user is cannot be had: missing, unreadable, no passphrase given."""

    code = "PKI_KEYSTORE"
    kind = ErrorKind.UNAUTHENTICATED
    subcodes = ("PKI_KEY_MISSING", "PKI_KEY_MALFORMED", "PKI_NO_PASSPHRASE")


class WeakPassphrase(KeyStoreError):
    """A passphrase chosen for a new key that is too short to protect it."""

    code = "PKI_WEAK_PASSPHRASE"
    kind = ErrorKind.INVALID_INPUT


class WrongPassphrase(KeyStoreError):
    code = "PKI_WRONG_PASSPHRASE"
    kind = ErrorKind.UNAUTHENTICATED


class InsecureKeyFile(KeyStoreError):
    code = "PKI_INSECURE_KEY_FILE"
    kind = ErrorKind.FORBIDDEN


class CaError(PkiError):
    """A CA directory that cannot be used (a corrupt ca.json, a missing file), or a request the CA
    cannot honour (an intermediate deeper than its own path length allows)."""

    code = "PKI_CA"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("PKI_CA_CORRUPT", "PKI_CA_PATH_LENGTH", "PKI_CA_TRANSPORT")


class CaExists(CaError):
    code = "PKI_CA_EXISTS"
    kind = ErrorKind.CONFLICT


class DirectorySignerExists(CaError):
    """A signer directory that already holds a (directory or OCSP) signer's key: issuing again would replace it."""

    code = "PKI_SIGNER_EXISTS"
    kind = ErrorKind.CONFLICT


class NodeCredentialsExist(CaError):
    """A directory that already holds a node's keys: issuing again would replace them silently."""

    code = "PKI_NODE_CREDENTIALS_EXIST"
    kind = ErrorKind.CONFLICT


class CaMissing(CaError):
    code = "PKI_CA_MISSING"
    kind = ErrorKind.NOT_FOUND
    subcodes = ("PKI_TRANSPORT_MISSING",)  # a 国密 CA without its P-256 transport CA (pki.ca)


class UnknownCertificate(CaError):
    code = "PKI_UNKNOWN_CERTIFICATE"
    kind = ErrorKind.NOT_FOUND


class AlreadyIssued(CaError):
    """The CA already holds a valid, unrevoked certificate for this node id (or seal for this unit);
    issuing another needs an explicit replacement (``--replace``)."""

    code = "PKI_ALREADY_ISSUED"
    kind = ErrorKind.CONFLICT


class RequestInvalid(PkiError):
    """A certificate request (PKCS#10, ``gwx node request``) the CA will not sign: malformed, a key
    type or size the network does not use, asking for extensions or attributes (the CA decides every
    one), node ids or roles that do not add up, or naming another node or unit than the admin said."""

    code = "PKI_REQUEST_INVALID"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("PKI_REQUEST_MALFORMED", "PKI_REQUEST_KEY_TYPE", "PKI_REQUEST_EXTENSIONS",
                "PKI_REQUEST_ROLES", "PKI_REQUEST_NODE_MISMATCH", "PKI_REQUEST_KEY_REUSED",
                "PKI_REQUEST_SUBJECT", "PKI_REQUEST_UNIT_MISMATCH", "PKI_REQUEST_PENDING")


class RequestBadSignature(RequestInvalid):
    """A request whose self-signature does not verify: forged (signed by another key than the one it
    names) or altered after it was signed."""

    code = "PKI_REQUEST_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class ResponseInvalid(PkiError):
    """What the CA sent back (``gwx node install-certs``) cannot be installed: not certificates, none
    for this node's keys (an answer to another request), the wrong purpose, another node or unit."""

    code = "PKI_RESPONSE_INVALID"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("PKI_RESPONSE_MALFORMED", "PKI_RESPONSE_KEY_MISMATCH", "PKI_RESPONSE_WRONG_PURPOSE",
                "PKI_RESPONSE_NODE_MISMATCH", "PKI_RESPONSE_UNIT_MISMATCH", "PKI_RESPONSE_NO_REQUEST")


class ResponseUntrusted(ResponseInvalid):
    """A response whose certificates (or seal) do not verify under the node's own root certificate."""

    code = "PKI_RESPONSE_UNTRUSTED"
    kind = ErrorKind.VERIFICATION_FAILED


class InvalidUnitCode(PkiError):
    """A 统一社会信用代码 that is malformed or whose check character is wrong (GB 32100)."""

    code = "PKI_INVALID_UNIT_CODE"
    kind = ErrorKind.INVALID_INPUT


class MalformedEncoding(PkiError):
    """Bytes that do not decode as the expected DER/PEM structure."""

    code = "PKI_MALFORMED"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("PKI_CRL_MALFORMED", "PKI_FILE_UNREADABLE")


class CertificateInvalid(PkiError):
    """Base for certificate path failures; subclasses name the precise cause."""

    code = "PKI_CERT_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED


class CertificateUntrusted(CertificateInvalid):
    code = "PKI_CERT_UNTRUSTED"
    kind = ErrorKind.VERIFICATION_FAILED


class CertificateExpired(CertificateInvalid):
    code = "PKI_CERT_EXPIRED"
    kind = ErrorKind.VERIFICATION_FAILED


class CertificateNotYetValid(CertificateInvalid):
    code = "PKI_CERT_NOT_YET_VALID"
    kind = ErrorKind.VERIFICATION_FAILED


class CertificateRevoked(CertificateInvalid):
    code = "PKI_CERT_REVOKED"
    kind = ErrorKind.VERIFICATION_FAILED


class CertificateWrongUsage(CertificateInvalid):
    code = "PKI_CERT_WRONG_USAGE"
    kind = ErrorKind.VERIFICATION_FAILED


class RevocationUnknown(CertificateInvalid):
    """No usable revocation information (stale CRL, OCSP unknown) where it was required."""

    code = "PKI_REVOCATION_UNKNOWN"
    kind = ErrorKind.TRANSIENT  # a fresh CRL or OCSP answer settles it; the certificate is not at fault
    subcodes = ("PKI_OCSP_MALFORMED", "PKI_OCSP_NONCE_MISMATCH")


class BadSignature(PkiError):
    code = "PKI_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class SigningFailed(PkiError):
    """Our own key or library could not sign (or encrypt): our fault, never the peer's input."""

    code = "PKI_SIGNING_FAILED"
    kind = ErrorKind.INTERNAL
    subcodes = ("PKI_ENCRYPTION_FAILED",)


class DecryptionFailed(PkiError):
    """Well-formed ciphertext that does not decrypt: made for another key, or changed on the way (its
    SM2 hash C3 or its GCM tag does not match). Bad encoding is :class:`MalformedEncoding` instead."""

    code = "PKI_DECRYPTION_FAILED"
    kind = ErrorKind.VERIFICATION_FAILED


class KeyCertificateMismatch(PkiError):
    """A certificate given for a key certifies a different public key."""

    code = "PKI_KEY_CERT_MISMATCH"
    kind = ErrorKind.INVALID_INPUT


class HsmError(PkiError):
    """A PKCS#11 token or its module failed; ``details`` carry the PKCS#11 error name, never the PIN."""

    code = "PKI_HSM_ERROR"
    kind = ErrorKind.INTERNAL
    subcodes = ("PKI_HSM_CLOSED",)


class HsmKeyAmbiguous(HsmError):
    """Several keys on the token match the label or id given."""

    code = "PKI_HSM_KEY_AMBIGUOUS"
    kind = ErrorKind.INVALID_INPUT


class HsmKeyExists(HsmError):
    code = "PKI_HSM_KEY_EXISTS"
    kind = ErrorKind.CONFLICT


class HsmTokenNotFound(HsmError):
    """No token with that label is present: a wrong label, or a UKey pulled out — which putting it
    back mends, so a clerk's sealing is told to try again (503) and an adapter retries."""

    code = "PKI_HSM_TOKEN_NOT_FOUND"
    kind = ErrorKind.TRANSIENT


class HsmKeyNotFound(HsmError):
    code = "PKI_HSM_KEY_NOT_FOUND"
    kind = ErrorKind.NOT_FOUND


class HsmBadPin(HsmError):
    """The token refused the PIN. A signer that met this refuses to try the same PIN again (each
    try spends one of the token's few retries before it locks)."""

    code = "PKI_HSM_BAD_PIN"
    kind = ErrorKind.UNAUTHENTICATED


class HsmSm2Unsupported(HsmError):
    """An SM2 key on (or for) a PKCS#11 token: no PKCS#11 mechanism gwx can use makes an SM2
    signature (PKCS#11 3.x defines none; SoftHSM 2.6 offers none; a token's ``CKM_ECDSA`` on the SM2
    curve is ECDSA, not GB/T 32918). docs/architecture.md, "SM2 keys on tokens"."""

    code = "PKI_HSM_SM2_UNSUPPORTED"
    kind = ErrorKind.INVALID_INPUT


# --- Electronic seals (GB/T 38540, pki.seal*) -------------------------------------------------


class SealError(PkiError):
    code = "SEAL_ERROR"
    kind = ErrorKind.INTERNAL


class SealMalformed(SealError, MalformedEncoding):
    """Bytes that are not a seal we can read: truncated, garbage, wrong header, oversized."""

    code = "SEAL_MALFORMED"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("SEAL_MISSING",)


class SealExists(SealError):
    """A directory that already holds a seal: refusing to overwrite it."""

    code = "SEAL_EXISTS"
    kind = ErrorKind.CONFLICT


class SealUnsupportedVersion(SealError, MalformedEncoding):
    code = "SEAL_UNSUPPORTED_VERSION"
    kind = ErrorKind.INVALID_INPUT


class SealFontMissing(SealError):
    """No CJK font to draw a generated seal picture with (install fonts-wqy-zenhei)."""

    code = "SEAL_FONT_MISSING"
    kind = ErrorKind.INTERNAL


class SealVerificationFailed(SealError):
    code = "SEAL_VERIFY_FAILED"
    kind = ErrorKind.VERIFICATION_FAILED


class SealBadSignature(SealVerificationFailed):
    code = "SEAL_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class SealMakerUntrusted(SealVerificationFailed):
    code = "SEAL_MAKER_UNTRUSTED"
    kind = ErrorKind.VERIFICATION_FAILED


class SealExpired(SealVerificationFailed):
    code = "SEAL_EXPIRED"
    kind = ErrorKind.VERIFICATION_FAILED


class SealNotYetValid(SealVerificationFailed):
    code = "SEAL_NOT_YET_VALID"
    kind = ErrorKind.VERIFICATION_FAILED


class SealCertInvalid(SealVerificationFailed):
    code = "SEAL_CERT_INVALID"
    kind = ErrorKind.VERIFICATION_FAILED


class SealRevoked(SealVerificationFailed):
    code = "SEAL_REVOKED"
    kind = ErrorKind.VERIFICATION_FAILED


class SealRevocationUnknown(SealVerificationFailed):
    """CRLs were given but none usable covers a certificate (stale, badly signed, wrong issuer)."""

    code = "SEAL_REVOCATION_UNKNOWN"
    kind = ErrorKind.TRANSIENT


class SealWrongUnit(SealVerificationFailed):
    code = "SEAL_WRONG_UNIT"
    kind = ErrorKind.VERIFICATION_FAILED


class SealCertNotListed(SealVerificationFailed):
    """The package was signed with a certificate the seal (印章) does not list as its signer's."""

    code = "SEAL_CERT_NOT_LISTED"
    kind = ErrorKind.VERIFICATION_FAILED


class SealDataMismatch(SealVerificationFailed):
    """A sealed signature's dataHash is not the digest of the data it is presented with."""

    code = "SEAL_DATA_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


class SealPictureInvalid(SealVerificationFailed, InvalidInput):
    """The seal's picture is not a sane image: refused when making a seal and when verifying one."""

    code = "SEAL_PICTURE_INVALID"
    kind = ErrorKind.INVALID_INPUT  # bad content, not a signature or certificate that failed


# --- Revocation (pki.crl, pki.ocsp, pki.revocation) ---------------------------------------------
# Each is a RevocationUnknown: the caller learnt nothing trustworthy about the certificate's status.


class RevocationStale(RevocationUnknown):
    """The CRL's nextUpdate or the OCSP response's nextUpdate has passed (or thisUpdate is in the future)."""

    code = "PKI_REVOCATION_STALE"
    kind = ErrorKind.TRANSIENT


class CrlBadSignature(RevocationUnknown):
    code = "PKI_CRL_BAD_SIGNATURE"
    kind = ErrorKind.TRANSIENT


class CrlUpdateRefused(PkiError):
    """A CRL offered to replace the one held is refused: the held one stays (pki.crl.judge_crl_update)."""

    code = "PKI_CRL_UNTRUSTED"  # signed by no CA this node trusts (another CA, a forged signature)
    kind = ErrorKind.VERIFICATION_FAILED
    subcodes = ("PKI_CRL_ROLLBACK", "PKI_CRL_INCOMPLETE")  # an older CRL number; a CA's CRL left out


class OcspBadSignature(RevocationUnknown):
    """The OCSP response is not signed by the issuer or by a responder the issuer delegated to."""

    code = "PKI_OCSP_BAD_SIGNATURE"
    kind = ErrorKind.TRANSIENT


# --- CMS SignedData (pki.cms) ---------------------------------------------------------------------


class CmsError(PkiError):
    code = "CMS_ERROR"
    kind = ErrorKind.INVALID_INPUT


class CmsMalformed(CmsError, MalformedEncoding):
    code = "CMS_MALFORMED"
    kind = ErrorKind.INVALID_INPUT


class CmsBadSignature(CmsError, BadSignature):
    code = "CMS_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class CmsDigestMismatch(CmsError, BadSignature):
    """The signed message digest is not the digest of the data given to verify."""

    code = "CMS_DIGEST_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED


# --- RFC 3161 time stamps (pki.tsa) ----------------------------------------------------------------


class TsaError(PkiError):
    code = "TSA_ERROR"
    kind = ErrorKind.VERIFICATION_FAILED


class TsaMalformed(TsaError, MalformedEncoding):
    code = "TSA_MALFORMED"
    kind = ErrorKind.INVALID_INPUT


class TsaRejected(TsaError):
    """The TSA answered with a PKIStatus other than granted."""

    code = "TSA_REJECTED"
    kind = ErrorKind.VERIFICATION_FAILED


class TsaBadSignature(TsaError, BadSignature):
    code = "TSA_BAD_SIGNATURE"
    kind = ErrorKind.VERIFICATION_FAILED


class TsaDigestMismatch(TsaError, BadSignature):
    """The token time-stamps other data (message imprint mismatch) or answers another nonce."""

    code = "TSA_DIGEST_MISMATCH"
    kind = ErrorKind.VERIFICATION_FAILED
    subcodes = ("TSA_NONCE_MISMATCH",)


class TsaUntrusted(TsaError, CertificateUntrusted):
    code = "TSA_UNTRUSTED"
    kind = ErrorKind.VERIFICATION_FAILED


def error_for_code(code: str, message: str, **details: Any) -> GwxError:
    """An error of the class that owns ``code`` — for a code read from a report or a peer's answer,
    so that it keeps its kind. A code no imported class declares becomes a plain :class:`GwxError`."""
    classes = _CODES.get(code)
    cls = classes[0] if classes else GwxError
    return cls(message, code=code, **details)


class TokenConfigInvalid(HsmError):
    """``token.toml`` missing a field, or its PIN source unusable (absent, readable by others)."""

    code = "SEAL_TOKEN_CONFIG"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("SEAL_TOKEN_PIN_MISSING", "SEAL_TOKEN_PIN_EXPOSED")
