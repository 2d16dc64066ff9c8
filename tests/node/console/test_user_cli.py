"""``gwx user …`` on a node directory (no node running): users are added, listed, disabled, given a
new password; bad input is a typed error with its exit code, no traceback, and changes nothing."""

from __future__ import annotations

import json

import pytest

from pki.unit_code import make_unit_code
from tests.support import assert_typed_failure, one_unit_node, run_gwx

UNIT = make_unit_code("11371302MB0000001")


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return one_unit_node(tmp_path_factory.mktemp("user-cli"), "控制台测试CA", UNIT, "兰山区人民政府办公室")


def listing(node_dir) -> list[dict]:
    return json.loads(run_gwx("user", "list", "--dir", node_dir, "--json").stdout)


def test_users_are_added_listed_disabled_and_given_new_passwords(node_dir, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("correct horse 42\n", "utf-8")
    out = run_gwx("user", "add", "--dir", node_dir, "--login", "wangfang", "--name", "王芳", "--role", "clerk",
                  "--unit", UNIT, "--password-file", secret)
    assert out.returncode == 0 and "wangfang (王芳) added: clerk" in out.stdout.decode()
    assert "correct horse" not in out.stdout.decode() + out.stderr.decode()
    run_gwx("user", "add", "--dir", node_dir, "--login", "ops", "--name", "运维", "--role", "operator",
            "--password-file", secret)
    assert [(u["login"], u["role"], u["units"], u["disabled"]) for u in listing(node_dir)] == [
        ("ops", "operator", [], False), ("wangfang", "clerk", [UNIT], False)]
    assert run_gwx("user", "disable", "--dir", node_dir, "wangfang").returncode == 0
    assert "[disabled]" in run_gwx("user", "list", "--dir", node_dir).stdout.decode()
    assert run_gwx("user", "enable", "--dir", node_dir, "wangfang").returncode == 0
    secret.write_text("another good one 7\n", "utf-8")
    out = run_gwx("user", "passwd", "--dir", node_dir, "wangfang", "--password-file", secret)
    assert out.returncode == 0 and "unlocked" in out.stdout.decode()
    assert_typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "wangfang", "--name", "王芳", "--role",
                          "clerk", "--unit", UNIT, "--password-file", secret), "CONSOLE_USER_EXISTS")


def test_bad_input_is_a_typed_error_and_adds_no_one(node_dir, tmp_path):
    before = listing(node_dir)
    secret = tmp_path / "pw"
    secret.write_text("short\n", "utf-8")
    assert_typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "lisi", "--name", "李四", "--role", "clerk",
                          "--unit", UNIT, "--password-file", secret), "CONSOLE_WEAK_PASSWORD")
    secret.write_text("correct horse 42\n", "utf-8")
    stderr = assert_typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "lisi", "--name", "李四", "--role",
                                   "clerk", "--unit", make_unit_code("11371399MB0000009"), "--password-file", secret),
                           "CONSOLE_BAD_USER")
    assert UNIT in stderr  # it says which units the node hosts
    assert_typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "../etc", "--name", "李四", "--role",
                          "operator", "--password-file", secret), "CONSOLE_BAD_USER")
    assert_typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "lisi", "--name", "李四", "--role",
                          "operator"), "CONSOLE_NO_PASSWORD")  # no terminal to ask on, no file
    assert_typed_failure(run_gwx("user", "passwd", "--dir", node_dir, "nobody", "--password-file", secret),
                  "CONSOLE_NO_SUCH_USER")
    assert_typed_failure(run_gwx("user", "disable", "--dir", node_dir, "nobody"), "CONSOLE_NO_SUCH_USER")
    assert listing(node_dir) == before


def test_a_supervisor_for_a_supervising_unit_is_added_and_listed(node_dir, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("correct horse 42\n", "utf-8")
    office = make_unit_code("11371300MB0000002")  # 临沂市政府督查室: supervises units the directory names
    out = run_gwx("user", "add", "--dir", node_dir, "--login", "duchashi", "--name", "赵督查", "--role", "supervisor",
                  "--supervising-unit", office, "--password-file", secret)
    assert out.returncode == 0 and f"of the units {office} supervises" in out.stdout.decode()
    [user] = [u for u in listing(node_dir) if u["login"] == "duchashi"]
    assert (user["role"], user["units"], user["supervising_unit"]) == ("supervisor", [], office)
    assert f"(supervising unit {office})" in run_gwx("user", "list", "--dir", node_dir).stdout.decode()
    before = listing(node_dir)
    assert_typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "qian", "--name", "钱某", "--role", "clerk",
                                 "--unit", UNIT, "--supervising-unit", office, "--password-file", secret),
                         "CONSOLE_BAD_USER")
    assert_typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "qian", "--name", "钱某", "--role",
                                 "supervisor", "--supervising-unit", "not-a-code", "--password-file", secret),
                         "CONSOLE_BAD_USER")
    assert listing(node_dir) == before
