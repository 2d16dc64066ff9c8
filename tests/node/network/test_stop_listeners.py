"""A node with all three listeners (peers, local API, [revocation]) asked to stop while a request is
in flight on two of them drains them together: SHUTDOWN_TIMEOUT once, then it exits cleanly.

The revocation listener used to be drained after the others, so a slow client there added a second
SHUTDOWN_TIMEOUT: 5 s + 5 s, and the stop deadline ended the node with status 70.
"""

from __future__ import annotations

import socket
import time

import pytest

from node.localnet import PASSPHRASE, LocalNode, free_port
from node.runner import SHUTDOWN_TIMEOUT
from node.stopping import STOP_SECONDS
from tests.node.network.network_support import CITY, connect_and_start, new_network, units
from tests.support import run_gwx

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def request_in_flight(url: str, head: str) -> socket.socket:
    """A request whose headers arrived and whose body is still on its way (the connection held open)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = socket.create_connection((host, int(port)))
    connection.sendall(f"{head}Host: {host}\r\n\r\n".encode() + b"0")
    return connection


def held_requests(node: LocalNode) -> list[socket.socket]:
    return [
        request_in_flight(node.ready["local_url"],
                          f"POST /api/v1/documents HTTP/1.1\r\nAuthorization: Bearer {node.tokens[f'clerk-{CITY}']}\r\n"
                          "Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: 50000000\r\n"),
        request_in_flight(node.ready["revocation_url"],
                          "POST /ocsp HTTP/1.1\r\nContent-Type: application/ocsp-request\r\nContent-Length: 900\r\n"),
    ]


def test_the_listeners_drain_together_and_the_node_exits_cleanly_in_time(tmp_path):
    net = new_network(tmp_path / "net")
    city = net.add_node("city", units(CITY), revocation={"port": free_port(), "ocsp_signer": "ocsp"})
    done = run_gwx("pki", "issue-ocsp-signer", "--ca", net.base / "ca", "--out", city.directory / "ocsp",
                   env={"GWX_PASSPHRASE": PASSPHRASE.decode()}, text=True)
    assert done.returncode == 0, done.stderr
    net.publish_crls()
    connect_and_start(net)
    held = []
    try:
        held = held_requests(city)
        time.sleep(1.0)  # both handlers are reading their bodies
        started = time.monotonic()
        code = net.stop(city, timeout=STOP_SECONDS + 20)  # StopOverdue if the deadline had to end it
        took = time.monotonic() - started
        print(f"stopped in {took:.1f} s")
        assert code == 0, net.log_tail(city)
        assert took < SHUTDOWN_TIMEOUT + 3, f"the node took {took:.1f} s to stop: the listeners drained in turn"
    finally:
        for connection in held:
            connection.close()
        net.stop_all()
