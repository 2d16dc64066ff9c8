"""tests.rewrite_cache (``make bytecode``, run before every ``make test``): a module pytest's rewriter
cannot take is left to pytest and the command still succeeds, saying so once; a project whose pytest
configuration sets ``enable_assertion_pass_hook`` gets nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.rewrite_cache import main, pass_hook_enabled

ROOT = Path(__file__).resolve().parent.parent


def _modules(directory: Path) -> None:
    (directory / "test_fine.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    (directory / "test_broken.py").write_text("def test_y(:\n")
    (directory / "conftest.py").write_text("assert (\n")


def test_modules_that_cannot_be_rewritten_are_left_to_pytest_with_one_warning(tmp_path: Path) -> None:
    _modules(tmp_path)
    done = subprocess.run([sys.executable, "-m", "tests.rewrite_cache", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "2 of 3 modules not written, pytest rewrites them" in lines[0], done.stderr
    assert "SyntaxError" in lines[0]
    cached = sorted(p.name for p in (tmp_path / "__pycache__").iterdir())
    assert len(cached) == 1 and cached[0].startswith("test_fine.") and "-pytest-" in cached[0]  # no partial file


@pytest.mark.parametrize("name, text", [
    ("pyproject.toml", "[tool.pytest.ini_options]\nenable_assertion_pass_hook = true\n"),
    ("pytest.ini", "[pytest]\nenable_assertion_pass_hook = True\n"),
    ("setup.cfg", "[tool:pytest]\nenable_assertion_pass_hook = true\n"),
])
def test_nothing_is_written_when_the_pytest_configuration_sets_the_pass_hook(tmp_path: Path, capsys, name: str,
                                                                            text: str) -> None:
    (tmp_path / name).write_text(text)
    tests = tmp_path / "tests"
    tests.mkdir()
    _modules(tests)
    assert main([str(tests)], root=tmp_path) == 0
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 1 and "enable_assertion_pass_hook; nothing written" in said[0]
    assert not (tests / "__pycache__").exists()


def test_this_project_does_not_set_the_pass_hook() -> None:
    assert not pass_hook_enabled(ROOT)
