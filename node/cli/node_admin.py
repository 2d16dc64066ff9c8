"""``gwx node init``, ``add-peer``, ``add-token``, ``tokens``, ``revoke-token`` (``run`` and ``status`` live in
node_run, ``check`` in node_check). A running node picks token changes up within a second, without a restart."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from node.cli.passphrase import add_passphrase_option, get_passphrase
from node.errors import ConfigError
from pki.ca import CertificateAuthority
from pki.crl import load_crls

NODE_DIR_HELP = "the node directory (the one gwx node init created)"


def in_node_store(config, work):
    """Run ``work(store)`` on the node's store, opened without start-up recovery (the node may be
    running: recovery is its business); for commands that read or change the store of a node
    directory, running node or not (``gwx webhook …``, ``gwx oa …``)."""
    import asyncio

    from node.store.opener import open_store

    async def main():
        store = await open_store(config.data_dir, node_id=config.node_id, recover=False,
                                 settings=config.store)
        try:
            return await work(store)
        finally:
            await store.close()
    return asyncio.run(main())



def print_dead_letters(title: str, dead, replay_hint: str, as_json: bool) -> int:
    """An adapter's dead-letter rows (``gwx webhook list --id``, ``gwx oa dead``): as JSON, or a line
    each under ``title`` with the command that sends them again."""
    rows = [{"row": r.id, "seq": r.seq, "event": json.loads(r.event), "attempts": r.attempts,
             "error": {"code": r.last_error.code, "message": r.last_error.message} if r.last_error else None,
             "dead_since": r.finished_at.isoformat() if r.finished_at else None} for r in dead]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{title}: {len(rows)} dead letter(s)" + (f" — {replay_hint}" if rows else ""))
    for r in rows:
        error = f"{r['error']['code']}: {r['error']['message']}" if r["error"] else "?"
        print(f"  row {r['row']}  {r['event']['type']} {r['event']['doc_id']}  after {r['attempts']} attempt(s)  {error}")
    return 0

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create a node: config, tokens, CRLs — on enrolled credentials and seals, "
                                    "or with credentials and seals from the CA (--ca)",
                       description="Write a node's node.toml, tokens and crl.pem. Enrolled (the way for real "
                                   "networks): NODE_DIR already holds the credentials and unit seals made with gwx "
                                   "node request / request-seal and installed with gwx node install-certs; give "
                                   "the network's CRLs with --crl and no --ca. With --ca (the PKI admin's "
                                   "shortcut, for tests and demos), the CA issues the node's credentials and "
                                   "seals here, which needs the CA directory and its passphrase.")
    p.add_argument("--dir", required=True, type=Path, help="node directory to create (or the enrolled one)")
    p.add_argument("--node-id", required=True,
                   help="this node's id: lower-case letters, digits, '.' or '-' (its peers know it by it)")
    p.add_argument("--ca", type=Path,
                   help="CA directory (the PKI admin's): issue credentials and seals here. Without it, NODE_DIR "
                        "must hold enrolled ones (gwx node request, install-certs) and the passphrase is the "
                        "node's")
    p.add_argument("--units", required=True, type=Path,
                   help="UNITS.toml: [[units]] tables with code, name, optional level and parent "
                        "(see deploy/examples/UNITS.toml)")
    p.add_argument("--host",
                   help="address peers reach this node at (in its TLS cert; default: the address the enrolled TLS "
                        "certificate names — another is refused —, else 127.0.0.1)")
    p.add_argument("--peer-port", type=int, default=7443, metavar="PORT",
                   help="port of the peer API, mutual TLS between nodes (default 7443)")
    p.add_argument("--local-port", type=int, default=7080, metavar="PORT",
                   help="port of the local API for clerks and OA systems, on 127.0.0.1 (default 7080)")
    p.add_argument("--node-passphrase-file", metavar="FILE",
                   help="with --ca: passphrase for the node's own keys (default: the same as the CA passphrase)")
    p.add_argument("--crl", type=Path, action="append", default=[], metavar="FILE",
                   help="CRLs (PEM or DER; repeatable) for NODE_DIR/crl.pem. Enrolled (no --ca): required, the "
                        "network's CRLs from the PKI admin (gwx pki crl), every CA's. With --ca: the other CAs' "
                        "CRLs, added after the issuing CA's own: with an intermediate CA, the root's and every "
                        "other intermediate's")
    add_passphrase_option(p)
    p.set_defaults(func=_init)

    p = sub.add_parser("add-peer", help="add or replace a peer in the static peer list (node.toml is checked "
                                        "before it is written; its comments are kept)")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--node-id", required=True, help="the peer's node id (as in its TLS certificate)")
    p.add_argument("--url", required=True, help="https://HOST:PORT of the peer's peer API")
    p.add_argument("--units", default="",
                   help="comma-separated unit codes the peer hosts, each optionally CODE=NAME so gwx send, gwx "
                        "track and the console show the unit's name (default: none; a code without a name is "
                        "shown as its code)")
    p.set_defaults(func=_add_peer)

    p = sub.add_parser("add-token", help="create a local API token (printed once: the token alone on stdout, what "
                                         "it is on stderr)")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--role", required=True, choices=["clerk", "operator", "pki_admin"],
                   help="clerk: a unit's documents (needs --unit); operator: node status and metrics; "
                        "pki_admin: PKI operations")
    p.add_argument("--name", required=True, help="the person using it (recorded as 签收人)")
    p.add_argument("--unit", help="the unit a clerk acts for")
    p.add_argument("--json", action="store_true",
                   help="one JSON object on stdout: token, token_id, name, role, unit (no other output)")
    p.set_defaults(func=_add_token)

    p = sub.add_parser("tokens", help="list the local API tokens: id, name, role, unit (never the secrets)")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_list_tokens)

    p = sub.add_parser("revoke-token", help="revoke a local API token by its id (see gwx node tokens)")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("token_id", metavar="TOKEN_ID", help="the token's id, as gwx node tokens lists it")
    p.set_defaults(func=_revoke_token)


def _init(args: argparse.Namespace) -> int:
    from node.provision import cas_without_crl, enrolled_cas_without_crl, init_node, read_units_file

    crls = [crl for path in args.crl for crl in load_crls(_read(path))]
    if args.ca is None:  # enrolled: the passphrase is the node's own, no CA anywhere
        if args.node_passphrase_file:
            raise ConfigError("--node-passphrase-file goes with --ca; without it the passphrase (GWX_PASSPHRASE, "
                              "--passphrase-file or a prompt) is the node's", key="node_passphrase_file")
        ca, node_passphrase = None, get_passphrase(args, what="node key")
    else:
        ca_passphrase = get_passphrase(args, what="CA key")
        node_passphrase = ca_passphrase
        if args.node_passphrase_file:
            node_passphrase = Path(args.node_passphrase_file).read_bytes().rstrip(b"\r\n")
        ca = CertificateAuthority.open(args.ca, ca_passphrase)
    config, tokens = init_node(args.dir, args.node_id, ca, read_units_file(args.units), node_passphrase,
                               host=args.host, peer_port=args.peer_port, local_port=args.local_port, crls=crls)
    print(f"node '{config.node_id}' created in {config.directory}")
    print(f"  peer API  {config.peer_api.public_url}  (mutual TLS)")
    print(f"  local API http://{config.local_api.host}:{config.local_api.port}")
    for u in config.units:
        print(f"  unit {u.code} {u.name}  seal {os.path.relpath(u.seal_dir / 'seal.esl')}")
    print(f"  tokens written to {config.directory / 'tokens'} ({len(tokens)} files, mode 600)")
    missing = cas_without_crl(ca, crls) if ca is not None else enrolled_cas_without_crl(config.directory, crls)
    if missing:
        print(f"warning: {config.crl_path} has no CRL from {'; '.join(missing)}: until it has (gwx pki crl, "
              "then append it there), this node refuses every peer, signer and seal under those CAs — its "
              "own included", file=sys.stderr)
    return 0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _add_peer(args: argparse.Namespace) -> int:
    from node.provision import add_peer
    from node.run_lock import holder

    units, names = _peer_units(args.units)
    config = add_peer(args.dir, args.node_id, args.url, units, names)
    print(f"peers of '{config.node_id}': " + ", ".join(p.node_id for p in config.peers))
    unnamed = [c for p in config.peers if p.node_id == args.node_id for c in p.units
               if c not in dict(p.unit_names)]
    if unnamed:
        print(f"no name given for {', '.join(unnamed)}: shown as the code (name them with --units CODE=NAME)")
    pid = holder(config.directory)
    if pid is not None:  # node.toml is read at start (SIGHUP reloads credentials only)
        print(f"the node running in {config.directory} ({f'pid {pid}' if pid else 'starting'}) reads node.toml "
              f"at start: restart it to use this peer (gwx node stop --dir {args.dir}, then gwx node run)")
    return 0


def _peer_units(spec: str) -> tuple[list[str], dict[str, str]]:
    """``CODE,CODE=NAME,…`` (add-peer's --units) as the codes in order and the names given."""
    units: list[str] = []
    names: dict[str, str] = {}
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        code, sep, name = item.partition("=")
        code, name = code.strip(), name.strip()
        if sep and not name:
            raise ConfigError(f"--units: {code}= has no name after '='", key="peers.unit_names")
        units.append(code)
        if name:
            names[code] = name
    return units, names


def _add_token(args: argparse.Namespace) -> int:
    from node.api.auth import TokenStore
    from node.config import load_config

    config = load_config(args.dir)
    principal, token = TokenStore(config.tokens_path).issue(args.name, args.role, args.unit,
                                                            hosted={u.code for u in config.units})
    if args.json:
        print(json.dumps({"token": token, "token_id": principal.token_id, "name": principal.name,
                          "role": principal.role, "unit": principal.unit}, ensure_ascii=False))
        return 0
    # What it is on stderr, the token alone on stdout: TOKEN=$(gwx node add-token …) still takes just it.
    unit = config.unit(principal.unit) if principal.unit else None
    acts_for = f" of {unit.name} ({unit.code})" if unit is not None else ""
    print(f"local API token {principal.token_id} for {principal.name}, role {principal.role}{acts_for}, "
          f"on node {config.node_id} — shown this once (the node keeps only its "
          f"hash; gwx node revoke-token {principal.token_id} ends it):", file=sys.stderr)
    print(token)
    return 0


def _token_store(directory: Path):
    from node.api.auth import TokenStore
    from node.config import load_config

    return TokenStore(load_config(directory).tokens_path)


def _list_tokens(args: argparse.Namespace) -> int:
    principals = sorted(_token_store(args.dir).principals(), key=lambda p: (p.role, p.unit or "", p.name))
    if args.json:
        print(json.dumps([{"token_id": p.token_id, "name": p.name, "role": p.role, "unit": p.unit}
                          for p in principals], ensure_ascii=False))
        return 0
    rows = [("ID", "ROLE", "UNIT", "NAME")] + [(p.token_id, p.role, p.unit or "-", p.name) for p in principals]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3])
    return 0


def _revoke_token(args: argparse.Namespace) -> int:
    from node.errors import NotFound

    store = _token_store(args.dir)
    principal = store.find(args.token_id)
    if principal is None or not store.revoke(args.token_id):
        raise NotFound(f"no token with id {args.token_id} (see gwx node tokens)", code="NODE_UNKNOWN_TOKEN",
                       token_id=args.token_id)
    print(f"revoked token {principal.token_id} of {principal.name} ({principal.role}"
          + (f", {principal.unit})" if principal.unit else ")"))
    return 0
