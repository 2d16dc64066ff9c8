"""Every ``gwx`` command and option says what it is in ``--help``, defaults included."""

from __future__ import annotations

import argparse

from node.cli.main import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"gwx {' '.join((*path, name))} has no help line"
                yield from _commands(sub, (*path, name))


def test_every_command_and_option_has_help_text():
    missing = []
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"gwx {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_commands_own_help_says_what_it_does():
    """``gwx node add-peer --help`` said nothing but its usage: a command's own help opens with what it is."""
    silent = [" ".join(path) for path, parser in _commands(build_parser()) if path and not parser.description]
    assert silent == []
    for path in (("node", "add-peer"), ("node", "audit", "verify")):
        parser = build_parser()
        for name in path:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert parser.description and parser.description in " ".join(parser.format_help().split())


def test_options_with_a_default_say_it():
    unsaid = []
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.default in (None, False, [], argparse.SUPPRESS):
                continue
            if isinstance(action, argparse._HelpAction):
                continue
            if "default" not in (action.help or ""):
                unsaid.append(f"gwx {' '.join(path)} {action.option_strings[0]} (default {action.default!r})")
    assert unsaid == []


def test_valid_days_says_what_happens_without_it():
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if "--valid-days" in action.option_strings:
                assert "default" in action.help, f"gwx {' '.join(path)} --valid-days"


def test_a_command_of_one_group_loads_that_group_alone_and_answers_as_the_whole_line_does():
    """``gwx pki …`` imports the pki commands, not the node, doc, archive … ones (each gwx run started
    ~0.1 s slower for them), and ``gwx track …`` the top-level commands alone; their help and the
    top-level help are those of the whole command line."""
    import subprocess
    import sys

    from tests.support import REPO

    def loaded_by(argv: list[str]) -> str:
        probe = ("import contextlib, io, sys\n"
                 "from node.cli.main import main\n"
                 "out = io.StringIO()\n"
                 "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
                 f"    main({argv!r})\n"
                 "print(sorted(m for m in sys.modules if m.startswith('node.cli.')))\n")
        loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert loaded.returncode == 0, loaded.stderr
        return loaded.stdout

    pki = loaded_by(["pki", "show", "--help"])
    assert "'node.cli.pki_ca'" in pki
    for other in ("node_admin", "node_run", "doc", "archive", "webhook", "ledger", "clerk", "net"):
        assert f"'node.cli.{other}'" not in pki, other
    for argv in (["track", "--help"], ["--help"]):  # a clerk's top-level command: those alone
        top_level = loaded_by(argv)
        assert "'node.cli.clerk'" in top_level
        for other in ("pki_ca", "node_admin", "node_run", "doc", "archive", "webhook", "ledger", "net"):
            assert f"'node.cli.{other}'" not in top_level, (argv, other)
    whole = build_parser()
    for argv in (["pki", "show", "--help"], ["--help"], ["track", "--help"], ["send", "--help"]):
        assert _help_text(build_parser(argv[0]), argv) == _help_text(whole, argv)


def _help_text(parser: argparse.ArgumentParser, argv: list[str]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parser.parse_args(argv)
    return out.getvalue()
