"""``gwx user add | disable | enable | passwd | list``: the console's users (node.console.accounts).

Like ``gwx webhook`` these work on the node directory itself, running node or not: whoever can read
it can read the store anyway. A running node sees a change at the user's next request (a disabled
user's sessions end at once). A password is read from ``--password-file`` or asked twice on the
terminal — never from the command line, where ``ps`` and the shell's history would show it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from node.cli.node_admin import NODE_DIR_HELP, in_node_store
from node.console.errors import BadUser

ROLE_HELP = ("clerk: the 收发员 of one unit this node hosts (--unit once); supervisor: 督办 of one or more units "
             "(--unit repeated, and/or --supervising-unit: every unit the directory says it supervises); "
             "operator: node status, no documents (no --unit)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add", help="create a console user (prints nothing secret; the password is asked for)",
                       description="Create a user who signs in to the console at http://LOCAL_API/console/. " + ROLE_HELP)
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--login", required=True, help="what the user types to sign in: 2-32 of a-z 0-9 . _ -")
    p.add_argument("--name", required=True, help="the person's name, recorded as 签收人 when they sign for a document")
    p.add_argument("--role", required=True, choices=("clerk", "supervisor", "operator"), help=ROLE_HELP)
    p.add_argument("--unit", action="append", default=[], dest="units", metavar="CODE",
                   help="a unit's 统一社会信用代码 (a clerk's one unit; a supervisor's, repeated — taken as "
                        "typed, not checked against the directory's supervising units)")
    p.add_argument("--supervising-unit", metavar="CODE",
                   help="a supervisor's: the supervising unit (业务主管单位) it works for; its scope is then also "
                        "every unit the network directory names that unit the supervisor of (else, without a "
                        "directory, the hosted units whose node.toml parent it is), read at each request")
    _password_option(p)
    p.set_defaults(func=_add)

    for name, disabled, text in (("disable", True, "stop a user from signing in; their sessions end at once"),
                                 ("enable", False, "let a disabled user sign in again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
        p.add_argument("login", help="the user's login (gwx user list)")
        p.set_defaults(func=_set_disabled, disabled=disabled)

    p = sub.add_parser("passwd", help="give a user a new password: unlocks the account and ends its sessions")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("login", help="the user's login (gwx user list)")
    _password_option(p)
    p.set_defaults(func=_passwd)

    p = sub.add_parser("list", help="the console's users: login, name, role, units, disabled or locked")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_list)


def _password_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-file", type=Path, metavar="FILE",
                   help="read the password from FILE's first line (else it is asked twice on the terminal)")


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        lines = args.password_file.read_text("utf-8").splitlines()
        if not lines or not lines[0]:
            raise BadUser(f"the password file {args.password_file} is empty", code="CONSOLE_NO_PASSWORD")
        return lines[0]
    if not sys.stdin.isatty():
        raise BadUser("no password: give --password-file (there is no terminal to ask on)", code="CONSOLE_NO_PASSWORD")
    first = getpass.getpass("new password: ")
    if getpass.getpass("new password (again): ") != first:
        raise BadUser("the two passwords differ", code="CONSOLE_NO_PASSWORD")
    return first


def _accounts(args: argparse.Namespace, work):
    from node.config import load_config
    from node.console.accounts import Accounts

    config = load_config(args.dir)

    async def run(store):
        import datetime as dt

        return await work(Accounts(store.accounts, lambda: dt.datetime.now(dt.UTC), [u.code for u in config.units]))
    return in_node_store(config, run)


def _add(args: argparse.Namespace) -> int:
    password = _password(args)
    user = _accounts(args, lambda accounts: accounts.add(args.login, args.name, args.role, args.units, password,
                                                         supervising_unit=args.supervising_unit))
    units = f" of {', '.join(user.units)}" if user.units else ""
    if user.supervising_unit:
        units += f"{' and' if user.units else ''} of the units {user.supervising_unit} supervises"
    print(f"user {user.login} ({user.name}) added: {user.role}{units}; they sign in at /console/ on the local API")
    return 0


def _set_disabled(args: argparse.Namespace) -> int:
    user = _accounts(args, lambda accounts: accounts.set_disabled(args.login, args.disabled))
    print(f"user {user.login} {'disabled (their sessions have ended)' if user.disabled else 'enabled'}")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    password = _password(args)
    user = _accounts(args, lambda accounts: accounts.set_password(args.login, password))
    print(f"user {user.login}: new password set; the account is unlocked and its sessions have ended")
    return 0


def _list(args: argparse.Namespace) -> int:
    import datetime as dt

    users = _accounts(args, lambda accounts: accounts.users())
    now = dt.datetime.now(dt.UTC)
    rows = [{"login": u.login, "name": u.name, "role": u.role, "units": list(u.units),
             "supervising_unit": u.supervising_unit, "disabled": u.disabled,
             "locked_until": u.locked_until.isoformat() if u.locked_until and u.locked_until > now else None}
            for u in users]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no users (gwx user add)")
    for r in rows:
        state = "disabled" if r["disabled"] else f"locked until {r['locked_until']}" if r["locked_until"] else "active"
        units = f"  {', '.join(r['units'])}" if r["units"] else ""
        units += f"  (supervising unit {r['supervising_unit']})" if r["supervising_unit"] else ""
        print(f"{r['login']}  {r['name']}  {r['role']}{units}  [{state}]")
    return 0
