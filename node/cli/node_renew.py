"""``gwx node renew``: install renewed credentials on a node, running or not (:mod:`node.renewal`)."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit

from node.cli.passphrase import add_passphrase_option, get_passphrase
from node.renewal import DEFAULT_OVERLAP, RenewalRefused, install_renewal, read_credential_set, signal_node
from pki.errors import WrongPassphrase

_DURATION = re.compile(r"^(\d+)([dhms]?)$")
_UNITS = {"d": "days", "": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "renew", help="install renewed TLS/signing/encryption credentials; a running node uses them at once",
        description="Install new credentials on a node: what gwx pki issue-node --renew --out DIR wrote, or for an "
                    "enrolled node NEW_DIR/credentials after gwx node request --dir NEW_DIR, gwx pki sign-request "
                    "--renew and gwx node install-certs --dir NEW_DIR. They are checked "
                    "(keys match, certificates name this node and are valid now under its root), the current "
                    "certificates and encryption key are kept in credentials/previous/ for the overlap, and a "
                    "running node is told (SIGHUP) to use the new ones without a restart. Until the overlap "
                    "ends the node still opens envelopes sealed for its previous encryption certificate; then "
                    "it destroys that key. The previous signing and TLS keys are destroyed at once.")
    p.add_argument("--dir", required=True, type=Path, help="the node directory (the one gwx node init created)")
    p.add_argument("--from", dest="source", required=True, type=Path, metavar="DIR",
                   help="directory holding tls/sign/enc .key and .crt (what gwx pki issue-node --renew --out wrote, "
                        "or an enrolled node's NEW_DIR/credentials)")
    p.add_argument("--overlap", default=f"{DEFAULT_OVERLAP.days}d", metavar="DURATION",
                   help=f"how long the previous encryption key keeps opening envelopes: 7d, 36h, 90m, 45s "
                        f"(default {DEFAULT_OVERLAP.days}d; never beyond the previous certificate's expiry)")
    p.add_argument("--from-passphrase-file", metavar="FILE", type=Path,
                   help="passphrase of the keys in --from when it is not the node's (issue-node encrypts them "
                        "with the CA passphrase); they are stored under the node passphrase")
    add_passphrase_option(p)
    p.set_defaults(func=_renew)


def parse_overlap(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise RenewalRefused(f"--overlap {text!r}: write a whole number with d, h, m or s (7d, 36h, 90m, 45s)",
                             overlap=text)
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _renew(args: argparse.Namespace) -> int:
    from node.config import load_config

    config = load_config(args.dir)
    overlap = parse_overlap(args.overlap)
    passphrase = get_passphrase(args, what="node key")
    source_passphrase = passphrase
    if args.from_passphrase_file:
        source_passphrase = get_passphrase(argparse.Namespace(passphrase_file=args.from_passphrase_file))
    try:
        new = read_credential_set(args.source, source_passphrase)
    except WrongPassphrase as exc:
        if args.from_passphrase_file:
            raise
        raise WrongPassphrase(f"{exc.message} — keys made by gwx pki issue-node are under the passphrase given "
                              "there (the CA's): give it with --from-passphrase-file FILE", **exc.details) from None
    now = dt.datetime.now(dt.UTC)
    # Peers check the TLS certificate against the host they dial: the renewed one must carry it too.
    host = urlsplit(config.peer_api.public_url).hostname if config.peer_api.public_url else None
    previous = install_renewal(config.credentials_dir, config.node_id, new, passphrase, overlap=overlap, now=now,
                               host=host)
    print(f"node {config.node_id}: renewed credentials installed in {config.credentials_dir}")
    for role in ("tls", "sign", "enc"):
        leaf = new.leaf(role)
        print(f"  {role}.crt  serial {leaf.serial_number:x}  valid until {leaf.not_valid_after_utc:%Y-%m-%d}")
    print(f"  previous encryption key kept until {previous.until:%Y-%m-%d %H:%M:%S}Z ({previous.path})")
    pid = signal_node(config.directory)
    if pid:
        print(f"  told the running node (pid {pid}) to use them (SIGHUP)")
    else:
        print("  the node is not running: it uses them when it starts")
    print("  publish them in the network directory with the previous ones beside them "
          "([[nodes]] credentials = the new directory, previous = [the old one]; gwx net build)")
    return 0
