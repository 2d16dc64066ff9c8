"""An OCSP responder (RFC 6960) as a pure function, and the client's request builder.

``respond(request_der, ca_view, responder_signer, now)`` returns the DER ``OCSPResponse`` the
node serves. It never raises on what a client sends: undecodable requests, requests without a
certificate, or more certificates than :data:`MAX_REQUESTS` get ``malformedRequest``; a failing
store (``ca_view`` raised) gets ``internalError``. For each certificate asked about the answer is

* ``good`` — the CA issued that serial and has not revoked it;
* ``revoked`` — with the revocation time and reason (no reason for ``unspecified``);
* ``unknown`` — the issuer name/key hashes are not this CA's, the hash algorithm is not one we
  compute, or the CA never issued that serial (as far as the view knows: see :class:`CrlView`).

pyca's ``OCSPResponseBuilder`` answers one certificate per response and needs the raw private
key; building with asn1crypto answers every certificate in the request and signs through the
:class:`~pki.signer.Signer` interface (so the responder key may live on a token).

The response is signed by the delegated responder (OCSPSigning EKU, id-pkix-ocsp-nocheck, issued
by the CA: ``CertificateAuthority.ocsp_responder_signer()``), whose certificate travels in
``certs``; the responder is named by key hash. thisUpdate is ``now``, nextUpdate ``now + validity``.
A nonce in the request is echoed byte for byte.

:class:`CaView` is what the responder reads: a CA directory satisfies it (it knows every serial it
issued). A node holds only the CA's CRL, not its records: :class:`CrlView` answers from the CRL,
where ``good`` means "not revoked" without a claim that the serial was ever issued — what RFC 6960
§2.2 allows ("this state does not necessarily mean that the certificate was ever issued").
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Protocol

from asn1crypto import core
from asn1crypto import ocsp as aocsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as xocsp

from . import x509_sm2
from .ca_records import Revocation
from .errors import InvalidInput
from .signer import Signer
from .sm2 import Sm2PublicKey

DEFAULT_VALIDITY = dt.timedelta(hours=4)
MAX_REQUESTS = 32
MAX_REQUEST_BYTES = 64 * 1024
_HASHES = {"sha1", "sha256", "sha384", "sha512"}


class CaView(Protocol):
    """Read-only view of one issuing CA, as the responder needs it."""

    @property
    def certificate(self) -> x509.Certificate: ...

    def has_issued(self, serial: int) -> bool: ...

    def revocations(self) -> Mapping[int, Revocation]: ...


class CrlView:
    """A CA as its CRL shows it (the node's OCSP responder: the CA's records stay with the CA).

    Every serial counts as issued (RFC 6960 §2.2), so a serial not on the CRL is ``good``; the
    caller must not answer from a CRL past its nextUpdate (the node answers ``tryLater`` then)."""

    def __init__(self, certificate: x509.Certificate, crl: x509.CertificateRevocationList) -> None:
        self.certificate = certificate
        self._revocations = {entry.serial_number: _revocation_of(entry) for entry in crl}

    def has_issued(self, serial: int) -> bool:
        return True

    def revocations(self) -> Mapping[int, Revocation]:
        return self._revocations


def _revocation_of(entry: x509.RevokedCertificate) -> Revocation:
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        reason = "unspecified"
    return Revocation(entry.serial_number, reason, entry.revocation_date_utc)


def public_key_bits(cert: x509.Certificate) -> bytes:
    """The value of the subjectPublicKey BIT STRING: what OCSP key hashes are taken over."""
    key = x509_sm2.public_key_of(cert)
    if isinstance(key, Sm2PublicKey):
        return key.point()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def issuer_hashes(issuer: x509.Certificate, hash_name: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of ``issuer`` with ``hash_name``."""
    name = issuer.subject.public_bytes()
    return hashlib.new(hash_name, name).digest(), hashlib.new(hash_name, public_key_bits(issuer)).digest()


