"""The watched folder's receiving side on real nodes: documents and event files in ``inbox/``.

The county node writes what its unit A1 receives into A1's folder (A2 has none); the city node
writes into CITY's folder what happens to the documents CITY sent (签收, 退回 by the recipients).
Everything is read back as an OA would: from the files alone.
"""

from __future__ import annotations

import json
import os

import pytest

from node.localnet import send_document, wait_for
from tests.adapters.folder.folder_support import Dropper, add_folder, wait_result
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    FAST_RETRY,
    connect_and_start,
    inbox_item,
    log_text,
    new_network,
    notice_meta,
    units,
    wait_log,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ATTACHMENTS = {"附件1 名单.xlsx": b"xlsx bytes " * 100, "附件2.txt": "说明文字".encode()}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("folder-inbox")
    network = new_network(base)
    city = network.add_node("city", units(CITY), retry=FAST_RETRY)
    county = network.add_node("county-a", units(A1, A2), retry=FAST_RETRY)
    network.city_folder = add_folder(city, CITY)
    network.a1_folder = add_folder(county, A1)
    network.dropper = Dropper(network.city_folder, base / "staging")
    connect_and_start(network)
    yield network
    network.stop_all()


def events(folder, doc_id: str | None = None) -> list[dict]:
    found = [json.loads(p.read_text("utf-8")) for p in sorted((folder / "inbox" / "events").glob("*.json"))]
    return [e for e in found if doc_id is None or e["doc_id"] == doc_id]


def wait_event(folder, doc_id: str, type_: str, timeout: float = 60.0) -> dict:
    return wait_for(lambda: next((e for e in events(folder, doc_id) if e["type"] == type_), None), timeout,
                    what=f"{type_} of {doc_id} in {folder.name}/inbox/events")


def send(net, title: str, name: str) -> str:
    net.dropper.folder(name, notice_meta(CITY, [A1], [A2], title=title), net.body.read_bytes(), ATTACHMENTS)
    return wait_result(net.city_folder, name)["doc_id"]


def test_a_received_document_appears_whole_with_its_metadata_and_report(net):
    doc_id = send(net, "关于收文目录的通知", "inbox-001")
    event = wait_event(net.a1_folder, doc_id, "document.received")
    assert event["unit"] == A1 and event["document"] == doc_id and event["data"]["from_unit"] == CITY
    assert event["event_id"].startswith("county-a-")
    folder = net.a1_folder / "inbox" / doc_id
    meta = json.loads((folder / "META.json").read_text("utf-8"))
    assert meta["id"] == doc_id and meta["title"] == "关于收文目录的通知" and meta["to"] == [A1]
    report = json.loads((folder / "verification.json").read_text("utf-8"))
    assert report["ok"] is True
    record = json.loads((folder / "document.json").read_text("utf-8"))
    assert record["from_unit"] == CITY and record["status"] == "pending" and record["unit"] == A1
    assert (folder / "body.pdf").read_bytes().startswith(b"%PDF-")
    assert {p.name: p.read_bytes() for p in (folder / "attachments").iterdir()} == ATTACHMENTS
    # Only A1 has a folder; A2's copy stays in the node (the clerk reads it over the API).
    assert inbox_item(net.nodes["county-a"], A2, doc_id)
    assert not [p for p in (net.a1_folder / "inbox").iterdir() if p.name.startswith(".")]


def test_what_the_recipients_do_reaches_the_senders_folder_as_event_files(net):
    doc_id = send(net, "关于回执事件的通知", "inbox-002")
    county = net.nodes["county-a"]
    inbox_item(county, A1, doc_id)
    inbox_item(county, A2, doc_id)
    county.clerk(A1).post(f"/api/v1/inbox/{doc_id}/sign-for", {})
    county.clerk(A2).post(f"/api/v1/inbox/{doc_id}/return", {"reason": "不属于本单位职责范围"})
    signed = wait_event(net.city_folder, doc_id, "document.signed_for")
    returned = wait_event(net.city_folder, doc_id, "document.returned")
    assert signed["unit"] == CITY and signed["data"]["recipient"] == A1 and signed["data"]["by"]
    assert returned["data"]["recipient"] == A2 and returned["data"]["reason"] == "不属于本单位职责范围"
    # The sender's own folder hears of its recipients, not of a document it received.
    assert {e["type"] for e in events(net.city_folder, doc_id)} == {"document.signed_for", "document.returned"}
    # File names sort in the order things happened.
    seqs = [e["seq"] for e in events(net.city_folder)]
    assert seqs == sorted(seqs)


