"""A drop whose key was sent meanwhile by someone else is not reported as sent unless it is the same document.

The drop is claimed and keyed (``.claim.json`` names its 公文标识), and before the watcher submits it a
clerk sends a document under that very id through the local API. The watcher then finds the key sent.
Same content (the OA's document was also sent by hand; or the node itself submitted it and was killed
before the result): the drop is adopted — its result names the id, nothing is sent again. Other
content (metadata, body or an attachment): refused as ``DROP_ID_TAKEN``, no result, nothing sent.
In-process over a real document service and SQLite (``tests/node/api/local_api_support.py``).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest
from pyhanko.pdf_utils.generic import TextStringObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from adapters.folder.drop import DropLimits
from adapters.folder.layout import FolderLayout, write_json
from adapters.folder.outgoing import CLAIM, Outgoing
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import ReceiverStatus
from node.store import InboxRow
from tests.node.api.local_api_support import PDF, UNIT_A, UNIT_B, make_env, meta, outbox_of_a, run, send

DOC_ID = "oa-2026-adopt-0001"
ATTACHMENT = ("名单.txt", "第一批名单".encode())


def keyed_drop(root: Path, name: str, doc_meta: dict, body: bytes, attachment: tuple[str, bytes]) -> None:
    """A drop as the watcher leaves it once claimed and keyed: ``work/NAME/NAME`` and ``.claim.json``."""
    drop = root / "work" / name / name
    (drop / "attachments").mkdir(parents=True)
    (drop / "META.json").write_text(json.dumps(doc_meta, ensure_ascii=False), "utf-8")
    (drop / "body.pdf").write_bytes(body)
    (drop / ".ready").write_bytes(b"")
    (drop / "attachments" / attachment[0]).write_bytes(attachment[1])
    write_json(root / "work" / name / CLAIM, {"drop": name, "doc_id": DOC_ID, "claimed_at": "2026-11-30T12:00:00Z"})


def share_with_keyed_drop(tmp_path: Path, name: str, doc_meta: dict, body: bytes = PDF,
                          attachment: tuple[str, bytes] = ATTACHMENT):
    """A node (in-process) and its watched folder holding one claimed, keyed drop; answer both and the layout."""
    env = make_env(tmp_path / "node")
    root = tmp_path / "share"
    root.mkdir()
    layout = FolderLayout(root)
    layout.create()
    keyed_drop(root, name, doc_meta, body, attachment)
    return env, root, layout


def watcher_of(layout: FolderLayout, env, body_limit: int = 1 << 24) -> Outgoing:
    return Outgoing(layout, UNIT_A, env.service, DropLimits(body=body_limit, total=1 << 26), env.ctx.clock,
                    poll_seconds=0.05)


async def submit_then_killed(env, watcher: Outgoing, name: str) -> None:
    """What the watcher does for drop ``name`` before it writes the result — the node killed right after."""
    contents = await asyncio.to_thread(watcher._read, name)
    await env.service.submit(watcher.principal, {**contents.meta, "id": DOC_ID}, contents.body, contents.attachments)


def later_revision(pdf: bytes) -> bytes:
    """``pdf`` with one more revision appended (an incremental update, as an editor saves): the drop's
    body is then a byte-for-byte prefix of it."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    writer.root["/Lang"] = TextStringObject("zh-CN")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SAME = {}
OTHER_TITLE = {"meta": meta(id=DOC_ID, title="关于另一件事的通知")}
OTHER_BODY = {"body": PDF.replace(b"%%EOF", b"%%EOF\n%% another revision\n%%EOF", 1)}
LONGER_BODY = {"body": later_revision(PDF)}
OTHER_ATTACHMENT = {"attachment": (ATTACHMENT[0], "第二批名单".encode())}


@pytest.mark.parametrize("drop_differs", [SAME, OTHER_TITLE, OTHER_BODY, LONGER_BODY, OTHER_ATTACHMENT],
                         ids=["same-content", "other-title", "other-body", "body-sent-went-on", "other-attachment"])
def test_a_key_sent_meanwhile_is_adopted_only_for_the_same_content(tmp_path, drop_differs):
    doc_meta = meta(id=DOC_ID)
    drop = {"meta": doc_meta, "body": PDF, "attachment": ATTACHMENT}
    sent = {"meta": doc_meta, "body": PDF, "attachment": ATTACHMENT}
    if drop_differs is LONGER_BODY:  # the clerk sent a later revision of the drop's body
        sent["body"] = LONGER_BODY["body"]
    else:
        drop.update(drop_differs)
    env, root, layout = share_with_keyed_drop(tmp_path, "d1", drop["meta"], drop["body"], drop["attachment"])

    async def scenario(client):
        assert await send(client, env, doc_meta=sent["meta"], body=sent["body"],
                          attachments=(sent["attachment"],)) == DOC_ID
        watcher = watcher_of(layout, env)
        assert await watcher.tick() == 1
        assert [d["doc_id"] for d in await outbox_of_a(client, env)] == [DOC_ID]  # nothing sent again
        assert os.listdir(root / "work") == []
        if drop_differs is SAME:
            result = json.loads((root / "results" / "d1.json").read_text("utf-8"))
            assert (result["doc_id"], result["status"]) == (DOC_ID, "sent")
            assert os.listdir(root / "rejects") == []
        else:
            error = json.loads((root / "rejects" / "d1" / "error.json").read_text("utf-8"))
            assert error["code"] == "DROP_ID_TAKEN" and DOC_ID in error["message"]
            assert (root / "rejects" / "d1" / "d1" / "META.json").exists()  # the drop as it was
            assert os.listdir(root / "results") == []
    run(env, scenario)


