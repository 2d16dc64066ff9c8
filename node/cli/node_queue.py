"""``gwx node queue list|hold|release|retry|purge`` and ``gwx node audit verify``.

The queue commands go through the running node's local API (operator token): only the running
node can wake a destination so a released or retried envelope leaves at once, and seal the bounce a
purge owes the sender (:mod:`node.federation.queue_admin`). ``--dir`` finds the node's local API in
``NODE_DIR/run/ready.json``; ``--node URL`` names it instead. Each change is one audit event with the
token's person as its actor.

``audit verify`` needs no running node and no token: it reads the store (the node may be running)
and walks the whole hash chain, naming the first event that does not verify.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from pathlib import Path
from typing import Any

from node.cli.api_client import DEFAULT_NODE, ApiClient, read_token
from node.cli.node_admin import NODE_DIR_HELP, in_node_store
from node.errors import NodeUnavailable

ENVIRONMENT = """environment:
  GWX_TOKEN  an operator's API token (gwx node add-token --role operator); --token-file FILE reads it from a file"""
IDS_HELP = "message ids, as gwx node queue list shows them"


def register(sub: argparse._SubParsersAction) -> None:
    queue = sub.add_parser("queue", help="the send queue of a running node: list, hold, release, retry, purge "
                                         "(an operator token; each change is in the audit log)",
                           description="The send queue, changed through the running node (it wakes the destination "
                                       "and seals the bounce a purge owes the sender): --dir finds its local API in "
                                       "NODE_DIR/run/ready.json, --node URL names it. Each change is one audit event "
                                       "with the token's person as its actor.")
    commands = queue.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    p = _command(commands, "list", "envelopes waiting for a next hop, oldest first, with the 公文标识 of ours")
    p.add_argument("--destination", metavar="NODE", help="only those for this next hop")
    p.add_argument("--state", action="append", choices=["incoming", "active", "deferred", "hold", "corrupt",
                                                         "sent", "bounced"],
                   help="only rows in this state (repeatable; default: the unfinished ones)")
    p.add_argument("--limit", type=int, default=100, help="at most this many rows (1–500, default 100)")
    p.add_argument("--after", metavar="MESSAGE_ID", help="the page after this message id")
    p.set_defaults(func=_list)
    p = _command(commands, "hold", "park envelopes (queued, deferred or in flight) until released")
    p.add_argument("message_ids", nargs="+", metavar="MESSAGE_ID", help=IDS_HELP)
    p.add_argument("--reason", default="", help="why (recorded in the audit log; default: none given)")
    p.set_defaults(func=_act, action="hold")
    p = _command(commands, "release", "let held envelopes go again, due now")
    p.add_argument("message_ids", nargs="+", metavar="MESSAGE_ID", help=IDS_HELP)
    p.set_defaults(func=_act, action="release")
    p = _command(commands, "retry", "try now: queued or deferred envelopes due now, their next hop's backoff ended")
    p.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID", help=IDS_HELP)
    p.add_argument("--destination", metavar="NODE", help="every waiting envelope for this next hop")
    p.set_defaults(func=_retry)
    p = _command(commands, "purge", "give up on envelopes at rest: the sending unit sees them failed with "
                                    "QUEUE_PURGED and your reason; a relayed one's origin gets a bounce")
    p.add_argument("message_ids", nargs="+", metavar="MESSAGE_ID", help=IDS_HELP)
    p.add_argument("--reason", required=True, help="why: the sender is told it")
    p.set_defaults(func=_act, action="purge")

    audit = sub.add_parser("audit", help="the node's audit log: verify its whole hash chain")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    p = commands.add_parser("verify", help="walk the whole hash chain and name the first event that does not verify "
                                           "(exit 1); works while the node runs, no token needed")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_audit_verify)


