"""A unit's seal without handing its key to the seal maker: request, issue, install.

1. Where the unit keeps its seal key — its node (``gwx node request-seal``) or a PKCS#11 token —
   it makes the key and one request (:func:`seal_request`, signed through a :class:`Signer`, so a
   token key never leaves the token). On a node :func:`create_seal_request` writes ``seal.key``
   (encrypted with the node's passphrase, 0600) and ``seal.req.pem`` into the unit's seal directory.
2. The PKI admin (``gwx pki issue-seal --request``): :func:`issue_seal_for_request` checks the
   request (:mod:`pki.csr`; one key, naming the unit the admin names), issues the seal certificate
   and signs the SESeal with the CA's seal maker exactly as ``issue-seal`` does for a key it makes
   (:func:`pki.seal_store.make_seal`). The response holds the seal certificate, the intermediate CAs
   above it, and the SESeal as a PEM block labelled ``ELECTRONIC SEAL`` (its DER, base64).
3. The unit (``gwx node install-certs``): :func:`install_seal_response` checks the certificate is
   for its key, names its unit, is a seal certificate under the node's root, and that the SESeal
   verifies (maker under the same root, lists that certificate); then writes ``seal.crt`` and
   ``seal.esl`` together. The seal directory is then what ``issue-seal`` writes (plus the request).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .algorithms import DEFAULT, SM2_SM3, PublicKey, SignatureAlgorithm, by_name
from .ca import CertificateAuthority
from .certificates import pem, unit_code_of, utcnow
from .csr import REQUEST_LABEL, CheckedRequest, make_request, pem_block, pem_blocks, read_requests
from .errors import (
    GwxError,
    HsmKeyExists,
    HsmSm2Unsupported,
    InvalidInput,
    MalformedEncoding,
    RequestInvalid,
    ResponseInvalid,
    ResponseUntrusted,
    SealExists,
    SealVerificationFailed,
)
from .keystore import read_private_key, write_private_key, write_public_file, write_public_files
from .node_enrolment import same_key, split_response, verified_path
from .seal import Seal
from .seal_picture import STANDARD_DIAMETER_MM
from .seal_store import CERT_FILE, KEY_FILE, SEAL_FILE, make_seal
from .seal_token import TOKEN_FILE, TokenRef, make_token_key, read_token_ref, token_public_key
from .seal_verify import verify_seal
from .signer import Signer, SoftwareSigner
from .trust import Purpose
from .unit_code import validate_unit_code
from .x509_sm2 import public_key_of

SEAL_LABEL = "ELECTRONIC SEAL"
SEAL_REQUEST_FILE = "seal.req.pem"


@dataclass(frozen=True)
class IssuedSeal:
    unit_code: str
    certificate: x509.Certificate
    seal: Seal
    response: bytes
    key_fingerprint: str


def seal_request(signer: Signer, unit_code: str, name: str) -> bytes:
    """The request file (PEM, with a header for people) for a seal key held by ``signer``."""
    _check_request_fields(unit_code, name)
    der = make_request(signer, common_name=name, unit_code=unit_code)
    fingerprint = read_requests(pem_block(REQUEST_LABEL, der))[0].key_fingerprint
    return (f"# gwx seal request: unit {unit_code} {name}\n"
            f"# key fingerprint {fingerprint} — the PKI admin's gwx pki issue-seal --request prints the same\n"
            ).encode() + pem_block(REQUEST_LABEL, der)


def _check_request_fields(unit_code: str, name: str) -> None:
    validate_unit_code(unit_code)
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise InvalidInput(f"seal name {name!r} must be 1–64 characters", field="name")


def create_seal_request(seal_dir: str | Path, unit_code: str, name: str, passphrase: bytes,
                        algorithm: SignatureAlgorithm | str = DEFAULT) -> bytes:
    """Make a seal key in ``seal_dir`` (``seal.key``, encrypted, 0600) and its request (``seal.req.pem``)."""
    out = Path(seal_dir)
    _refuse_made(out)
    algorithm = by_name(algorithm) if isinstance(algorithm, str) else algorithm
    key = algorithm.generate()
    seal_request(SoftwareSigner(key), unit_code, name)  # checks code and name before anything is written
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    key_path = write_private_key(out / KEY_FILE, key, passphrase)
    try:
        return write_seal_request(out, SoftwareSigner(key), unit_code, name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            key_path.unlink()
        raise


def create_token_seal_request(seal_dir: str | Path, unit_code: str, name: str, ref: TokenRef,
                              algorithm: SignatureAlgorithm | str = DEFAULT) -> bytes:
    """Make a seal key on the token ``ref`` names (non-extractable), ``token.toml`` saying where it is
    (:mod:`pki.seal_token`), and its request (``seal.req.pem``), signed on the token."""
    out = Path(seal_dir)
    _refuse_made(out)
    algorithm = by_name(algorithm) if isinstance(algorithm, str) else algorithm
    if algorithm is SM2_SM3:  # a P-256 token key would put a foreign key into a 国密 network
        raise HsmSm2Unsupported("a seal key on a PKCS#11 token is not available on a 国密 network: no PKCS#11 "
                                "mechanism gwx can use signs SM2 — make the seal key on the node (without "
                                "--token-module)", code="PKI_HSM_SM2_UNSUPPORTED", algorithm=algorithm.name)
    _check_request_fields(unit_code, name)  # before the key is made
    try:
        with make_token_key(out, ref, algorithm) as signer:
            return write_seal_request(out, signer, unit_code, name)
    except HsmKeyExists:
        raise  # not ours to delete: a key of that label was there before
    except BaseException:
        # The key was made but no request came of it: a retry must find the token and the
        # directory as they were, not a key in the way and a token.toml without a request.
        (out / TOKEN_FILE).unlink(missing_ok=True)
        from .pkcs11 import delete_token_key  # python-pkcs11 is loaded where a token is used

        with contextlib.suppress(GwxError):
            delete_token_key(ref.module, ref.token, ref.pin(), ref.key_label)
        raise


def write_seal_request(seal_dir: str | Path, signer: Signer, unit_code: str, name: str) -> bytes:
    """The request for a seal key ``signer`` holds — software, or a token's (pki.pkcs11.Pkcs11Signer,
    the key never leaving it) — written to ``seal_dir``/``seal.req.pem``, where the install looks."""
    out = Path(seal_dir)
    if (out / SEAL_REQUEST_FILE).exists() or (out / SEAL_FILE).exists():
        _refuse_made(out)
    text = seal_request(signer, unit_code, name)
    write_public_file(out / SEAL_REQUEST_FILE, text)
    return text


def _refuse_made(out: Path) -> None:
    held = [n for n in (KEY_FILE, TOKEN_FILE, SEAL_FILE, SEAL_REQUEST_FILE) if (out / n).exists()]
    if held:
        raise SealExists(f"{out} already holds {', '.join(held)}: this unit has made its seal key. Hand in "
                         f"{out / SEAL_REQUEST_FILE} again if the PKI admin needs it", held=held)


def read_seal_request(data: bytes, unit_code: str | None = None,
                      network: SignatureAlgorithm | None = None) -> CheckedRequest:
    """The one request of a seal request file, naming ``unit_code`` when given, of ``network``'s profile."""
    requests = read_requests(data, network)
    if len(requests) != 1 or requests[0].unit_code is None or requests[0].role is not None:
        raise RequestInvalid("a seal request holds one key naming its unit (organizationIdentifier); this is "
                             + ("a node's request (gwx pki sign-request)" if any(r.role for r in requests)
                                else f"{len(requests)} request(s) without one"), code="PKI_REQUEST_ROLES")
    request = requests[0]
    try:
        validate_unit_code(request.unit_code)
    except InvalidInput as exc:
        raise RequestInvalid(f"the request's unit: {exc.message}", code="PKI_REQUEST_SUBJECT") from None
    if unit_code is not None and request.unit_code != unit_code:
        raise RequestInvalid(f"the request is for unit {request.unit_code}, not {unit_code} as you said",
                             code="PKI_REQUEST_UNIT_MISMATCH", unit=request.unit_code)
    return request


