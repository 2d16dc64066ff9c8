"""``gwx net build``, ``show``, ``install`` and ``diff``: the network's root operator and its signed directory.

``build`` reads the source (:mod:`node.directory_source`), checks every node certificate under the
network's root, signs with the directory signer (the CA's own with ``--ca``, or a signer directory
from ``gwx pki issue-directory-signer`` with ``--signer``) and writes the file atomically; with
``--current`` it refuses a version that does not grow. ``show`` and ``diff`` read directory files;
with ``--trust ROOT.crt`` they verify the signature, chain and purpose first, without it they say
the signature was not checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256

from exchange_protocol.directory import Directory, check_certificates
from exchange_protocol.directory_diff import diff, is_empty
from exchange_protocol.directory_signing import read_unverified, sign_directory, verify_directory
from exchange_protocol.envelope import format_time
from exchange_protocol.errors import DirectoryRollback
from node.cli.passphrase import add_passphrase_option, get_passphrase
from node.config import load_config
from node.directory_source import read_source
from node.errors import NoDirectory
from pki import directory_signer
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates, utcnow
from pki.keystore import write_public_file
from pki.trust import TrustStore

SOURCE_HELP = ("SOURCE.toml lists the network's [[nodes]] (id, urls, level, parent, credentials = the directory "
               "gwx pki issue-node wrote for it) and [[units]] (code, name, level, node, parent, supervisor), "
               "with network, version, next_update_days, valid_days, optional links, [revocation] and "
               "[supervision] (the network's 督办 grace_working_days and holiday calendar file); "
               "see deploy/examples/network.toml.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build and sign the network directory from its source",
                       description="Build the signed network directory. " + SOURCE_HELP + " Every node certificate "
                                   "must be valid now, for its role, under the network's root; the directory is "
                                   "signed by the directory signer and written atomically to --out.")
    p.add_argument("--source", required=True, type=Path, metavar="SOURCE.toml",
                   help="the network's nodes and units (see above)")
    signer = p.add_mutually_exclusive_group(required=True)
    signer.add_argument("--ca", type=Path, metavar="CA_DIR", help="sign with the CA's own directory signer")
    signer.add_argument("--signer", type=Path, metavar="DIR",
                        help="sign with a signer directory from gwx pki issue-directory-signer")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="the signed directory file to write")
    p.add_argument("--tls-root", type=Path, metavar="TLS-ROOT.crt",
                   help="a 国密 network's transport root, which node TLS certificates are checked under (with "
                        "--ca: the CA's own transport/root.crt, the default)")
    p.add_argument("--current", type=Path, metavar="FILE",
                   help="the directory published now: the new version must be above its version (DIR_ROLLBACK)")
    add_passphrase_option(p)
    p.set_defaults(func=_build)

    p = sub.add_parser("show", help="show a directory: version, age, expiry, nodes, units, whether current",
                       description="Show a signed directory file, or with --dir the copy a node holds "
                                   "(NODE_DIR/directory.json, verified against the node's own root). With --trust "
                                   "the signature, chain and directory-signing purpose are verified first (exit 1 "
                                   "when they fail).")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("file", type=Path, nargs="?", help="a signed directory file")
    where.add_argument("--dir", type=Path, metavar="NODE_DIR", help="the node directory whose copy to show")
    p.add_argument("--trust", type=Path, metavar="ROOT.crt", help="the network's root certificate")
    p.add_argument("--units", action="store_true", help="list every unit (the JSON form always does)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_show)

    p = sub.add_parser("install", help="install a directory on a node (verified; never an older version)",
                       description="Install a signed directory as the copy NODE_DIR holds and serves to its "
                                   "children at GET /peer/v1/directory (a running node serves the new copy at "
                                   "once). It is verified against the node's own root first, and refused if its "
                                   "version is below the installed one (DIR_ROLLBACK) or reuses it with other "
                                   "content (DIR_VERSION_REUSED); the file is replaced atomically.")
    p.add_argument("file", type=Path, help="the signed directory file to install")
    p.add_argument("--dir", required=True, type=Path, metavar="NODE_DIR", help="the node directory")
    p.set_defaults(func=_install)

    p = sub.add_parser("diff", help="what changed between two directories (nodes, units, moves, links)")
    p.add_argument("old", type=Path, help="the earlier directory file")
    p.add_argument("new", type=Path, help="the later directory file")
    p.add_argument("--trust", type=Path, metavar="ROOT.crt", help="verify both files first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_diff)


def _build(args: argparse.Namespace) -> int:
    now = utcnow().replace(microsecond=0)
    passphrase = get_passphrase(args, what="CA key" if args.ca else "directory signer key")
    tls_roots = load_certificates(args.tls_root.read_bytes()) if args.tls_root else []
    if args.ca:
        ca = CertificateAuthority.open(args.ca, passphrase)
        signer = directory_signer.from_ca(ca)
        transport = ca.separate_transport()
        tls_roots = tls_roots or ([transport.root_certificate] if transport is not None else [])
    else:
        signer = directory_signer.open_directory(args.signer, passphrase)
    roots = [signer.root]
    directory = read_source(args.source, now)
    if tls_roots:  # named in the directory, under its SM2 signature
        directory = dataclasses.replace(directory, transport_root=tls_roots[0])
    check_certificates(directory, TrustStore.of(roots), now, TrustStore.of(tls_roots) if tls_roots else None)
    if args.current:
        current = verify_directory(args.current.read_bytes(), roots, now).directory
        if directory.version <= current.version:
            raise DirectoryRollback(f"version {directory.version} must be above the current directory's "
                                    f"{current.version}: raise version in {args.source}",
                                    version=directory.version, current=current.version)
    data = sign_directory(directory, signer.signer, signer.chain, signing_time=now)
    verify_directory(data, roots, now)  # what we publish must pass the check every node applies
    write_public_file(args.out, data)
    print(f"directory '{directory.network}' version {directory.version} written to {args.out}: "
          f"{len(directory.nodes)} nodes, {len(directory.units)} units, next update due "
          f"{format_time(directory.next_update)}, expires {format_time(directory.expires)}")
    return 0


def _install(args: argparse.Namespace) -> int:
    now = utcnow()
    config = load_config(args.dir)
    roots = load_certificates(config.trust_root_path.read_bytes())
    target = config.network_directory_path
    current = None
    if target.exists():
        # The installed copy was verified when installed; its signer may have expired since, and
        # it still names the version we must not go below.
        current = read_unverified(target.read_bytes())
    data = args.file.read_bytes()
    verified = verify_directory(data, roots, now, current=current)
    if verified.unchanged:
        print(f"node {config.node_id} already holds directory version {verified.directory.version}")
        return 0
    write_public_file(target, data)
    print(f"node {config.node_id} now holds directory version {verified.directory.version} "
          f"({verified.status.value}), served at /peer/v1/directory"
          + (f"; it had version {current.version}" if current else ""))
    return 0


def _read(path: Path, trust: Path | None, now: dt.datetime) -> tuple[Directory, dict[str, Any]]:
    data = path.read_bytes()
    if trust is None:
        return read_unverified(data), {"checked": False}
    verified = verify_directory(data, load_certificates(trust.read_bytes()), now)
    return verified.directory, {"checked": True, "signer": verified.signer_certificate.subject.rfc4514_string(),
                                "content_sha256": verified.content_sha256}


def describe(directory: Directory, now: dt.datetime, signature: dict[str, Any]) -> dict[str, Any]:
    hosted = Counter(u.node for u in directory.units)
    return {
        "network": directory.network, "version": directory.version,
        "status": directory.status(now).value, "signature": signature,
        "issued_at": format_time(directory.issued_at), "age": _duration(now - directory.issued_at),
        "next_update": format_time(directory.next_update), "expires": format_time(directory.expires),
        "nodes": [{"id": n.id, "level": n.level, "parent": n.parent, "urls": list(n.urls),
                   "units": hosted[n.id]} for n in directory.nodes],
        "units": [{"code": u.code, "name": u.name, "level": u.level, "node": u.node, "parent": u.parent,
                   "supervisor": u.supervisor} for u in directory.units],
        "links": [list(pair) for pair in directory.links],
        "revocation": {"crl": list(directory.crl_urls), "ocsp": list(directory.ocsp_urls)},
        "transport_root": (f"{directory.transport_root.subject.rfc4514_string()}  SHA-256 "
                           f"{directory.transport_root.fingerprint(SHA256()).hex(':')}"
                           if directory.transport_root else None),
        "supervision": directory.supervision.to_json() if directory.supervision is not None else None,
    }


def _show(args: argparse.Namespace) -> int:
    now = utcnow()
    if args.dir is not None:
        config = load_config(args.dir)
        args.file, args.trust = config.network_directory_path, args.trust or config.trust_root_path
        if not args.file.exists():
            raise NoDirectory(f"node {config.node_id} holds no network directory ({args.file})",
                              path=str(args.file))
    directory, signature = _read(args.file, args.trust, now)
    info = describe(directory, now, signature)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    status = {"current": "current", "due": "DUE — a newer directory should have been published",
              "expired": "EXPIRED — still used for routing; publish a new one"}[info["status"]]
    print(f"network   {info['network']}")
    print(f"version   {info['version']}  ({status})")
    print(f"issued    {info['issued_at']}  ({info['age']} ago)")
    print(f"next      {info['next_update']}    expires {info['expires']}")
    if signature["checked"]:
        print(f"signature verified: {signature['signer']}")
    else:
        print("signature NOT checked (give --trust ROOT.crt)")
    if info.get("transport_root"):
        print(f"TLS root  {info['transport_root']}  (node TLS, P-256: a 国密 network's transport root)")
    print(f"nodes     {len(info['nodes'])}")
    for n in info["nodes"]:
        print(f"  {n['id']:<24} {n['level']:<9} parent {n['parent'] or '-':<20} units {n['units']:<5} "
              f"{' '.join(n['urls'])}")
    levels = Counter(u["level"] for u in info["units"])
    print(f"units     {len(info['units'])}  (" + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())) + ")")
    if args.units:
        for u in info["units"]:
            print(f"  {u['code']}  {u['node']:<20} {u['level']:<9} {u['name']}")
    if info["links"]:
        print("links     " + ", ".join("–".join(pair) for pair in info["links"]))
    for kind, urls in info["revocation"].items():
        if urls:
            print(f"{kind:<9} " + " ".join(urls))
    if info["supervision"] is not None:
        print(f"督办      {_rules_words(info['supervision'])}")
    return 0


def _rules_words(rules: dict) -> str:
    grace = rules.get("grace_working_days")
    calendar = rules.get("calendar")
    return ", ".join([f"grace {grace} working days" if grace is not None else "grace: each node's own",
                      f"calendar of {len(calendar['holidays'])} holidays and {len(calendar['workdays'])} adjusted "
                      "working days" if calendar is not None else "calendar: each node's own"])


def _diff(args: argparse.Namespace) -> int:
    now = utcnow()
    old, _ = _read(args.old, args.trust, now)
    new, _ = _read(args.new, args.trust, now)
    changes = diff(old, new)
    if args.json:
        print(json.dumps(changes, ensure_ascii=False, indent=2))
        return 0
    print(f"version {old.version} → {new.version}")
    if changes["network"]:
        print(f"network {changes['network']['from']} → {changes['network']['to']}")
    names = {u.code: u.name for u in (*old.units, *new.units)}
    nodes, units, links = changes["nodes"], changes["units"], changes["links"]
    for node_id in nodes["added"]:
        print(f"+ node {node_id}")
    for node_id in nodes["removed"]:
        print(f"- node {node_id}")
    for node_id, fields in nodes["changed"].items():
        print(f"~ node {node_id}: {', '.join(fields)}")
    for code in units["added"]:
        print(f"+ unit {code} {names[code]} on {new.unit(code).node}")  # type: ignore[union-attr]
    for code in units["removed"]:
        print(f"- unit {code} {names[code]}")
    for code, move in units["moved"].items():
        print(f"→ unit {code} {names[code]} moved from {move['from']} to {move['to']}")
    for code, fields in units["changed"].items():
        print(f"~ unit {code} {names[code]}: {', '.join(fields)}")
    for pair in links["added"]:
        print(f"+ link {'–'.join(pair)}")
    for pair in links["removed"]:
        print(f"- link {'–'.join(pair)}")
    if changes["revocation_changed"]:
        print("~ revocation points")
    if changes["supervision_changed"]:
        new_rules = new.supervision.to_json() if new.supervision is not None else None
        print("~ 督办 rules: " + (_rules_words(new_rules) if new_rules else "each node's own (node.toml)"))
    if is_empty(changes):
        print("no node, unit or link changed")
    return 0


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    return sign + (f"{days}d {hours}h" if days else f"{hours}h {minutes}m")
