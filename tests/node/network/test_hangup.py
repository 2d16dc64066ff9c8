"""A peer that hangs up in the middle of a request body.

A raw TLS client (with a real node's certificate) announces a whole envelope in Content-Length,
sends part of it and closes the connection. The receiving node writes one structured log line
with a code (no traceback), acknowledges nothing of what it half-received, and keeps serving:
the same envelope sent whole right after is accepted.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from node.localnet import wait_for
from tests.node.network.network_support import (
    A1,
    CITY,
    ENVELOPE_TYPE,
    RawPeer,
    db_value,
    forge_envelope,
    log_text,
    peer_url,
    start_network,
    tls_context_of,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    # The tests speak as the city themselves (its keys and TLS certificate): its process is not started.
    network = start_network(tmp_path_factory.mktemp("hangup"), {"city": ([CITY], {}), "county-a": ([A1], {})},
                            running=("county-a",))
    yield network
    network.stop_all()


def send_half_and_hang_up(target, context, body: bytes, politely: bool) -> None:
    """POST ``body``'s full length as Content-Length, send half of the body, hang up — abruptly,
    or ``politely`` (a TLS close_notify first: the node sees a clean end of stream)."""
    host, port = peer_url(target).removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        tls = context.wrap_socket(raw, server_hostname=host)
        head = (f"POST /peer/v1/envelopes HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {ENVELOPE_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        tls.sendall(head + body[:len(body) // 2])
        if politely:
            try:
                tls.unwrap()
            except (OSError, ValueError):  # the node may close first; a hang-up either way
                pass
        tls.close()


@pytest.mark.parametrize("politely", [False, True], ids=["reset", "close-notify"])
@pytest.mark.parametrize("size", [0, 6 * 1024 * 1024], ids=["read-whole", "streamed"])
def test_a_peer_hanging_up_mid_body_leaves_one_structured_line_and_no_receipt(net, size, politely):
    city, county = net.nodes["city"], net.nodes["county-a"]
    payload = os.urandom(size) if size else None  # above 4 MiB the receiver streams the frame
    message_id, envelope = forge_envelope(city, county, from_unit=CITY, to_units=[A1], payload=payload)
    log_offset = len(log_text(county))

    send_half_and_hang_up(county, tls_context_of(city), envelope, politely)

    def new_lines() -> list[dict]:
        return [json.loads(line) for line in log_text(county)[log_offset:].splitlines() if line.startswith("{")]

    lines = wait_for(lambda: [r for r in new_lines() if r.get("code") == "PEER_HUNG_UP"], 15,
                     what="the hang-up logged")
    assert len(lines) == 1 and lines[0]["peer"] == "city" and lines[0]["level"] == "warning", lines
    assert lines[0]["message_id"] == message_id
    tail = log_text(county)[log_offset:]
    assert "Traceback" not in tail and all(line.startswith("{") for line in tail.splitlines() if line.strip()), tail
    # Nothing of it was acknowledged or kept.
    assert db_value(county, "SELECT COUNT(*) FROM received WHERE message_id = ?", [message_id]) == 0
    # The node keeps serving, and never took the cut-off frame for seen: sent whole, it is judged afresh.
    peer = RawPeer(county, tls_context_of(city))
    assert peer.health()["ok"] is True
    if size:  # a 6 MiB 催办 is no valid notice; a proper one goes through
        message_id, envelope = forge_envelope(city, county, from_unit=CITY, to_units=[A1])
    status, parsed, raw = peer.post_envelopes(envelope)
    assert status == 200 and "receipt" in parsed["results"][0], raw[:300]
    assert db_value(county, "SELECT COUNT(*) FROM received WHERE message_id = ?", [message_id]) == 1
