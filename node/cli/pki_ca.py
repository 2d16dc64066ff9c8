"""``gwx pki init-root``, ``issue-node``, ``issue-intermediate``, ``issue-directory-signer`` and ``show``, and
the shape every ``issue-*-signer`` command shares (:func:`add_signer_issue_parser`, :func:`issue_signer`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from node.cli.passphrase import add_passphrase_option, get_passphrase
from pki import directory_signer, profiles
from pki.algorithms import NETWORK_PROFILES, SM2_SM3, algorithm_for_profile
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates, node_id_of, unit_code_of
from pki.errors import GwxError, MalformedEncoding
from pki.sm2 import Sm2PublicKey
from pki.x509_sm2 import public_key_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init-root", help="create the network root CA")
    p.add_argument("--dir", required=True, type=Path, help="CA directory to create")
    p.add_argument("--name", required=True, help="CA name, e.g. 临沂市电子政务CA")
    p.add_argument("--profile", choices=sorted(NETWORK_PROFILES), default=None,
                   help="the network's cryptography, carried by every certificate and CRL the CA makes: "
                        "international (P-256, SHA-256; the default) or sm (国密: SM2 keys, SM2-with-SM3 "
                        "certificates and CRLs, SM2 keys encrypted with SM4 at rest)")
    p.add_argument("--algorithm", default=None,
                   help="ecdsa-p256-sha256 (default), rsa3072-sha256 or sm2-sm3 (what --profile sm chooses)")
    p.add_argument("--valid-days", type=int, metavar="N",
                   help=f"validity of the root certificate in days (default {profiles.ROOT_CA.default_days})")
    add_passphrase_option(p)
    p.set_defaults(func=_init_root)

    p = sub.add_parser("issue-intermediate", help="create an intermediate CA under an existing CA")
    p.add_argument("--ca", required=True, type=Path, help="issuing CA directory")
    p.add_argument("--dir", required=True, type=Path, help="new intermediate CA directory")
    p.add_argument("--name", required=True, help="the intermediate CA's name, e.g. 兰山区CA")
    p.add_argument("--valid-days", type=int, metavar="N", help=f"validity in days (default "
                   f"{profiles.INTERMEDIATE_CA.default_days}, within the issuing CA's own)")
    p.add_argument("--levels-below", type=int, default=0, metavar="N",
                   help="levels of intermediate CAs the new CA may itself create (default 0: it issues "
                        "only nodes and seals; 1 for e.g. a city CA whose counties get their own CAs)")
    add_passphrase_option(p)
    p.set_defaults(func=_issue_intermediate)

    p = sub.add_parser("issue-node", help="issue a node's TLS, signing and encryption credentials")
    p.add_argument("--ca", required=True, type=Path, help="CA directory")
    p.add_argument("--node-id", required=True,
                   help="the node's id: lower-case letters, digits, '.' or '-' (it names the node to its peers)")
    p.add_argument("--host", required=True, help="DNS name or IP address the node listens on")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="directory for tls/sign/enc .crt and .key and root.crt (one already holding node "
                        "keys is refused unless --replace)")
    p.add_argument("--valid-days", type=int, metavar="N",
                   help=f"validity of the three certificates in days (default {profiles.NODE_TLS.default_days})")
    p.add_argument("--replace", action="store_true",
                   help="the CA already issued credentials for this node id that are still valid: issue new ones "
                        "and revoke the old (reason superseded). The old keys stop working once you publish the "
                        "next CRL (gwx pki crl) — install the new credentials on the node first. Without this "
                        "flag a second issue for a node id is refused (PKI_ALREADY_ISSUED)")
    p.add_argument("--renew", action="store_true",
                   help="renew a running node's credentials: issue new ones and keep the old valid (not "
                        "revoked) so that peers accept both during an overlap; the node operator installs them "
                        "with gwx node renew, no restart. Write them to a new --out directory")
    add_passphrase_option(p)
    p.set_defaults(func=_issue_node)

    add_signer_issue_parser(
        sub, "issue-directory-signer", help="issue a key that signs the network directory (gwx net build --signer)",
        description="Issue a directory signer: a key whose certificate may sign the network directory and nothing "
                    "else (no envelopes, seals or TLS), written to --out as signer.key (encrypted with the CA "
                    "passphrase), signer.crt and root.crt. CAs made by this version already hold one (dirsigner.*, "
                    "gwx net build --ca); this gives one to an older CA, or to an operator who should sign "
                    "directories without holding the CA.",
        default_days=profiles.DIRECTORY_SIGNER.default_days, func=_issue_directory_signer)

    p = sub.add_parser("show", help="show a certificate, CRL or seal in human form")
    p.add_argument("file", type=Path, metavar="FILE",
                   help="a certificate (.crt; a chain file shows each of its certificates, leaf first), CRL or "
                        "seal (.esl)")

    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_show)


def _init_root(args: argparse.Namespace) -> int:
    passphrase = get_passphrase(args, confirm=True, what="CA key")
    algorithm = algorithm_for_profile(args.profile, args.algorithm)
    ca = CertificateAuthority.init_root(args.dir, args.name, passphrase, algorithm, args.valid_days)
    print(f"root CA '{ca.name}' created in {args.dir} ({ca.algorithm.name})")
    print(f"  trust anchor: {args.dir / 'root.crt'}  (serial {ca.certificate.serial_number:x})")
    transport = ca.separate_transport()
    if transport is not None:
        print(f"  node TLS (P-256, TLS only): {args.dir / 'transport' / 'root.crt'}  "
              f"(serial {transport.certificate.serial_number:x}) — give it to nodes with the root (--tls-root)")
    return 0


def _issue_intermediate(args: argparse.Namespace) -> int:
    passphrase = get_passphrase(args, what="CA key")
    parent = CertificateAuthority.open(args.ca, passphrase)
    ca = parent.create_intermediate(args.dir, args.name, passphrase, args.valid_days,
                                    levels_below=args.levels_below)
    print(f"intermediate CA '{ca.name}' created in {args.dir} (issued by '{parent.name}')")
    return 0


def _issue_node(args: argparse.Namespace) -> int:
    passphrase = get_passphrase(args, what="CA key")
    ca = CertificateAuthority.open(args.ca, passphrase)
    before = set(ca.revocations())
    creds = ca.issue_node(args.node_id, args.host, args.out, passphrase, valid_days=args.valid_days,
                          replace=args.replace, renew=args.renew)
    print(f"node '{creds.node_id}' credentials written to {args.out}:")
    for role, cert in (("tls", creds.tls_certificate), ("sign", creds.signing_certificate),
                       ("enc", creds.encryption_certificate)):
        print(f"  {role}.crt  serial {cert.serial_number:x}  valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    superseded = sorted(set(ca.revocations()) - before)
    if superseded:
        print("revoked the replaced certificates (superseded): " + ", ".join(f"{s:x}" for s in superseded))
        print("  publish a new CRL (gwx pki crl) once the node runs with the new credentials")
    if args.renew:
        print(f"  the earlier certificates stay valid; on the node: gwx node renew --dir NODE_DIR --from {args.out} "
              "--from-passphrase-file FILE (the keys are under the passphrase given here)")
    return 0


def add_signer_issue_parser(sub: argparse._SubParsersAction, name: str, *, help: str, description: str,
                            default_days: int, func: Callable[[argparse.Namespace], int],
                            ca_help: str = "issuing CA directory") -> None:
    """A ``gwx pki issue-*-signer`` command: --ca, --out, --valid-days and the CA's passphrase (the
    directory, OCSP and TSA signers; :meth:`pki.ca.CertificateAuthority.issue_signer_key`)."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("--ca", required=True, type=Path, help=ca_help)
    p.add_argument("--out", required=True, type=Path, help="signer directory to write (refused if it holds a key)")
    p.add_argument("--valid-days", type=int, metavar="N",
                   help=f"validity in days (default {default_days}, never beyond the CA's)")
    add_passphrase_option(p)
    p.set_defaults(func=func)


