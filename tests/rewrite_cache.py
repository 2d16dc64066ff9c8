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
rewrite as before.

    .venv/bin/python -m tests.rewrite_cache [DIRECTORY …]   # tests/ by default
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def rewritten_modules(directories: list[Path]) -> list[Path]:
    """The files pytest rewrites when it collects (pyproject's ``python_files`` is the default)."""
    return sorted({path for directory in directories for pattern in ("test_*.py", "*_test.py", "conftest.py")
                   for path in directory.rglob(pattern) if "__pycache__" not in path.parts})


def write_rewritten(path: Path) -> None:
    from _pytest.assertion.rewrite import PYC_TAIL, _rewrite_test, _write_pyc_fp, get_cache_dir

    source_hash, code = _rewrite_test(path, None)
    cache_dir = get_cache_dir(path)
    cache_dir.mkdir(exist_ok=True)
    pyc = cache_dir / (path.name[:-3] + PYC_TAIL)
    partial = pyc.with_name(f"{pyc.name}.{os.getpid()}")
    with open(partial, "wb") as out:
        _write_pyc_fp(out, source_hash, code)
    os.replace(partial, pyc)  # a pytest reading it meanwhile sees the whole file or none


def main(argv: list[str]) -> int:
    try:
        from _pytest.assertion.rewrite import PYC_TAIL, _rewrite_test, _write_pyc_fp, get_cache_dir  # noqa: F401
    except ImportError as exc:
        print(f"tests.rewrite_cache: pytest's rewriting is not where it was ({exc}); nothing written",
              file=sys.stderr)
        return 0
    paths = rewritten_modules([Path(arg) for arg in argv] or [TESTS])
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        list(pool.map(write_rewritten, paths, chunksize=16))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