def make_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None,
                 hash_algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    """A DER OCSPRequest for one certificate (client side; SHA-256 CertID by default)."""
    builder = xocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hash_algorithm or hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def status_only(status: str) -> bytes:
    """An OCSPResponse with no answer, only a status: ``malformed_request``, ``internal_error``,
    ``try_later`` (RFC 6960 §4.2.1)."""
    return aocsp.OCSPResponse({"response_status": status}).dump()


def respond(request_der: bytes, ca_view: CaView, responder_signer: Signer, now: dt.datetime, *,
            validity: dt.timedelta = DEFAULT_VALIDITY) -> bytes:
    """The DER OCSPResponse for ``request_der`` (see the module docstring for the rules)."""
    responder_cert = responder_signer.certificate
    if responder_cert is None:
        raise InvalidInput("the OCSP responder signer needs its certificate")
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    if len(request_der) > MAX_REQUEST_BYTES:
        return status_only("malformed_request")
    try:
        request = aocsp.OCSPRequest.load(request_der, strict=True)
        tbs = request["tbs_request"]
        _ = tbs.native  # parse every field now, so a broken one cannot surface later
        items = list(tbs["request_list"])
        nonce_ext = next((e for e in (tbs["request_extensions"] or []) if e["extn_id"].native == "nonce"), None)
    except (ValueError, TypeError, KeyError, OverflowError):
        return status_only("malformed_request")
    if not items or len(items) > MAX_REQUESTS:
        return status_only("malformed_request")

    try:
        singles = [_single_response(item["req_cert"], ca_view, now, validity) for item in items]
    except Exception:  # the store behind ca_view failed: tell the client, do not crash the node
        return status_only("internal_error")

    response_data = {
        "responder_id": aocsp.ResponderId(
            name="by_key", value=x509_sm2.subject_key_identifier(x509_sm2.public_key_of(responder_cert)).digest),
        "produced_at": now.astimezone(dt.UTC).replace(microsecond=0),
        "responses": singles,
    }
    if nonce_ext is not None:
        # Echo the nonce exactly as sent, even if its inner encoding is not what RFC 8954 wants.
        response_data["response_extensions"] = [{
            "extn_id": "nonce", "critical": False,
            "extn_value": core.ParsableOctetString(nonce_ext["extn_value"].contents)}]
    tbs_response = aocsp.ResponseData(response_data)
    signature = responder_signer.sign(tbs_response.dump())
    basic = aocsp.BasicOCSPResponse({
        "tbs_response_data": tbs_response,
        "signature_algorithm": {"algorithm": responder_signer.algorithm.asn1crypto_name},
        "signature": signature,
        "certs": [_asn1_cert(responder_cert)],
    })
    return aocsp.OCSPResponse({"response_status": "successful",
                               "response_bytes": {"response_type": "basic_ocsp_response",
                                                  "response": basic}}).dump()


def _asn1_cert(cert: x509.Certificate) -> ax509.Certificate:
    return ax509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _single_response(cert_id: aocsp.CertId, ca_view: CaView, now: dt.datetime,
                     validity: dt.timedelta) -> dict:
    this_update = now.astimezone(dt.UTC).replace(microsecond=0)
    status: aocsp.CertStatus = aocsp.CertStatus(name="unknown", value=core.Null())
    hash_name = cert_id["hash_algorithm"]["algorithm"].native
    serial = cert_id["serial_number"].native
    if hash_name in _HASHES:
        name_hash, key_hash = issuer_hashes(ca_view.certificate, hash_name)
        if (cert_id["issuer_name_hash"].native == name_hash and cert_id["issuer_key_hash"].native == key_hash
                and ca_view.has_issued(serial)):
            revoked = ca_view.revocations().get(serial)
            if revoked is None:
                status = aocsp.CertStatus(name="good", value=core.Null())
            else:
                info = {"revocation_time": revoked.revoked_at.astimezone(dt.UTC)}
                if revoked.reason != "unspecified":
                    info["revocation_reason"] = revoked.reason
                status = aocsp.CertStatus(name="revoked", value=info)
    return {"cert_id": cert_id, "cert_status": status, "this_update": this_update,
            "next_update": this_update + validity}
