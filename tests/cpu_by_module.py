"""Per-module CPU and wall of a test run, for finding what the suite spends and what ends last.

Load it with ``-p tests.cpu_by_module`` and name a directory in ``GWX_CPU_BY_MODULE``::

    GWX_CPU_BY_MODULE=/tmp/cpu .venv/bin/python -m pytest -q -p no:cacheprovider -p tests.cpu_by_module \
        -n 3 --dist loadscope --no-loadscope-reorder
    .venv/bin/python -m tests.cpu_by_module /tmp/cpu

Each test process (every xdist worker, or the one process without xdist) writes one JSON line per
module to ``<dir>/<worker>.jsonl``: the module, the worker, its first test's start and its last test's
end (wall clock, seconds since the epoch), and the CPU seconds spent while its tests ran — the test
process's own and that of the children it reaped meanwhile (node processes, ``gwx`` commands, openssl;
a child reaped later, or killed and never waited for, is not counted) — and, apart, those two parts
(``self``, ``children``) and the CPU of the process's PostgreSQL server (``postgres``: not in ``cpu``,
the server is no child; its connections' processes count once closed). A test's setup and teardown
count for its module, so a module-scoped network started at the first test and stopped after the last
is the module's. A module's line is written when its last test is done (or at the session's end).
Run as a script, it prints the modules by CPU and each worker's last modules.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import pytest


def _cpu() -> tuple[float, float, float]:
    """CPU seconds so far: this process's own, its reaped children's, and its PostgreSQL servers'."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime, _postgres_cpu()


def _postgres_cpu() -> float:
    """The CPU of this process's PostgreSQL servers (tests/postgres_server.py): the postmaster's own and
    that of the server processes it reaped — one per connection, ended when it closes. pg_ctl starts
    the server detached, so none of it is among this process's children. A server stopped counts with
    what it had when last read (the session's server stops in the last test's teardown)."""
    from tests.postgres_server import RUNNING

    for server in list(RUNNING):
        try:
            pid = (server.data / "postmaster.pid").read_text().split()[0]
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        _postgres_seen[id(server)] = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return sum(_postgres_seen.values()) / os.sysconf("SC_CLK_TCK")


_postgres_seen: dict[int, int] = {}  # a server (by id) → its CPU ticks when last read


class _Modules:
    def __init__(self, directory: Path, worker: str) -> None:
        self.directory = directory
        self.worker = worker
        self.rows: dict[str, dict] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        module = item.nodeid.split("::")[0]
        wall, before = time.time(), _cpu()
        yield
        row = self.rows.setdefault(module, {"module": module, "worker": self.worker, "start": wall,
                                            "end": wall, "cpu": 0.0, "self": 0.0, "children": 0.0,
                                            "postgres": 0.0, "tests": 0})
        row["end"] = time.time()
        own, children, postgres = (now - then for now, then in zip(_cpu(), before, strict=True))
        row["cpu"] += own + children
        row["self"] += own
        row["children"] += children
        row["postgres"] += postgres
        row["tests"] += 1
        if nextitem is None or nextitem.nodeid.split("::")[0] != module:
            self._write(self.rows.pop(module))

    def _write(self, row: dict) -> None:
        """A module's line as soon as its tests are done, so that a run cut short still tells."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"{self.worker}.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")

    def pytest_sessionfinish(self, session):
        for row in self.rows.values():  # a module whose tests went out in two parts (xdist)
            self._write(row)


def pytest_configure(config) -> None:
    directory = os.environ.get("GWX_CPU_BY_MODULE")
    if directory:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        config.pluginmanager.register(_Modules(Path(directory), worker), "gwx-cpu-by-module")


def report(directory: Path, top: int = 40) -> str:
    rows = [json.loads(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line]
    if not rows:
        return f"no rows in {directory}"
    begin = min(row["start"] for row in rows)
    lines = [f"{len(rows)} modules, {sum(row['tests'] for row in rows)} tests, "
             f"CPU {sum(row['cpu'] for row in rows):.0f} s, "
             f"last end at {max(row['end'] for row in rows) - begin:.0f} s", "",
             "| module | worker | tests | CPU s | own s | children s | PostgreSQL s | wall s | start s | end s |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def line(row: dict) -> str:
        parts = " | ".join(f"{row[key]:.1f}" if key in row else "" for key in ("self", "children", "postgres"))
        return (f"| {row['module']} | {row['worker']} | {row['tests']} | {row['cpu']:.1f} | {parts} | "
                f"{row['end'] - row['start']:.1f} | {row['start'] - begin:.0f} | {row['end'] - begin:.0f} |")

    lines += [line(row) for row in sorted(rows, key=lambda row: -row["cpu"])[:top]]
    for worker in sorted({row["worker"] for row in rows}):
        mine = sorted((row for row in rows if row["worker"] == worker), key=lambda row: row["end"])
        lines += ["", f"{worker}: {len(mine)} modules, CPU {sum(row['cpu'] for row in mine):.0f} s, "
                      f"ends at {mine[-1]['end'] - begin:.0f} s; its last five:"]
        lines += [line(row) for row in mine[-5:]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40))
