"""``gwx pki sign-request``: the PKI admin signs a node's certificate request.

The node made its keys itself (``gwx node request``); the request file holds its three public keys
in PKCS#10 requests. This command checks them (pki.node_enrolment: self-signatures, key types, one
node id, all three roles, nothing asked for), issues the three certificates with the profiles
``issue-node`` uses, prints what it signed and writes the response the node installs with ``gwx node
install-certs``. Seal requests go to ``gwx pki issue-seal --request`` (node.cli.pki_seal).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from node.cli.passphrase import add_passphrase_option, get_passphrase
from pki import profiles
from pki.ca import CertificateAuthority
from pki.csr import key_fingerprint
from pki.keystore import write_public_file
from pki.node_enrolment import read_node_request, sign_node_request

# What each role's certificate is for, in the words an admin checks (pki.profiles decides them).
PURPOSES = {"tls": "TLS server and client (peer connections)", "sign": "signing (envelopes, receipts)",
            "enc": "encryption (envelopes to this node)"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign-request", help="sign a node's certificate request (from gwx node request)",
                       description="Check a node's request file (three PKCS#10 requests: its TLS, signing and "
                                   "encryption keys, each self-signed and naming the node id) and issue the "
                                   "three certificates with the profiles gwx pki issue-node uses — the CA "
                                   "decides purposes and extensions; a request that asks for any is refused. "
                                   "Prints the node id, purposes, validity and fingerprints, and writes the "
                                   "response (certificates, then the CA chain) for gwx node install-certs. "
                                   "The node's keys never leave the node, and its operator never needs the "
                                   "CA directory.")
    p.add_argument("--ca", required=True, type=Path, help="CA directory")
    p.add_argument("--request", required=True, type=Path, metavar="REQUEST",
                   help="the request file the node operator handed you (gwx node request --out)")
    p.add_argument("--host", required=True,
                   help="DNS name or IP address the node listens on, put in its TLS certificate")
    p.add_argument("--node-id", help="refuse unless the request is for this node id (checked before anything "
                                     "is issued; without it the id the request names is printed, check it)")
    p.add_argument("--out", required=True, type=Path, metavar="RESPONSE",
                   help="the response file to send back to the node operator")
    p.add_argument("--valid-days", type=int, metavar="N",
                   help=f"validity of the three certificates in days (default {profiles.NODE_TLS.default_days})")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--replace", action="store_true",
                       help="the CA already issued credentials for this node id that are still valid: issue these "
                            "and revoke the old (superseded, effective with the next gwx pki crl). Without it (or "
                            "--renew) a second request for a node id is refused (PKI_ALREADY_ISSUED)")
    again.add_argument("--renew", action="store_true",
                       help="renew a running node's certificates for the new keys of its request (gwx node request "
                            "--dir NEW_DIR): the old ones stay valid (not revoked) so that peers accept both during "
                            "the overlap; the node operator installs the response in NEW_DIR (gwx node "
                            "install-certs), then runs gwx node renew --from NEW_DIR/credentials")
    add_passphrase_option(p)
    p.set_defaults(func=_sign_request)


def _sign_request(args: argparse.Namespace) -> int:
    data = args.request.read_bytes()
    node_id, by_role = read_node_request(data, args.node_id)  # refused before the CA passphrase is asked for
    print(f"request for node '{node_id}', key fingerprint "
          f"{key_fingerprint(by_role[role].public_key for role in profiles.NODE_ROLES)}", flush=True)
    passphrase = get_passphrase(args, what="CA key")
    ca = CertificateAuthority.open(args.ca, passphrase)
    signed = sign_node_request(ca, data, args.host, node_id=args.node_id, valid_days=args.valid_days,
                               replace=args.replace, renew=args.renew)
    write_public_file(args.out, signed.response)
    print(f"signed node '{signed.node_id}', host {args.host}, issued by '{ca.name}':")
    for role, cert in signed.certificates.items():
        print(f"  {role:<4}  {PURPOSES[role]}")
        print(f"        serial {cert.serial_number:x}, valid {cert.not_valid_before_utc:%Y-%m-%d} – "
              f"{cert.not_valid_after_utc:%Y-%m-%d}, SHA-256 {cert.fingerprint(hashes.SHA256()).hex(':')}")
    if signed.superseded:
        print("revoked the replaced certificates (superseded): "
              + ", ".join(f"{c.serial_number:x}" for c in signed.superseded))
        print("  publish a new CRL (gwx pki crl) once the node runs with the new certificates")
    if args.renew:
        print("a renewal: the node's earlier certificates stay valid (not revoked) for the overlap")
    print(f"response written to {args.out}: send it to the node operator (gwx node install-certs)")
    return 0
