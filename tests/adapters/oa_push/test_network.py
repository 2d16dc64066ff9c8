"""OA push between real node processes on loopback: a legacy OA (spyne, its own WSDL) per unit,
pushed to by the node through the durable outbox.

The city sends to 兰山区 (A1, on county-a; A2 beside it has no OA); county-a pushes each document
to A1's OA, and the city pushes 签收/退回 of what it sent to the city's OA. Scenarios: the document
arrives field by field and its 签收 and 退回 follow; the OA down for a while, then drained in order;
a Client fault dead-letters with the OA's text (shown by `gwx node status` and the metrics) until
replayed; a slow OA is timed out and retried under the same key; and kill -9 of the node between
the OA's answer and the node's commit (the test holds the node's SQLite write lock while the OA
answers, so the node waits there): the OA sees the same 公文标识 and event id twice and records the
document once.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import sqlite3
import threading
import time
import zipfile
from pathlib import Path

import pytest

from node.config import CONFIG_NAME, load_config
from node.localnet import send_document, wait_for
from tests.adapters.oa_push.legacy_oa import LegacyOa
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    clerk_name,
    connect_and_start,
    db_path,
    db_rows,
    ensure_running,
    gwx,
    inbox_item,
    metric,
    new_network,
    notice_meta,
    units,
)
from tests.node.network.network_support import FAST_RETRY as RETRY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
logging.getLogger("spyne").setLevel(logging.CRITICAL)
MAPPING = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "oa-mapping.toml"


def add_oa_push(directory: Path, unit: str, oa: LegacyOa, *, status: bool, timeout: float = 5.0) -> None:
    """The [[oa_push]] entry an operator writes, and the example mapping beside node.toml."""
    shutil.copy(MAPPING, directory / "oa-mapping.toml")
    mapping = (directory / "oa-mapping.toml").read_text("utf-8")
    if not status:
        mapping = mapping[:mapping.index("[status]")] + mapping[mapping.index("# strftime"):]
        mapping = mapping[:mapping.index("# The OA's parameters of the status")]
    (directory / "oa-mapping.toml").write_text(mapping, "utf-8")
    with open(directory / CONFIG_NAME, "a", encoding="utf-8") as file:
        file.write(f'\n[[oa_push]]\nunit = "{unit}"\nwsdl = "{oa.wsdl_url}"\nreceived_operation = "ReceiveGongwen"\n'
                   f'mapping = "oa-mapping.toml"\ntimeout_seconds = {timeout}\nwindow_seconds = 60.0\n'
                   + ('status_operation = "UpdateZhuangtai"\n' if status else ""))
    assert load_config(directory).oa_push  # refused here if the entry were wrong


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("oapush")
    with LegacyOa() as oa_a1, LegacyOa() as oa_city:
        net = new_network(base)
        city = net.add_node("city", units(CITY), retry=RETRY)
        county = net.add_node("county-a", units(A1, A2), retry=RETRY)
        # Both OAs answer within 5 s or are retried. It was 1 s for A1's, to make the slow-OA test quick:
        # on a loaded machine an ordinary push (spyne parsing it in the test's process) took longer,
        # was resent, and the OA counted two calls where the tests count one (or dead-lettered it).
        add_oa_push(county.directory, A1, oa_a1, status=False)
        add_oa_push(city.directory, CITY, oa_city, status=True)
        connect_and_start(net)
        try:
            yield net, city, county, oa_a1, oa_city
        finally:
            net.stop_all()


@pytest.fixture
def nodes(world):
    net, city, county, oa_a1, oa_city = world
    ensure_running(net, city, county)
    for oa in (oa_a1, oa_city):
        oa.state.fault_next.clear()
        oa.state.slow_next.clear()
        oa.state.on_receive = None
        oa.state.after_answer = None
        oa.state.max_request_bytes = None
        oa.state.html_error_next.clear()
        if oa._server is None:
            oa.up()
    return world


def send(net, to, attachments=(), **meta_changes) -> str:
    meta = notice_meta(CITY, to) | meta_changes
    return send_document(net.nodes["city"], CITY, meta, net.body, list(attachments))["doc_id"]


def sealed_body(node, unit: str, doc_id: str) -> bytes:
    package = io.BytesIO()
    node.clerk(unit).download(f"/api/v1/inbox/{doc_id}/package", package)
    with zipfile.ZipFile(package) as archive:
        return archive.read("body.pdf")


def status_of(node, consumer: str) -> dict:
    out = gwx("node", "status", "--dir", str(node.directory), "--json")
    return json.loads(out.stdout)["adapters"].get(consumer, {})


def test_a_document_reaches_the_oa_and_its_sign_for_reaches_the_senders_oa(nodes):
    net, city, county, oa_a1, oa_city = nodes
    attachment = net.base / "防火检查表.txt"
    attachment.write_bytes("检查单位、检查项目、整改期限\n".encode() * 200)
    doc_id = send(net, [A1, A2], [attachment], title="关于做好冬季防火工作的通知", urgency="特急")
    got = wait_for(lambda: oa_a1.state.documents.get(doc_id), 30, what="the push to A1's OA")
    assert got["wjbt"] == "关于做好冬季防火工作的通知" and got["wz"] == "01" and got["jjcd"] == "1"
    assert got["fwdw"] == f"{CITY[8:16]}-{CITY[16]}" and got["swdw"] == f"{A1[8:16]}-{A1[16]}"
    assert got["cwrq"] == "20261120" and got["lyxt"] == "GWX"
    assert got["zw"] == sealed_body(county, A1, doc_id)  # the sealed body.pdf, as the clerk downloads it
    assert got["fj"] == [("防火检查表.txt", attachment.read_bytes())]
    assert got["sjbs"].startswith("county-a-")  # the event id: the node and the audit seq

    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for")
    status = wait_for(lambda: next((s for s in oa_city.state.statuses.values() if s["gwbs"] == doc_id), None), 30,
                      what="the 签收 pushed to the city's OA")
    assert status["zt"] == "QS" and status["czr"] == clerk_name(A1) and status["jsdw"] == f"{A1[8:16]}-{A1[16]}"
    county.clerk(A2).post(f"/api/v1/inbox/{doc_id}/return", {"reason": "非本单位职责"})
    returned = wait_for(lambda: next((s for s in oa_city.state.statuses.values()
                                      if s["gwbs"] == doc_id and s["zt"] == "TH"), None), 30, what="the 退回")
    assert returned["yy"] == "非本单位职责" and returned["jsdw"] == f"{A2[8:16]}-{A2[16]}"
    assert oa_a1.state.keys_of("UpdateZhuangtai") == []  # A1's OA is told only what A1 receives
    assert wait_for(lambda: status_of(county, f"oa:{A1}").get("done", 0) >= 1, 20, what="done counted")


def test_the_oa_down_for_a_while_gets_everything_in_order_once(nodes):
    net, city, county, oa_a1, oa_city = nodes
    oa_a1.down()
    sent = [send(net, [A1]) for _ in range(3)]
    for doc_id in sent:
        inbox_item(county, A1, doc_id)
    assert wait_for(lambda: status_of(county, f"oa:{A1}").get("pending") == 3, 20, what="3 pending")
    oa_a1.up()
    wait_for(lambda: all(d in oa_a1.state.documents for d in sent), 30, what="the backlog drained")
    calls = [(gwbs, sjbs) for op, gwbs, sjbs, _ in oa_a1.state.calls if op == "ReceiveGongwen" and gwbs in sent]
    # Each once as the OA keeps them: a push slower than the timeout on a loaded machine is resent,
    # rightly, with the same event id, and the OA answers the repeat 重复 (counting calls flaked).
    first: dict[str, str] = {}  # 公文标识 → event id, in the order of first arrival
    for gwbs, sjbs in calls:
        first.setdefault(gwbs, sjbs)
    assert sorted(first) == sorted(sent)
    assert all(sjbs == first[gwbs] for gwbs, sjbs in calls)  # a resend is the same event
    seqs = [int(sjbs.rsplit("-", 1)[1]) for sjbs in first.values()]
    assert seqs == sorted(seqs)  # in the order county-a received them (the audit log's order)
    assert wait_for(lambda: status_of(county, f"oa:{A1}").get("pending") == 0, 20, what="nothing pending")


def test_a_document_recalled_before_its_push_never_reaches_the_oa(nodes):
    net, city, county, oa_a1, oa_city = nodes
    dead_before = status_of(county, f"oa:{A1}").get("dead", 0)
    oa_a1.down()
    recalled, kept = send(net, [A1]), send(net, [A1])
    inbox_item(county, A1, recalled)
    city.clerk(CITY).post(f"/api/v1/outbox/{recalled}/recall", {"units": [A1]})
    wait_for(lambda: county.clerk(A1).get(f"/api/v1/inbox/{recalled}")["status"] == "recalled", 30,
             what="the recall at county-a")
    oa_a1.up()
    wait_for(lambda: kept in oa_a1.state.documents, 30, what="the document after it")
    assert recalled not in oa_a1.state.documents
    assert wait_for(lambda: status_of(county, f"oa:{A1}").get("pending") == 0, 20, what="nothing pending")
    assert status_of(county, f"oa:{A1}").get("dead", 0) == dead_before  # done, not a dead letter to replay


def test_a_fault_is_dead_lettered_with_the_oas_text_until_replayed(nodes):
    net, city, county, oa_a1, oa_city = nodes
    consumer = f"oa:{A1}"
    before = status_of(county, consumer).get("dead", 0)
    oa_a1.state.fault_next.append(("Client", "文种代码[01]在本系统中已停用"))
    doc_id = send(net, [A1])
    status = wait_for(lambda: (s := status_of(county, consumer)).get("dead", 0) > before and s, 30,
                      what="the dead letter")
    assert "文种代码[01]在本系统中已停用" in (status["last_dead"]["message"] or "")
    assert status["last_dead"]["code"] == "OA_FAULT"
    text = gwx("node", "status", "--dir", str(county.directory)).stdout
    assert "文种代码[01]在本系统中已停用" in text
    wait_for(lambda: metric(county, "gwx_adapter_outbox", consumer=consumer, state="dead") > before, 15,
             what="the gauge (refreshed every few seconds)")
    assert doc_id not in oa_a1.state.documents

    dead = json.loads(gwx("oa", "dead", "--dir", str(county.directory), "--unit", A1, "--json").stdout)
    row = next(r for r in dead if r["event"]["doc_id"] == doc_id)
    assert row["error"]["code"] == "OA_FAULT" and "文种代码[01]在本系统中已停用" in row["error"]["message"]
    replay = gwx("oa", "replay", "--dir", str(county.directory), "--unit", A1, "--row", str(row["row"]))
    assert replay.returncode == 0, replay.stderr
    assert "1 dead letter(s) queued again" in replay.stdout
    wait_for(lambda: doc_id in oa_a1.state.documents, 30, what="the replayed push")
    assert oa_a1.state.keys_of("ReceiveGongwen").count(doc_id) == 2  # the faulted call, then the replay


def test_a_413_from_the_oas_web_server_is_dead_lettered_with_its_page(nodes):
    net, city, county, oa_a1, oa_city = nodes
    consumer = f"oa:{A1}"
    before = status_of(county, consumer).get("dead", 0)
    oa_a1.state.max_request_bytes = 4096  # nginx's client_max_body_size, before the OA
    doc_id = send(net, [A1])
    status = wait_for(lambda: (s := status_of(county, consumer)).get("dead", 0) > before and s, 30,
                      what="the dead letter")
    assert status["last_dead"]["code"] == "OA_TOO_LARGE"  # not retried: the same bytes cannot pass
    assert "HTTP 413: 413 Request Entity Too Large" in gwx("node", "status", "--dir", str(county.directory)).stdout
    dead = json.loads(gwx("oa", "dead", "--dir", str(county.directory), "--unit", A1, "--json").stdout)
    row = next(r for r in dead if r["event"]["doc_id"] == doc_id)
    # Sent once and dead (a first attempt timed out while the WSDL loads would never reach the OA).
    assert [gwbs for op, gwbs, *_ in oa_a1.state.calls if op == "HTTP"] == ["413"]
    assert "HTTP 413: 413 Request Entity Too Large" in row["error"]["message"]
    assert "nginx/1.0.15" in row["error"]["message"] and doc_id not in oa_a1.state.documents
    oa_a1.state.max_request_bytes = None  # the OA's operator raised the limit
    gwx("oa", "replay", "--dir", str(county.directory), "--unit", A1, "--row", str(row["row"]))
    wait_for(lambda: doc_id in oa_a1.state.documents, 30, what="the replayed push")


def test_a_gateway_error_page_is_retried(nodes):
    net, city, county, oa_a1, oa_city = nodes
    oa_a1.state.html_error_next += [502, 503]
    doc_id = send(net, [A1])
    wait_for(lambda: doc_id in oa_a1.state.documents, 30, what="the push after the proxy's errors")
    assert [gwbs for op, gwbs, *_ in oa_a1.state.calls if op == "HTTP"][-2:] == ["502", "503"]


def test_a_slow_oa_is_timed_out_and_the_resend_is_recognised(nodes):
    net, city, county, oa_a1, oa_city = nodes
    oa_a1.state.slow_next.append(6.5)  # timeout_seconds = 5 for A1's OA
    doc_id = send(net, [A1])
    wait_for(lambda: oa_a1.state.keys_of("ReceiveGongwen").count(doc_id) >= 2, 30, what="the resend")
    assert doc_id in oa_a1.state.documents and len([d for d in oa_a1.state.documents if d == doc_id]) == 1
    wait_for(lambda: status_of(county, f"oa:{A1}").get("pending") == 0, 20, what="the row done")


def test_kill_9_between_the_oas_answer_and_our_commit_resends_the_same_key(nodes):
    net, city, county, oa_a1, oa_city = nodes
    held: dict = {}
    killed = threading.Event()

    def hold_the_nodes_store(gwbs: str) -> None:
        # The OA has recorded the document and is about to answer: take the node's SQLite write
        # lock, so that the node, once it has the answer, waits to commit the row done.
        oa_a1.state.on_receive = None
        held["lock"] = sqlite3.connect(db_path(county), timeout=10, isolation_level=None, check_same_thread=False)
        held["lock"].execute("BEGIN IMMEDIATE")

    def kill_while_it_waits() -> None:
        # The answer is on the socket; the node has read it and waits for the lock: kill -9 there.
        if "lock" not in held:
            return  # an earlier answer (the WSDL, fetched at the first push)
        oa_a1.state.after_answer = None
        time.sleep(1.0)
        net.kill(county)
        held["lock"].rollback()
        held["lock"].close()
        killed.set()

    oa_a1.state.on_receive = hold_the_nodes_store
    oa_a1.state.after_answer = kill_while_it_waits
    doc_id = send(net, [A1])
    assert killed.wait(60), "the node was not killed"
    first = [(gwbs, sjbs) for op, gwbs, sjbs, _ in oa_a1.state.calls if gwbs == doc_id]
    assert len(first) == 1 and doc_id in oa_a1.state.documents
    event = db_rows(county, "SELECT state, event FROM adapter_outbox WHERE consumer = ? ORDER BY id DESC LIMIT 1",
                    (f"oa:{A1}",))[0]
    assert event[0] == "pending" and json.loads(event[1])["doc_id"] == doc_id  # answered, never committed

    net.start(county)
    wait_for(lambda: oa_a1.state.keys_of("ReceiveGongwen").count(doc_id) == 2, 30, what="the resend after restart")
    calls = [(gwbs, sjbs) for op, gwbs, sjbs, _ in oa_a1.state.calls if gwbs == doc_id]
    assert calls == first * 2  # the same 公文标识 and the same event id
    assert list(oa_a1.state.documents).count(doc_id) == 1  # recorded once; the repeat was answered 重复
    wait_for(lambda: status_of(county, f"oa:{A1}").get("pending") == 0, 20, what="the row done after restart")
