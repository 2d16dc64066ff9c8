"""The ports the test harness picks for nodes to listen on later (:func:`node.localnet.free_port`).

CI under load: a node of a test network exited with ``address already in use`` — its port, chosen
with ``bind(0)`` and bound seconds later, had meanwhile become the local end of some outgoing
connection (the kernel hands ports of its ephemeral range to both). The harness now picks below
that range, at random and never twice in a process, each test worker in its own slice of it.
"""

from __future__ import annotations

import socket
from pathlib import Path

from node.localnet import free_port


def _ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def test_ports_are_outside_what_outgoing_connections_get():
    low, high = _ephemeral_range()
    with socket.create_server(("127.0.0.1", 0)) as server:
        clients = [socket.create_connection(server.getsockname()) for _ in range(50)]
        try:
            outgoing = {c.getsockname()[1] for c in clients}
        finally:
            for c in clients:
                c.close()
    assert all(low <= p <= high for p in outgoing)  # the kernel's range, as read, is what it uses
    ports = [free_port() for _ in range(300)]
    assert all(p < low for p in ports), [p for p in ports if p >= low][:5]
    assert len(set(ports)) == len(ports)  # never the same port twice to one process
    for port in ports[:20]:  # free when handed out: a node can listen on it
        with socket.create_server(("127.0.0.1", port)):
            pass



def test_each_worker_and_what_it_starts_stay_in_their_own_slice(monkeypatch):
    """Two test workers that each found a port free could both hand it out before either node bound
    it; with ``GWX_PORT_SLICE=i/k`` they never pick the same one (CI with three workers: ``address
    already in use``). A process it starts inherits the slice."""
    import subprocess
    import sys

    picked = {}
    for index in range(3):
        monkeypatch.setenv("GWX_PORT_SLICE", f"{index}/3")
        picked[index] = {free_port() for _ in range(100)}
        assert {p % 3 for p in picked[index]} == {index}
    assert not (picked[0] & picked[1] or picked[1] & picked[2] or picked[0] & picked[2])
    monkeypatch.setenv("GWX_PORT_SLICE", "1/2")
    child = subprocess.run([sys.executable, "-c", "from node.localnet import free_port as f;"
                            "print(*(f() for _ in range(50)))"], capture_output=True, text=True, check=True)
    assert {int(p) % 2 for p in child.stdout.split()} == {1}
    for unusable in ("", "3/3", "x/2", "1"):  # anything else: the whole range, as before
        monkeypatch.setenv("GWX_PORT_SLICE", unusable)
        assert {free_port() % 2 for _ in range(100)} == {0, 1}
