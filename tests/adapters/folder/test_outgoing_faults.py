"""Drops that must be one drop's problem, never the unit's: run on the sending side alone, in-process.

These drops are refused before the document service is asked anything, so the watcher runs here
with no node behind it (``service=None``): a refusal that reached the service would fail loudly.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.events import SIGNED_FOR, AdapterEvent
from adapters.folder.drop import DropLimits
from adapters.folder.errors import InboxUnwritable
from adapters.folder.inbox import FolderInbox
from adapters.folder.layout import FolderLayout, write_json
from adapters.folder.outgoing import CLAIM, Outgoing

ROOT = Path(__file__).resolve().parents[3]
GBK = "文件".encode("gbk")  # what an OA on a Chinese Windows share writes: not UTF-8
assert GBK == b"\xce\xc4\xbc\xfe"  # and not valid UTF-8 by chance (some GBK pairs are)


def watcher(root: Path) -> Outgoing:
    layout = FolderLayout(root)
    layout.create()
    return Outgoing(layout, "CITY", None, DropLimits(body=1 << 20, total=4 << 20),  # type: ignore[arg-type]
                    lambda: datetime.now(UTC), poll_seconds=0.01)


def make_drop(path: bytes, attachments: dict[bytes, bytes] | None = None, meta: bytes = b"{}") -> None:
    os.mkdir(path)
    for name, data in {b"META.json": meta, b"body.pdf": b"%PDF-1.4", b".ready": b""}.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    if attachments:
        os.mkdir(os.path.join(path, b"attachments"))
        for name, data in attachments.items():
            with open(os.path.join(path, b"attachments", name), "wb") as f:
                f.write(data)


def error_of(root: Path) -> list[dict]:
    return [json.loads((Path(os.fsdecode(entry.path)) / "error.json").read_text("utf-8"))
            for entry in os.scandir(root / "rejects")]


def test_a_drop_whose_name_is_not_utf8_is_rejected_not_retried_for_ever(tmp_path):
    out = watcher(tmp_path)
    make_drop(os.fsencode(tmp_path / "outgoing") + b"/" + GBK + b"-001")
    assert asyncio.run(out.tick()) == 1
    assert os.listdir(tmp_path / "work") == [] and os.listdir(tmp_path / "outgoing") == []
    [error] = error_of(tmp_path)
    assert error["code"] == "DROP_BAD_NAME" and "UTF-8" in error["message"]


def test_an_attachment_not_named_in_utf8_is_rejected_and_later_drops_go_on(tmp_path):
    out = watcher(tmp_path)
    outgoing = os.fsencode(tmp_path / "outgoing")
    make_drop(outgoing + b"/a-first", {GBK + b".pdf": b"%PDF-1.4"})
    assert asyncio.run(out.tick()) == 1
    [error] = error_of(tmp_path)
    assert error["code"] == "DROP_BAD_NAME" and os.listdir(tmp_path / "work") == []
    make_drop(outgoing + b"/b-second", meta=b"not json")  # the next drop is looked at, and refused for itself
    assert asyncio.run(out.tick()) == 1
    assert sorted(e["code"] for e in error_of(tmp_path)) == ["DOC_MALFORMED_JSON", "DROP_BAD_NAME"]


CHILD = """
import asyncio, json, logging, sys
sys.path.insert(0, sys.argv[2])
from tests.adapters.folder.test_outgoing_faults import watcher
from pathlib import Path
logging.basicConfig(level=logging.INFO)
out = watcher(Path(sys.argv[1]))
print(json.dumps([asyncio.run(out.tick()) for _ in range(3)]))
"""


def test_a_drop_the_node_cannot_move_is_skipped_and_later_drops_go_on(tmp_path):
    """A drop folder another user owns with mode 0555 cannot be renamed (moving a directory needs write
    permission on it): EACCES. As root, the node runs in a user namespace of its own (``unshare -U``):
    it keeps its uid for the files it owns but loses root's power over another user's."""
    root = tmp_path
    for part in ("outgoing", "results", "rejects", "inbox", "inbox/events", "work"):
        (root / part).mkdir()
    outgoing = os.fsencode(root / "outgoing")
    make_drop(outgoing + b"/a-locked")
    make_drop(outgoing + b"/b-next", meta=b"not json")
    locked = root / "outgoing" / "a-locked"
    os.utime(locked, (1, 1))  # the oldest: first in every round
    prefix: list[str] = []
    if os.geteuid() == 0:
        os.chown(locked, 65534, 65534)
        prefix = ["unshare", "-U"]
    os.chmod(locked, 0o555)
    try:
        child = subprocess.run([*prefix, sys.executable, "-c", CHILD, str(root), str(ROOT)], capture_output=True,
                               text=True, timeout=60, cwd="/")
        assert child.returncode == 0, child.stderr
        assert json.loads(child.stdout) == [1, 0, 0]
        assert [e["code"] for e in error_of(root)] == ["DOC_MALFORMED_JSON"]
        assert os.listdir(root / "work") == [] and os.listdir(root / "outgoing") == ["a-locked"]
        assert child.stderr.count("cannot take outgoing/a-locked") == 1, child.stderr
    finally:
        os.chmod(locked, 0o755)


def test_files_swapped_for_links_after_the_checks_are_not_what_is_sent(tmp_path):
    """The OA (same user, or holding the drop as its working directory) swaps body.pdf and attachments/
    for links to another unit's received document after the node has checked the drop: what the node
    submits is still the bytes it checked."""
    out = watcher(tmp_path)
    other = tmp_path / "inbox" / "DOC-OTHER"
    (other / "attachments").mkdir(parents=True)
    (other / "body.pdf").write_bytes(b"%PDF-1.4 another unit's secret")
    (other / "attachments" / "a.pdf").write_bytes(b"%PDF-1.4 secret attachment")
    make_drop(os.fsencode(tmp_path / "outgoing" / "mine"), {b"a.pdf": b"%PDF-1.4 my attachment"})
    assert out._claim("mine")
    contents = out._read("mine")  # checked: what submit is given next
    drop = tmp_path / "work" / "mine" / "mine"
    (drop / "body.pdf").unlink()
    (drop / "body.pdf").symlink_to(other / "body.pdf")
    shutil.rmtree(drop / "attachments")
    (drop / "attachments").symlink_to(other / "attachments")
    assert contents.body.read_bytes() == b"%PDF-1.4"
    assert [(name, path.read_bytes()) for name, path in contents.attachments] == [("a.pdf", b"%PDF-1.4 my attachment")]


def test_an_event_for_an_unmounted_share_fails_and_is_retried_never_written_under_the_mount_point(tmp_path):
    """The share is unmounted: ROOT is gone (or the bare mount point is empty). The event must fail (the
    outbox retries it) rather than re-create ROOT/inbox/events under the mount point, where the OA,
    after the remount, would never see it."""
    root = tmp_path / "share"
    root.mkdir()
    FolderLayout(root).create()
    inbox = FolderInbox(FolderLayout(root), "CITY", None)  # type: ignore[arg-type]
    event = AdapterEvent(7, SIGNED_FOR, "CITY", "DOC-1", datetime.now(UTC), {"recipient": "A1"}, "n1-7")
    shutil.rmtree(root)
    with pytest.raises(InboxUnwritable):
        asyncio.run(inbox.deliver(event))
    assert not root.exists()
    root.mkdir()  # the bare mount point: there, but not the share
    with pytest.raises(InboxUnwritable):
        asyncio.run(inbox.deliver(event))
    assert os.listdir(root) == []


def test_a_second_drop_with_the_id_of_a_drop_still_waiting_is_refused_not_sent_in_its_place(tmp_path):
    """Drop A (META.json id X) is claimed and keyed, then waits in backoff (the store was busy). Drop B,
    another name with the same X, must not be sent under X: A's retry would find X sent and report A
    as sent while A's own content was never sent."""
    out = watcher(tmp_path)
    outgoing = os.fsencode(tmp_path / "outgoing")
    make_drop(outgoing + b"/a-first", meta=b'{"id": "oa-2026-0042"}')
    assert out._claim("a-first")
    write_json(tmp_path / "work" / "a-first" / CLAIM, {"drop": "a-first", "doc_id": "oa-2026-0042",
                                                       "claimed_at": "2026-11-30T12:00:00+00:00"})
    out._retry["a-first"] = (1, time.monotonic() + 3600)  # in backoff: not tried in this round
    make_drop(outgoing + b"/b-second", meta=b'{"id": "oa-2026-0042"}')
    assert asyncio.run(out.tick()) == 1
    [error] = error_of(tmp_path)
    assert error["code"] == "DROP_DUPLICATE_ID" and "a-first" in error["message"]
    assert os.listdir(tmp_path / "work") == ["a-first"]  # A keeps its claim and its key


