"""Defects a new user ran into with the clerks' commands (issue 7): what was not done is said and
fails the command, a recalled document is not handed out, and every refusal says what is wrong.

Same set-up as test_cli_clerk.py: ``gwx`` subprocesses against the real local API on a loopback
port (one node hosting units A, B and C).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.node.api.local_api_support import PDF, UNIT_B, UNIT_C, ThreadedServer, make_env, meta
from tests.node.cli.clerk_support import clerk_command, gwx, gwx_parallel
from tests.support import REPO


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    env = make_env(tmp_path_factory.mktemp("new-user"))
    _, env.clerk_c = env.tokens.issue("赵六", "clerk", UNIT_C)  # a third clerk, for unit C
    with ThreadedServer(env) as server:
        yield env, server


def send(server, env, tmp_path) -> str:
    (tmp_path / "META.json").write_text(json.dumps(meta(), ensure_ascii=False), "utf-8")
    (tmp_path / "body.pdf").write_bytes(PDF)
    sent = gwx(server, env.clerk_a, "send", "--meta", str(tmp_path / "META.json"), "--body",
               str(tmp_path / "body.pdf"), "--json")
    assert sent.returncode == 0, sent.stderr
    return json.loads(sent.stdout)["doc_id"]


def test_urge_and_recall_that_do_nothing_say_so_and_fail(node, tmp_path):
    env, server = node
    doc_id = send(server, env, tmp_path)
    assert gwx(server, env.clerk_b, "sign-for", doc_id).returncode == 0
    urged = gwx(server, env.clerk_a, "urge", doc_id, "--unit", UNIT_B)  # B has signed for it
    assert urged.returncode != 0
    assert urged.stderr.startswith("gwx: DOC_NO_ELIGIBLE_RECIPIENT: 催办 not done") and UNIT_B in urged.stderr
    # One recipient refuses, one does not: the tracking, what was not done, and a non-zero exit.
    recalled = gwx(server, env.clerk_a, "recall", doc_id, "--unit", UNIT_B, "--unit", UNIT_C)
    assert recalled.returncode == 2
    assert f"refused for {UNIT_B}" in recalled.stderr and "DOC_PARTLY_DONE" in recalled.stderr
    assert "已撤回" in recalled.stdout
    # Nobody left: B signed for, C recalled.
    for action in ("urge", "recall"):
        nothing = gwx(server, env.clerk_a, action, doc_id)
        assert nothing.returncode != 0 and "DOC_NO_ELIGIBLE_RECIPIENT" in nothing.stderr


def test_a_recalled_document_is_shown_as_recalled_and_cannot_be_downloaded(node, tmp_path):
    env, server = node
    doc_id = send(server, env, tmp_path)
    assert gwx(server, env.clerk_a, "recall", doc_id, "--unit", UNIT_C).returncode == 0
    shown, saved = gwx_parallel(server, [(env.clerk_c, "show", doc_id),
                                         (env.clerk_c, "download", doc_id, "--out", str(tmp_path / "got"))])
    assert shown.returncode == 0 and "已撤回" in shown.stdout
    assert saved.returncode != 0 and saved.stderr.startswith("gwx: DOC_RECALLED: ")
    assert not (tmp_path / "got").exists()


def test_unknown_ids_and_wrong_paths_get_messages_that_say_what_is_wrong(node, tmp_path):
    env, server = node
    (tmp_path / "a-file").write_text("x")
    shown, saved, to_file = gwx_parallel(server, [
        (env.clerk_b, "show", "no-such-doc"),
        (env.clerk_b, "download", "no-such-doc", "--out", str(tmp_path / "new" / "dir")),
        (env.clerk_b, "download", "no-such-doc", "--out", str(tmp_path / "a-file"))])
    assert "neither received nor sent" in shown.stderr and "has sent no" not in shown.stderr
    assert "neither received nor sent" in saved.stderr and not (tmp_path / "new").exists()
    assert to_file.returncode == 2 and "is a file, expected a directory" in to_file.stderr


def test_a_token_variable_holding_a_path_or_no_token_at_all_gets_a_hint(node, tmp_path):
    env, server = node
    token_file = tmp_path / "token.txt"
    token_file.write_text(env.clerk_b)
    listed, tokenless = gwx_parallel(server, [(str(token_file), "inbox"), (None, "inbox")])
    assert listed.returncode != 0 and "API_UNAUTHENTICATED" in listed.stderr
    assert "--token-file" in listed.stderr and "token itself" in listed.stderr
    assert tokenless.returncode == 3 and tokenless.stderr.startswith("gwx: API_UNAUTHENTICATED: ")
    assert "no token was given" in tokenless.stderr and "$GWX_TOKEN" in tokenless.stderr
    assert "--token-file" in tokenless.stderr


def test_show_on_a_sent_document_prints_its_metadata_as_its_help_says(node, tmp_path):
    env, server = node
    doc_id = send(server, env, tmp_path)
    shown = gwx(server, env.clerk_a, "show", doc_id)
    assert shown.returncode == 0, shown.stderr
    sent_meta = meta()
    assert "发文字号" in shown.stdout and sent_meta["doc_number"] in shown.stdout
    assert "成文日期" in shown.stdout and UNIT_B in shown.stdout  # and the recipients' table
    helped = gwx(server, env.clerk_a, "show", "--help")
    assert "for one sent" in helped.stdout


def test_times_carry_their_offset_whatever_the_machines_zone(node, tmp_path):
    """A 17:00+08:00 办理时限 on a UTC machine: 09:00 with +00:00 said, not a bare 09:00."""
    env, server = node
    doc_id = send(server, env, tmp_path)
    deadline = meta()["deadline"]  # 17:00 Beijing time
    argv, cmd_env = clerk_command(server, env.clerk_b, ("show", doc_id))
    shown = subprocess.run(argv, env={**cmd_env, "TZ": "UTC"}, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"{deadline[:10]} 09:00 +00:00" in shown.stdout, shown.stdout
    beijing = gwx(server, env.clerk_b, "show", doc_id)  # TZ=Asia/Shanghai
    assert f"{deadline[:10]} 17:00 +08:00" in beijing.stdout
