"""``gwx node run`` and ``gwx node status``."""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

from node.cli.passphrase import add_passphrase_option, get_passphrase


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="serve the peer API (mutual TLS) and the local API until SIGTERM")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="how much the node logs (JSON lines on stderr; default INFO)")
    add_passphrase_option(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("status", help="queues, peers (up, backing off, dead) and the last errors")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from node.config import load_config
    from node.ops import logs
    from node.runner import serve

    config = load_config(args.dir)
    passphrase = get_passphrase(args, what="node key")
    logs.configure(config.node_id, args.log_level)
    asyncio.run(serve(config, passphrase))
    return 0


def _status(args: argparse.Namespace) -> int:
    from node.config import load_config
    from node.errors import NodeUnavailable
    from node.runner import ready_path

    config = load_config(args.dir)
    try:
        ready = json.loads(ready_path(config).read_text())
    except FileNotFoundError:
        raise NodeUnavailable(f"node {config.node_id} is not running (no {ready_path(config)})") from None
    token = (config.directory / "tokens" / "operator.token").read_text().strip()
    req = urllib.request.Request(f"{ready['local_url']}/api/v1/node/status",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status = json.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        raise NodeUnavailable(f"cannot reach node {config.node_id}: {exc}") from None
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
        return 0
    print(f"node {status['node_id']}  units: " + ", ".join(f"{u['code']} {u['name']}" for u in status["units"]))
    print("queues:" if status["queues"] else "queues: (empty)")
    for dest, states in sorted(status["queues"].items()):
        print(f"  → {dest}: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    print("peers:" if status["peers"] else "peers: (none contacted yet)")
    for p in status["peers"]:
        err = f"  last error: {p['last_error']}" if p["last_error"] else ""
        print(f"  {p['node_id']}: {p['state']} since {p['since']} (failures {p['failures']}){err}")
    print("inbound: " + (", ".join(f"{s} {n}" for s, n in sorted(status["inbound"].items())) or "(none)"))
    for e in status["last_errors"]:
        print(f"  ! {e['message_id']} from {e['origin']}: {e['code']} {e['message']}")
    return 0