@pytest.mark.parametrize("second", [b"meta.json", b"BODY.PDF", b"Attachments"])
def test_a_drop_with_two_spellings_of_one_part_is_refused_not_picked_from(tmp_path, second):
    """Names match without regard to case, so on a case-sensitive disk META.json and meta.json could
    both be there: which one is sent must not depend on the order of a listing."""
    out = watcher(tmp_path)
    drop = os.fsencode(tmp_path / "outgoing" / "two")
    make_drop(drop, {b"a.pdf": b"%PDF-1.4"})
    if second == b"Attachments":
        os.mkdir(os.path.join(drop, second))
        with open(os.path.join(drop, second, b"b.pdf"), "wb") as f:
            f.write(b"%PDF-1.4")
    else:
        with open(os.path.join(drop, second), "wb") as f:
            f.write(b"{}" if second == b"meta.json" else b"%PDF-1.4 other")
    assert asyncio.run(out.tick()) == 1
    [error] = error_of(tmp_path)
    assert error["code"] == "DROP_BAD_NAME" and "twice" in error["message"]


def test_a_drop_the_node_cannot_read_is_rejected_not_retried_for_ever(tmp_path):
    """A zip, or a file in a drop folder, another user owns with mode 0600: the node can move it (its
    folder is writable) but never read it. Each is refused once as DROP_UNREADABLE. As root, the node
    runs in a user namespace of its own (``unshare -U``), without root's power over another's files."""
    root = tmp_path
    for part in ("outgoing", "results", "rejects", "inbox", "inbox/events", "work"):
        (root / part).mkdir()
    outgoing = os.fsencode(root / "outgoing")
    make_drop(outgoing + b"/folder-drop")
    (root / "outgoing" / "zipped.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    unreadable = (root / "outgoing" / "zipped.zip", root / "outgoing" / "folder-drop" / "body.pdf")
    prefix: list[str] = []
    for path in unreadable:
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)
        os.chmod(path, 0o600 if os.geteuid() == 0 else 0)
    if os.geteuid() == 0:
        prefix = ["unshare", "-U"]
    try:
        child = subprocess.run([*prefix, sys.executable, "-c", CHILD, str(root), str(ROOT)], capture_output=True,
                               text=True, timeout=60, cwd="/")
        assert child.returncode == 0, child.stderr
        assert json.loads(child.stdout) == [2, 0, 0], child.stderr
        assert sorted(e["code"] for e in error_of(root)) == ["DROP_UNREADABLE", "DROP_UNREADABLE"]
        assert os.listdir(root / "work") == []
    finally:
        for path in root.rglob("*"):
            os.chmod(path, 0o755)


