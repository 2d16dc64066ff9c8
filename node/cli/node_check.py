"""``gwx node check``: the node directory checked as the node would check it at start, and what an
operator must act on soon, one line each (ok / warning / error), the exit code by the worst line:
0 all ok, 1 a warning, 2 an error. The checks themselves are :mod:`node.ops.checkup`'s."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from node.ops.readiness import EXPIRY_WARNING, FAIL, OK, WARN, Check

NODE_DIR_HELP = "the node directory (the one gwx node init created)"
SHOWN = {OK: "ok", WARN: "warning", FAIL: "error"}
EXIT = {OK: 0, WARN: 1, FAIL: 2}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="check a node directory: node.toml and the files it names, keys and their permissions, "
                      "certificate and seal expiry, CRLs, the store, disk space — ok / warning / error each",
        description="Check a node directory without starting the node or asking for its passphrase (the node "
                    "may be running): node.toml and the files it names (OA mapping files, the 督办 calendar, each "
                    "OA's mapping against its WSDL when it answers); keys encrypted and readable by the owner "
                    "alone, as the token files; certificates and seals (warning within "
                    f"{EXPIRY_WARNING.days} days of their end); "
                    "every CRL current; the network directory; the store opens and its schema is current; free "
                    "disk. One line each: ok, warning or error.",
        epilog="Exit code: 0 every line ok, 1 a warning, 2 an error. A node.toml that does not load is reported "
               "as 'gwx: CODE: message' with its own exit code, and nothing else is checked.")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--json", action="store_true",
                   help='machine-readable: {"node_id", "result": ok|warning|error, "checks": [{"name", "verdict", '
                        '"message", "code"?, "details"?}]}')
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from node.config import load_config
    from node.ops.checkup import run_checks, worst

    config = load_config(args.dir)  # a ConfigError (OA_MAPPING_INVALID …) exits 2 naming the key
    details = _config_details(config)
    checks = [Check("config", OK, f"{config.directory / 'node.toml'}: valid — node {config.node_id}, "
                    f"{len(config.units)} units, {len(config.peers)} peers, OA push for {len(config.oa_push)} "
                    "units"), *run_checks(config, dt.datetime.now(dt.UTC))]
    result = worst(checks)
    if args.json:
        rows = [{**c.to_dict(), "verdict": SHOWN[c.verdict]} for c in checks]
        rows[0]["details"] = details
        print(json.dumps({"node_id": config.node_id, "result": SHOWN[result], "checks": rows},
                         ensure_ascii=False, indent=2))
        return EXIT[result]
    width = max(len(c.name) for c in checks)
    for check in checks:
        code = f" [{check.code}]" if check.code and check.verdict != OK else ""
        print(f"{SHOWN[check.verdict]:<7}  {check.name:<{width}}  {check.message}{code}")
        if check.name == "config":
            for line in details:
                print(f"{'':<7}  {'':<{width}}    {line}")
    print(f"result: {SHOWN[result]}")
    return EXIT[result]


def _config_details(config) -> list[str]:
    """What node.toml asks of the node beyond its identity: 督办 and each OA push, its mapping checked
    against the OA's WSDL (a misfit raises its typed error)."""
    duban = config.supervision
    calendar = (f"calendar {duban.calendar_path} ({len(duban.calendar.holidays)} holidays, "
                f"{len(duban.calendar.workdays)} adjusted working days)" if duban.calendar_path else "no holiday calendar")
    lines = [f"督办: escalated after {duban.grace_working_days} working days, {calendar} "
             "(the network directory's [supervision] wins where it sets them)"]
    checks = config.processing.check_processes
    lines.append(f"package checks: {checks} check process{'es' if checks != 1 else ''} beside the node's "
                 "([processing] check_processes)" if checks else
                 "package checks: in the node's own process ([processing] check_processes = 0)")
    for push in config.oa_push:
        operations = " and ".join(filter(None, (push.received_operation, push.status_operation)))
        lines.append(f"{push.consumer_name}: {operations} at {push.wsdl}, mapping {push.mapping_path}")
        lines += [f"  note: {note}" for note in push.mapping.notes]
        lines.append(f"  {_check_oa_wsdl(push)}")
    return lines


def _check_oa_wsdl(push) -> str:
    """The mapping against the OA's WSDL (operations, parameters, their types): a misfit raises its
    typed error (naming the field); an OA that cannot be reached now is only reported."""
    import asyncio

    from adapters.oa_push.errors import OaUnavailable
    from adapters.oa_push.soap_call import OaClient

    async def check() -> None:
        client = OaClient(push)
        try:
            await client.check(limit=10.0)
        finally:
            await client.close()
    try:
        asyncio.run(check())
    except OaUnavailable as exc:
        return f"WSDL not checked: {exc.message} (the node checks it at start or at the first push)"
    return "WSDL checked: the operations and every mapped parameter's type fit"
