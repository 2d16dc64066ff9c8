"""What a clerk runs into with the CLI: getting a document's files out, several attachments in one
``--attach``, paging they can follow, help that says what the environment holds, pipes closed
early, who did what on a tracking row, and a 办理时限 already past.

Same set-up as test_cli_clerk.py: ``gwx`` subprocesses against the real local API on a loopback
port (the real service and store behind it; one node hosting units A, B and C).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import tracemalloc

from node.cli.main import main as gwx_main
from node.config import Limits
from tests.node.api.local_api_support import PDF, UNIT_B, UNIT_C, ThreadedServer, make_env, meta
from tests.node.cli.clerk_support import clerk_command, direct_get, gwx, gwx_parallel
from tests.support import REPO, run_gwx


def send(server, env, files, *attachments: str) -> str:
    args = ["send", "--meta", str(files / "META.json"), "--body", str(files / "body.pdf"), "--json"]
    if attachments:
        args += ["--attach", *(str(files / a) for a in attachments)]
    sent = gwx(server, env.clerk_a, *args)
    assert sent.returncode == 0, sent.stderr
    return json.loads(sent.stdout)["doc_id"]


def test_download_saves_body_attachments_and_metadata_after_send_attach_a_b(node, files, tmp_path):
    env, server = node
    doc_id = send(server, env, files, "附件1：检查表.xlsx", "notes.txt")  # one --attach, two files
    out = tmp_path / "收文" / doc_id
    saved = gwx(server, env.clerk_b, "download", doc_id, "--out", str(out))
    assert saved.returncode == 0, saved.stderr
    assert (out / "body.pdf").read_bytes().startswith(PDF)
    assert (out / "attachments" / "附件1：检查表.xlsx").read_bytes() == (files / "附件1：检查表.xlsx").read_bytes()
    assert (out / "attachments" / "notes.txt").read_bytes() == b"second"
    assert json.loads((out / "metadata.json").read_text("utf-8"))["id"] == doc_id
    assert (out / "package.zip").read_bytes() == direct_get(server, env.clerk_b, f"/api/v1/inbox/{doc_id}/package",
                                                            raw=True)
    assert "附件1：检查表.xlsx" in saved.stdout and "正文" in saved.stdout
    assert sorted(p.name for p in out.rglob("*.part")) == []
    # Nothing is overwritten; a document that is not ours is the node's 404, and leaves no file.
    again, other = gwx_parallel(server, [(env.clerk_b, "download", doc_id, "--out", str(out)),
                                         (env.clerk_b, "download", "no-such-doc", "--out", str(tmp_path / "x"))])
    assert again.returncode == 2 and again.stderr.startswith("gwx: CLI_BAD_INPUT: ")
    assert other.returncode == 2 and other.stderr.startswith("gwx: API_NOT_FOUND: ")  # not found
    assert not (tmp_path / "x").exists()  # not even an empty directory


def test_an_ofd_body_is_sent_and_downloaded_as_body_ofd(node, files, tmp_path):
    from tests.exchange_protocol.ofd_fixtures import make_ofd, unzip

    env, server = node
    (tmp_path / "正文.ofd").write_bytes(make_ofd())
    sent = gwx(server, env.clerk_a, "send", "--meta", str(files / "META.json"), "--body", str(tmp_path / "正文.ofd"),
               "--json")
    assert sent.returncode == 0, sent.stderr
    doc_id = json.loads(sent.stdout)["doc_id"]
    out = tmp_path / "收文"
    saved = gwx(server, env.clerk_b, "download", doc_id, "--out", str(out))
    assert saved.returncode == 0, saved.stderr
    assert sorted(p.name for p in out.iterdir()) == ["body.ofd", "metadata.json", "package.zip"]
    assert "Doc_0/Signs/Sign_0/SignedValue.dat" in unzip((out / "body.ofd").read_bytes())
    assert "正文  body.ofd" in saved.stdout


def test_download_streams_instead_of_holding_the_files_in_memory(tmp_path, monkeypatch):
    size = 24 * 1024 * 1024
    env = make_env(tmp_path, limits=Limits(max_request_bytes=64 * 1024, max_body_pdf_bytes=1024 * 1024,
                                           max_envelope_bytes=4 * size))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(size))
    (tmp_path / "META.json").write_text(json.dumps(meta(), ensure_ascii=False), "utf-8")
    (tmp_path / "body.pdf").write_bytes(PDF)
    with ThreadedServer(env) as server:
        monkeypatch.setenv("GWX_NODE", server.url)
        monkeypatch.setenv("GWX_TOKEN", env.clerk_a)
        assert gwx_main(["send", "--meta", str(tmp_path / "META.json"), "--body", str(tmp_path / "body.pdf"),
                         "--attach", str(big), "--json"]) == 0
        doc_id = direct_get(server, env.clerk_a, "/api/v1/outbox")[0]["doc_id"]
        monkeypatch.setenv("GWX_TOKEN", env.clerk_b)
        tracemalloc.start()
        try:
            assert gwx_main(["download", doc_id, "--out", str(tmp_path / "out")]) == 0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert (tmp_path / "out" / "attachments" / "big.bin").read_bytes() == big.read_bytes()
    assert peak < size // 4, f"download held {peak} bytes at its peak for a {size}-byte attachment"


def test_paging_prints_the_next_pages_command_and_it_works(node, files):
    env, server = node
    ids = [send(server, env, files) for _ in range(3)]
    first = gwx(server, env.clerk_a, "outbox", "--limit", "2")
    assert first.returncode == 0, first.stderr
    hint = first.stdout.strip().splitlines()[-1]
    assert "下一页：gwx outbox --limit 2 --after " in hint
    after = hint.rsplit("--after ", 1)[1].rstrip("）")
    second = gwx(server, env.clerk_a, "outbox", "--limit", "2", "--after", after, "--json")
    assert [i["doc_id"] for i in json.loads(second.stdout)] == [ids[0]]  # newest first: the oldest is left
    last = gwx(server, env.clerk_a, "outbox", "--limit", "2", "--after", after)
    assert "下一页" not in last.stdout and ids[0] in last.stdout


def test_help_says_what_gwx_node_and_gwx_token_hold():
    for command in ("inbox", "send", "download", "track"):
        shown = run_gwx(command, "--help", env={"COLUMNS": "200"}, text=True)
        assert shown.returncode == 0
        assert "GWX_NODE" in shown.stdout and "your API token itself (not a file)" in shown.stdout
        assert "a file holding your API token (default: the token in $GWX_TOKEN)" in shown.stdout


def test_a_reader_that_stops_early_gets_no_traceback(node, files):
    env, server = node
    doc_id = send(server, env, files, "notes.txt")
    argv, cmd_env = clerk_command(server, env.clerk_b, ("show", doc_id, "--json"))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cmd_env, cwd=REPO)
    proc.stdout.close()  # like `| head` that has already had enough
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert proc.returncode == 141


def test_track_names_who_recalled_not_a_signer(node, files):
    env, server = node
    doc_id = send(server, env, files)
    recalled = gwx(server, env.clerk_a, "recall", doc_id, "--unit", UNIT_C)
    assert recalled.returncode == 0, recalled.stderr
    track = gwx(server, env.clerk_a, "track", doc_id).stdout.splitlines()
    assert "签收人" not in track[1] and "经办人" in track[1]
    row = next(line for line in track if line.startswith(UNIT_C))
    assert "张三（撤回）" in row and "已撤回" in row
    assert "张三" not in next(line for line in track if line.startswith(UNIT_B))


def test_a_deadline_already_past_is_refused(node, files):
    env, server = node
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(timespec="seconds")
    (files / "late.json").write_text(json.dumps(meta(deadline=past), ensure_ascii=False), "utf-8")
    sent = gwx(server, env.clerk_a, "send", "--meta", str(files / "late.json"), "--body", str(files / "body.pdf"))
    assert sent.returncode == 2 and sent.stderr.startswith("gwx: DOC_DEADLINE_PASSED: "), sent.stderr
    assert direct_get(server, env.clerk_a, "/api/v1/outbox") == []


def test_every_place_says_one_word_for_each_state_发送失败_not_失败():
    """gwx track's rows (the node's status_label), its counts line, the console's statistics page and
    the OA push's status names say the same word for a state: a bounced recipient is 发送失败
    everywhere (the counts said 失败, the statistics 发送失败, the OA 投递失败), a sent one 已发送."""
    from adapters.oa_push.codes import STATUS_NAMES
    from exchange_protocol.states import EVENT_WORDS, Event, ReceiverStatus, SenderStatus
    from node.cli.clerk import _counts
    from node.console.stats_page import STATUS_LABEL

    assert SenderStatus.FAILED.label == EVENT_WORDS[Event.FAILED] == STATUS_NAMES["failed"] == "发送失败"
    assert _counts({s.value: 1 for s in SenderStatus}).split() == [w for s in SenderStatus for w in (s.label, "1")]
    assert {s.value: s.label for s in (*SenderStatus, *ReceiverStatus)} == STATUS_LABEL
    assert STATUS_LABEL["failed"] == "发送失败" and STATUS_LABEL["sent"] == "已发送"
