"""A kill -9 between a receiver's answer and the outbox's commit: the event is sent again with the
same event id, and a receiver that keeps the ids it has seen makes exactly one effect of it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from node.store.sqlite import Store

ROOT = Path(__file__).resolve().parents[2]


class DedupingReceiver(BaseHTTPRequestHandler):
    """What a careful receiver does: one effect per event id, whatever arrives twice."""

    requests: list[str] = []
    effects: list[str] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        event_id = self.headers["X-Event-Id"]
        assert body["event_id"] == event_id
        type(self).requests.append(event_id)
        if event_id not in type(self).effects:
            type(self).effects.append(event_id)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_kill_between_answer_and_commit_resends_the_same_event_id(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), DedupingReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        child = subprocess.Popen([sys.executable, "-m", "tests.adapters.outbox_child", str(tmp_path), url, "first"],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        assert line.startswith("ANSWERED "), line
        event_id = line.split()[1]
        child.send_signal(signal.SIGKILL)  # the receiver answered; the row is not marked done
        child.wait(timeout=10)
        assert DedupingReceiver.requests == [event_id]

        state = asyncio.run(_row_states(tmp_path))
        assert state == ["pending"]

        again = subprocess.run([sys.executable, "-m", "tests.adapters.outbox_child", str(tmp_path), url, "again"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert again.stdout.strip() == "DONE", again.stderr
        assert DedupingReceiver.requests == [event_id, event_id]  # sent again, same id
        assert DedupingReceiver.effects == [event_id]  # one effect at the receiver
        assert asyncio.run(_row_states(tmp_path)) == ["done"]
    finally:
        server.shutdown()


async def _row_states(path) -> list[str]:
    store = await Store.open(path)
    try:
        return [r.state for r in await store.adapter_outbox.rows("test:http")]
    finally:
        await store.close()