def test_a_stray_file_is_logged_once_and_forgotten_once_it_is_gone(tmp_path, caplog):
    """The names the watcher has said it leaves alone are forgotten when the OA removes them: the set
    stays as small as the folder, and a name that comes back is said again."""
    out = watcher(tmp_path)
    stray = tmp_path / "outgoing" / "readme.txt"
    caplog.set_level("INFO", logger="gwx.folder")
    for present in (True, True, False, True):
        if present:
            stray.write_text("not a drop")
        else:
            stray.unlink()
        asyncio.run(out.tick())
    assert caplog.text.count("leaving outgoing/readme.txt alone") == 2


def test_the_folder_adapter_reads_no_environment_variable():
    """What the watcher does is node.toml's and the folder's business only: no test hook or switch in
    the environment (the crash tests reach their kill points with real files, test_crash.py)."""
    package = ROOT / "adapters" / "folder"
    readers = [path.name for path in sorted(package.glob("*.py"))
               if "environ" in path.read_text("utf-8") or "getenv" in path.read_text("utf-8")]
    assert readers == []


def test_names_that_are_not_utf8_are_logged_escaped_so_every_log_record_encodes_as_utf8(tmp_path, caplog):
    """A GBK name arrives as surrogates; a log line holding one cannot be written to a UTF-8 log (nor
    sent by pytest-xdist's workers): every name the watcher logs is printable, \\xNN for such bytes."""
    out = watcher(tmp_path)
    outgoing = os.fsencode(tmp_path / "outgoing")
    caplog.set_level("INFO", logger="gwx.folder")
    make_drop(outgoing + b"/" + GBK + b"-drop")  # taken, refused, moved to rejects
    with open(outgoing + b"/" + GBK + b".txt", "wb") as f:  # a stray file, left alone
        f.write(b"not a drop")
    os.mkdir(outgoing + b"/" + GBK + b"-waiting")  # a folder without .ready yet
    asyncio.run(out.tick())
    records = [r for r in caplog.records if r.name == "gwx.folder"]
    assert len(records) >= 5  # took, refused, moved, left alone, waiting
    for record in records:
        record.getMessage().encode("utf-8")  # raises UnicodeEncodeError on a surrogate
    shown = "\\xceļ\\xfe"  # GBK's c4 bc happens to be UTF-8 (ļ); ce and fe are not
    assert f"took drop {shown}-drop" in caplog.text
    assert f"leaving outgoing/{shown}.txt alone" in caplog.text
