"""The watched folder's sending side on a real node: drops in, documents out, results and rejects.

Real ``gwx node run`` processes on loopback (the city node watches a folder for its unit CITY; the
county node hosts A1 and A2), real directories, real SQLite. What an OA integrator would notice is
checked: the result file's 公文标识 is the document the county's clerk sees, a bad drop lands in
``rejects/`` with its code and nothing is sent, a drop not yet complete is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile

import pytest

from node.localnet import wait_for
from tests.adapters.folder.folder_support import Dropper, add_folder, wait_reject, wait_result, zip_members
from tests.node.network.network_support import (
    A1,
    A2,
    CITY,
    CITY_LOCAL,
    FAST_RETRY,
    connect_and_start,
    db_value,
    inbox_item,
    log_text,
    new_network,
    notice_meta,
    units,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
MAX_BODY = 4 * 1024 * 1024  # the city's [limits] max_body_pdf_bytes, so a "huge" body is cheap to make
MAX_TOTAL = 16 * 1024 * 1024  # and its max_envelope_bytes: what a whole document may be


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("folder")
    network = new_network(base)
    city = network.add_node("city", units(CITY, CITY_LOCAL), retry=FAST_RETRY,
                            limits={"max_body_pdf_bytes": MAX_BODY, "max_envelope_bytes": MAX_TOTAL})
    network.add_node("county-a", units(A1, A2), retry=FAST_RETRY)
    network.folder = add_folder(city, CITY)
    network.dropper = Dropper(network.folder, base / "staging")
    connect_and_start(network)
    yield network
    network.stop_all()


def sent_count(net) -> int:
    return db_value(net.nodes["city"], "SELECT COUNT(*) FROM outbox")


def test_a_folder_drop_is_sent_and_its_result_names_the_document(net):
    meta = notice_meta(CITY, [A1], [A2], title="关于文件夹交换的通知")
    net.dropper.folder("notice-001", meta, net.body.read_bytes(),
                       {"附件1 名单.xlsx": b"xlsx bytes", "附件2.pdf": b"%PDF-1.4 attachment"})
    result = wait_result(net.folder, "notice-001")
    assert result["status"] == "sent" and result["drop"] == "notice-001"
    assert {r["unit"] for r in result["recipients"]} == {A1, A2}
    county = net.nodes["county-a"]
    item = inbox_item(county, A1, result["doc_id"])
    assert item["title"] == "关于文件夹交换的通知" and item["from_unit"] == CITY
    shown = county.clerk(A1).get(f"/api/v1/inbox/{result['doc_id']}")
    assert sorted(a["name"] for a in shown["attachments"]) == ["附件1 名单.xlsx", "附件2.pdf"]
    # The claim is gone once the result is durable; the OA's drop is not left to be sent again.
    assert not os.listdir(net.folder / "outgoing") and not os.listdir(net.folder / "work")
    assert "drop notice-001 sent as" in log_text(net.nodes["city"])


def test_a_zipped_drop_with_one_top_folder_is_sent(net):
    meta = notice_meta(CITY, [A1], title="关于压缩包交换的通知")
    net.dropper.zip("notice-002.zip", zip_members(meta, net.body.read_bytes(), {"说明.txt": "说明".encode()},
                                                  top="notice-002/"))
    result = wait_result(net.folder, "notice-002.zip")
    county = net.nodes["county-a"]
    inbox_item(county, A1, result["doc_id"])
    shown = county.clerk(A1).get(f"/api/v1/inbox/{result['doc_id']}")
    assert shown["title"] == "关于压缩包交换的通知"
    assert [a["name"] for a in shown["attachments"]] == ["说明.txt"]


def test_a_drop_counts_only_once_it_is_complete(net):
    before = sent_count(net)
    meta = notice_meta(CITY, [A1], title="尚未写完的文件")
    path = net.dropper.folder("notice-003", meta, net.body.read_bytes(), ready=False)
    (net.folder / "outgoing" / "notice-004.zip.part").write_bytes(b"PK\x03\x04 half a zip")
    (net.folder / "outgoing" / "readme.txt").write_text("not a drop")
    wait_for(lambda: "leaving outgoing/readme.txt alone" in log_text(net.nodes["city"]), 10, what="a round")
    assert "outgoing/notice-003/ has no .ready yet" in log_text(net.nodes["city"])
    for _ in range(3):  # several rounds (0.2 s each) pass
        wait_for(lambda: True, 0.3)
    assert path.exists() and sent_count(net) == before
    assert not (net.folder / "rejects" / "notice-004.zip.part").exists()
    (path / ".ready").write_bytes(b"")
    result = wait_result(net.folder, "notice-003")
    assert inbox_item(net.nodes["county-a"], A1, result["doc_id"])["title"] == "尚未写完的文件"
    (net.folder / "outgoing" / "notice-004.zip.part").unlink()
    (net.folder / "outgoing" / "readme.txt").unlink()


def test_a_drop_naming_a_document_already_sent_is_refused_and_not_sent_again(net):
    meta = {**notice_meta(CITY, [A1], title="带公文标识的通知"), "id": "oa-2026-0001"}
    net.dropper.folder("with-id", meta, net.body.read_bytes())
    assert wait_result(net.folder, "with-id")["doc_id"] == "oa-2026-0001"
    before = sent_count(net)
    net.dropper.folder("with-id-again", meta, net.body.read_bytes())
    error = wait_reject(net.folder, "with-id-again")
    assert error["code"] == "DROP_ALREADY_SENT" and "oa-2026-0001" in error["message"]
    assert sent_count(net) == before
    assert db_value(net.nodes["county-a"], "SELECT COUNT(*) FROM inbox WHERE doc_id = 'oa-2026-0001'") == 1


# --- hostile drops: each refused with its code, nothing sent, the watcher goes on -------------------------
def _zip_info(name: str, mode: int | None = None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    if mode is not None:
        info.external_attr = mode << 16
    return info


def _traversal_zip(net, name):
    meta = notice_meta(CITY, [A1])
    return net.dropper.zip(name, zip_members(meta, net.body.read_bytes()),
                           [(_zip_info("attachments/../../../escaped.txt"), b"out of the folder")])


def _absolute_zip(net, name):
    return net.dropper.zip(name, zip_members(notice_meta(CITY, [A1]), net.body.read_bytes()),
                           [(_zip_info("/tmp/gwx-absolute.txt"), b"absolute")])


def _symlink_zip(net, name):
    return net.dropper.zip(name, zip_members(notice_meta(CITY, [A1]), net.body.read_bytes()),
                           [(_zip_info("attachments/passwd", stat.S_IFLNK | 0o777), b"/etc/passwd")])


def _zip_bomb(net, name):
    members = zip_members(notice_meta(CITY, [A1]), net.body.read_bytes())
    return net.dropper.zip(name, {**members, "attachments/zeros.bin": bytes(12 * 1024 * 1024)})


def _truncated_zip(net, name):
    path = _traversal_zip(net, name + ".tmp")
    data = path.read_bytes()
    path.unlink()
    return net.dropper.raw(name, data[: len(data) // 2])


def _symlinked_drop(net, name):
    os.symlink("/etc", net.dropper.staging / name)
    return net.dropper.place(net.dropper.staging / name)


def _symlink_inside(net, name):
    path = net.dropper.folder(name, notice_meta(CITY, [A1]), net.body.read_bytes(), {"a.txt": b"a"}, place=False)
    os.symlink("/etc/passwd", path / "attachments" / "passwd")
    return net.dropper.place(path)


def _hard_link_inside(net, name):
    path = net.dropper.folder(name, notice_meta(CITY, [A1]), net.body.read_bytes(), place=False)
    (path / "attachments").mkdir()
    secret = net.base / "secret.key"
    secret.write_bytes(b"not the OA's to send")
    os.link(secret, path / "attachments" / "secret.key")
    return net.dropper.place(path)


def _malformed_meta(net, name):
    return net.dropper.folder(name, b'{"kind": "\xe9\x80\x9a\xe7\x9f\xa5", "title": ', net.body.read_bytes())


def _oversized_meta(net, name):
    meta = notice_meta(CITY, [A1])
    meta["note"] = "长" * (1024 * 1024)
    return net.dropper.folder(name, meta, net.body.read_bytes())


def _unknown_field(net, name):
    return net.dropper.folder(name, {**notice_meta(CITY, [A1]), "sender_password": "x"}, net.body.read_bytes())


def _no_body(net, name):
    return net.dropper.folder(name, notice_meta(CITY, [A1]), None)


def _no_meta(net, name):
    return net.dropper.folder(name, None, net.body.read_bytes())


def _huge_body(net, name):
    path = net.dropper.folder(name, notice_meta(CITY, [A1]), None, place=False)
    with open(path / "body.pdf", "wb") as f:
        f.truncate(MAX_BODY + 1)  # sparse: cheap to make, as big as it says
    return net.dropper.place(path)


def _huge_attachment(net, name):
    path = net.dropper.folder(name, notice_meta(CITY, [A1]), net.body.read_bytes(), {"small.txt": b"x"},
                              place=False)
    with open(path / "attachments" / "scan.tif", "wb") as f:
        f.truncate(MAX_TOTAL + 1)
    return net.dropper.place(path)


def _stray_folder(net, name):
    path = net.dropper.folder(name, notice_meta(CITY, [A1]), net.body.read_bytes(), place=False)
    (path / "drafts").mkdir()
    return net.dropper.place(path)


def _another_units_document(net, name):
    return net.dropper.folder(name, notice_meta(CITY_LOCAL, [A1]), net.body.read_bytes())


def _not_a_pdf(net, name):
    return net.dropper.folder(name, notice_meta(CITY, [A1]), b"this is no PDF at all")


HOSTILE = {
    "traversal-zip.zip": (_traversal_zip, "DROP_BAD_NAME"),
    "absolute-zip.zip": (_absolute_zip, "DROP_BAD_NAME"),
    "symlink-member.zip": (_symlink_zip, "DROP_SYMLINK"),
    "bomb.zip": (_zip_bomb, "DROP_ZIP_BOMB"),
    "truncated.zip": (_truncated_zip, "DROP_BAD_ZIP"),
    "symlinked-drop": (_symlinked_drop, "DROP_SYMLINK"),
    "symlink-inside": (_symlink_inside, "DROP_SYMLINK"),
    "hard-link-inside": (_hard_link_inside, "DROP_HARD_LINK"),
    "malformed-meta": (_malformed_meta, "DOC_MALFORMED_JSON"),
    "oversized-meta": (_oversized_meta, "DROP_TOO_LARGE"),
    "unknown-field": (_unknown_field, "DOC_UNKNOWN_FIELD"),
    "no-body": (_no_body, "DROP_NO_BODY"),
    "no-meta": (_no_meta, "DROP_NO_META"),
    "huge-body": (_huge_body, "DROP_TOO_LARGE"),
    "huge-attachment": (_huge_attachment, "DROP_TOO_LARGE"),
    "stray-folder": (_stray_folder, "DROP_UNEXPECTED_ENTRY"),
    "another-units-document": (_another_units_document, "API_FORBIDDEN"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_drop_is_rejected_with_its_code_and_nothing_is_sent(net, name):
    make, code = HOSTILE[name]
    before = sent_count(net)
    make(net, name)
    error = wait_reject(net.folder, name)
    assert error["code"] == code, error
    assert error["message"] and error["drop"] == name
    assert sent_count(net) == before
    # The drop is kept as it was, next to its error, for the OA's operator.
    kept = net.folder / "rejects" / name / name
    assert os.path.lexists(kept)
    assert not os.path.lexists(net.folder / "rejects" / name / ".claim.json")
    assert not os.path.lexists(net.folder / "rejects" / name / ".unpacked")
    for escaped in (net.folder / "escaped.txt", net.folder.parent / "escaped.txt", net.folder / "work" / "escaped.txt"):
        assert not escaped.exists()
    assert not os.path.exists("/tmp/gwx-absolute.txt")
    assert "Traceback" not in log_text(net.nodes["city"])


def test_a_body_that_is_not_a_pdf_is_rejected_by_the_service_with_its_code(net):
    before = sent_count(net)
    _not_a_pdf(net, "not-a-pdf")
    error = wait_reject(net.folder, "not-a-pdf")
    assert error["code"].startswith(("PKG_", "DOC_")), error
    assert sent_count(net) == before


def test_drops_named_like_the_nodes_own_files_are_the_oas(net):
    net.dropper.folder("claim.json", notice_meta(CITY, [A1], title="名为claim.json的文件"), net.body.read_bytes())
    assert wait_result(net.folder, "claim.json")["status"] == "sent"
    net.dropper.folder("unpacked", notice_meta(CITY, [A1]), None)
    assert wait_reject(net.folder, "unpacked")["code"] == "DROP_NO_BODY"
    assert (net.folder / "rejects" / "unpacked" / "unpacked" / "META.json").exists()
    # error.json is the one name a drop cannot have: its reject would need it twice.
    net.dropper.folder("error.json", notice_meta(CITY, [A1]), net.body.read_bytes())
    wait_for(lambda: "leaving outgoing/error.json alone" in log_text(net.nodes["city"]), 10, what="a round")
    assert (net.folder / "outgoing" / "error.json").is_dir()
    shutil.rmtree(net.folder / "outgoing" / "error.json")


def test_the_watcher_keeps_sending_after_hostile_drops(net):
    meta = notice_meta(CITY, [A1], title="攻击之后的正常文件")
    net.dropper.folder("after-the-attacks", meta, net.body.read_bytes())
    result = wait_result(net.folder, "after-the-attacks")
    assert inbox_item(net.nodes["county-a"], A1, result["doc_id"])["title"] == "攻击之后的正常文件"
    assert json.loads((net.folder / "results" / "after-the-attacks.json").read_text("utf-8"))["status"] == "sent"


def test_a_folder_that_goes_away_is_reported_and_used_again_when_it_is_back(net):
    outgoing, away = net.folder / "outgoing", net.folder / "outgoing.away"
    outgoing.rename(away)
    try:
        wait_for(lambda: "cannot use" in log_text(net.nodes["city"]), 10, what="the missing folder reported")
    finally:
        away.rename(outgoing)
    wait_for(lambda: "can be read again" in log_text(net.nodes["city"]), 10, what="the folder back")
    net.dropper.folder("after-the-outage", notice_meta(CITY, [A1], title="恢复之后的文件"), net.body.read_bytes())
    assert wait_result(net.folder, "after-the-outage")["status"] == "sent"
    assert log_text(net.nodes["city"]).count("cannot use") == 1  # said once, not every round
    assert "Traceback" not in log_text(net.nodes["city"])
