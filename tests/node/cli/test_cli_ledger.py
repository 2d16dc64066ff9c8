"""``gwx ledger export`` and ``gwx ledger stats`` as a clerk runs them, against a real local API server."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading

import openpyxl
import pytest

from tests.node.api.local_api_support import UNIT_A, UNIT_B
from tests.node.cli.clerk_support import direct_get, gwx, gwx_on_terminal, gwx_parallel


def test_export_writes_the_files_the_api_serves_and_stats_print_a_table(node, files, tmp_path):
    env, server = node
    sent = gwx(server, env.clerk_a, "send", "--meta", str(files / "META.json"), "--body", str(files / "body.pdf"))
    assert sent.returncode == 0, sent.stderr
    doc_id = sent.stdout.split()[1]
    assert gwx(server, env.clerk_b, "sign-for", doc_id).returncode == 0
    out_csv, out_xlsx = tmp_path / "发文台账.csv", tmp_path / "收文台账.xlsx"
    csv_run, xlsx_run, stats, stats_json, split, refused, bad = gwx_parallel(server, [
        (env.clerk_a, "ledger", "export", "--sent", "-o", str(out_csv)),
        (env.clerk_b, "ledger", "export", "--received", "--format", "xlsx", "-o", str(out_xlsx)),
        (env.clerk_b, "ledger", "stats", "--received", "--period", "day"),
        (env.clerk_b, "ledger", "stats", "--received", "--json"),
        (env.clerk_a, "ledger", "stats", "--sent", "--by-counterpart"),
        (env.clerk_a, "ledger", "export", "--sent", "--unit", UNIT_B, "-o", str(tmp_path / "x.csv")),
        (env.clerk_a, "ledger", "export", "--sent", "--from", "2026-12-01", "--to", "2026-11-01",
         "-o", str(tmp_path / "y.csv")),
    ])
    assert csv_run.returncode == 0, csv_run.stderr
    assert out_csv.read_bytes() == direct_get(server, env.clerk_a, "/api/v1/ledger/sent", raw=True)
    rows = list(csv.reader(io.StringIO(out_csv.read_text("utf-8-sig"))))
    assert len(rows) == 3 and rows[1][0] == doc_id and rows[1][11:15] == ["临沂市人民政府办公室", UNIT_B, "主送", "已签收"]
    assert "已导出 发文台账" in csv_run.stdout
    assert xlsx_run.returncode == 0, xlsx_run.stderr
    sheet = openpyxl.load_workbook(out_xlsx)["收文台账"]
    assert [c.value for c in sheet[2]][0] == doc_id
    assert stats.returncode == 0, stats.stderr
    header, line = stats.stdout.splitlines()[:2]
    assert header.split()[:3] == ["单位", "期间起", "件数"] and "临沂市人民政府办公室" in line and "0.0%" in line
    assert split.returncode == 0 and split.stdout.splitlines()[0].split()[:2] == ["单位", "收文单位"]
    assert "临沂市人民政府办公室" in split.stdout.splitlines()[1] and "100.0%" not in split.stdout
    answer = json.loads(stats_json.stdout)
    assert answer["period"] == "month" and [(r["unit"], r["documents"], r["signed"]) for r in answer["rows"]] == \
        [(UNIT_B, 1, 1)]
    # Refusals: the node's code on stderr, the exit status of its kind, and no file left behind.
    assert refused.returncode == 3 and "API_FORBIDDEN" in refused.stderr
    assert bad.returncode == 2 and "LEDGER_BAD_RANGE" in bad.stderr
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.csv.part").exists()
    assert UNIT_A in out_csv.read_text("utf-8-sig")


def test_export_progress_is_shown_on_a_terminal_only(node, files, tmp_path):
    env, server = node
    sent = gwx(server, env.clerk_a, "send", "--meta", str(files / "META.json"), "--body", str(files / "body.pdf"))
    assert sent.returncode == 0, sent.stderr
    status, _, terminal = gwx_on_terminal(server, env.clerk_a, "ledger", "export", "--sent", "-o", str(tmp_path / "a.csv"))
    piped = gwx(server, env.clerk_a, "ledger", "export", "--sent", "-o", str(tmp_path / "b.csv"))
    assert status == 0 and "台账 2 行：已接收" in terminal
    assert piped.returncode == 0 and piped.stderr == ""
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


class _CuttingServer:
    """A node that dies mid-answer: it promises ``Content-Length`` bytes (or a chunked body), sends
    part of them and closes the connection — what a client sees when the node stops mid-download."""

    def __init__(self, head: bytes, body: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.answer = head + body
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_an_answer_cut_short_leaves_no_file(tmp_path, framing):
    body = b"PK\x03\x04" + b"x" * 5000
    if framing == "length":
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                b"\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
    else:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        body = b"%x\r\n" % len(body) + body + b"\r\n"  # no last chunk: the node stopped here
    server = _CuttingServer(head, body)
    try:
        out = tmp_path / "收文台账.xlsx"
        run = gwx(server, "token", "ledger", "export", "--received", "--format", "xlsx", "-o", str(out))
    finally:
        server.close()
    assert run.returncode != 0 and "CLI_NODE_UNREACHABLE" in run.stderr, (run.returncode, run.stderr)
    assert "incomplete" in run.stderr or "IncompleteRead" in run.stderr
    assert not out.exists() and not out.with_name(out.name + ".part").exists()
