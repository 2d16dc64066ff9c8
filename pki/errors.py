"""Machine-readable errors of the PKI layer.

Every error gwx raises on purpose derives from :class:`GwxError`: a stable ``code`` (upper snake
case, never reworded once shipped), a human ``message`` and optional ``details`` for reports.
The mapping from codes to HTTP statuses, SOAP faults and CLI exit codes lives in one place in
``node``; this module only names what went wrong.
"""

from __future__ import annotations

from typing import Any


class GwxError(Exception):
    """Base of all typed gwx errors. ``code`` is the contract; ``message`` is for people."""

    code: str = "GWX_ERROR"

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


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class PkiError(GwxError):
    code = "PKI_ERROR"


class InvalidInput(PkiError):
    """A builder was given values that cannot make a valid object (caught at ``build()``)."""

    code = "PKI_INVALID_INPUT"


class UnsupportedAlgorithm(PkiError):
    code = "PKI_UNSUPPORTED_ALGORITHM"


class KeyStoreError(PkiError):
    code = "PKI_KEYSTORE"


class WrongPassphrase(KeyStoreError):
    code = "PKI_WRONG_PASSPHRASE"


class InsecureKeyFile(KeyStoreError):
    code = "PKI_INSECURE_KEY_FILE"


class CaError(PkiError):
    code = "PKI_CA"


class UnknownCertificate(CaError):
    code = "PKI_UNKNOWN_CERTIFICATE"


class InvalidUnitCode(PkiError):
    """A 统一社会信用代码 that is malformed or whose check character is wrong (GB 32100)."""

    code = "PKI_INVALID_UNIT_CODE"


class MalformedEncoding(PkiError):
    """Bytes that do not decode as the expected DER/PEM structure."""

    code = "PKI_MALFORMED"


class CertificateInvalid(PkiError):
    """Base for certificate path failures; subclasses name the precise cause."""

    code = "PKI_CERT_INVALID"


class CertificateUntrusted(CertificateInvalid):
    code = "PKI_CERT_UNTRUSTED"


class CertificateExpired(CertificateInvalid):
    code = "PKI_CERT_EXPIRED"


class CertificateNotYetValid(CertificateInvalid):
    code = "PKI_CERT_NOT_YET_VALID"


class CertificateRevoked(CertificateInvalid):
    code = "PKI_CERT_REVOKED"


class CertificateWrongUsage(CertificateInvalid):
    code = "PKI_CERT_WRONG_USAGE"


class RevocationUnknown(CertificateInvalid):
    """No usable revocation information (stale CRL, OCSP unknown) where it was required."""

    code = "PKI_REVOCATION_UNKNOWN"


class BadSignature(PkiError):
    code = "PKI_BAD_SIGNATURE"


class KeyCertificateMismatch(PkiError):
    """A certificate given for a key certifies a different public key."""

    code = "PKI_KEY_CERT_MISMATCH"


class HsmError(PkiError):
    """A PKCS#11 token or its module failed; ``details`` carry the PKCS#11 error name, never the PIN."""

    code = "PKI_HSM_ERROR"


class HsmTokenNotFound(HsmError):
    code = "PKI_HSM_TOKEN_NOT_FOUND"


class HsmKeyNotFound(HsmError):
    code = "PKI_HSM_KEY_NOT_FOUND"


class HsmBadPin(HsmError):
    code = "PKI_HSM_BAD_PIN"


# --- Electronic seals (GB/T 38540, pki.seal*) -------------------------------------------------
# Seal verification failures exit 1 on the command line like other "verification said no" errors.


class SealError(PkiError):
    code = "SEAL_ERROR"


class SealMalformed(SealError, MalformedEncoding):
    """Bytes that are not a seal we can read: truncated, garbage, wrong header, oversized."""

    code = "SEAL_MALFORMED"


class SealUnsupportedVersion(SealError, MalformedEncoding):
    code = "SEAL_UNSUPPORTED_VERSION"


class SealFontMissing(SealError):
    """No CJK font to draw a generated seal picture with (install fonts-wqy-zenhei)."""

    code = "SEAL_FONT_MISSING"


class SealVerificationFailed(SealError):
    code = "SEAL_VERIFY_FAILED"
    exit_code = 1


class SealBadSignature(SealVerificationFailed):
    code = "SEAL_BAD_SIGNATURE"


class SealMakerUntrusted(SealVerificationFailed):
    code = "SEAL_MAKER_UNTRUSTED"


class SealExpired(SealVerificationFailed):
    code = "SEAL_EXPIRED"


class SealNotYetValid(SealVerificationFailed):
    code = "SEAL_NOT_YET_VALID"


class SealCertInvalid(SealVerificationFailed):
    code = "SEAL_CERT_INVALID"


class SealRevoked(SealVerificationFailed):
    code = "SEAL_REVOKED"


class SealRevocationUnknown(SealVerificationFailed):
    """CRLs were given but none usable covers a certificate (stale, badly signed, wrong issuer)."""

    code = "SEAL_REVOCATION_UNKNOWN"


class SealWrongUnit(SealVerificationFailed):
    code = "SEAL_WRONG_UNIT"


class SealPictureInvalid(SealVerificationFailed):
    code = "SEAL_PICTURE_INVALID"


# --- Revocation (pki.crl, pki.ocsp, pki.revocation) ---------------------------------------------
# Each is a RevocationUnknown: the caller learnt nothing trustworthy about the certificate's status.


class RevocationStale(RevocationUnknown):
    """The CRL's nextUpdate or the OCSP response's nextUpdate has passed (or thisUpdate is in the future)."""

    code = "PKI_REVOCATION_STALE"


class CrlBadSignature(RevocationUnknown):
    code = "PKI_CRL_BAD_SIGNATURE"


class OcspBadSignature(RevocationUnknown):
    """The OCSP response is not signed by the issuer or by a responder the issuer delegated to."""

    code = "PKI_OCSP_BAD_SIGNATURE"


# --- CMS SignedData (pki.cms) ---------------------------------------------------------------------


class CmsError(PkiError):
    code = "CMS_ERROR"


class CmsMalformed(CmsError, MalformedEncoding):
    code = "CMS_MALFORMED"


class CmsBadSignature(CmsError, BadSignature):
    code = "CMS_BAD_SIGNATURE"


class CmsDigestMismatch(CmsError, BadSignature):
    """The signed message digest is not the digest of the data given to verify."""

    code = "CMS_DIGEST_MISMATCH"


# --- RFC 3161 time stamps (pki.tsa) ----------------------------------------------------------------


class TsaError(PkiError):
    code = "TSA_ERROR"
    exit_code = 1


class TsaMalformed(TsaError, MalformedEncoding):
    code = "TSA_MALFORMED"


class TsaRejected(TsaError):
    """The TSA answered with a PKIStatus other than granted."""

    code = "TSA_REJECTED"


class TsaBadSignature(TsaError, BadSignature):
    code = "TSA_BAD_SIGNATURE"


class TsaDigestMismatch(TsaError, BadSignature):
    """The token time-stamps other data (message imprint mismatch) or answers another nonce."""

    code = "TSA_DIGEST_MISMATCH"


class TsaUntrusted(TsaError, CertificateUntrusted):
    code = "TSA_UNTRUSTED"
