"""The clerks' CLI as a clerk runs it, for test_cli_clerk*.py: ``gwx`` subprocesses against a real
local API server (:class:`tests.node.api.local_api_support.ThreadedServer`), with the clerk's token
and zone in the environment, and the same answer read straight from the API to compare with."""

from __future__ import annotations

import http.client
import json
import os
import pty
import subprocess
import sys
import threading

from tests.node.api.local_api_support import ThreadedServer
from tests.support import REPO


def clerk_command(server: ThreadedServer, token: str | None, args: tuple[str, ...]) -> tuple[list[str], dict]:
    """The argv and environment of ``gwx ARGS`` run by a clerk holding ``token`` against ``server``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWX_")}
    env["GWX_NODE"] = server.url
    env["PYTHONPATH"] = str(REPO)
    env["TZ"] = "Asia/Shanghai"  # times are shown in the clerk's zone (the node answers in UTC)
    if token:
        env["GWX_TOKEN"] = token
    return [sys.executable, "-m", "node.cli.main", *args], env


def gwx(server: ThreadedServer, token: str | None, *args: str) -> subprocess.CompletedProcess:
    return gwx_parallel(server, [(token, *args)])[0]


def gwx_parallel(server: ThreadedServer, commands: list[tuple]) -> list[subprocess.CompletedProcess]:
    """Run independent ``gwx`` commands at the same time (each start costs about a second)."""
    running = []
    for token, *args in commands:
        argv, env = clerk_command(server, token, tuple(args))
        running.append((argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                               env=env, cwd=REPO)))
    done = []
    for argv, proc in running:
        out, err = proc.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(argv, proc.returncode, out, err))
    return done


def gwx_on_terminal(server: ThreadedServer, token: str | None, *args: str) -> tuple[int, bytes, str]:
    """Run ``gwx ARGS`` with its stderr on a pseudo-terminal (where progress is shown) and its stdout
    on a pipe; answer the exit status, stdout and what the terminal showed."""
    master, slave = pty.openpty()
    argv, env = clerk_command(server, token, args)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    seen = bytearray()

    def drain() -> None:  # read the terminal while the command runs so it never blocks on it
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            seen.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    out, _ = proc.communicate(timeout=60)
    reader.join(10)
    os.close(master)
    return proc.returncode, out, seen.decode("utf-8", "replace")


def direct_get(server, token: str, path: str, raw: bool = False) -> object:
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    data = response.read()
    if raw:
        assert response.status == 200, data[:500]
        return data
    return json.loads(data)
