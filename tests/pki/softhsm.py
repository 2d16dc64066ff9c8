"""A throw-away softhsm2 token for tests, shared by every test module in the process.

softhsm reads ``SOFTHSM2_CONF`` once, at ``C_Initialize``, and python-pkcs11 loads a module
once per process; a second configuration created later in the same run would be silently
ignored. So the token directory is created once per process (the first caller wins) and test
modules that need a token import :func:`softhsm_fixture` (fixture name ``softhsm``) from here rather than making their own.
softhsm2 missing is a failure, not a skip: ``make`` installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                     "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "gwx-test"
USER_PIN = "gwx-user-pin-2471"
SO_PIN = "gwx-so-pin-9318"


@dataclass(frozen=True)
class SoftHsm:
    module: str
    token_label: str
    pin: str
    conf: Path


_instance: SoftHsm | None = None


def _setup(base: Path) -> SoftHsm:
    module = next((m for m in MODULE_CANDIDATES if os.path.isfile(m)), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        pytest.fail("softhsm2 is not installed (need softhsm2-util and libsofthsm2.so); "
                    "run `make system-deps` or `apt-get install softhsm2`", pytrace=False)
    import pkcs11

    if os.path.realpath(module) in pkcs11._loaded:  # loaded before our configuration existed
        pytest.fail("libsofthsm2 was loaded before tests.pki.softhsm configured it; "
                    "use the `softhsm` fixture from tests/pki/softhsm.py", pytrace=False)
    tokens = base / "tokens"
    tokens.mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run([util, "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", SO_PIN,
                    "--pin", USER_PIN], check=True, capture_output=True, env=os.environ)
    return SoftHsm(module=module, token_label=TOKEN_LABEL, pin=USER_PIN, conf=conf)


@pytest.fixture(scope="session", name="softhsm")
def softhsm_fixture(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    global _instance
    if _instance is None:
        _instance = _setup(tmp_path_factory.mktemp("softhsm"))
    return _instance
