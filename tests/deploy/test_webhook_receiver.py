"""deploy/examples/webhook_receiver.py, the SMS gateway an operator copies: run as its own process, it
texts a received document once, and refuses forged, old and garbled deliveries."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from adapters.events import adapter_event
from adapters.webhooks.signing import new_secret, sign
from tests.adapters.support import U_A
from tests.support import T0

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "webhook_receiver.py"


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def gateway(tmp_path):
    secret = new_secret()
    (tmp_path / "secret").write_text(secret + "\n")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", "0", "--secret-file", str(tmp_path / "secret")],
                            stdout=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert first.startswith("listening on "), first
    yield secret, first.split()[-1], proc
    proc.kill()
    proc.wait()


def test_the_gateway_texts_a_received_document_once_and_refuses_the_rest(gateway):
    secret, url, proc = gateway
    event = adapter_event("lanshan", 41, T0, "inbox.add", {"doc_id": "D1", "unit": U_A}, {},
                          title="关于做好冬季安全生产工作的通知")
    body = event.to_text().encode()
    now = int(time.time())
    good = sign(secret, now, body, event.event_id, event.type)
    assert post(url, body, good) == 200
    assert post(url, body, good) == 200  # gwx sending it again (same event id): answered, not texted again
    assert post(url, body, sign(new_secret(), now, body, event.event_id, event.type)) == 401  # wrong secret
    assert post(url, body, sign(secret, now - 3600, body, event.event_id, event.type)) == 401  # an old capture
    assert post(url, body.replace(b"D1", b"D2"), good) == 401  # altered
    assert post(url, b"", good) == 411
    other = adapter_event("lanshan", 42, T0, "inbox.urged", {"doc_id": "D1", "unit": U_A}, {}, title="关于…")
    assert post(url, other.to_text().encode(), sign(secret, now, other.to_text().encode(), other.event_id,
                                                     other.type)) == 200
    proc.kill()
    out = proc.stdout.read().splitlines()
    assert out == ["您有文件要处理: 关于做好冬季安全生产工作的通知", "您有文件被催办: 关于…"]
    assert json.loads(body)["event_id"] == "lanshan-0-41"
