"""``gwx pki revoke``, ``gwx pki crl``, ``gwx pki issue-ocsp-signer`` and ``gwx pki issue-tsa-signer``.

``revoke`` takes a certificate (PEM or DER) or an electronic seal (``.esl``, DER SESeal); a PEM file
of several certificates (a ``tls.crt`` with its chain, a node's enrolment response with its three
and the CA chain) stands for its end-entity certificates — a CA certificate in it is never revoked
this way. For a seal, every seal certificate in its certList that this CA issued is revoked (for a
seal listing certificate digests, the CA's issued certificates are matched against the digests).
Revoking twice keeps the first date (``CertificateAuthority.revoke``). Nothing is published here:
run ``gwx pki crl`` afterwards, and the OCSP responder answers from the same records at once.

``crl`` writes a freshly numbered CRL, PEM by default, DER with ``--der``. To publish it, write it
into the root node's directory (``--out ROOT_NODE_DIR/crl.pem``): the root node re-reads it within
seconds and every node below fetches it from its parent (:mod:`node.federation.crl_fetch`).

``issue-ocsp-signer`` writes a delegated OCSP responder key (:mod:`pki.ocsp_signer`) for the root
node's ``[revocation] ocsp_signer``: the node answers OCSP without the CA key.

``issue-tsa-signer`` writes the RFC 3161 time-stamping unit's key (:mod:`pki.tsa_signer`) for the root
node's ``[archive] tsa_signer``: the node time-stamps archive packages for the network without the CA key.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path

from cryptography import x509

from node.cli.passphrase import add_passphrase_option, get_passphrase
from node.cli.pki_ca import add_signer_issue_parser, issue_signer
from pki.ca import CertificateAuthority
from pki.ca_records import REVOCATION_REASONS
from pki.certificates import load_certificate, load_certificates
from pki.crl import crl_der, crl_pem, publish_crl
from pki.errors import InvalidInput, MalformedEncoding, UnknownCertificate
from pki.keystore import write_public_file
from pki.ocsp_signer import issue as issue_ocsp_signer
from pki.profiles import OCSP_RESPONDER, TIME_STAMPING
from pki.seal import parse_seal
from pki.tsa_signer import issue as issue_tsa_signer

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("revoke", help="revoke a certificate, or the seal certificates of an electronic seal")
    p.add_argument("--ca", required=True, type=Path, help="CA directory that issued the certificate")
    p.add_argument("target", type=Path, metavar="CERT_OR_SEAL",
                   help="certificate (PEM/DER) or seal (.esl); a PEM file of several (a certificate with its "
                        "chain, a node's enrolment response from gwx pki sign-request): its end-entity "
                        "certificates, never a CA certificate that travels with them")
    p.add_argument("--reason", default="unspecified",
                   help="RFC 5280 reason: " + ", ".join(sorted(REVOCATION_REASONS)) + " (keyCompromise also works; default unspecified)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_passphrase_option(p)
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("crl", help="write a new certificate revocation list signed by the CA",
                       description="Write a freshly numbered CRL of everything the CA revoked. To publish it, "
                                   "write it into the root node's directory (--out ROOT_NODE_DIR/crl.pem): the "
                                   "root node re-reads it within seconds and every node below fetches it from its "
                                   "parent by itself.")
    p.add_argument("--ca", required=True, type=Path, help="CA directory")
    p.add_argument("--out", required=True, type=Path,
                   help="CRL file to write (ROOT_NODE_DIR/crl.pem publishes it to the whole network)")
    p.add_argument("--der", action="store_true", help="write DER instead of PEM")
    p.add_argument("--next-update-days", type=int, default=7, help="days until the next CRL is due (default 7)")
    add_passphrase_option(p)
    p.set_defaults(func=cmd_crl)

    add_signer_issue_parser(
        sub, "issue-ocsp-signer", help="issue the delegated OCSP responder key a root node answers with",
        description="Issue an OCSP signer: a key whose certificate may sign OCSP answers for this CA and nothing "
                    "else, written to --out as signer.key (encrypted with the passphrase, like issue-node's keys), "
                    "signer.crt and ca.crt. Copy the directory to the root node and name it in node.toml "
                    "([revocation] ocsp_signer): the node answers OCSP from the CRL it holds, and the CA key stays "
                    "offline.",
        default_days=OCSP_RESPONDER.default_days, func=cmd_issue_ocsp_signer,
        ca_help="issuing CA directory (the CA the responder answers for)")

    add_signer_issue_parser(
        sub, "issue-tsa-signer", help="issue the RFC 3161 time-stamping key a root node answers with",
        description="Issue a TSA signer: a key whose certificate may sign time-stamp tokens and nothing else "
                    "(timeStamping EKU, critical), written to --out as signer.key (encrypted with the passphrase), "
                    "signer.crt and chain.pem. Copy the directory to the root node and name it in node.toml "
                    "([archive] tsa_signer): the node answers POST /peer/v1/tsa for every node's archive packages, "
                    "and the CA key stays offline.",
        default_days=TIME_STAMPING.default_days, func=cmd_issue_tsa_signer)


def normalise_reason(text: str) -> str:
    """``keyCompromise``, ``key-compromise`` and ``key_compromise`` all name one reason."""
    name = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", text.strip()).replace("-", "_").lower()
    if name not in REVOCATION_REASONS:
        raise InvalidInput(f"unknown revocation reason {text!r}", known=sorted(REVOCATION_REASONS))
    return name


def _targets(ca: CertificateAuthority, path: Path) -> tuple[str, list[x509.Certificate]]:
    data = path.read_bytes()
    if PEM_CERTIFICATE in data and path.suffix.lower() not in (".esl", ".seal"):
        certs = load_certificates(data)  # a response file opens with '#' lines: not only a file that starts so
        if len(certs) == 1:
            return "certificate", certs
        # A certificate with its chain (tls.crt), or a node's enrolment response (its three, then the CA
        # chain): the end-entity certificates, never a CA's that travels with them.
        leaves = [c for c in certs if not _is_ca(c)]
        if not leaves:  # an intermediate with its root, say: which CA certificate is meant is not ours to guess
            raise InvalidInput(f"{path.name} holds only CA certificates ({len(certs)}): from a file of several, "
                               "revoke takes the end-entity ones; to revoke a CA certificate, give it alone, in a "
                               "file of its own", target=str(path), certificates=len(certs))
        return f"end-entity certificates of {path.name}", leaves
    try:
        return "certificate", [load_certificate(data)]
    except MalformedEncoding:
        if path.suffix.lower() not in (".esl", ".seal") and data.lstrip().startswith(b"-----BEGIN"):
            raise
    seal = parse_seal(data)  # SEAL_MALFORMED if it is neither
    if seal.cert_list:
        certs = list(seal.seal_certificates)
    else:  # certificate digests: find which of ours they name
        certs = [c for c in ca.issued() if seal.matches_certificate(c)]
    return f"seal '{seal.name}' ({seal.es_id})", certs


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def cmd_revoke(args: argparse.Namespace) -> int:
    reason = normalise_reason(args.reason)
    ca = CertificateAuthority.open(args.ca, get_passphrase(args, what="CA key"))
    what, certs = _targets(ca, args.target)
    issuers = [x for x in (ca, ca.separate_transport()) if x is not None]  # a 国密 CA's node TLS: its transport CA's
    ours = [c for c in certs if any(c.issuer == x.certificate.subject and x.lookup(c.serial_number) == c
                                    for x in issuers)]
    if not ours:
        raise UnknownCertificate(f"{what}: this CA ({ca.name}) issued none of its certificates",
                                 ca=ca.name, target=str(args.target))
    now = dt.datetime.now(dt.UTC)
    done = [ca.revoke(c, reason, now) for c in ours]
    if args.json:
        print(json.dumps({"ok": True, "target": what, "revoked": [
            {"serial": f"{r.serial:x}", "reason": r.reason, "revoked_at": r.revoked_at.isoformat()} for r in done]},
            ensure_ascii=False))
    else:
        for r in done:
            print(f"revoked {what}: serial {r.serial:x}, reason {r.reason}, since {r.revoked_at.isoformat()}")
        print("publish a new CRL with: gwx pki crl --ca … --out …")
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    if args.next_update_days <= 0:
        raise InvalidInput("--next-update-days must be at least 1")
    ca = CertificateAuthority.open(args.ca, get_passphrase(args, what="CA key"))
    transport = ca.separate_transport()  # a 国密 CA's transport CA: its CRL travels with the CA's
    if transport is not None and args.der:
        raise InvalidInput("a 国密 CA's CRL comes with its transport CA's, two CRLs: DER holds one — write PEM "
                           "(drop --der), or give --ca CA_DIR/transport for the transport CA's alone")
    now = dt.datetime.now(dt.UTC)
    crls = [(c, publish_crl(c, now, dt.timedelta(days=args.next_update_days))) for c in (ca, transport) if c]
    write_public_file(args.out, crl_der(crls[0][1]) if args.der else b"".join(crl_pem(crl) for _, crl in crls))
    for issuer, crl in crls:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        print(f"CRL #{number} of '{issuer.name}' written to {args.out}: {len(crl)} revoked, "
              f"next update {crl.next_update_utc:%Y-%m-%d %H:%M} UTC")
    return 0


def cmd_issue_ocsp_signer(args: argparse.Namespace) -> int:
    ca, cert = issue_signer(args, issue_ocsp_signer)
    print(f"OCSP signer for '{ca.name}' written to {args.out} (serial {cert.serial_number:x}, valid until "
          f"{cert.not_valid_after_utc:%Y-%m-%d}); name it in the root node's node.toml: "
          f"[revocation] ocsp_signer = \"…\"")
    return 0


def cmd_issue_tsa_signer(args: argparse.Namespace) -> int:
    ca, cert = issue_signer(args, issue_tsa_signer)
    print(f"TSA signer for '{ca.name}' written to {args.out} (serial {cert.serial_number:x}, valid until "
          f"{cert.not_valid_after_utc:%Y-%m-%d}); name it in the root node's node.toml: "
          f"[archive] tsa_signer = \"…\"")
    return 0
