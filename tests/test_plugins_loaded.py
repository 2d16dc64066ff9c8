"""tests/conftest.py's ``pytest_configure``: a run without a plugin the suite relies on stops at once
and says which (`make test` names its plugins with autoloading off: one left out of the Makefile's
list would otherwise be silently not loaded, every timeout a no-op)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _collect(*plugins: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not this run's options
    named = [arg for plugin in plugins for arg in ("-p", plugin)]
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--disable-plugin-autoload",
                           *named, "--collect-only", "-q", "tests/test_plugins_loaded.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def test_a_run_without_the_timeout_plugin_stops_and_says_so() -> None:
    done = _collect("hypothesispytest")
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's usage error, before any test
    assert "not loaded" in done.stderr and "timeout: pytest-timeout" in done.stderr
    assert "hypothesispytest" not in done.stderr


def test_a_run_with_the_plugins_named_goes_ahead() -> None:
    done = _collect("timeout", "hypothesispytest")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_a_run_with_the_plugins_named_goes_ahead" in done.stdout