def issue_signer(args: argparse.Namespace, issue: Callable[..., Any]) -> tuple[CertificateAuthority, x509.Certificate]:
    """Run an ``issue-*-signer`` command's ``issue(ca, out, passphrase, valid_days=…)``: the CA and the
    new signer's certificate."""
    passphrase = get_passphrase(args, what="CA key")
    ca = CertificateAuthority.open(args.ca, passphrase)
    return ca, issue(ca, args.out, passphrase, valid_days=args.valid_days).certificate


def _issue_directory_signer(args: argparse.Namespace) -> int:
    _, cert = issue_signer(args, directory_signer.issue)
    print(f"directory signer written to {args.out} (serial {cert.serial_number:x}, "
          f"valid until {cert.not_valid_after_utc:%Y-%m-%d}); sign with gwx net build --signer {args.out}")
    return 0


def _show(args: argparse.Namespace) -> int:
    data = args.file.read_bytes()
    info = describe_file(data)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
    elif info["type"] == "certificate chain":
        for i, certificate in enumerate(info["certificates"], 1):
            print(f"certificate {i} of {len(info['certificates'])}:")
            _print_human(certificate, "  ")
    else:
        _print_human(info)
    return 0


SHOWN_KINDS = ("gwx pki show reads certificates (.crt, PEM or DER), CRLs (.crl or crl.pem, PEM or DER) "
               "and seals (.esl, DER)")
# Files a user may well point show at by mistake, by their first bytes: what they are and what reads them.
_OTHER_KINDS = ((b"%PDF-", "a PDF document (to check a sealed document, gwx doc verify its package)"),
                (b"PK\x03\x04", "a ZIP archive (a document package? gwx doc verify PKG.zip)"),
                # gwx's own hand-over files open with a '#' line saying what they are
                (b"# gwx node enrolment request", "a node's enrolment request (gwx pki sign-request checks it and "
                                                 "prints the node id and key fingerprint first)"),
                (b"# gwx node enrolment response", "a node's enrolment response (gwx node install-certs checks it "
                                                  "and prints each certificate it installs)"),
                (b"# gwx seal request", "a unit's seal request (gwx pki issue-seal --request checks it and prints "
                                        "the unit and key fingerprint first)"),
                (b"# gwx seal response", "a unit's seal response (gwx node install-certs checks it and prints the "
                                         "seal it installs)"))


