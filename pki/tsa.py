"""RFC 3161 time stamping: requests, a responder as a pure function, and token verification.

The responder never raises on what a client sends: a request that does not decode, names an
unsupported hash, carries an imprint of the wrong length or asks for another policy gets a
``TimeStampResp`` with PKIStatus ``rejection`` and the matching failInfo (badDataFormat, badAlg,
badRequest, unacceptedPolicy). Only the caller's own mistakes (a signer without a certificate)
are exceptions. The clock and the serial number come in as arguments, so the responder is
deterministic; :func:`random_serial` gives unique 64-bit+ serials for a node without a counter.

The token is CMS SignedData (:func:`pki.cms.sign_detached` with the TSTInfo encapsulated) whose
signed attributes include ESS signing-certificate-v2, which ``openssl ts -verify`` requires.
The TSA certificate is included only when the request asked for it (certReq), as RFC 3161 says.

:func:`verify_token` checks the CMS signature, that the signer is a time-stamping certificate
(critical timeStamping EKU) chaining to the trust roots at the token's genTime, that the message
imprint matches the data, and that the nonce is the one the caller sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms as acms
from asn1crypto import core, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import cms
from .errors import (
    CertificateInvalid,
    CmsBadSignature,
    CmsDigestMismatch,
    CmsMalformed,
    InvalidInput,
    TsaBadSignature,
    TsaDigestMismatch,
    TsaMalformed,
    TsaRejected,
    TsaUntrusted,
)
from .signer import Signer
from .sm3_sm4 import sm3
from .trust import Purpose, RevocationCheck, TrustStore

# gwx's default TSA policy: a UUID-derived OID (X.667, arc 2.25) needs no registration and cannot collide.
DEFAULT_POLICY = "2.25.55290865844753237096875143168109235137"
# SM3 for a 国密 network's imprints (its name taught to asn1crypto by pki.cms), hashed by pyca like pki.cms does.
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64, "sm3": 32}
MAX_REQUEST = 16 * 1024


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp. asn1crypto's own omits OPTIONAL on the token, so rejections fail."""

    _fields = [("status", tsp.PKIStatusInfo),
               ("time_stamp_token", acms.ContentInfo, {"optional": True})]


@dataclass(frozen=True)
class TimeStamp:
    """What a verified time-stamp token asserts."""

    gen_time: dt.datetime
    serial: int
    policy: str
    hash_name: str
    message_imprint: bytes
    nonce: int | None
    accuracy_micros: int | None
    tsa_certificate: x509.Certificate


def random_serial() -> int:
    """A unique serial without shared state: 80 random bits (RFC 3161 allows up to 160)."""
    return secrets.randbits(80) | (1 << 79)


def make_request(data: bytes | None = None, *, digest: bytes | None = None, hash_name: str = "sha256",
                 nonce: int | None = None, cert_req: bool = True, policy: str | None = None) -> bytes:
    """A DER ``TimeStampReq`` for ``data`` (hashed here) or for an already computed ``digest``."""
    if (data is None) == (digest is None):
        raise InvalidInput("give exactly one of data and digest")
    if hash_name not in _DIGEST_SIZES:
        raise InvalidInput(f"unsupported hash {hash_name}", known=sorted(_DIGEST_SIZES))
    if digest is None:
        digest = make_imprint(hash_name, data)  # type: ignore[arg-type]
    if len(digest) != _DIGEST_SIZES[hash_name]:
        raise InvalidInput(f"a {hash_name} digest is {_DIGEST_SIZES[hash_name]} bytes, not {len(digest)}")
    fields = {"version": "v1",
              "message_imprint": {"hash_algorithm": {"algorithm": hash_name}, "hashed_message": digest},
              "cert_req": cert_req}
    if policy is not None:
        fields["req_policy"] = policy
    if nonce is not None:
        fields["nonce"] = nonce
    return tsp.TimeStampReq(fields).dump()


def _rejection(fail_info: str, text: str) -> bytes:
    return TimeStampResp({"status": {"status": "rejection", "status_string": [text],
                                         "fail_info": {fail_info}}}).dump()