def issue_seal_for_request(ca: CertificateAuthority, data: bytes, unit_code: str, name: str, *,
                           image_png: bytes | None = None, size_mm: int = STANDARD_DIAMETER_MM,
                           valid_days: int | None = None, replace: bool = False,
                           now: dt.datetime | None = None) -> IssuedSeal:
    """Seal certificate and SESeal for the key a unit's request names; the name is the admin's."""
    request = read_seal_request(data, validate_unit_code(unit_code), ca.algorithm)
    cert, seal = make_seal(ca, unit_code, name, request.public_key, image_png=image_png, size_mm=size_mm,
                           valid_days=valid_days, now=now, replace=replace)
    header = (f"# gwx seal response: unit {unit_code} {name}, seal certificate and SESeal for the key with\n"
              f"# fingerprint {request.key_fingerprint}, made by {ca.name}. Where the key is:\n"
              f"#   gwx node install-certs --dir NODE_DIR THIS_FILE\n").encode()
    response = header + ca.certificate_file(cert) + pem_block(SEAL_LABEL, seal.der)
    return IssuedSeal(unit_code, cert, seal, response, request.key_fingerprint)


def is_seal_response(data: bytes) -> bool:
    return f"-----BEGIN {SEAL_LABEL}-----".encode() in data


def seal_response_unit(data: bytes) -> str:
    """The unit a seal response is for (the certificate's), to find its seal directory by."""
    leaves, _ = split_response(data)
    code = unit_code_of(leaves[0]) if len(leaves) == 1 else None
    if code is None:
        raise ResponseInvalid("a seal response holds one seal certificate naming its unit",
                              code="PKI_RESPONSE_MALFORMED")
    return code


