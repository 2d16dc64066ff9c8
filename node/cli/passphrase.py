"""Where passphrases come from: ``GWX_PASSPHRASE``, ``--passphrase-file``, or a prompt.

Never from a command-line argument: arguments show in ``ps`` and shell history.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from pki.errors import KeyStoreError

ENV_VAR = "GWX_PASSPHRASE"


def add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--passphrase-file", metavar="FILE",
                        help=f"read the key passphrase from FILE (else ${ENV_VAR}, else a prompt)")


def get_passphrase(args: argparse.Namespace, *, confirm: bool = False, what: str = "key") -> bytes:
    path = getattr(args, "passphrase_file", None)
    if path:
        with open(path, "rb") as f:
            value = f.read().rstrip(b"\r\n")
        if not value:
            raise KeyStoreError(f"passphrase file {path} is empty", code="PKI_NO_PASSPHRASE")
        return value
    env = os.environ.get(ENV_VAR)
    if env:
        return env.encode()
    if not sys.stdin.isatty():
        raise KeyStoreError(
            f"no passphrase: set {ENV_VAR} or give --passphrase-file (no terminal to prompt on)",
            code="PKI_NO_PASSPHRASE")
    first = getpass.getpass(f"{what} passphrase: ")
    if confirm and getpass.getpass(f"{what} passphrase (again): ") != first:
        raise KeyStoreError("passphrases do not match", code="PKI_NO_PASSPHRASE")
    return first.encode()


def forget_passphrase_variable() -> None:
    """Take ``GWX_PASSPHRASE`` out of this process's environment once a long-running process (a node)
    has read it: every process it starts inherits the environment — its check processes, which parse
    hostile ZIP/PDF input, multiprocessing's resource tracker, pdftoppm — and the passphrase with the
    key files is the keys. Nothing in the node reads the variable again (it keeps the bytes it was
    given)."""
    os.environ.pop(ENV_VAR, None)