def respond(request_der: bytes, tsa_signer: Signer, now: dt.datetime, serial: int,
            policy_oid: str = DEFAULT_POLICY, *, accuracy_seconds: int = 1,
            extra_certs: Sequence[x509.Certificate] = ()) -> bytes:
    """A DER ``TimeStampResp`` answering ``request_der``: a token, or a rejection with failInfo.

    ``extra_certs`` (the TSA's issuing CAs) travel with the TSA certificate when certReq is set.
    """
    if tsa_signer.certificate is None:
        raise InvalidInput("the TSA signer needs its time-stamping certificate")
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    if len(request_der) > MAX_REQUEST:
        return _rejection("bad_data_format", "request too large")
    try:
        req = tsp.TimeStampReq.load(request_der, strict=True)
        _ = req.native  # parse everything now: a broken inner field must not surface later
        version = req["version"].native
        imprint = req["message_imprint"]
        hash_name = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
    except (ValueError, TypeError, KeyError, OverflowError):
        return _rejection("bad_data_format", "the request is not a DER TimeStampReq")
    if version != "v1":
        return _rejection("bad_request", f"unsupported request version {version}")
    if hash_name not in _DIGEST_SIZES:
        return _rejection("bad_alg", f"unsupported hash algorithm {hash_name}")
    if len(hashed) != _DIGEST_SIZES[hash_name]:
        return _rejection("bad_request", f"message imprint is not a {hash_name} digest")
    if req["req_policy"].native is not None and req["req_policy"].dotted != policy_oid:
        return _rejection("unaccepted_policy", f"this TSA issues under policy {policy_oid} only")
    if req["extensions"].native:
        return _rejection("unaccepted_extension", "request extensions are not supported")

    gen_time = now.astimezone(dt.UTC)
    tsa_cert = ax509.Certificate.load(tsa_signer.certificate.public_bytes(serialization.Encoding.DER))
    info = {"version": "v1", "policy": policy_oid,
            "message_imprint": {"hash_algorithm": {"algorithm": hash_name}, "hashed_message": hashed},
            "serial_number": serial, "gen_time": gen_time,
            "accuracy": {"seconds": accuracy_seconds},
            "tsa": ax509.GeneralName(name="directory_name", value=tsa_cert.subject)}
    if req["nonce"].native is not None:
        info["nonce"] = req["nonce"].native
    tst_info = tsp.TSTInfo(info).dump()
    cert_req = bool(req["cert_req"].native)
    token = cms.sign_detached(tst_info, tsa_signer, content_type="tst_info", signing_time=gen_time,
                              encapsulate=True, include_signer_certificate=cert_req,
                              extra_certs=tuple(extra_certs) if cert_req else ())
    return TimeStampResp({"status": {"status": "granted"},
                              "time_stamp_token": acms.ContentInfo.load(token)}).dump()


def token_from_response(response_der: bytes) -> bytes:
    """The TimeStampToken (DER ContentInfo) of a granted response; TsaRejected otherwise."""
    try:
        resp = TimeStampResp.load(response_der, strict=True)
        status = resp["status"]["status"].native
        texts = resp["status"]["status_string"].native or []
        fail = sorted(resp["status"]["fail_info"].native or [])
        token = resp["time_stamp_token"]
        token_der = None if isinstance(token, core.Void) else token.dump()
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise TsaMalformed(f"not a DER TimeStampResp: {exc}") from None
    if status not in ("granted", "granted_with_mods"):
        raise TsaRejected(f"the TSA refused: {status} {' '.join(texts)}".strip(), status=status,
                          fail_info=fail)
    if token_der is None:
        raise TsaMalformed("a granted TimeStampResp without a token")
    return token_der


