"""A node asked to stop (SIGTERM) in the middle of its work exits within STOP_SECONDS, and what it
cut short resumes at the next start: a push to an OA on a slow line half sent, and a clerk's upload
whose body is still coming. The push is delivered after the restart, once: the OA records one
complete ReceiveGongwen, with every byte of the attachment.

Before, the node waited SHUTDOWN_TIMEOUT (10 s) for the upload, then for the peer listener and the
queues one after the other, and only then abandoned the push: 10 s or more here, 30 s at worst.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time

import pytest

from node.localnet import send_document, wait_for
from node.stopping import STOP_SECONDS
from tests.adapters.oa_push.legacy_oa import LegacyOa
from tests.adapters.oa_push.push_memory import MiB, configure_oa_push
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    connect_and_start,
    db_value,
    new_network,
    notice_meta,
    units,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def upload_in_flight(node) -> socket.socket:
    """A clerk's upload whose headers arrived and whose body is still on its way (the connection held open)."""
    host, port = node.ready["local_url"].removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)))
    connection.sendall((f"POST /api/v1/documents HTTP/1.1\r\nHost: {host}\r\n"
                        f"Authorization: Bearer {node.tokens[f'clerk-{CITY}']}\r\n"
                        "Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: 50000000\r\n\r\n"
                        "--b0undary\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{").encode())
    return connection


def test_a_node_stopped_mid_push_and_mid_upload_exits_in_bounded_time_and_pushes_once_after(tmp_path):
    attachment = tmp_path / "现场检查录像.mp4"
    content = os.urandom(12 * MiB)  # 16 MiB of base64: 16 s at the OA's 1 MiB/s
    attachment.write_bytes(content)
    with LegacyOa() as oa:
        oa.state.streamed = True
        net = new_network(tmp_path / "net")
        node = net.add_node("city", units(CITY, A1), retry=FAST_RETRY)
        configure_oa_push(node.directory, oa)
        connect_and_start(net)
        held = None
        try:
            oa.state.read_rate = 1 * MiB
            doc_id = send_document(node, CITY, notice_meta(CITY, [A1]), net.body, [attachment])["doc_id"]
            held = upload_in_flight(node)
            wait_for(lambda: oa.state.bytes_read > 2 * MiB, 60, 0.05, what="the push half way to the OA")

            started = time.monotonic()
            code = net.stop(node, timeout=STOP_SECONDS + 20)
            took = time.monotonic() - started
            print(f"stopped in {took:.1f} s")
            assert code == 0, net.log_tail(node)
            assert took < STOP_SECONDS, f"the node took {took:.1f} s to stop"
            assert oa.state.documents == {}  # the push was cut short: the OA has nothing half-read

            oa.state.read_rate = None
            net.start(node)
            got = wait_for(lambda: oa.state.documents.get(doc_id), 120, 0.1, what="the push after the restart")
            assert got["fj"] == [(attachment.name, hashlib.sha256(content).hexdigest(), len(content))]
            pushed = f"consumer = 'oa:{A1}' AND state = 'done'"  # the outbox's row closed: no push after this one
            wait_for(lambda: db_value(node, f"SELECT count(*) FROM adapter_outbox WHERE {pushed}"), 30, 0.1,
                     what="the push's row done")
            assert [gwbs for op, gwbs, _, _ in oa.state.calls if op == "ReceiveGongwen"] == [doc_id]
        finally:
            if held is not None:
                held.close()
            net.stop_all()
