"""The clerks' CLI as a clerk runs it: ``gwx`` subprocesses against a real local API server (the app
on a loopback port in a thread, the real document service and store behind it, one node hosting
units A, B and C). Checks what is printed — the tables with Chinese intact and columns aligned by
display width — the ``--json`` output (the node's JSON exactly), error lines and exit codes."""

from __future__ import annotations

import json
import random
import unicodedata

import pytest

from node.cli.api_client import MultipartStream
from node.cli.clerk import display_width, render_table
from node.config import Limits
from node.localnet import LocalNetwork, notice_pdf, wait_for
from tests.node.api.local_api_support import (
    PDF,
    UNIT_A,
    UNIT_B,
    UNIT_C,
    ThreadedServer,
    make_env,
    meta,
    now_local,
    package_members,
)
from tests.node.api.openapi_check import check, response_schema
from tests.node.cli.clerk_support import direct_get, gwx, gwx_on_terminal, gwx_parallel


def columns(line: str, starts: list[int]) -> list[str]:
    """Split ``line`` at the given display columns (where the header's labels start)."""
    cells, col, current, bounds = [], 0, "", starts[1:] + [10**6]
    for ch in line:
        if col >= bounds[len(cells)]:
            cells.append(current.strip())
            current = ""
        current += ch
        col += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    cells.append(current.strip())
    return cells + [""] * (len(starts) - len(cells))


def header_starts(header: str, labels: list[str]) -> list[int]:
    starts, search_from = [], 0
    for label in labels:
        index = header.index(label, search_from)
        starts.append(display_width(header[:index]))
        search_from = index + len(label)
    return starts


def test_send_sign_for_urge_and_track_as_two_clerks(node, files):
    env, server = node
    sent = gwx(server, env.clerk_a, "send", "--meta", str(files / "META.json"), "--body", str(files / "body.pdf"),
               "--attach", str(files / "附件1：检查表.xlsx"), "--attach", str(files / "notes.txt"), "--json")
    assert sent.returncode == 0, sent.stderr
    result = json.loads(sent.stdout)
    doc_id = result["doc_id"]
    members = package_members(direct_get(server, env.clerk_b, f"/api/v1/inbox/{doc_id}/package", raw=True))
    assert members["body.pdf"].startswith(PDF)  # sealed by an incremental update after the clerk's bytes
    assert members["attachments/附件1：检查表.xlsx"] == (files / "附件1：检查表.xlsx").read_bytes()
    assert members["attachments/notes.txt"] == b"second"

    inbox, inbox_json = gwx_parallel(server, [(env.clerk_b, "inbox"),
                                              (env.clerk_b, "inbox", "--status", "pending", "--json")])
    assert inbox.returncode == 0, inbox.stderr
    assert doc_id in inbox.stdout and "关于做好冬季安全生产工作的通知" in inbox.stdout and "待签收" in inbox.stdout
    assert json.loads(inbox_json.stdout) == direct_get(server, env.clerk_b, "/api/v1/inbox?status=pending")

    signed, urged = gwx_parallel(server, [(env.clerk_b, "sign-for", doc_id),
                                          (env.clerk_a, "urge", doc_id, "--unit", UNIT_C)])
    assert signed.returncode == 0 and signed.stdout.startswith(f"已签收 {doc_id}")
    assert urged.returncode == 0, urged.stderr

    track, track_json, show, outbox = gwx_parallel(server, [
        (env.clerk_a, "track", doc_id), (env.clerk_a, "track", doc_id, "--json"), (env.clerk_b, "show", doc_id),
        (env.clerk_a, "outbox", "--kind", "通知")])
    assert track.returncode == 0, track.stderr
    lines = track.stdout.splitlines()
    assert lines[0].startswith("关于做好冬季安全生产工作的通知  榕政办〔2026〕12号  [通知]")
    labels = ["单位代码", "单位名称", "角色", "状态", "经办人", "时间", "原因", "催办"]
    starts = header_starts(lines[1], labels)
    assert columns(lines[1], starts) == labels
    assert columns(lines[2], starts) == [UNIT_B, "临沂市人民政府办公室", "主送", "已签收", "李四（签收）", now_local(), "",
                                         "0"]
    assert columns(lines[3], starts)[:4] == [UNIT_C, "临沂市应急管理局", "抄送", "已送达"]
    assert columns(lines[3], starts)[-1] == "1"
    assert "已签收 1" in lines[-1] and "已送达 1" in lines[-1]

    assert json.loads(track_json.stdout) == direct_get(server, env.clerk_a, f"/api/v1/outbox/{doc_id}")

    assert show.returncode == 0
    assert "附件1：检查表.xlsx" in show.stdout and "已签收" in show.stdout and "榕政办〔2026〕12号" in show.stdout

    assert outbox.returncode == 0 and doc_id in outbox.stdout and "已签收 1" in outbox.stdout