def verify_token(token_der: bytes, data: bytes | None = None, *, digest: bytes | None = None,
                 trust_roots: TrustStore | Sequence[x509.Certificate], nonce: int | None = None,
                 tsa_certificates: Sequence[x509.Certificate] = (),
                 at: dt.datetime | None = None, revocation: RevocationCheck | None = None) -> TimeStamp:
    """Verify a TimeStampToken over ``data`` (or its ``digest``, same hash as the token's).

    The TSA certificate path is validated at ``at`` (default: the token's own genTime, which is
    what a long-term verifier wants). ``tsa_certificates`` supply the TSA certificate and its
    issuers when the token does not carry them. ``revocation`` (e.g. :class:`pki.revocation.CrlCheckerAt`)
    judges the TSA's certificate path at that moment too: a TSA key revoked before it stamped fails.
    """
    if (data is None) == (digest is None):
        raise InvalidInput("give exactly one of data and digest")
    try:
        signed = cms.parse_signed_data(token_der)
        if signed["encap_content_info"]["content_type"].native != "tst_info":
            raise TsaMalformed("the CMS content is not a TSTInfo")
        info = tsp.TSTInfo.load(signed["encap_content_info"]["content"].contents, strict=True)
        fields = info.native
    except CmsMalformed as exc:
        raise TsaMalformed(f"not a time-stamp token: {exc.message}") from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise TsaMalformed(f"TSTInfo does not decode: {exc}") from None
    gen_time = fields["gen_time"]
    try:
        result = cms.verify_detached(token_der, trust_roots=trust_roots, now=at or gen_time,
                                     intermediates=tsa_certificates, purpose=Purpose.TIME_STAMPING,
                                     require_signing_cert_v2=False, revocation=revocation)
    except CmsMalformed as exc:
        raise TsaMalformed(exc.message) from None
    except (CmsBadSignature, CmsDigestMismatch) as exc:
        raise TsaBadSignature(f"time-stamp token signature: {exc.message}") from None
    except CertificateInvalid as exc:
        raise TsaUntrusted(f"TSA certificate: {exc.message}", cause=exc.code) from None
    _check_eku_critical(result.signer_certificate)

    imprint = fields["message_imprint"]
    hash_name = imprint["hash_algorithm"]["algorithm"]
    if hash_name not in _DIGEST_SIZES:
        raise TsaMalformed(f"token uses unsupported hash {hash_name}")
    expected = digest if digest is not None else make_imprint(hash_name, data)  # type: ignore[arg-type]
    if imprint["hashed_message"] != expected:
        raise TsaDigestMismatch("the time-stamp token is for other data (message imprint differs)")
    if nonce is not None and fields["nonce"] != nonce:
        raise TsaDigestMismatch("the time-stamp token answers another request (nonce differs)",
                                code="TSA_NONCE_MISMATCH")
    acc = fields["accuracy"]
    micros = None
    if acc:
        micros = ((acc.get("seconds") or 0) * 1_000_000 + (acc.get("millis") or 0) * 1000
                  + (acc.get("micros") or 0))
    return TimeStamp(gen_time, fields["serial_number"], info["policy"].dotted, hash_name,
                     imprint["hashed_message"], fields["nonce"], micros, result.signer_certificate)


def verify_response(response_der: bytes, data: bytes | None = None, **kwargs) -> TimeStamp:
    """:func:`verify_token` on the token of a granted ``TimeStampResp``."""
    return verify_token(token_from_response(response_der), data, **kwargs)


def make_imprint(hash_name: str, data: bytes) -> bytes:
    """``data``'s digest of ``hash_name`` (one of the hashes a token may carry), as the imprint holds it."""
    if hash_name not in _DIGEST_SIZES:
        raise InvalidInput(f"unsupported hash {hash_name}", known=sorted(_DIGEST_SIZES))
    return sm3(data) if hash_name == "sm3" else hashlib.new(hash_name, data).digest()


def _check_eku_critical(cert: x509.Certificate) -> None:
    # RFC 3161 §2.3: the TSA certificate has exactly the timeStamping EKU, marked critical.
    ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    if not ext.critical or list(ext.value) != [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TsaUntrusted("the TSA certificate's extended key usage must be timeStamping alone, critical")


__all__ = ["DEFAULT_POLICY", "TimeStamp", "make_imprint", "make_request", "random_serial", "respond", "token_from_response",
           "verify_response", "verify_token"]
