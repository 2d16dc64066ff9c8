"""Two workers serve one node (issue 12 §1): two `gwx node run` processes of the county node, one
PostgreSQL database and one data directory, behind a load balancer the city reaches them through.

The balancer here is a few lines passing each TCP connection to the first worker that takes it (TLS
goes through untouched), as deploy/haproxy.cfg does. One worker is killed with -9 in the middle of a
batch, holding received envelopes it has acknowledged but not applied: the other takes them over once
their lease ends, and the city's next attempts reach it. Every document arrives in the county's inbox
once, every received envelope is applied once, and the audit chain is whole.

The adapters' outbox is leased too: two workers of one node deliver a webhook's events, each row by
one worker only (the receiver is slow, so two unleased workers would overlap), and a worker killed
with -9 in the middle of an attempt loses the row to the other once its lease ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import socket
import threading
import time

import psycopg
import pytest

from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.localnet import LocalNetwork, LocalNode, free_port, send_document, wait_for
from node.provision import add_peer
from tests.adapters.webhooks.receiver import Receiver
from tests.node.network.network_support import (
    A1,
    CITY,
    CITY_LOCAL,
    FAST_RETRY,
    UNIT_NAMES,
    db_rows,
    db_value,
    gwx,
    metric,
    new_network,
    notice_meta,
    units,
    verify_audit_chain,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
LEASE_SECONDS = 3.0


class Balancer:
    """Each connection to :attr:`port` goes to the first of ``ports`` that accepts it, bytes untouched."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stopping = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._pass, args=(client,), daemon=True).start()

    def _pass(self, client: socket.socket) -> None:
        for port in self.ports:
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                continue
        else:
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)

    def close(self) -> None:
        self._stopping = True
        self._server.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


def second_worker(net: LocalNetwork, first: LocalNode, worker: str) -> LocalNode:
    """Another worker of ``first``'s node: its directory copied (credentials, seals, tokens, config),
    listening on ports of its own, its data directory the first's, its own worker name."""
    directory = net.base / f"{first.node_id}-{worker}"
    shutil.copytree(first.directory, directory, ignore=shutil.ignore_patterns("data", "run", "*.log"))
    (directory / "data").symlink_to(load_config(first.directory).data_dir, target_is_directory=True)
    peer_port = free_port()

    def edit(document) -> None:
        set_section_values(document, "peer_api", {"port": peer_port, "public_url": f"https://127.0.0.1:{peer_port}"})
        set_section_values(document, "local_api", {"port": free_port()})
        set_section_values(document, "store", {"worker": worker})

    edit_config(directory, edit)
    return LocalNode(first.node_id, directory, first.units, first.tokens)


