"""``gwx node request``, ``request-seal`` and ``install-certs``: enrolment on the node's side.

The node operator makes the node's keys and its units' seal keys here, hands the PKI admin request
files, and installs what comes back. None of these commands reads a CA directory or its passphrase:
the passphrase asked for is the node's own (``GWX_PASSPHRASE``, ``--passphrase-file`` or a prompt),
the one ``gwx node run`` opens the keys with. The PKI admin's side is ``gwx pki sign-request`` and
``gwx pki issue-seal --request`` (pki.node_enrolment, pki.seal_enrolment).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from node.cli.passphrase import add_passphrase_option, get_passphrase
from pki.algorithms import DEFAULT
from pki.certificates import load_certificate
from pki.errors import InvalidInput, ResponseInvalid
from pki.keystore import write_public_file
from pki.node_enrolment import REQUEST_FILE, ROOT_FILE, create_node_request, install_node_response
from pki.seal_enrolment import (
    SEAL_REQUEST_FILE,
    create_seal_request,
    create_token_seal_request,
    install_seal_response,
    is_seal_response,
    seal_key_of,
    seal_response_unit,
)
from pki.seal_token import TOKEN_FILE, TokenRef
from pki.unit_code import validate_unit_code
from pki.x509_sm2 import network_algorithm

FLOW = ("Enrolment: gwx node request (here) → the PKI admin's gwx pki sign-request → gwx node install-certs "
        "(here); for each unit's seal: gwx node request-seal → gwx pki issue-seal --request → gwx node "
        "install-certs. Then gwx node init without --ca. The CA directory and its passphrase never come here.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("request", help="make this node's keys and one certificate request for the PKI admin",
                       description="Make the node's TLS, signing and encryption keys in NODE_DIR/credentials "
                                   "(encrypted with the node passphrase, mode 600) and write one request file "
                                   "(three PKCS#10 requests, PEM) for the PKI admin, who signs it with gwx pki "
                                   "sign-request. The request names the node id; the CA decides everything "
                                   "else. " + FLOW)
    p.add_argument("--dir", required=True, type=Path, help="the node directory (created if missing)")
    p.add_argument("--node-id", required=True,
                   help="this node's id: lower-case letters, digits, '.' or '-' (its peers know it by it)")
    p.add_argument("--root", required=True, type=Path, metavar="ROOT.crt",
                   help="the network's root certificate, from the PKI admin: compare the SHA-256 fingerprint "
                        "printed with the one the admin gives you another way. Kept as credentials/root.crt; "
                        "install-certs checks the response against it")
    p.add_argument("--tls-root", type=Path, metavar="TLS-ROOT.crt",
                   help="on a 国密 network only: its P-256 transport root (the CA directory's transport/root.crt), "
                        "which node TLS certificates chain to — Python's TLS cannot use SM2 (docs/architecture.md, "
                        "TLS on a 国密 network). Compare its fingerprint too; kept as credentials/tls-root.crt")
    p.add_argument("--out", required=True, type=Path, metavar="REQUEST",
                   help=f"the request file to hand the PKI admin (a copy stays in credentials/{REQUEST_FILE})")
    p.add_argument("--algorithm", default=None,
                   help="key type: ecdsa-p256-sha256, rsa3072-sha256 or sm2-sm3; by default the network's as "
                        "its root shows (sm2-sm3 under a 国密 root made with --profile sm, else ecdsa-p256-sha256)")
    add_passphrase_option(p)
    p.set_defaults(func=_request)

    p = sub.add_parser("request-seal", help="make a unit's seal key (on this node or its token) and a seal request",
                       description="Make a hosted unit's seal key in NODE_DIR/units/CODE (seal.key, encrypted "
                                   "with the node passphrase, mode 600) — or, with --token-module, on the unit's "
                                   "PKCS#11 token (UKey, HSM; not on a 国密 network: no PKCS#11 mechanism here signs SM2), where it is "
                                   "made non-extractable and stays; "
                                   "units/CODE/token.toml then says where it is and where the node reads the PIN "
                                   "(--pin-file, owner-only, or --pin-env) — and a request for the seal maker (gwx "
                                   "pki issue-seal --request). " + FLOW)
    p.add_argument("--dir", required=True, type=Path, help="the node directory (as given to gwx node request)")
    p.add_argument("--unit", required=True, help="统一社会信用代码 of the unit")
    p.add_argument("--name", required=True, help="the unit's full name (the PKI admin decides the seal's name)")
    p.add_argument("--out", required=True, type=Path, metavar="REQUEST",
                   help=f"the request file to hand the PKI admin (a copy stays in units/CODE/{SEAL_REQUEST_FILE})")
    token = p.add_argument_group("seal key on a PKCS#11 token (all of --token-module, --token, --key-label and "
                                 "one PIN source)")
    token.add_argument("--token-module", metavar="LIB.so", help="the token's PKCS#11 library")
    token.add_argument("--token", metavar="LABEL", help="the token's label")
    token.add_argument("--key-label", metavar="LABEL", help="the label to give the new key on the token")
    pin = token.add_mutually_exclusive_group()
    pin.add_argument("--pin-file", type=Path, metavar="FILE",
                     help="file holding the token's user PIN (mode 600); the node reads it when it starts")
    pin.add_argument("--pin-env", metavar="VAR", help="environment variable holding the PIN (set for the node too)")
    add_passphrase_option(p)
    p.set_defaults(func=_request_seal)

    p = sub.add_parser("install-certs", help="install the certificates (or a seal) the PKI admin sent back",
                       description="Check a response from gwx pki sign-request (the node's three certificates) or "
                                   "gwx pki issue-seal --request (a unit's seal certificate and SESeal) against "
                                   "this node's keys, request and root certificate — each certificate certifies "
                                   "its key, chains to credentials/root.crt (the TLS one to credentials/tls-root.crt on "
                                   "a 国密 network), has its purpose and names this node "
                                   "or unit — then install it, all files together. Nothing is written when a "
                                   "check fails. " + FLOW)
    p.add_argument("--dir", required=True, type=Path, help="the node directory (as given to gwx node request)")
    p.add_argument("response", type=Path, metavar="RESPONSE", help="the response file the PKI admin sent")
    add_passphrase_option(p)
    p.set_defaults(func=_install)


def _request(args: argparse.Namespace) -> int:
    root = load_certificate(args.root.read_bytes())
    tls_root = load_certificate(args.tls_root.read_bytes()) if args.tls_root is not None else None
    passphrase = get_passphrase(args, confirm=True, what="node key")
    args.dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # it will hold keys and tokens
    request = create_node_request(args.dir / "credentials", args.node_id, root, passphrase, args.algorithm,
                                  tls_root=tls_root)
    write_public_file(args.out, request.pem)
    print(f"node '{request.node_id}': keys made in {args.dir / 'credentials'} (encrypted, mode 600)")
    print(f"  trusting root {_subject(root)}  SHA-256 {root.fingerprint(hashes.SHA256()).hex(':')}")
    if tls_root is not None:
        print(f"  and for TLS {_subject(tls_root)}  SHA-256 {tls_root.fingerprint(hashes.SHA256()).hex(':')}")
    print("    (compare with the fingerprint the PKI admin gives you another way)")
    print(f"  request written to {args.out}; key fingerprint {request.key_fingerprint}")
    print(f"next: the PKI admin runs gwx pki sign-request --ca CA_DIR --request {args.out.name} --host HOST "
          f"--out RESPONSE; then gwx node install-certs --dir {args.dir} RESPONSE")
    return 0


def _request_seal(args: argparse.Namespace) -> int:
    code = validate_unit_code(args.unit)
    seal_dir = args.dir / "units" / code
    ref = _token_ref(args)
    root_file = args.dir / "credentials" / ROOT_FILE  # the network's root, from gwx node request
    algorithm = network_algorithm(load_certificate(root_file.read_bytes())) if root_file.exists() else DEFAULT
    if ref is not None:  # refused on a 国密 network: no SM2 keys on tokens yet
        text = create_token_seal_request(seal_dir, code, args.name, ref, algorithm)
        where = f"on token '{ref.token}' as '{ref.key_label}' (non-extractable; {seal_dir}/{TOKEN_FILE} says where)"
    else:
        passphrase = get_passphrase(args, confirm=True, what="node key")
        text = create_seal_request(seal_dir, code, args.name, passphrase, algorithm)
        where = f"in {seal_dir} (encrypted, mode 600)"
    write_public_file(args.out, text)
    print(f"unit {code} {args.name}: seal key made {where}")
    print(f"  request written to {args.out}")
    print(f"next: the PKI admin runs gwx pki issue-seal --ca CA_DIR --request {args.out.name} --unit {code} "
          f"--name NAME --out RESPONSE; then gwx node install-certs --dir {args.dir} RESPONSE")
    return 0


def _token_ref(args: argparse.Namespace) -> TokenRef | None:
    given = [args.token_module, args.token, args.key_label]
    if not any(given) and args.pin_file is None and args.pin_env is None:
        return None
    if not all(given):
        raise InvalidInput("a seal key on a token needs --token-module, --token and --key-label together")
    pin_file = str(args.pin_file.resolve()) if args.pin_file is not None else None
    return TokenRef(args.token_module, args.token, args.key_label, pin_file, args.pin_env)


def _install(args: argparse.Namespace) -> int:
    data = args.response.read_bytes()
    root_path = args.dir / "credentials" / ROOT_FILE
    if not root_path.exists():
        raise ResponseInvalid(f"{args.dir} has made no request ({root_path} is missing): gwx node request first",
                              code="PKI_RESPONSE_NO_REQUEST")
    seal_dir = args.dir / "units" / seal_response_unit(data) if is_seal_response(data) else None
    if seal_dir is not None and not seal_dir.is_dir():
        raise ResponseInvalid(f"no seal request for unit {seal_dir.name} was made in {args.dir} (gwx node "
                              "request-seal): this response answers a request made elsewhere",
                              code="PKI_RESPONSE_NO_REQUEST", unit=seal_dir.name)
    passphrase = get_passphrase(args, what="node key")
    root = load_certificate(root_path.read_bytes())
    if seal_dir is not None:
        code = seal_dir.name
        seal = install_seal_response(seal_dir, data, root, seal_key_of(seal_dir, passphrase))
        print(f"seal '{seal.name}' of unit {code} installed in {seal_dir}: esID {seal.es_id}, valid "
              f"{seal.valid_start:%Y-%m-%d} – {seal.valid_end:%Y-%m-%d}")
        return 0
    installed = install_node_response(args.dir / "credentials", data, passphrase)
    print(f"certificates installed in {args.dir / 'credentials'}:")
    for role, cert in installed.items():
        print(f"  {role}.crt  serial {cert.serial_number:x}  valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    return 0


def _subject(cert) -> str:
    return ", ".join(f"{a.oid._name}={a.value}" for a in cert.subject)
