"""What many tests share, written once: the passphrase of test keys, the hand-moved clock, tool runners.

* :data:`PASSPHRASE` protects every key file a test makes (CAs, seals, nodes); :data:`PASSPHRASE_TEXT`
  is the same passphrase as the clerks' CLI reads it from ``GWX_PASSPHRASE``. Nodes started by
  :mod:`node.localnet` are the exception: they are the local network's, under its own passphrase.
* :class:`FakeClock` is the suite's only fake: a clock the test moves by hand, telling datetimes or
  monotonic seconds.
* :func:`run_openssl` and :func:`run_gwx` run a tool as a user would, in a separate process;
  :func:`assert_typed_failure` checks that a ``gwx`` run failed the way users are promised (its
  stable code on stderr, the exit status of its kind, no traceback).
* :func:`one_unit_node` makes a node directory with one unit, for commands run on a node's files.
* :func:`absolute_imports` lists what a module's source imports, for the tests that keep a package
  from importing what it must not (exchange_protocol's sans-I/O rule, SQL only in the store backend).

The sample 公文 PDF every test, the demo and the benchmarks use is :func:`node.localnet.notice_pdf`
(bench/ and deploy/ cannot import tests/).
"""

from __future__ import annotations

import ast
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PASSPHRASE = b"correct horse battery"
PASSPHRASE_TEXT = PASSPHRASE.decode()

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # where a datetime clock starts
REPO = Path(__file__).resolve().parent.parent


class FakeClock:
    """A clock that tells ``now`` until the test moves it (``advance`` or assigning ``now``).

    ``FakeClock()`` tells aware UTC datetimes, from :data:`T0` (what the store and a node's context
    read); ``FakeClock.monotonic()`` tells seconds (what the token store's reload interval reads).
    ``advance`` takes :class:`datetime.timedelta`'s keywords whichever it tells.
    """

    def __init__(self, now: dt.datetime | float = T0) -> None:
        self.now = now

    @classmethod
    def monotonic(cls, start: float = 1000.0) -> FakeClock:
        return cls(start)

    def __call__(self) -> dt.datetime | float:
        return self.now

    def advance(self, **delta: float) -> dt.datetime | float:
        step = dt.timedelta(**delta)
        self.now += step if isinstance(self.now, dt.datetime) else step.total_seconds()
        return self.now


def run_openssl(*args: str | Path, input: bytes | None = None, check: bool = True,
                text: bool = False) -> subprocess.CompletedProcess:
    """Run the system openssl (a tool we did not write) and return the completed process.

    ``check``: a non-zero exit fails the test with openssl's own message; ``text``: str output.
    """
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl is not installed; `make test` installs it")
    proc = subprocess.run([exe, *map(str, args)], input=input, capture_output=True, timeout=60, text=text)
    if check and proc.returncode != 0:
        stderr = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{stderr}")
    return proc


def run_gwx(*args: str | Path, env: dict[str, str] | None = None, input: bytes | None = None,
            timeout: float = 120, text: bool = False) -> subprocess.CompletedProcess:
    """Run the ``gwx`` command line as a user would (a separate process); bytes, or str with ``text``.

    The caller's ``GWX_PASSPHRASE`` is not passed on: a test gives the passphrase it means in ``env``.
    """
    full_env = {k: v for k, v in os.environ.items() if k != "GWX_PASSPHRASE"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "node.cli.main", *map(str, args)], env=full_env,
                          input=input, capture_output=True, timeout=timeout, cwd=REPO, text=text)


def assert_typed_failure(out: subprocess.CompletedProcess, code: str, exit_code: int | None = None) -> str:
    """``out`` (a bytes :func:`run_gwx`) failed with ``code`` and its exit status (default: bad input),
    without a traceback; answer its stderr for further checks."""
    from node.cli.exit_codes import BAD_INPUT

    stderr = out.stderr.decode()
    assert "Traceback" not in stderr and "Traceback" not in out.stdout.decode()
    assert out.returncode == (BAD_INPUT if exit_code is None else exit_code), stderr
    assert f"gwx: {code}: " in stderr, stderr
    return stderr


def one_unit_node(base: Path, ca_name: str, unit_code: str, unit_name: str) -> Path:
    """A node directory ``base/node`` (node id ``lanshan``) hosting one unit, under a new root CA
    ``base/ca`` named ``ca_name``; answer the node's directory."""
    from node.provision import init_node
    from pki.ca import CertificateAuthority

    ca = CertificateAuthority.init_root(base / "ca", ca_name, PASSPHRASE)
    config, _ = init_node(base / "node", "lanshan", ca, [{"code": unit_code, "name": unit_name}],
                          PASSPHRASE, peer_port=0, local_port=0)
    return config.directory


def absolute_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in ``tree``, nested ones included; relative imports
    stay inside their own package and are left out."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module or ""))
    return found


def node_check_config_ok(out: subprocess.CompletedProcess) -> bool:
    """``gwx node check`` (bytes or text :func:`run_gwx`) of a directory holding a node.toml and the
    files it names but no credentials: the configuration's line is ok, and the check ends with an
    error only for what is not there (the keys) — exit 2, no traceback."""
    stdout = out.stdout if isinstance(out.stdout, str) else out.stdout.decode()
    lines = stdout.splitlines()
    return (out.returncode == 2 and any(line.split()[:2] == ["ok", "config"] for line in lines)
            and any(line.split()[:2] == ["error", "keys"] and "PKI_KEY_MISSING" in line for line in lines)
            and "Traceback" not in str(out.stderr))
