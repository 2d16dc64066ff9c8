"""督办 as a clerk sees it on the command line: the red 超期 marker on a terminal (and none in a pipe or
a file), ``overdue`` in ``--json``, and ``gwx supervision`` for the supervising unit, refusals included.
Real ``gwx`` subprocesses against the real document service (only the clock is fake)."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import os
import pty
import subprocess

from exchange_protocol.supervision import WEEKENDS_ONLY, escalation_due_at
from tests.node.api.local_api_support import UNIT_B, UNIT_C, ThreadedServer, meta, submission
from tests.node.cli.clerk_support import clerk_command, gwx
from tests.node.supervision.test_escalation import supervised_env

RED = "\033[31m"


def on_a_terminal(server: ThreadedServer, token: str, *args: str) -> str:
    """``gwx ARGS`` with its stdout on a pseudo-terminal, as a clerk at a terminal runs it."""
    argv, env = clerk_command(server, token, args)
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(60)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read()
    return out.decode()


def test_overdue_rows_are_red_on_a_terminal_and_the_supervisor_lists_its_duban(tmp_path):
    env, clock, clerk_c = supervised_env(tmp_path)
    with ThreadedServer(env) as server:
        body, headers = submission()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("POST", "/api/v1/documents", body, {**headers, **env.auth(env.clerk_a)})
        response = conn.getresponse()
        assert response.status == 201, response.read()
        doc_id = json.loads(response.read())["doc_id"]

        inbox = gwx(server, env.clerk_b, "inbox")
        assert inbox.returncode == 0 and "超期" not in inbox.stdout

        deadline = dt.datetime.fromisoformat(meta()["deadline"])
        clock.now = escalation_due_at(deadline, WEEKENDS_ONLY, 3)
        asyncio.run_coroutine_threadsafe(env.service.processor.escalator.sweep(), server.loop).result(30)

        piped = gwx(server, env.clerk_b, "inbox")
        assert "待签收 超期3个工作日 已督办" in piped.stdout and RED not in piped.stdout
        assert RED + "待签收 超期3个工作日" in on_a_terminal(server, env.clerk_b, "inbox")
        assert RED in on_a_terminal(server, env.clerk_a, "track", doc_id)
        [item] = json.loads(gwx(server, env.clerk_b, "inbox", "--json").stdout)
        assert (item["overdue"], item["overdue_working_days"], item["escalated_to"]) == (True, 3, UNIT_C)
        assert item["overdue_by"] == int((clock.now - deadline).total_seconds())

        listed = gwx(server, clerk_c, "supervision")
        assert listed.returncode == 0 and doc_id in listed.stdout and "督办中" in listed.stdout
        assert "3 个工作日" in listed.stdout
        [duban] = json.loads(gwx(server, clerk_c, "supervision", "--json", "--status", "open").stdout)
        assert (duban["unit"], duban["status"]) == (UNIT_B, "open")
        assert gwx(server, clerk_c, "supervision", "--status", "settled").stdout.strip().endswith("(无)")

        bad = gwx(server, clerk_c, "supervision", "--status", "late")
        assert bad.returncode == 2 and "invalid choice" in bad.stderr
        refused = gwx(server, env.operator, "supervision")
        assert refused.returncode == 3 and "API_FORBIDDEN" in refused.stderr
