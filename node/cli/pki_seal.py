"""``gwx pki issue-seal`` and ``gwx pki verify-seal``.

``issue-seal --request REQ`` makes the seal for a key the unit made itself (pki.seal_enrolment): the
unit's request is checked, the seal certificate and SESeal are written to the response file ``--out``
and no key is made here.

Passphrases: the CA key passphrase comes from the usual source (``GWX_PASSPHRASE``,
``--passphrase-file`` or a prompt). The new seal key is encrypted with the same passphrase
unless ``--key-passphrase-file`` is given — which is the better choice whenever the unit, not
the CA operator, will hold the seal key: the CA passphrase then never has to be handed over.

``verify-seal`` exits 0 for a valid seal and prints a short summary; otherwise the central error
handler prints ``CODE: reason`` (or JSON with ``--json``) and exits 1 for a seal that fails
verification, 2 for input that is not a seal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from node.cli.passphrase import add_passphrase_option, get_passphrase
from pki import profiles
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates
from pki.crl import load_crls
from pki.errors import InvalidInput, KeyStoreError, MalformedEncoding
from pki.keystore import write_public_file
from pki.seal import describe_seal
from pki.seal_enrolment import issue_seal_for_request, read_seal_request
from pki.seal_store import CERT_FILE, KEY_FILE, SEAL_FILE, issue_seal
from pki.seal_verify import verify_seal

__all__ = ["describe_seal", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("issue-seal", help="make a unit's electronic seal (电子印章): key, certificate, SESeal")
    p.add_argument("--ca", required=True, type=Path, help="CA directory (its seal maker signs the seal)")
    p.add_argument("--unit", required=True, help="统一社会信用代码 of the unit")
    p.add_argument("--name", required=True, help="seal name, normally the unit's full name")
    p.add_argument("--image", type=Path, help="seal picture (PNG); default: a drawn red round seal")
    p.add_argument("--size-mm", type=int, default=42, help="displayed diameter in mm (default 42)")
    p.add_argument("--valid-days", type=int, metavar="N", help="validity of the seal and its certificate in days "
                   f"(default {profiles.SEAL.default_days})")
    p.add_argument("--out", required=True, type=Path,
                   help=f"directory for {SEAL_FILE}, {CERT_FILE}, {KEY_FILE}; with --request, the response file "
                        "(seal certificate, CA chain, SESeal) to send back")
    p.add_argument("--request", type=Path, metavar="REQUEST",
                   help="the unit made its seal key itself (gwx node request-seal, or on its token) and sent this "
                        "request: check it (self-signature, key type, names --unit) and make the seal for that "
                        "key. The key never comes here; the unit installs the response (gwx node install-certs)")
    p.add_argument("--key-passphrase-file", metavar="FILE",
                   help="encrypt the seal key with this passphrase instead of the CA passphrase (not with --request)")
    p.add_argument("--replace", action="store_true",
                   help="the unit already has a valid seal from this CA: make a new one anyway. The old seal is "
                        "NOT revoked — documents already sealed with it keep verifying until it expires; if its "
                        "key is lost or stolen, revoke it yourself (gwx pki revoke OLD/seal.esl). Without this "
                        "flag a second seal for a unit is refused (PKI_ALREADY_ISSUED)")
    add_passphrase_option(p)
    p.set_defaults(func=_issue_seal)

    p = sub.add_parser("verify-seal", help="verify an electronic seal (.esl) against trust roots")
    p.add_argument("seal", type=Path, help="SESeal file (DER)")
    p.add_argument("--trust", required=True, type=Path, action="append", help="trusted root certificate(s), PEM")
    p.add_argument("--crl", type=Path, action="append", default=[], help="CRL file(s), PEM (one or several) or DER")
    p.add_argument("--chain", type=Path, action="append", default=[], metavar="FILE",
                   help="intermediate CA certificates (PEM, e.g. the issuing CA's chain.pem) for a seal "
                        "made under an intermediate CA: an SESeal carries its maker's certificate alone")
    p.add_argument("--unit", help="require the seal to belong to this 统一社会信用代码")
    p.add_argument("--at", help="judge at this time (ISO 8601, default now)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_verify_seal)


def _issue_seal(args: argparse.Namespace) -> int:
    if args.request:
        return _issue_seal_for_request(args)
    passphrase = get_passphrase(args, what="CA key")
    key_passphrase = passphrase
    if args.key_passphrase_file:
        key_passphrase = Path(args.key_passphrase_file).read_bytes().rstrip(b"\r\n")
        if not key_passphrase:
            raise KeyStoreError(f"passphrase file {args.key_passphrase_file} is empty", code="PKI_NO_PASSPHRASE")
    image = _read(args.image) if args.image else None
    ca = CertificateAuthority.open(args.ca, passphrase)
    cred = issue_seal(ca, args.unit, args.name, args.out, key_passphrase, image_png=image,
                      size_mm=args.size_mm, valid_days=args.valid_days, replace=args.replace)
    s = cred.seal
    print(f"seal '{s.name}' ({s.unit_code}) written to {args.out}:")
    print(f"  {SEAL_FILE}  esID {s.es_id}, valid {s.valid_start:%Y-%m-%d} – {s.valid_end:%Y-%m-%d}")
    print(f"  {CERT_FILE}  serial {cred.certificate.serial_number:x}")
    print(f"  {KEY_FILE}  encrypted, owner-only")
    return 0


def _issue_seal_for_request(args: argparse.Namespace) -> int:
    if args.key_passphrase_file:
        raise InvalidInput("--key-passphrase-file is for a key this command makes; with --request the unit "
                           "holds its key", field="key_passphrase_file")
    data = _read(args.request)
    request = read_seal_request(data, args.unit)  # refused before the CA passphrase is asked for
    print(f"seal request for unit {request.unit_code} ({request.common_name}), key fingerprint "
          f"{request.key_fingerprint}", flush=True)
    image = _read(args.image) if args.image else None
    ca = CertificateAuthority.open(args.ca, get_passphrase(args, what="CA key"))
    issued = issue_seal_for_request(ca, data, args.unit, args.name, image_png=image, size_mm=args.size_mm,
                                    valid_days=args.valid_days, replace=args.replace)
    write_public_file(args.out, issued.response)
    s, cert = issued.seal, issued.certificate
    print(f"seal '{s.name}' ({s.unit_code}) made by '{ca.name}': esID {s.es_id}, valid "
          f"{s.valid_start:%Y-%m-%d} – {s.valid_end:%Y-%m-%d}")
    print(f"  seal certificate serial {cert.serial_number:x}, SHA-256 {cert.fingerprint(hashes.SHA256()).hex(':')}")
    print(f"response written to {args.out}: send it to the unit (gwx node install-certs)")
    return 0


def _verify_seal(args: argparse.Namespace) -> int:
    data = _read(args.seal)
    roots = [c for path in args.trust for c in load_certificates(_read(path))]
    crls = [crl for path in args.crl for crl in _load_crls(_read(path), path)]
    at = _parse_time(args.at) if args.at else None
    intermediates = [c for path in args.chain for c in load_certificates(_read(path))]
    result = verify_seal(data, trust_roots=roots, at=at, crls=crls if args.crl else None, unit_code=args.unit,
                         intermediates=intermediates)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        s = result.seal
        print(f"seal OK: {s.name} ({result.unit_code or 'no unit code'}), esID {s.es_id}")
        print(f"  valid {s.valid_start:%Y-%m-%d} – {s.valid_end:%Y-%m-%d}; made by "
              f"{result.maker_path[0].subject.rfc4514_string()}; "
              f"revocation {'checked' if result.revocation_checked else 'NOT checked (no --crl)'}")
    return 0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MalformedEncoding(f"cannot read {path}: {exc.strerror}", code="PKI_FILE_UNREADABLE") from None


def _load_crls(data: bytes, path: Path) -> list[x509.CertificateRevocationList]:
    try:
        return load_crls(data)
    except MalformedEncoding as exc:
        raise MalformedEncoding(f"{path} is not a CRL: {exc.message}") from None


def _parse_time(text: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise MalformedEncoding(f"--at {text!r} is not an ISO 8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
