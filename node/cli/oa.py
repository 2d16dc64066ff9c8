"""``gwx oa dead | replay``: the pushes to a unit's OA that were dead-lettered, and sending them again.

Like ``gwx node status`` these work on the node directory itself, running node or not: they open
the store without its start-up recovery (the node may be running: recovery is its business) and
change it in one transaction; a running node delivers replayed rows within seconds, with the
same 公文标识 and event id as before. ``gwx node status`` counts each OA's rows (``oa:<unit>``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from node.cli.node_admin import NODE_DIR_HELP, in_node_store, print_dead_letters
from node.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dead", help="list the pushes to a unit's OA that were dead-lettered, with the OA's fault")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--unit", required=True, help="the unit whose OA it is ([[oa_push]] unit)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_dead)

    p = sub.add_parser("replay", help="push a unit's dead letters to its OA again (all, or those of --row), "
                                      "due now, with a fresh retry window")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--unit", required=True, help="the unit whose OA it is ([[oa_push]] unit)")
    p.add_argument("--row", dest="rows", type=int, action="append", metavar="ID",
                   help="only this dead letter (as gwx oa dead lists it); repeatable")
    p.set_defaults(func=_replay)


def _in_store(args: argparse.Namespace, work):
    """Run ``work(store, consumer name)`` on the node's store, for a unit that has an OA push."""
    from node.config import load_config
    from pki.unit_code import validate_unit_code

    config = load_config(args.dir)
    unit = validate_unit_code(args.unit)
    push = next((p for p in config.oa_push if p.unit == unit), None)
    if push is None:
        raise ConfigError(f"node.toml has no [[oa_push]] for unit {unit}", key="oa_push.unit", unit=unit)

    return push.consumer_name, in_node_store(config, lambda store: work(store, push.consumer_name))


def _dead(args: argparse.Namespace) -> int:
    consumer, dead = _in_store(args, lambda store, name: store.adapter_outbox.rows(name, state="dead", limit=1000))
    return print_dead_letters(consumer, dead, "gwx oa replay pushes them again", args.json)


def _replay(args: argparse.Namespace) -> int:
    consumer, n = _in_store(args, lambda store, name: store.adapter_outbox.replay(name, args.rows))
    print(f"{consumer}: {n} dead letter(s) queued again" + ("" if n else " (none were dead)"))
    return 0
