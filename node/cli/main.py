"""Entry point of the ``gwx`` command.

Each command group lives in its own module exposing ``register(subparsers)``; a command sets
``func`` and returns an exit code. Typed errors (:class:`pki.errors.GwxError`) are caught here,
once, and printed as ``gwx: CODE: message`` (or JSON with ``--json``) with the exit code of
their kind (``node.error_kinds``, re-exported by ``node.cli.exit_codes``; README "Command line").
An ``OSError`` that reaches this far (a file named on the command line that does not exist or
cannot be read) is turned into the typed ``IO_ERROR`` here too, so no command needs its own
try/except around every open().
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys

from node.cli.exit_codes import FileProblem, exit_code_for
from pki.errors import GwxError

# (top-level command, help, modules) — modules register their subcommands under the group's parser;
# a group named None registers its commands at the top level (``gwx inbox``, not ``gwx x inbox``).
GROUPS: list[tuple[str | None, str, list[str]]] = [
    ("pki", "PKI: root CA, node certificates (signing nodes' requests), directory signer, electronic seals, "
            "revocation",
     ["node.cli.pki_ca", "node.cli.pki_requests", "node.cli.pki_seal", "node.cli.pki_revocation"]),
    ("net", "the network directory (root operator): build and sign it, show it, diff two versions",
     ["node.cli.net"]),
    ("doc", "sealed document packages: pack and verify; the unit-signed 签收/退回 statements held about one",
     ["node.cli.doc", "node.cli.doc_evidence"]),
    ("archive", "一键归档: build a finished document's archive package (from your node) and verify one offline",
     ["node.cli.archive"]),
    ("node", "enrol, run, renew and administer a gateway node",
     ["node.cli.node_admin", "node.cli.node_check", "node.cli.node_backup", "node.cli.node_enrol",
      "node.cli.node_run", "node.cli.node_renew", "node.cli.node_queue"]),
    ("webhook", "webhooks: a unit's events POSTed, signed, to an HTTP receiver (an SMS gateway …): add, list, "
                "remove, test, replay", ["node.cli.webhook"]),
    ("oa", "pushes to units' OA systems ([[oa_push]]): dead letters and replay", ["node.cli.oa"]),
    ("user", "the web console's users (/console/ on the local API): add, disable, enable, passwd, list",
     ["node.cli.user"]),
    ("ledger", "the 台账: the sent and received ledgers as CSV or XLSX, and their statistics",
     ["node.cli.ledger"]),
    (None, "clerks: send, inbox, outbox, show, download, sign-for, return, register, recall, urge, track, "
           "add-recipient (补发), forward (转发), supervision (督办)",
     ["node.cli.clerk", "node.cli.download", "node.cli.supervision"]),
]


EXIT_CODES_HELP = ("Errors print 'gwx: CODE: message' on stderr. Exit codes: 0 success; 1 a verification said no; "
                   "2 the input cannot be used as given (file, option, config); 3 refused (passphrase, PIN, "
                   "token); 4 try again later (node unreachable or busy, stale CRL); 5 internal error.")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line (``command`` None); or the part a run whose first argument is ``command``
    needs: a group's commands alone when it names a group, else (``gwx track``, ``gwx --help``) the
    top-level commands alone. The other groups are listed by name and help without importing their
    modules, so ``gwx node status`` does not pay ~0.1 s of CPU importing the pki, doc, archive … code,
    nor ``gwx track`` ~0.15 s importing every group's."""
    parser = argparse.ArgumentParser(prog="gwx", description="gwx — sealed official document exchange",
                                     epilog=EXIT_CODES_HELP)
    top = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    whole = command is None
    only = command if command in {name for name, _, _ in GROUPS if name is not None} else None
    for name, help_text, modules in GROUPS:
        if not whole and name != only:
            if name is not None:
                top.add_parser(name, help=help_text, description=help_text)
            continue
        if name is None:
            sub = top
        else:
            group = top.add_parser(name, help=help_text, description=help_text)
            sub = group.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue  # a command group not built yet
                raise
            module.register(sub)
        _describe(sub)
    return parser


def _describe(sub: argparse._SubParsersAction) -> None:
    """A command registered with a help line and no description says that line in its own ``--help``
    too (``gwx node add-peer --help`` otherwise showed the usage and options alone); nested groups as well."""
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, parser in sub.choices.items():
        if parser.description is None and helps.get(name):
            parser.description = helps[name]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _describe(action)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    _rearm_keyboard_interrupt()
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a reader that went away is noticed below, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except GwxError as exc:
        return _report(args, exc)
    except OSError as exc:
        return _report(args, FileProblem.from_os_error(exc))
    except KeyboardInterrupt:
        return 130


def _rearm_keyboard_interrupt() -> None:
    """Ctrl-C is KeyboardInterrupt again once the command runs (see node.cli's docstring)."""
    from node.cli import _interrupted_while_loading

    if signal.getsignal(signal.SIGINT) is _interrupted_while_loading:
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except ValueError:  # not the main thread
            pass


def _reader_gone() -> int:
    """stdout's reader left early (``gwx show ID --json | head``): stop quietly, as cat does.

    Python would print a traceback when it flushes stdout at exit; pointing stdout at /dev/null
    first leaves it nothing to complain about (the recipe in the signal module's documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _report(args: argparse.Namespace, exc: GwxError) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": exc.to_dict()}, ensure_ascii=False))
    else:
        print(f"gwx: {exc.code}: {exc.message}", file=sys.stderr)
    return exit_code_for(exc)


if __name__ == "__main__":
    sys.exit(main())