def test_a_drop_the_node_itself_sent_before_a_kill_is_adopted(tmp_path):
    """The crash case the adoption exists for: the watcher's own submission, its result not yet written."""
    env, root, layout = share_with_keyed_drop(tmp_path, "d2", meta())  # no id in META.json: the key is the claim's

    async def scenario(client):
        watcher = watcher_of(layout, env)
        await submit_then_killed(env, watcher, "d2")
        assert await watcher.tick() == 1
        assert json.loads((root / "results" / "d2.json").read_text("utf-8"))["doc_id"] == DOC_ID
        assert len(await outbox_of_a(client, env)) == 1
    run(env, scenario)


@pytest.mark.parametrize("status", [ReceiverStatus.PENDING, ReceiverStatus.RECALLED], ids=["received", "recalled"])
def test_a_drop_sent_is_adopted_though_the_unit_also_received_a_document_under_its_id(tmp_path, status):
    """Another node's unit sent this unit a document whose 公文标识 is the drop's (the OA's id, or a
    coincidence): what the drop is compared with is what the unit *sent* under the id, never what it
    received under it (nor refused as recalled because the received one was)."""
    env, root, layout = share_with_keyed_drop(tmp_path, "d3", meta())

    async def scenario(client):
        ref = await env.store.blobs.put(b"another node's package " + os.urandom(64))
        await env.store.messages.add_inbox(InboxRow(
            doc_id=DOC_ID, unit=UNIT_A, role=Role.MAIN, from_unit=UNIT_B, title="另一个节点的通知", kind=Kind.NOTICE,
            status=status, package_digest=ref.digest, received_at=env.ctx.clock(), message_id=f"msg-{DOC_ID}"))
        watcher = watcher_of(layout, env)
        await submit_then_killed(env, watcher, "d3")
        assert await watcher.tick() == 1
        assert json.loads((root / "results" / "d3.json").read_text("utf-8"))["doc_id"] == DOC_ID
        assert os.listdir(root / "rejects") == []
    run(env, scenario)


def test_a_sent_drop_the_lowered_limits_refuse_keeps_its_claim_until_it_can_be_compared(tmp_path, caplog):
    """The node submitted the drop and was killed; before the restart the operator lowered [limits]
    below the drop's body. The drop was sent: it is not moved to rejects (the OA would think it was
    not); its claim stays, said in the log, and it is adopted once the drop can be read again."""
    env, root, layout = share_with_keyed_drop(tmp_path, "d4", meta())

    async def scenario(client):
        roomy = watcher_of(layout, env)
        await submit_then_killed(env, roomy, "d4")
        narrow = watcher_of(layout, env, body_limit=len(PDF) // 2)
        assert await narrow.tick() == 0
        assert os.listdir(root / "rejects") == [] and os.listdir(root / "results") == []
        assert (root / "work" / "d4" / CLAIM).exists()
        assert "DROP_SENT_UNREADABLE" in caplog.text and DOC_ID in caplog.text
        assert await roomy.tick() == 1  # the limits raised again: compared, the same, adopted
        assert json.loads((root / "results" / "d4.json").read_text("utf-8"))["doc_id"] == DOC_ID
        assert len(await outbox_of_a(client, env)) == 1
    run(env, scenario)


def test_the_same_attachments_in_another_order_are_another_document(tmp_path):
    """附件1 and 附件2 are numbered by their order: a clerk who sent the drop's files in the other order
    sent another document, so the drop is refused (DROP_ID_TAKEN), not reported as sent."""
    second = ("通知正文附表.txt", "附表".encode())
    env, root, layout = share_with_keyed_drop(tmp_path, "d5", meta(id=DOC_ID))  # the drop sends 名单.txt, then 通知正文附表.txt
    (root / "work" / "d5" / "d5" / "attachments" / second[0]).write_bytes(second[1])

    async def scenario(client):
        assert await send(client, env, doc_meta=meta(id=DOC_ID), body=PDF, attachments=(second, ATTACHMENT)) == DOC_ID
        watcher = watcher_of(layout, env)
        assert [name for name, _ in (await asyncio.to_thread(watcher._read, "d5")).attachments] == \
            [ATTACHMENT[0], second[0]]
        assert await watcher.tick() == 1
        error = json.loads((root / "rejects" / "d5" / "error.json").read_text("utf-8"))
        assert error["code"] == "DROP_ID_TAKEN"
        assert os.listdir(root / "results") == []
    run(env, scenario)
