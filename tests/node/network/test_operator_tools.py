"""What an operator runs against live nodes (issue 12 §3): metrics an alert can use, the send-queue
commands (`gwx node queue …`) and `gwx node audit verify`.

Real `gwx node run` processes on loopback; the operator's commands run as separate processes. The
city retries slowly (a minute at first), so an envelope for a peer that is down stays deferred and
an operator's `retry` is the only thing that can make it leave within seconds.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from node.config import load_config
from node.localnet import send_document, wait_for
from pki.certificates import load_certificates
from tests.node.network.network_support import (
    A1,
    CITY,
    db_path,
    db_rows,
    inbox_item,
    notice_meta,
    recipients_by_unit,
    start_network,
    token_file,
    wait_status,
)
from tests.support import run_gwx

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
SLOW_RETRY = {"min_seconds": 60, "max_seconds": 600, "window_seconds": 3600}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("optools")
    network = start_network(base, {"city": ([CITY], {"retry": SLOW_RETRY}), "county-a": ([A1], {})})
    yield network
    network.stop_all()


def scrape(node) -> dict[str, float]:
    """/metrics as {series line without its value: value}."""
    text = node.client("operator").get("/metrics")
    text = text.decode() if isinstance(text, bytes) else text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def queue(node, *args: str) -> tuple[int, object]:
    out = run_gwx("node", "queue", *args, "--dir", node.directory, "--token-file", token_file(node, "operator"),
                  "--json", text=True)
    return out.returncode, (json.loads(out.stdout) if out.returncode == 0 else out.stdout + out.stderr)


def test_a_fresh_node_exposes_every_series_an_alert_needs_from_zero(net):
    city = net.nodes["city"]
    started = time.time()
    m = scrape(city)
    # Counters exist at 0 before anything happened: rate() and increase() see 0, not "no data".
    for series in ('gwx_envelopes_sent_total{destination="county-a"}',
                   'gwx_envelopes_bounced_total{destination="county-a"}',
                   'gwx_envelopes_received_total{type="document"}', 'gwx_envelopes_received_total{type="receipt"}',
                   'gwx_messages_applied_total{outcome="failed",type="document"}',
                   f'gwx_documents_submitted_total{{unit="{CITY}"}}',
                   "gwx_envelopes_duplicate_total", "gwx_pdf_validations_total", "gwx_send_batch_seconds_count"):
        assert m.get(series) == 0.0, series
    build = [k for k in m if k.startswith("gwx_build_info{")]
    assert len(build) == 1 and 'version="0.1.0"' in build[0] and m[build[0]] == 1.0
    # The process: started moments ago, holding some files, with its limit.
    assert started - 300 < m["process_start_time_seconds"] <= started
    assert m["process_cpu_seconds_total"] > 0 and m["process_resident_memory_bytes"] > 10 * 1024**2
    assert 0 < m["process_open_fds"] < m["process_max_fds"]
    # The cyclic collector: collections counted and their CPU timed, by generation.
    assert m['python_gc_collections_total{generation="0"}'] > 0
    assert all(0 <= m[f'gwx_gc_seconds_total{{generation="{g}"}}'] < m["process_cpu_seconds_total"] for g in "012")
    assert m['gwx_gc_seconds_total{generation="0"}'] > 0
    # Seconds to expiry: the node's own certificates as the files say, and the seal of its unit.
    creds = load_config(city.directory).credentials_dir
    for role in ("tls", "sign", "enc"):
        end = load_certificates((creds / f"{role}.crt").read_bytes())[0].not_valid_after_utc
        assert abs(m[f'gwx_certificate_expires_in_seconds{{role="{role}"}}'] - (end.timestamp() - started)) < 300
    assert m[f'gwx_seal_expires_in_seconds{{unit="{CITY}"}}'] > 86400
    assert m['gwx_queue_oldest_seconds{destination="county-a"}'] == 0.0  # a static peer, nothing waiting


def test_the_operator_holds_releases_retries_and_purges_envelopes_of_a_running_node(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    # Once with the peer up (the city learns its certificate: later documents are queued envelopes).
    first = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county, A1, first)
    net.stop(county)
    purged = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]

    def listed():
        code, rows = queue(city, "list")
        assert code == 0, rows
        by_doc = {r["doc_id"]: r for r in rows}
        return by_doc if purged in by_doc and by_doc[purged]["state"] == "deferred" else None
    rows = wait_for(listed, 30, what="the envelope deferred in gwx node queue list")
    assert rows[purged]["destination"] == "county-a" and rows[purged]["last_error"]["code"]
    gone = rows[purged]["message_id"]
    time.sleep(1.1)
    assert scrape(city)['gwx_queue_oldest_seconds{destination="county-a"}'] >= 1.0  # it waits, and says so

    code, held = queue(city, "hold", gone, "--reason", "收件单位核实中")
    assert code == 0 and held[0]["state"] == "hold"
    code, err = queue(city, "retry", gone)  # a held envelope is released, not retried
    assert code != 0 and "STORE_CONFLICT" in err
    code, released = queue(city, "release", gone)
    assert code == 0 and released[0]["state"] == "deferred"
    code, out = queue(city, "purge", gone, "--reason", "收件单位已撤销")
    assert code == 0 and out[0]["state"] == "bounced"
    # The sending unit is told: its recipient failed, with the code and the operator's reason.
    tracking = wait_status(city, CITY, purged, {A1: "failed"})
    reason = recipients_by_unit(tracking)[A1]["reason"]
    assert "QUEUE_PURGED" in reason and "收件单位已撤销" in reason

    # Written while the peer backs off, a document waits (a draft) for the backoff to end — a minute.
    # The peer is back; retry now ends the backoff.
    retried = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    net.start(county)
    time.sleep(1)
    assert wait_status(city, CITY, retried, {A1: "queued"})  # not gone by itself
    code, out = queue(city, "retry", "--destination", "county-a")
    assert code == 0 and out["retried"] == []  # nothing sealed yet: the backoff alone held it
    inbox_item(county, A1, retried, timeout=20)
    wait_status(city, CITY, retried, {A1: "delivered"}, timeout=20)
    assert inbox_item(county, A1, first) and not any(
        i["doc_id"] == purged for i in county.clerk(A1).get("/api/v1/inbox", {"limit": 500}))

    # Each change is one audit event with the operator (the token's person) as its actor.
    events = db_rows(city, "SELECT action, actor, message_id, details FROM audit WHERE actor LIKE 'operator:%'"
                           " ORDER BY seq")
    assert [(a, m) for a, _, m, _ in events] == [("queue.hold", gone), ("queue.release", gone),
                                                  ("queue.bounce", gone), ("recipient.failed", None),
                                                  ("queue.retry", None)]
    assert {actor for _, actor, _, _ in events} == {"operator:值班员"}
    assert json.loads(events[2][3])["error"] == "QUEUE_PURGED"


def test_a_clerk_token_cannot_touch_the_queue_and_a_stopped_node_is_named(net, tmp_path):
    city = net.nodes["city"]
    out = run_gwx("node", "queue", "list", "--dir", city.directory, "--token-file", token_file(city, f"clerk-{CITY}"),
                  text=True)
    assert out.returncode == 3 and "API_FORBIDDEN" in out.stderr
    out = run_gwx("node", "queue", "hold", "M1", "--dir", tmp_path, text=True)
    assert out.returncode == 4 and "NODE_NOT_RUNNING" in out.stderr


def log_records(node) -> list[dict]:
    records = []
    for line in node.log_path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def test_every_log_line_about_a_document_names_its_identifier(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    doc = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county, A1, doc)
    county.clerk(A1).post(f"/api/v1/inbox/{doc}/sign-for")
    wait_status(city, CITY, doc, {A1: "signed_for"})

    def accepted(node, what: str) -> list[dict]:
        return [r for r in log_records(node) if r["msg"] == what]
    # The document, its delivery notice (transport-ack) and its 签收 (receipt), each where it arrives.
    wait_for(lambda: any(r.get("doc_id") == doc for r in accepted(city, "accepted receipt from county-a")), 10,
             what="the receipt's log line naming the document")
    assert doc in {r.get("doc_id") for r in accepted(county, "accepted document from city")}
    assert doc in {r.get("doc_id") for r in accepted(city, "accepted transport-ack from county-a")}
    assert doc in {r.get("doc_id") for r in log_records(county) if r.get("path") == f"/api/v1/inbox/{doc}/sign-for"}
    # Every line of either node that names a message (all of them carry documents here) names the document:
    # the earlier tests' deliveries, the bounce of the purge, the acks.
    for node in (city, county):
        about = [r for r in log_records(node) if "message_id" in r]
        assert about and [r for r in about if not r.get("doc_id")] == [], node.node_id


def test_audit_verify_walks_the_whole_chain_and_names_the_first_broken_event(net):
    county = net.nodes["county-a"]
    out = run_gwx("node", "audit", "verify", "--dir", county.directory, "--json", text=True)  # while it runs
    result = json.loads(out.stdout)
    assert out.returncode == 0 and result["ok"] and result["events"] > 5
    net.stop(county)
    victim = result["events"] // 2
    conn = sqlite3.connect(db_path(county))
    try:  # what a careless (or worse) operator's sqlite3 session can do once the triggers are gone
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit'"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = ?", (victim,))
        conn.commit()
    finally:
        conn.close()
    out = run_gwx("node", "audit", "verify", "--dir", county.directory, text=True)
    assert out.returncode == 1, out.stderr
    assert f"first broken event: seq {victim} " in out.stdout and "someone-else" in out.stdout
