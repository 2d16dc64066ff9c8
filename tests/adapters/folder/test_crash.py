"""kill -9 of a node in the middle of a drop: the drop is neither lost nor sent twice.

The city node is killed (SIGKILL) with a drop at a critical point, reached by the real watcher —
its key recorded but nothing submitted yet (the store's blob temp folder unwritable, so the
submission fails before it commits), or submitted but its result not yet written (``results/``
unwritable, so the result fails after the submission). Restarted, it must finish the drop: one result naming the
key, and on the receiving node exactly one inbox row (and one ``inbox.add`` audit event) per
addressed unit. No hook in the node: what it meets is what a crash or a full disk leaves.
"""

from __future__ import annotations

import json
import os

import pytest

from node.localnet import wait_for
from tests.adapters.folder.folder_support import Dropper, add_folder, wait_result
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    FAST_RETRY,
    connect_and_start,
    db_rows,
    db_value,
    log_text,
    new_network,
    notice_meta,
    units,
    verify_audit_chain,
    wait_log,
    wait_status,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("folder-crash")
    network = new_network(base)
    city = network.add_node("city", units(CITY), retry=FAST_RETRY)
    network.add_node("county-a", units(A1, A2), retry=FAST_RETRY)
    network.folder = add_folder(city, CITY)
    network.dropper = Dropper(network.folder, base / "staging")
    connect_and_start(network)
    yield network
    network.stop_all()


def restart(net) -> None:
    """Stop and start the city; return once its watcher has made its folder's subfolders (its first
    round), so a test that then makes one of them unwritable meets a running watcher, not its start."""
    city = net.nodes["city"]
    watching = f"folder {CITY}: watching"
    started = log_text(city).count(watching)
    if city.running:
        net.stop(city)
    net.start(city)
    wait_for(lambda: log_text(city).count(watching) > started, 30, what="the city's watcher")


def kill_while_unusable(net, name: str, meta: dict, folder) -> str:
    """The real watcher takes the drop with ``folder`` replaced by a file (so whatever writes there fails
    with ENOTDIR, and the watcher keeps its claim to try again); once it says so, kill -9 and the folder
    is back. Returns the key the watcher recorded."""
    city = net.nodes["city"]
    aside = folder.with_name(folder.name + ".aside")
    os.rename(folder, aside)
    folder.write_bytes(b"")
    try:
        net.dropper.folder(name, meta, net.body.read_bytes(), {"附件.txt": "附件".encode()})
        wait_log(city, f"drop {name} not finished", timeout=30)
        net.kill(city)
    finally:
        folder.unlink()
        os.rename(aside, folder)
    return json.loads((net.folder / "work" / name / ".claim.json").read_text("utf-8"))["doc_id"]


def kill_once_keyed(net, name: str, meta: dict) -> str:
    """The city killed after its watcher claimed the drop and recorded its key, and before anything was
    sent: the store's blob temp folder is a file, so the submission fails while it builds the package,
    before it commits anything. Were the key written only after submitting, there would be none."""
    return kill_while_unusable(net, name, meta, net.nodes["city"].directory / "data" / "blobs" / "tmp")


def kill_once_submitted(net, name: str, meta: dict) -> str:
    """The city killed after its watcher submitted the drop and before the result was on disk:
    results/ is a file, so writing the result fails after the submission."""
    return kill_while_unusable(net, name, meta, net.folder / "results")


@pytest.mark.parametrize("kill,oa_id", [(kill_once_keyed, None), (kill_once_submitted, None),
                                        (kill_once_submitted, "oa-crash-0001")],
                         ids=["before-submit", "after-submit-before-result", "after-submit-oa-gave-the-id"])
def test_a_drop_killed_at_a_critical_point_is_sent_exactly_once(net, kill, oa_id):
    city, county = net.nodes["city"], net.nodes["county-a"]
    restart(net)
    name = f"crash-{kill.__name__}-{oa_id or 'new'}"
    title = f"关于崩溃测试的通知（{name}）"
    meta = {**notice_meta(CITY, [A1], [A2], title=title), "id": oa_id}
    key = kill(net, name, meta)
    if oa_id:
        assert key == oa_id
    sent_before_kill = db_value(city, "SELECT COUNT(*) FROM outbox WHERE title = ?", (title,))
    assert sent_before_kill == (1 if kill is kill_once_submitted else 0)
    assert not (net.folder / "results" / f"{name}.json").exists()
    restart(net)

    result = wait_result(net.folder, name)
    assert result["doc_id"] == key and result["status"] == "sent"
    wait_status(city, CITY, result["doc_id"], {A1: "delivered", A2: "delivered"})
    assert db_value(city, "SELECT COUNT(*) FROM outbox WHERE title = ?", (title,)) == 1
    rows = db_rows(county, "SELECT unit_code, doc_id FROM inbox WHERE title = ? ORDER BY unit_code", (title,))
    assert rows == [(A1, key), (A2, key)]
    adds = db_value(county, "SELECT COUNT(*) FROM audit WHERE action = 'inbox.add' AND doc_id = ?", (key,))
    assert adds == 2
    assert list((net.folder / "results").glob(f"{name}*")) == [net.folder / "results" / f"{name}.json"]
    assert not list((net.folder / "work").iterdir()) and not (net.folder / "rejects" / name).exists()
    verify_audit_chain(city)


def test_every_state_a_kill_can_leave_in_work_is_finished_at_the_next_start(net):
    """What a kill -9 leaves between the durable steps, made on disk while the node is down."""
    city = net.nodes["city"]
    restart(net)
    net.stop(city)
    work, outgoing = net.folder / "work", net.folder / "outgoing"
    titles = {}

    def drop_in(name: str, where) -> None:
        titles[name] = f"关于重启恢复的通知（{name}）"
        path = net.dropper.folder(name, notice_meta(CITY, [A1], title=titles[name]), net.body.read_bytes(),
                                  place=False)
        where.mkdir(parents=True, exist_ok=True)
        path.rename(where / name)

    drop_in("taken-not-keyed", work / "taken-not-keyed")  # renamed into work/, no .claim.json yet
    drop_in("rejected-not-moved", work / "rejected-not-moved")  # error.json written, the move cut off
    (work / "rejected-not-moved" / "error.json").write_text(json.dumps(
        {"drop": "rejected-not-moved", "code": "DROP_NO_BODY", "message": "the drop has no body.pdf"}), "utf-8")
    drop_in("half-removed", work / ".done-half-removed")  # its result written, the removal cut off
    (work / "mkdir-only").mkdir()  # the claim made, the drop not yet renamed into it
    drop_in("mkdir-only", outgoing)
    (outgoing / "mkdir-only" / ".ready").write_bytes(b"")
    net.start(city)

    for name in ("taken-not-keyed", "mkdir-only"):
        result = wait_result(net.folder, name)
        wait_status(city, CITY, result["doc_id"], {A1: "delivered"})
    assert json.loads((net.folder / "rejects" / "rejected-not-moved" / "error.json").read_text())["code"] == \
        "DROP_NO_BODY"
    assert (net.folder / "rejects" / "rejected-not-moved" / "rejected-not-moved" / "META.json").exists()
    assert not list(work.iterdir()) and not list(outgoing.iterdir())
    for name, title in titles.items():
        expected = 1 if name in ("taken-not-keyed", "mkdir-only") else 0
        assert db_value(city, "SELECT COUNT(*) FROM outbox WHERE title = ?", (title,)) == expected, name
        assert db_value(net.nodes["county-a"], "SELECT COUNT(*) FROM inbox WHERE title = ?", (title,)) == expected, name
