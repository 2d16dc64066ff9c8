"""``gwx node run``, ``gwx node stop`` and ``gwx node status``.

``status`` reads the node directory (read-only) rather than asking the running node: whoever can
read the directory can read the store anyway, so a token adds nothing, and the report is there
when the node is stopped or wedged — which is when an operator needs it most."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

from node.cli.passphrase import add_passphrase_option, forget_passphrase_variable, get_passphrase


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="serve the peer API (mutual TLS) and the local API until SIGTERM")
    p.add_argument("--dir", required=True, type=Path, help="the node directory (the one gwx node init created)")
    p.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="how much the node logs (JSON lines on stderr; default INFO)")
    add_passphrase_option(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("stop", help="stop the node running in a node directory (SIGTERM, then wait while "
                                     "it drains: in-flight requests and batches get 5 s, then are cut and resume at the next "
                                     "start; the node exits within 10 s)")
    p.add_argument("--dir", required=True, type=Path, help="the node directory (the one gwx node init created)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to exit (default 60)")
    p.set_defaults(func=_stop)

    p = sub.add_parser("status", help="readiness (CRL, certificates, seals, store, disk), queues, peers with "
                                       "the last refusal, last errors, adapters' outboxes — read from the node directory, no token")
    p.add_argument("--dir", required=True, type=Path, help="the node directory (the one gwx node init created)")
    p.add_argument("--json", action="store_true", help="print the status as one JSON object, for scripts")
    p.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from node.config import load_config
    from node.ops import logs
    from node.run_lock import ensure_not_running
    from node.runner import serve

    config = load_config(args.dir)
    ensure_not_running(config.directory)  # before the passphrase prompt; serve() takes the lock itself
    passphrase = get_passphrase(args, what="node key")
    forget_passphrase_variable()
    logs.configure(config.node_id, args.log_level)
    asyncio.run(serve(config, passphrase))
    return 0


def _stop(args: argparse.Namespace) -> int:
    from node.config import load_config
    from node.errors import NodeStopTimeout
    from node.run_lock import holder

    config = load_config(args.dir)
    pid = holder(config.directory)
    if pid is None:
        print(f"node {config.node_id} is not running in {config.directory}")
        return 0
    if pid:
        with contextlib.suppress(ProcessLookupError):  # exited between the look and the signal
            os.kill(pid, signal.SIGTERM)
    print(f"stopping node {config.node_id} (pid {pid or '?'}): draining…", flush=True)
    deadline = time.monotonic() + args.timeout
    # Drained when the lock is free (the store is closed before it is released); done when the
    # process is gone too.
    while holder(config.directory) is not None or (pid and _alive(pid)):
        if time.monotonic() > deadline:
            raise NodeStopTimeout(f"node {config.node_id} (pid {pid}) still running after {args.timeout:g}s; it may "
                                  "be finishing a large transfer — wait, or run `gwx node stop` again", pid=pid)
        if not pid:  # it was still starting: it has written its pid by now
            pid = holder(config.directory) or 0
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        time.sleep(0.1)
    print(f"node {config.node_id} stopped")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) has finished
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _status(args: argparse.Namespace) -> int:
    import datetime as dt

    from node.config import load_config
    from node.ops.status import from_directory

    config = load_config(args.dir)
    status = from_directory(config, dt.datetime.now(dt.UTC))
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
        return 0
    running = status["running"]
    state = f"running (pid {running['pid']})" if running else "not running"
    print(f"node {status['node_id']}  {state}  units: " + ", ".join(f"{u['code']} {u['name']}" for u in status["units"]))
    if running and running.get("local_url"):
        print(f"  local API {running['local_url']}  peer API {running.get('peer_url', '?')}")
    readiness = status["readiness"]
    print("ready: " + ("yes" if readiness["ready"] else "NO"))
    for c in readiness["checks"]:
        code = f"  [{c['code']}]" if c.get("code") else ""
        print(f"  {_MARKS[c['verdict']]} {c['name']}: {c['message']}{code}")
    print("queues:" if status["queues"] else "queues: (empty)")
    for dest, states in sorted(status["queues"].items()):
        print(f"  → {dest}: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    print("peers:" if status["peers"] else "peers: (none contacted yet)")
    for p in status["peers"]:
        # A peer's last error stays on its row after it is reached again: say it came before.
        label = "last error before that" if p["state"] == "up" else "last error"
        err = f"  {label}: {p['last_error']}" if p["last_error"] else ""
        print(f"  {p['node_id']}: {p['state']} since {p['since']} (failures {p['failures']}){err}")
        if p["refusal"]:
            r = p["refusal"]
            print(f"    {r['envelopes']} waiting; last answer {r['at']}: {r['code']} {r['message'] or ''}")
    print("inbound: " + (", ".join(f"{s} {n}" for s, n in sorted(status["inbound"].items())) or "(none)"))
    for e in status["last_errors"]:
        print(f"  ! {e['message_id']} from {e['origin']}: {e['code']} {e['message']}")
    print("adapters:" if status["adapters"] else "adapters: (none)")
    for consumer, a in sorted(status["adapters"].items()):
        print(f"  {consumer}: pending {a['pending']}, done {a['done']}, dead {a['dead']}")
        if a["last_dead"]:
            d = a["last_dead"]
            print(f"    last dead letter {d['at']}: {d['code']} {d['message'] or ''}")
    return 0


_MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
