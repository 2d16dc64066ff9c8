"""Fixtures shared by the whole suite: a real network CA made by our own code, and openssl.

The session-scoped CA is created once (key generation is the slow part); tests that mutate a CA
(revocations, CRL numbers) make their own with ``make_ca``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from pki.ca import CertificateAuthority

PASSPHRASE = b"correct horse battery"


def run_openssl(*args: str | Path, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the system openssl (a tool we did not write) and return the completed process."""
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl is not installed; `make test` installs it")
    proc = subprocess.run([exe, *map(str, args)], input=input, capture_output=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{proc.stderr.decode(errors='replace')}")
    return proc


@pytest.fixture(scope="session")
def passphrase() -> bytes:
    return PASSPHRASE


@pytest.fixture(scope="session")
def root_ca(tmp_path_factory) -> CertificateAuthority:
    """A root CA shared read-only by the session (do not revoke with it)."""
    return CertificateAuthority.init_root(tmp_path_factory.mktemp("root-ca") / "ca", "临沂市电子政务根CA", PASSPHRASE)


@pytest.fixture
def make_ca(tmp_path):
    """Factory for a fresh, private CA (for tests that revoke or need a second network)."""
    counter = iter(range(100))

    def make(name: str = "测试CA", algorithm: str = "ecdsa-p256-sha256",
             now: dt.datetime | None = None) -> CertificateAuthority:
        return CertificateAuthority.init_root(tmp_path / f"ca{next(counter)}", name, PASSPHRASE,
                                              algorithm=algorithm, now=now)

    return make


def run_gwx(*args: str | Path, env: dict[str, str] | None = None, input: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``gwx`` command line as a user would (a separate process), with text output."""
    import os
    import sys

    full_env = {k: v for k, v in os.environ.items() if k != "GWX_PASSPHRASE"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "node.cli.main", *map(str, args)], env=full_env,
                          input=input, capture_output=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parent.parent)