def _command(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text, epilog=ENVIRONMENT,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", type=Path, help=NODE_DIR_HELP + " (its local API is found in run/ready.json)")
    where.add_argument("--node", help=f"the node's local API URL (e.g. {DEFAULT_NODE})")
    p.add_argument("--token-file", metavar="FILE", help="a file holding an operator token (default: $GWX_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the node's JSON answer")
    return p


def _client(args: argparse.Namespace) -> ApiClient:
    url = args.node
    if url is None:
        try:
            url = json.loads((args.dir / "run" / "ready.json").read_text())["local_url"]
        except (OSError, ValueError, KeyError, TypeError):
            raise NodeUnavailable(f"the node in {args.dir} is not running (no run/ready.json): start it with "
                                  "gwx node run; the queue is changed through the running node",
                                  code="NODE_NOT_RUNNING") from None
    return ApiClient(url, read_token(args.token_file))


def _path(*segments: str) -> str:
    return "/api/v1/node/" + "/".join(urllib.parse.quote(s, safe="") for s in segments)


def _row_line(r: dict[str, Any]) -> str:
    error = f"  {r['last_error']['code']}: {r['last_error']['message']}" if r.get("last_error") else ""
    doc = f"  {r['doc_id']}" if r.get("doc_id") else ""
    return (f"{r['message_id']}  → {r['destination']}  {r['type']}  {r['state']}  attempts {r['attempts']}  "
            f"queued {r['created_at']}  next {r['next_attempt_at']}{doc}{error}")


def _list(args: argparse.Namespace) -> int:
    query = [("limit", str(args.limit))] + [("state", s) for s in args.state or ()]  # state repeats
    query += [(name, value) for name, value in (("destination", args.destination), ("after", args.after)) if value]
    rows = _client(args).get(_path("queue") + "?" + urllib.parse.urlencode(query))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{len(rows)} envelope(s)" + (":" if rows else ""))
    for r in rows:
        print("  " + _row_line(r))
    return 0


def _act(args: argparse.Namespace) -> int:
    client = _client(args)
    body = {"reason": args.reason} if args.action in ("hold", "purge") and args.reason else None
    rows = [client.post(_path("queue", m, args.action), body) for m in args.message_ids]
    return _print_rows(args, rows, {"hold": "held", "release": "released", "purge": "purged"}[args.action])


def _retry(args: argparse.Namespace) -> int:
    if bool(args.message_ids) == bool(args.destination):
        from node.cli.api_client import BadInput
        raise BadInput("give message ids or --destination NODE, not both or neither")
    client = _client(args)
    if args.destination:
        result = client.post(_path("queues", args.destination, "retry"))
        if args.json:
            print(json.dumps(result, ensure_ascii=False, indent=2))
        else:
            print(f"{len(result['retried'])} envelope(s) for {args.destination} due now")
        return 0
    return _print_rows(args, [client.post(_path("queue", m, "retry")) for m in args.message_ids], "due now")


def _print_rows(args: argparse.Namespace, rows: list[dict[str, Any]], done: str) -> int:
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        print(f"{done}: " + _row_line(r))
    return 0


async def audit_report(store) -> dict[str, Any]:
    """The whole chain walked (v1 and v2 rows, the store's ``verify_chain``): {"ok", "events"}, or
    {"ok": false, "error", "event"} naming the first event that does not verify (null when it is
    missing altogether)."""
    from node.errors import AuditChainBroken

    try:
        return {"ok": True, "events": await store.audit.verify_chain()}
    except AuditChainBroken as exc:
        seq = exc.details.get("seq")
        found = await store.audit.events(after_seq=seq - 1, limit=1) if isinstance(seq, int) else []
        event = found[0] if found and found[0].seq == seq else None
        return {"ok": False, "error": exc.to_dict(),
                "event": {"seq": event.seq, "at": event.at.isoformat(), "actor": event.actor,
                          "action": event.action, "subjects": event.subjects} if event else None}


def _audit_verify(args: argparse.Namespace) -> int:
    from node.config import load_config

    config = load_config(args.dir)
    result = in_node_store(config, audit_report)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif result["ok"]:
        print(f"audit log of {config.node_id}: {result['events']} events, the hash chain verifies from the first "
              "to the last")
    else:
        error, event = result["error"], result["event"]
        print(f"audit log of {config.node_id}: BROKEN — {error['message']} ({error['details'].get('reason')})")
        if event:
            print(f"  first broken event: seq {event['seq']} at {event['at']} by {event['actor']}: {event['action']} "
                  + json.dumps(event["subjects"], ensure_ascii=False))
    return 0 if result["ok"] else 1