def test_a_recall_and_an_urge_reach_the_recipients_folder(net):
    doc_id = send(net, "关于撤回事件的通知", "inbox-003")
    wait_event(net.a1_folder, doc_id, "document.received")
    city = net.nodes["city"]
    city.clerk(CITY).post(f"/api/v1/outbox/{doc_id}/urge", {"units": [A1]})
    wait_event(net.a1_folder, doc_id, "document.urged")
    city.clerk(CITY).post(f"/api/v1/outbox/{doc_id}/recall", {"units": [A1]})
    wait_event(net.a1_folder, doc_id, "document.recalled")
    types = [e["type"] for e in events(net.a1_folder, doc_id)]
    assert types == ["document.received", "document.urged", "document.recalled"]


def test_a_kill_while_writing_the_inbox_leaves_each_document_and_event_once(net):
    """The county killed between writing a document's folder and its event file: inbox/events/ is a
    file for a while (the event's write fails, FOLDER_INBOX_UNWRITABLE, and is retried), so the real
    consumer stops exactly there; kill -9, events/ a folder again, restart: each once."""
    county = net.nodes["county-a"]
    events_dir = net.a1_folder / "inbox" / "events"
    os.rename(events_dir, events_dir.with_name("events.aside"))
    events_dir.write_bytes(b"")
    try:
        doc_id = send(net, "关于收文崩溃的通知", "inbox-004")
        wait_log(county, "not delivered (FOLDER_INBOX_UNWRITABLE)", timeout=60)
        assert (net.a1_folder / "inbox" / doc_id / "META.json").exists()
        net.kill(county)
    finally:
        events_dir.unlink()
        os.rename(events_dir.with_name("events.aside"), events_dir)
    assert not events(net.a1_folder, doc_id)
    net.start(county)
    event = wait_event(net.a1_folder, doc_id, "document.received")
    wait_for(lambda: "document.received " + doc_id + " written" in log_text(county), 30, what="the delivery")
    assert [e["event_id"] for e in events(net.a1_folder, doc_id)] == [event["event_id"]]
    assert [p.name for p in (net.a1_folder / "inbox").iterdir() if doc_id in p.name] == [doc_id]
    assert not [p for p in os.listdir(net.a1_folder / "inbox") if p.startswith(".")]
    assert not [p for p in os.listdir(net.a1_folder / "inbox" / "events") if p.startswith(".")]


def test_a_bounce_reaches_the_senders_folder_as_a_delivery_failed_event(net):
    # A2 has sent A1 a document under an id; CITY's drop reuses it: the county refuses CITY's copy
    # after acknowledging it (DOC_ID_CONFLICT) and bounces it back to the city.
    county = net.nodes["county-a"]
    taken = f"oa-bounce-{os.getpid()}"
    send_document(county, A2, {**notice_meta(A2, [A1], title="先到的同号文件"), "id": taken}, net.body)
    inbox_item(county, A1, taken)
    net.dropper.folder("inbox-005", {**notice_meta(CITY, [A1], title="后到的同号文件"), "id": taken},
                       net.body.read_bytes())
    assert wait_result(net.city_folder, "inbox-005")["doc_id"] == taken
    failed = wait_event(net.city_folder, taken, "delivery.failed")
    assert failed["unit"] == CITY and failed["data"]["recipient"] == A1
    assert "DOC_ID_CONFLICT" in json.dumps(failed, ensure_ascii=False)
    # A1's folder holds the first document only: the second never became an inbox row.
    record = json.loads((net.a1_folder / "inbox" / taken / "document.json").read_text("utf-8"))
    assert record["title"] == "先到的同号文件"


def test_the_folders_consumers_are_counted_in_node_status(net):
    status = net.nodes["county-a"].client("operator").get("/api/v1/node/status")
    assert status["adapters"][f"folder:{A1}"]["dead"] == 0
    assert status["adapters"][f"folder:{A1}"]["done"] >= 1
