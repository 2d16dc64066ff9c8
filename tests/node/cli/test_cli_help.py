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