def test_errors_print_the_code_and_exit_by_its_kind(node, files, tmp_path):
    env, server = node
    token_file = tmp_path / "token"
    token_file.write_text(env.operator + "\n")
    # The body is over the node's 64 KiB body limit (not its 256 KiB total): the node refuses it
    # mid-upload, after reading 64 KiB, and the clerk still gets the reason.
    (files / "big.pdf").write_bytes(b"%PDF-1.7\n" + b"x" * (150 * 1024))
    (files / "bad.json").write_text(json.dumps(meta(kind="指示")), "utf-8")
    missing, bad_unit, no_token, wrong_role, too_big, refused, empty_reason, unreachable = gwx_parallel(server, [
        (env.clerk_a, "track", "no-such-doc"),
        (env.clerk_b, "inbox", "--from", "91350100M000100Y44"),
        (None, "inbox"),
        (None, "outbox", "--token-file", str(token_file), "--json"),
        (env.clerk_a, "send", "--meta", str(files / "META.json"), "--body", str(files / "big.pdf")),
        (env.clerk_a, "send", "--meta", str(files / "bad.json"), "--body", str(files / "body.pdf")),
        (env.clerk_b, "return", "x", "--reason", ""),
        (env.clerk_a, "inbox", "--node", "http://127.0.0.1:1"),
    ])
    assert missing.returncode == 2 and missing.stdout == ""  # not found
    assert missing.stderr.startswith("gwx: API_NOT_FOUND: ") and "no-such-doc" in missing.stderr
    assert bad_unit.returncode == 2 and bad_unit.stderr.startswith("gwx: API_BAD_PARAMETER: ")
    assert no_token.returncode == 3 and "API_UNAUTHENTICATED" in no_token.stderr  # refused
    assert wrong_role.returncode == 3
    assert json.loads(wrong_role.stdout)["error"]["code"] == "API_FORBIDDEN"
    assert too_big.returncode == 2, too_big.stderr
    assert too_big.stderr.startswith("gwx: API_TOO_LARGE: the body part is more than 65536 bytes")
    assert refused.returncode == 2 and refused.stderr.startswith("gwx: DOC_"), refused.stderr
    assert empty_reason.returncode == 2 and empty_reason.stderr.startswith("gwx: API_BAD_REQUEST: 退回 needs a reason")
    assert unreachable.returncode == 4 and "CLI_NODE_UNREACHABLE" in unreachable.stderr  # try again
    assert direct_get(server, env.clerk_a, "/api/v1/outbox") == []  # nothing was sent


def test_render_table_pads_by_display_width():
    table = render_table(["单位", "status", "n"], [["临沂市人民政府办公室", "已签收", "1"], ["ab", "queued", "12"],
                                                 ["e\u0301", "x\x1b[2Jy", ""]])
    lines = table.splitlines()
    # The second column starts at the same display column on every line.
    starts = {display_width(line[:line.index(cell)])
              for line, cell in zip(lines, ["status", "已签收", "queued", "x [2Jy"], strict=True)}
    assert starts == {display_width("临沂市人民政府办公室") + 2}
    assert "\x1b" not in table  # escape sequences from remote data are neutralised
    assert display_width("é") == 1 and display_width("e\u0301") == 1 and display_width("〔２〕") == 6
    assert render_table(["a"], []).endswith("(无)")


def test_multipart_stream_has_its_announced_length_and_reads_in_blocks(tmp_path):
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(5 * 1024 * 1024 + 7)
    seen: list[int] = []
    stream = MultipartStream([("meta", b'{"a": 1}', "application/json")],
                             [("attachment", big, "附件 \"1\".bin", "application/octet-stream")],
                             progress=lambda sent, total: seen.append(sent))
    chunks = []
    while chunk := stream.read(8192):
        assert len(chunk) <= 8192
        chunks.append(chunk)
    data = b"".join(chunks)
    assert len(data) == len(stream) == stream.sent == seen[-1]
    head = data[:600].decode("utf-8", "replace")
    assert "filename*=UTF-8''%E9%99%84%E4%BB%B6%20%221%22.bin" in head
    assert 'filename="__ _1_.bin"' in head
    assert data.endswith(f"--{stream.boundary}--\r\n".encode())


