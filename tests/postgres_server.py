"""A real PostgreSQL server for the tests: Debian's postgresql package, ``initdb`` in a temporary directory.

One server per test process (session-scoped fixture ``postgres_server`` in tests/conftest.py), reached
only through a unix socket in its own directory (no TCP port); each test gets a database of its own,
copied from a template that already has the store's schema (``CREATE DATABASE … TEMPLATE``: ~30 ms
instead of migrating each time). As root (the CI machine) the server runs as the ``postgres`` user,
since PostgreSQL refuses to run as root. fsync stays on: the store refuses a server without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

TEMPLATE = "gwx_template"
RUNNING: set[PostgresServer] = set()  # this process's started servers (tests/cpu_by_module.py reads their CPU)


def binaries() -> Path:
    """The newest installed PostgreSQL's bin directory (deploy/install-system-deps.sh installs it)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                           "run `make system-deps` (Debian's postgresql package)")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="gwx-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        self._names = itertools.count(1)
        self.started = False

    def _run(self, *args: str) -> None:
        command = [str(a) for a in args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        if self.user:
            shutil.chown(self.dir, self.user)
        self._run(self.bin / "initdb", "-D", self.data, "--auth=trust", "--locale=C", "--encoding=UTF8",
                  "-U", "postgres", "--no-sync")
        options = (f"-c listen_addresses='' -c unix_socket_directories='{self.dir}' -c max_connections=200"
                   " -c shared_buffers=32MB")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "-t", "60",
                  "-o", options, "start")
        self.started = True
        RUNNING.add(self)
        self._create_template()
        return self

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(Exception):
                self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            self.started = False
            RUNNING.discard(self)
        shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"host={self.dir} user=postgres dbname={database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database's DSN: the store's schema already in it, or empty (``migrated=False``)."""
        name = f"gwx_test_{os.getpid()}_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE if migrated else 'template0'}")
        if migrated:  # each database a life of its own, as a fresh SQLite file is
            import psycopg

            with psycopg.connect(self.dsn(name), autocommit=True) as conn:
                conn.execute("UPDATE store_identity SET incarnation = substr(md5(gen_random_uuid()::text), 1, 8)")
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("dbname=", 1)[1]
        with contextlib.suppress(Exception):
            self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _create_template(self) -> None:
        from node.store.postgresql.db import Database
        from node.store.postgresql.schema import migrate
        from tests.support import FakeClock

        self.admin(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")

        async def schema() -> None:
            db = await Database.open(self.dsn(TEMPLATE), self.dir)
            try:
                await migrate(db, FakeClock()())
            finally:
                await db.close()

        asyncio.run(schema())