def requested_unit(seal_dir: str | Path) -> str:
    """The unit this seal directory's request names (what an install checks the response against)."""
    try:
        return read_seal_request((Path(seal_dir) / SEAL_REQUEST_FILE).read_bytes()).unit_code or ""
    except FileNotFoundError:
        raise ResponseInvalid(f"{seal_dir} holds no seal request ({SEAL_REQUEST_FILE}): make one with gwx node "
                              "request-seal before installing what the seal maker sends back",
                              code="PKI_RESPONSE_NO_REQUEST") from None


def seal_key_of(seal_dir: str | Path, passphrase: bytes) -> PublicKey:
    """The public half of the seal key of ``seal_dir``: read from its token when ``token.toml`` says
    it is on one, else from ``seal.key`` (opening it proves the passphrase)."""
    ref = read_token_ref(seal_dir)
    if ref is not None:
        return token_public_key(ref)
    return read_private_key(Path(seal_dir) / KEY_FILE, passphrase).public_key()


def install_seal_response(seal_dir: str | Path, data: bytes, root: x509.Certificate, public_key: PublicKey,
                          now: dt.datetime | None = None) -> Seal:
    """Check a seal response against the unit's key (``public_key``: of ``seal.key``, or of the token's
    key) and request, and the node's ``root``; write ``seal.crt`` and ``seal.esl`` into ``seal_dir``."""
    seal_dir = Path(seal_dir)
    unit_code = requested_unit(seal_dir)
    leaves, intermediates = split_response(data)
    try:
        blocks = pem_blocks(data, SEAL_LABEL)
    except MalformedEncoding as exc:
        raise ResponseInvalid(exc.message, code="PKI_RESPONSE_MALFORMED") from None
    if len(blocks) != 1 or len(leaves) != 1:
        raise ResponseInvalid(f"a seal response holds one seal certificate and one {SEAL_LABEL}; this has "
                              f"{len(leaves)} and {len(blocks)}", code="PKI_RESPONSE_MALFORMED")
    cert, seal_der, now = leaves[0], blocks[0], now or utcnow()
    if not same_key(public_key_of(cert), public_key):
        raise ResponseInvalid("the seal certificate is for another key than this unit's: the response answers "
                              "another request", code="PKI_RESPONSE_KEY_MISMATCH")
    if unit_code_of(cert) != unit_code:
        raise ResponseInvalid(f"the seal certificate names unit {unit_code_of(cert)}, the request was for "
                              f"{unit_code}", code="PKI_RESPONSE_UNIT_MISMATCH")
    path = verified_path(cert, root, intermediates, (Purpose.SEAL,), now, "the seal certificate")
    try:
        seal = verify_seal(seal_der, trust_roots=[root], at=now, unit_code=unit_code,
                           intermediates=intermediates).seal
    except SealVerificationFailed as exc:
        raise ResponseUntrusted(f"the SESeal does not verify under this node's root certificate ({exc.code}: "
                                f"{exc.message})", reason=exc.code) from None
    if not seal.matches_certificate(cert):
        raise ResponseInvalid("the SESeal does not list the seal certificate sent with it",
                              code="PKI_RESPONSE_KEY_MISMATCH")
    write_public_files({seal_dir / CERT_FILE: pem(cert) + b"".join(pem(c) for c in path[1:-1]),
                        seal_dir / SEAL_FILE: seal_der})
    return seal
