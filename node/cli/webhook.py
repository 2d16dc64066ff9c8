"""``gwx webhook add | list | remove | test | replay``: the node's webhook subscriptions.

Like ``gwx node status`` these work on the node directory itself, running node or not (whoever can
read it can read the store anyway; a token would add nothing): they open the store without its
start-up recovery, change it in one transaction, and a running node follows within a second. A
secret is printed by ``add`` only, once; it is kept in a 0600 file the node reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from node.cli.node_admin import NODE_DIR_HELP, in_node_store, print_dead_letters

EVENTS_HELP = ("document.received, document.signed_for, document.returned, document.registered, "
               "document.recalled, document.urged, delivery.failed, document.overdue, document.escalated, "
               "document.supervision_settled")
SCHEME_HELP = ("Each event is POSTed as JSON with headers X-Gwx-Event-Id, X-Gwx-Event-Type, X-Gwx-Timestamp "
               "(unix seconds) and X-Gwx-Signature: v1=HEX(HMAC-SHA256(secret, TIMESTAMP + '.' + BODY)). "
               "A receiver verifies the signature, refuses timestamps more than 5 minutes off, and acts on "
               "each event id once (README: Webhooks).")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add", help="subscribe a URL to a unit's events; prints the new webhook's id and secret "
                                   "(the only time the secret is shown)", description=SCHEME_HELP)
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--unit", required=True, help="the unit whose events are sent (a unit this node hosts)")
    p.add_argument("--url", required=True, help="where to POST: http(s)://host[:port]/path (no user:password)")
    p.add_argument("--event", action="append", dest="events", metavar="TYPE",
                   help=f"an event type to send (repeat for several; default all): {EVENTS_HELP}")
    p.add_argument("--json", action="store_true", help="print {id, secret, …} as JSON, for scripts")
    p.set_defaults(func=_add)

    p = sub.add_parser("list", help="the webhooks with their rows pending, done and dead; with an ID, its dead "
                                    "letters (what replay would send again)")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("id", nargs="?", help="a webhook id: list its dead letters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_list)

    p = sub.add_parser("change", help="point a webhook at another URL and/or give it a new secret, keeping "
                                      "the events queued for it (remove + add would drop them)")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("id", help="the webhook id (gwx webhook list)")
    p.add_argument("--url", help="the new URL: http(s)://host[:port]/path (no user:password)")
    p.add_argument("--new-secret", action="store_true",
                   help="make a new secret (printed this once; used from the next attempt on)")
    p.set_defaults(func=_change)

    p = sub.add_parser("remove", help="delete a webhook, its queued events and its secret")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("id", help="the webhook id (gwx webhook list)")
    p.set_defaults(func=_remove)

    p = sub.add_parser("test", help="POST a signed webhook.test event to the webhook's URL now and print the "
                                    "receiver's answer (nothing is queued)", description=SCHEME_HELP)
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("id", help="the webhook id (gwx webhook list)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    p.set_defaults(func=_test)

    p = sub.add_parser("replay", help="send a webhook's dead letters again (all, or those of --row), due now, "
                                      "with a fresh retry window")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("id", help="the webhook id (gwx webhook list)")
    p.add_argument("--row", type=int, action="append", dest="rows", metavar="N",
                   help="only this dead row (repeat; gwx webhook list ID shows them)")
    p.set_defaults(func=_replay)


def _in_store(args: argparse.Namespace, work):
    """Run ``work(store, config)`` on the node's store (:func:`node.cli.node_admin.in_node_store`)."""
    from node.config import load_config

    config = load_config(args.dir)
    return in_node_store(config, lambda store: work(store, config))


def _add(args: argparse.Namespace) -> int:
    from adapters.webhooks import subscriptions

    async def work(store, config):
        return await subscriptions.add(store, config, args.unit, args.url, args.events, dt.datetime.now(dt.UTC))
    sub, secret = _in_store(args, work)
    if args.json:
        print(json.dumps({"id": sub.id, "unit": sub.unit, "url": sub.url, "events": list(sub.types),
                          "secret": secret}, ensure_ascii=False))
        return 0
    print(f"webhook {sub.id}: {', '.join(sub.types)} of {sub.unit} → {sub.url}")
    print(f"secret: {secret}")
    print("  (shown this once: give it to the receiver now; it verifies X-Gwx-Signature with it)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from adapters.webhooks import subscriptions
    from adapters.webhooks.delivery import consumer_name

    async def work(store, config):
        if args.id:
            sub = await subscriptions.get(store, args.id)
            return sub, await store.adapter_outbox.rows(consumer_name(sub.id), state="dead", limit=100)
        counts = await store.adapter_outbox.counts()
        return [(s, counts.get(consumer_name(s.id), {})) for s in await store.adapter_outbox.webhooks()], None
    found, dead = _in_store(args, work)
    if args.id:
        return print_dead_letters(f"webhook {found.id}", dead, "gwx webhook replay sends them again", args.json)
    listing = [{"id": s.id, "unit": s.unit, "url": s.url, "events": list(s.types),
                "created_at": s.created_at.isoformat(), **{k: c.get(k, 0) for k in ("pending", "done", "dead")}}
               for s, c in found]
    if args.json:
        print(json.dumps(listing, ensure_ascii=False, indent=2))
        return 0
    if not listing:
        print("no webhooks (gwx webhook add)")
    for w in listing:
        print(f"{w['id']}  {w['unit']} → {w['url']}  [{', '.join(w['events'])}]")
        print(f"    pending {w['pending']}, done {w['done']}, dead {w['dead']}")
    return 0


def _change(args: argparse.Namespace) -> int:
    from adapters.webhooks import subscriptions

    sub, secret = _in_store(args, lambda store, config: subscriptions.change(
        store, config, args.id, url=args.url, new_secret_too=args.new_secret))
    print(f"webhook {sub.id}: {', '.join(sub.types)} of {sub.unit} → {sub.url} (queued events kept)")
    if secret is not None:
        print(f"new secret: {secret}")
        print("  (shown this once; the running node signs with it from its next attempt on)")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from adapters.webhooks import subscriptions

    sub = _in_store(args, lambda store, config: subscriptions.remove(store, config, args.id))
    print(f"webhook {sub.id} removed ({sub.unit} → {sub.url}); its queued events and secret are gone")
    return 0


def _test(args: argparse.Namespace) -> int:
    from adapters.webhooks import subscriptions
    from adapters.webhooks.delivery import send_test

    async def work(store, config):
        sub = await subscriptions.get(store, args.id)
        return sub, await send_test(sub, subscriptions.read_secret(config, sub.id), config.node_id, args.timeout)
    sub, status = _in_store(args, work)
    print(f"webhook {sub.id}: {sub.url} answered {status} to a signed webhook.test event")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from adapters.webhooks import subscriptions
    from adapters.webhooks.delivery import consumer_name

    async def work(store, config):
        sub = await subscriptions.get(store, args.id)
        return await store.adapter_outbox.replay(consumer_name(sub.id), args.rows)
    n = _in_store(args, work)
    print(f"webhook {args.id}: {n} dead letter(s) queued again" + ("" if n else " (none were dead)"))
    return 0
