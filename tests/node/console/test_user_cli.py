"""``gwx user …`` on a node directory (no node running): users are added, listed, disabled, given a
new password; bad input is a typed error with its exit code, no traceback, and changes nothing."""

from __future__ import annotations

import json

import pytest

from node.cli.exit_codes import BAD_INPUT
from node.provision import init_node
from pki.ca import CertificateAuthority
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, run_gwx

UNIT = make_unit_code("11371302MB0000001")


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("user-cli")
    ca = CertificateAuthority.init_root(base / "ca", "控制台测试CA", PASSPHRASE)
    config, _ = init_node(base / "node", "lanshan", ca, [{"code": UNIT, "name": "兰山区人民政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    return config.directory


def typed_failure(out, code: str, exit_code: int = BAD_INPUT) -> str:
    stderr = out.stderr.decode()
    assert "Traceback" not in stderr + out.stdout.decode()
    assert out.returncode == exit_code, stderr
    assert f"gwx: {code}: " in stderr, stderr
    return stderr


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
    typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "wangfang", "--name", "王芳", "--role",
                          "clerk", "--unit", UNIT, "--password-file", secret), "CONSOLE_USER_EXISTS")


def test_bad_input_is_a_typed_error_and_adds_no_one(node_dir, tmp_path):
    before = listing(node_dir)
    secret = tmp_path / "pw"
    secret.write_text("short\n", "utf-8")
    typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "lisi", "--name", "李四", "--role", "clerk",
                          "--unit", UNIT, "--password-file", secret), "CONSOLE_WEAK_PASSWORD")
    secret.write_text("correct horse 42\n", "utf-8")
    stderr = typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "lisi", "--name", "李四", "--role",
                                   "clerk", "--unit", make_unit_code("11371399MB0000009"), "--password-file", secret),
                           "CONSOLE_BAD_USER")
    assert UNIT in stderr  # it says which units the node hosts
    typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "../etc", "--name", "李四", "--role",
                          "operator", "--password-file", secret), "CONSOLE_BAD_USER")
    typed_failure(run_gwx("user", "add", "--dir", node_dir, "--login", "lisi", "--name", "李四", "--role",
                          "operator"), "CONSOLE_NO_PASSWORD")  # no terminal to ask on, no file
    typed_failure(run_gwx("user", "passwd", "--dir", node_dir, "nobody", "--password-file", secret),
                  "CONSOLE_NO_SUCH_USER")
    typed_failure(run_gwx("user", "disable", "--dir", node_dir, "nobody"), "CONSOLE_NO_SUCH_USER")
    assert listing(node_dir) == before
