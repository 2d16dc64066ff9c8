"""Write pytest's assertion-rewritten bytecode of the test modules once, before the workers start.

pytest rewrites the ``assert`` statements of every test module and ``conftest.py`` it imports (parse,
rewrite, compile: ~9 s of CPU for the whole of tests/) and keeps the result in ``__pycache__`` as
``<module>.<cache tag>-pytest-<version>.pyc`` — unless ``PYTHONDONTWRITEBYTECODE`` is set, as on the
CI machine. There each xdist worker rewrote all of tests/ again while collecting, on the same two
cores, before any test ran. ``make bytecode`` runs this module first (two processes); every worker
then reads the cached files, which pytest checks against each source's hash (and ignores for another
pytest or Python version). The cache tells pytest nothing about what to run: it is the code pytest
would have compiled itself. Its rewriting functions are pytest's own (``_pytest.assertion.rewrite``,
internal): should a pytest upgrade move them, this says so and writes nothing, and the workers
rewrite as before; should it change what they take or give, each module that fails is left to
pytest (one warning line says how many), and ``make bytecode`` still succeeds. It refuses to write
anything when the project's pytest configuration sets ``enable_assertion_pass_hook``: pytest then
rewrites with the hook, which this (no config given to the rewriter) would leave out under the same
file name.

    .venv/bin/python -m tests.rewrite_cache [DIRECTORY …]   # tests/ by default
"""

from __future__ import annotations

import configparser
import os
import sys
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TESTS = Path(__file__).resolve().parent
PASS_HOOK = "enable_assertion_pass_hook"


def rewritten_modules(directories: list[Path]) -> list[Path]:
    """The files pytest rewrites when it collects (pyproject's ``python_files`` is the default)."""
    return sorted({path for directory in directories for pattern in ("test_*.py", "*_test.py", "conftest.py")
                   for path in directory.rglob(pattern) if "__pycache__" not in path.parts})


def pass_hook_enabled(root: Path) -> bool:
    """Whether the pytest configuration of the project at ``root`` (pytest.ini, pyproject.toml,
    tox.ini, setup.cfg) sets ``enable_assertion_pass_hook``."""
    if (pyproject := root / "pyproject.toml").is_file():
        options = tomllib.loads(pyproject.read_text()).get("tool", {}).get("pytest", {}).get("ini_options", {})
        if _true(options.get(PASS_HOOK, False)):
            return True
    for name, section in (("pytest.ini", "pytest"), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if (ini := root / name).is_file():
            parser = configparser.ConfigParser(interpolation=None)
            parser.read(ini)
            if parser.has_option(section, PASS_HOOK) and _true(parser.get(section, PASS_HOOK)):
                return True
    return False


def _true(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


def write_rewritten(path: Path) -> str | None:
    """Write ``path``'s rewritten bytecode; None, or why it was not written (pytest rewrites it then)."""
    try:
        from _pytest.assertion.rewrite import PYC_TAIL, _rewrite_test, _write_pyc_fp, get_cache_dir

        source_hash, code = _rewrite_test(path, None)
        cache_dir = get_cache_dir(path)
        cache_dir.mkdir(exist_ok=True)
        pyc = cache_dir / (path.name[:-3] + PYC_TAIL)
        partial = pyc.with_name(f"{pyc.name}.{os.getpid()}")
        try:
            with open(partial, "wb") as out:
                _write_pyc_fp(out, source_hash, code)
            os.replace(partial, pyc)  # a pytest reading it meanwhile sees the whole file or none
        finally:
            partial.unlink(missing_ok=True)
    except Exception as exc:  # a pytest upgrade, a file that does not parse: pytest's own to deal with
        return f"{path}: {type(exc).__name__}: {exc}"
    return None


def main(argv: list[str], root: Path = TESTS.parent) -> int:
    if pass_hook_enabled(root):
        print(f"tests.rewrite_cache: the pytest configuration sets {PASS_HOOK}; nothing written "
              "(pytest rewrites with the hook itself)", file=sys.stderr)
        return 0
    try:
        from _pytest.assertion.rewrite import PYC_TAIL, _rewrite_test, _write_pyc_fp, get_cache_dir  # noqa: F401
    except ImportError as exc:
        print(f"tests.rewrite_cache: pytest's rewriting is not where it was ({exc}); nothing written",
              file=sys.stderr)
        return 0
    paths = rewritten_modules([Path(arg) for arg in argv] or [TESTS])
    try:
        with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            failed = [why for why in pool.map(write_rewritten, paths, chunksize=16) if why is not None]
    except Exception as exc:  # the pool itself (a worker killed): the tests run all the same
        print(f"tests.rewrite_cache: writing stopped ({type(exc).__name__}: {exc}); pytest rewrites the rest",
              file=sys.stderr)
        return 0
    if failed:
        print(f"tests.rewrite_cache: {len(failed)} of {len(paths)} modules not written, pytest rewrites them "
              f"(first: {failed[0]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