def kill_when_holding(net: LocalNetwork, worker: LocalNode, dsn: str, name: str, stop: threading.Event,
                      seen: list[int]) -> None:
    """kill -9 ``worker`` the moment it holds received envelopes it acknowledged and has not applied."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            held = conn.execute("SELECT COUNT(*) FROM received WHERE state = 'new' AND lease_owner = %s",
                                (name,)).fetchone()[0]
            if held:
                net.kill(worker)
                seen.append(conn.execute("SELECT COUNT(*) FROM received WHERE state = 'new' AND lease_owner = %s",
                                         (name,)).fetchone()[0])
                return
            time.sleep(0.005)


def test_a_worker_killed_mid_batch_leaves_nothing_lost_or_applied_twice(tmp_path, postgres_server):
    dsn = postgres_server.new_database(migrated=False)
    net = new_network(tmp_path)
    city = net.add_node("city", units(CITY), retry=FAST_RETRY)
    store = {"backend": "postgresql", "dsn": dsn, "lease_seconds": LEASE_SECONDS}
    first = net.add_node("county", units(A1), retry=FAST_RETRY, store={**store, "worker": "w1"})
    net.connect_all()
    second = second_worker(net, first, "w2")
    balancer = Balancer([load_config(w.directory).peer_api.port for w in (first, second)])
    add_peer(city.directory, "county", f"https://127.0.0.1:{balancer.port}", [A1], {A1: UNIT_NAMES[A1]})
    stop, seen = threading.Event(), []
    try:
        for node in (city, first, second):
            net.start(node)
        killer = threading.Thread(target=kill_when_holding, args=(net, first, dsn, "w1", stop, seen), daemon=True)
        killer.start()
        sent = []
        while len(sent) < 60 and first.running:
            sent.append(send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"])
        sent += [send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"] for _ in range(3)]
        stop.set()
        killer.join(timeout=10)
        assert not first.running, "w1 never held an envelope it had not applied: nothing was tested"
        assert seen and seen[0] > 0, "w1 had applied what it held before the kill landed"

        # The second worker serves everything: the first's envelopes once their lease ended, the rest
        # as the city sends them again through the balancer.
        for doc_id in sent:
            wait_status(city, CITY, doc_id, {A1: "delivered"}, timeout=90)
        wait_for(lambda: db_value(second, "SELECT COUNT(*) FROM received WHERE state <> 'done'") == 0,
                 timeout=60, what="every received envelope applied")
        inbox = db_rows(second, "SELECT doc_id, COUNT(*) FROM inbox WHERE unit_code = ? GROUP BY doc_id", [A1])
        assert sorted(d for d, _ in inbox) == sorted(sent) and {n for _, n in inbox} == {1}
        applied = db_rows(second, "SELECT message_id, COUNT(*) FROM audit WHERE action = 'envelope.done'"
                                  " GROUP BY message_id")
        received = db_value(second, "SELECT COUNT(*) FROM received")
        assert len(applied) == received and {n for _, n in applied} == {1}
        listed = {item["doc_id"] for item in second.clerk(A1).get("/api/v1/inbox", {"limit": 200})}
        assert listed == set(sent)
        print(f"{len(sent)} documents; w1 killed holding {seen[0]} received envelopes it had not applied")
    finally:
        stop.set()
        balancer.close()
        net.stop(second)
        net.stop_all()
    assert verify_audit_chain(second) > 0


def test_each_webhook_event_goes_out_from_one_worker_and_a_killed_worker_loses_its_row(tmp_path, postgres_server):
    dsn = postgres_server.new_database(migrated=False)
    net = new_network(tmp_path)
    receiver = Receiver(mode="slow", slow_seconds=0.6)
    first = net.add_node("city", units(CITY, CITY_LOCAL), retry=FAST_RETRY,
                         store={"backend": "postgresql", "dsn": dsn, "lease_seconds": LEASE_SECONDS, "worker": "w1"},
                         webhooks={"min_seconds": 0.2, "max_seconds": 0.5, "window_seconds": 120,
                                   "timeout_seconds": 60})
    added = gwx("webhook", "add", "--dir", str(first.directory), "--unit", CITY_LOCAL, "--url", receiver.url,
                "--event", "document.received", "--json")
    assert added.returncode == 0, added.stderr
    receiver.secret = json.loads(added.stdout)["secret"]
    consumer = f"webhook:{json.loads(added.stdout)['id']}"
    second = second_worker(net, first, "w2")  # the secret file copied with the node's directory
    workers = {"w1": first, "w2": second}

    def send(via: LocalNode, n: int) -> list[str]:
        return [send_document(via, CITY, notice_meta(CITY, [CITY_LOCAL], title=f"第{i}号通知"), net.body)["doc_id"]
                for i in range(n)]

    def done() -> int:
        return db_value(first, "SELECT COUNT(*) FROM adapter_outbox WHERE consumer = ? AND state = 'done'", [consumer])

    try:
        for worker in workers.values():
            net.start(worker)
        for worker in workers.values():  # the consumer runs on both workers
            assert metric(worker, "gwx_adapter_attempts_total", consumer=consumer, outcome="done") == 0
        # 1. Eight events, each answered after 0.6 s: both workers' loops ask for the same rows meanwhile.
        sent = send(first, 8)
        wait_for(lambda: done() == 8, timeout=90, what="eight webhook rows done")
        assert [e["doc_id"] for e in receiver.effects] == sent  # in order
        assert sorted(receiver.requests) == sorted(e["event_id"] for e in receiver.effects), \
            "an event was sent twice while both workers were alive"

        # 2. The next event's request is held; whichever worker sends it is killed with -9 meanwhile.
        receiver.mode = "hold"
        [held_doc] = send(first, 1)
        wait_for(lambda: len(receiver.requests) == 9, timeout=30, what="the held request")
        time.sleep(2 * LEASE_SECONDS)  # the holder renews its lease: the other worker does not send it too
        assert len(receiver.requests) == 9
        holder = db_value(first, "SELECT lease_owner FROM adapter_outbox WHERE consumer = ? AND state = 'pending'",
                          [consumer])
        assert holder in workers
        survivor = workers["w2" if holder == "w1" else "w1"]
        receiver.mode = "ok"
        net.kill(workers[holder])
        killed_at = dt.datetime.now(dt.UTC)
        wait_for(lambda: done() == 9, timeout=60, what="the killed worker's row delivered by the other")
        finished = db_value(first, "SELECT finished_at FROM adapter_outbox WHERE consumer = ? ORDER BY seq DESC"
                                   " LIMIT 1", [consumer])
        waited = (dt.datetime.fromisoformat(finished.replace("Z", "+00:00")) - killed_at).total_seconds()
        assert waited > LEASE_SECONDS - 1.5, f"taken over {waited:.1f} s after the kill: before the lease ended"
        assert receiver.requests.count(receiver.effects[-1]["event_id"]) == 2  # the same event id again
        assert [e["doc_id"] for e in receiver.effects] == [*sent, held_doc]  # acted on once each
        assert metric(survivor, "gwx_adapter_attempts_total", consumer=consumer, outcome="done") >= 1
        print(f"{holder} killed holding a webhook row; the other delivered it {waited:.1f} s later")
    finally:
        receiver.stop()
        net.stop(second)
        net.stop_all()