def test_upload_progress_is_shown_on_a_terminal_only(tmp_path, files):
    (tmp_path / "node").mkdir()
    env = make_env(tmp_path / "node", Limits())
    big = files / "scan.bin"
    big.write_bytes(random.Random(6).randbytes(6 * 1024 * 1024))  # incompressible: see test_local_api
    args = ("send", "--meta", str(files / "META.json"), "--body", str(files / "body.pdf"), "--attach", str(big))
    with ThreadedServer(env) as server:
        status, out, terminal = gwx_on_terminal(server, env.clerk_a, *args)
        doc_id = out.decode().split()[1]
        members = package_members(direct_get(server, env.clerk_b, f"/api/v1/inbox/{doc_id}/package", raw=True))
        (files / "META.json").write_text(json.dumps(meta(), ensure_ascii=False), "utf-8")  # a new 公文标识
        piped = gwx(server, env.clerk_a, *args)
    assert status == 0 and out.startswith(b"\xe5\xb7\xb2\xe5\x8f\x91\xe9\x80\x81 ")  # 已发送
    assert "上传 [" in terminal and "100%" in terminal and "6/6 MiB" in terminal
    assert piped.returncode == 0 and piped.stderr == ""
    assert members["attachments/scan.bin"] == big.read_bytes()


@pytest.mark.slow
def test_the_clerk_cli_against_a_real_node(tmp_path):
    """The real document service behind the real app: `gwx node run` as a child process, one node
    hosting two units; clerk A sends a sealed document to B, B signs for it, A tracks it."""
    network = LocalNetwork(tmp_path / "net")
    units = [{"code": UNIT_A, "name": "福州市人民政府办公厅", "level": "city", "parent": None},
             {"code": UNIT_B, "name": "临沂市人民政府办公室", "level": "city", "parent": None}]
    local = network.add_node("city", units)
    (tmp_path / "body.pdf").write_bytes(notice_pdf())
    (tmp_path / "META.json").write_text(json.dumps(meta(cc=[]), ensure_ascii=False), "utf-8")
    (tmp_path / "附件一.txt").write_text("附件内容", "utf-8")
    network.start(local)
    try:
        server = _Url(local.ready["local_url"])
        sent = gwx(server, local.tokens[f"clerk-{UNIT_A}"], "send", "--meta", str(tmp_path / "META.json"),
                   "--body", str(tmp_path / "body.pdf"), "--attach", str(tmp_path / "附件一.txt"), "--json")
        assert sent.returncode == 0, sent.stderr + network.log_tail(local)
        doc_id = json.loads(sent.stdout)["doc_id"]
        clerk_b = local.tokens[f"clerk-{UNIT_B}"]
        inbox = wait_for(lambda: json.loads(gwx(server, clerk_b, "inbox", "--json").stdout), what="delivery")
        assert [i["doc_id"] for i in inbox] == [doc_id] and inbox[0]["title"] == meta()["title"]
        show = gwx(server, clerk_b, "show", doc_id)
        assert show.returncode == 0 and "附件一.txt" in show.stdout and "榕政办〔2026〕12号" in show.stdout
        signed = gwx(server, clerk_b, "sign-for", doc_id)
        assert signed.returncode == 0, signed.stderr
        track = wait_for(lambda: (t := gwx(server, local.tokens[f"clerk-{UNIT_A}"], "track", doc_id)).returncode == 0
                         and "已签收" in t.stdout and t, what="签收 on the sender side")
        row = next(line for line in track.stdout.splitlines() if line.startswith(UNIT_B))
        assert "临沂市人民政府办公室" in row and "主送" in row and "临沂市人民政府办公室收发员" in row
        # What the real service answers has the shapes the OpenAPI description promises.
        for path, template in ((f"/api/v1/inbox/{doc_id}", "/api/v1/inbox/{doc_id}"), ("/api/v1/inbox", "/api/v1/inbox")):
            check(direct_get(server, clerk_b, path), response_schema(template, "get", 200), path)
        for path, template in ((f"/api/v1/outbox/{doc_id}", "/api/v1/outbox/{doc_id}"), ("/api/v1/outbox", "/api/v1/outbox")):
            check(direct_get(server, local.tokens[f"clerk-{UNIT_A}"], path), response_schema(template, "get", 200), path)
        # A hostile request against the real stack: still the typed error, still serving.
        bad = gwx(server, clerk_b, "inbox", "--from", "nonsense")
        assert bad.returncode == 2 and bad.stderr.startswith("gwx: API_BAD_PARAMETER")
    finally:
        assert network.stop(local) == 0


class _Url:
    """What gwx() needs of a server: its URL."""

    def __init__(self, url: str) -> None:
        self.url = url