def describe_file(data: bytes) -> dict[str, Any]:
    """Recognise a certificate, CRL or seal (PEM or DER) and describe it."""
    stripped = data.lstrip()
    if stripped.startswith(b"-----BEGIN CERTIFICATE"):
        certificates = load_certificates(data)
        if len(certificates) == 1:
            return describe_certificate(certificates[0])
        # a chain file (a node's tls.crt: leaf first, then the CAs above it): every one, in order
        return {"type": "certificate chain", "certificates": [describe_certificate(c) for c in certificates]}
    if stripped.startswith(b"-----BEGIN X509 CRL"):
        return describe_crl(x509.load_pem_x509_crl(data))
    if stripped.startswith(b"-----BEGIN "):
        label = stripped[len(b"-----BEGIN "):].split(b"-----", 1)[0].decode("ascii", "replace").lower()
        what = "a private key (never shown)" if "private key" in label else f"PEM '{label}'"
        raise MalformedEncoding(f"this file is {what}, none of the kinds show reads: {SHOWN_KINDS}")
    for magic, what in _OTHER_KINDS:
        if stripped.startswith(magic):
            raise MalformedEncoding(f"this file is {what}, none of the kinds show reads: {SHOWN_KINDS}")
    for loader, describe in ((x509.load_der_x509_certificate, describe_certificate),
                             (x509.load_der_x509_crl, describe_crl)):
        try:
            return describe(loader(data))
        except ValueError:
            pass
    try:
        from pki.seal import parse_seal
        from pki.seal_verify import describe_seal
    except ImportError:  # seal support not installed in this build
        raise MalformedEncoding("not a certificate or CRL") from None
    try:
        seal = parse_seal(data)
    except GwxError as exc:  # not a certificate or CRL either: say what show reads (and, for DER, why not a seal)
        why = f"; as a seal: {exc.message}" if data[:1] == b"\x30" else ""
        raise MalformedEncoding(f"not a certificate, CRL or seal — {SHOWN_KINDS}{why}", seal_error=exc.code) from None
    return {"type": "seal", **describe_seal(seal)}


def describe_certificate(cert: x509.Certificate) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "certificate",
        "subject": _name(cert.subject),
        "issuer": _name(cert.issuer),
        "serial": f"{cert.serial_number:x}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "signature_algorithm": _signature_algorithm(cert),
        "public_key": _key_type(cert),
        "sha256_fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
    }
    for ext in cert.extensions:
        v = ext.value
        if isinstance(v, x509.BasicConstraints):
            info["ca"] = v.ca
        elif isinstance(v, x509.KeyUsage):
            info["key_usage"] = [f for f in ("digital_signature", "content_commitment", "key_encipherment",
                                             "key_agreement", "key_cert_sign", "crl_sign") if getattr(v, f)]
        elif isinstance(v, x509.ExtendedKeyUsage):
            info["extended_key_usage"] = [o._name for o in v]
        elif isinstance(v, x509.SubjectAlternativeName):
            info["subject_alt_names"] = [str(g.value) for g in v]
    if node_id_of(cert):
        info["node_id"] = node_id_of(cert)
    if unit_code_of(cert):
        info["unit_code"] = unit_code_of(cert)
    return info


# pyca knows no SM2 names: the 国密 profile's (pki.sm2), as OpenSSL names them.
_SM2_NAMES = {SM2_SM3.oid: "SM2-with-SM3"}


def _signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    return _SM2_NAMES.get(oid.dotted_string, oid._name)


def _key_type(cert: x509.Certificate) -> str:
    try:
        key = public_key_of(cert)
    except GwxError:
        return "unsupported"
    return "SM2" if isinstance(key, Sm2PublicKey) else type(key).__name__.lstrip("_")


def describe_crl(crl: x509.CertificateRevocationList) -> dict[str, Any]:
    revoked = []
    for r in crl:
        entry = {"serial": f"{r.serial_number:x}", "revoked_at": r.revocation_date_utc.isoformat()}
        try:
            entry["reason"] = r.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except x509.ExtensionNotFound:
            pass
        revoked.append(entry)
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    return {"type": "crl", "issuer": _name(crl.issuer), "crl_number": number,
            "last_update": crl.last_update_utc.isoformat(),
            "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
            "revoked": revoked}


def _name(name: x509.Name) -> dict[str, str]:
    # rfc4514_string() escapes non-ASCII; people want 临沂市 intact.
    return {attr.oid._name: str(attr.value) for attr in name}




def _print_human(info: dict[str, Any], indent: str = "") -> None:
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_human(value, indent + "  ")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{indent}{key}:")
            for item in value:
                print(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, list):
            print(f"{indent}{key}: {', '.join(map(str, value)) if value else '(none)'}")
        else:
            print(f"{indent}{key}: {value}")
