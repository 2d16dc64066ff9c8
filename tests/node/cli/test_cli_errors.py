"""``gwx`` on files that are missing, unreadable or damaged: a typed message and exit code, no traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from node import error_kinds
from node.cli.exit_codes import BAD_INPUT
from pki.ca import CertificateAuthority
from pki.errors import CaError
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, assert_typed_failure, run_gwx

ENV = {"GWX_PASSPHRASE": PASSPHRASE_TEXT}


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("errors") / "ca"
    CertificateAuthority.init_root(directory, "错误测试CA", PASSPHRASE)
    return directory


def test_verifying_a_package_that_does_not_exist(ca_dir, tmp_path):
    missing = tmp_path / "no-such-package.zip"
    out = run_gwx("doc", "verify", "--trust", ca_dir / "root.crt", missing)
    stderr = assert_typed_failure(out, "IO_ERROR")
    assert str(missing) in stderr  # the user is told which file


def test_verifying_a_package_that_does_not_exist_in_json(ca_dir, tmp_path):
    out = run_gwx("doc", "verify", "--json", "--trust", ca_dir / "root.crt", tmp_path / "missing.zip")
    assert out.returncode == BAD_INPUT and "Traceback" not in out.stderr.decode()
    error = json.loads(out.stdout)["error"]
    assert error["code"] == "IO_ERROR" and error["details"]["path"] == str(tmp_path / "missing.zip")


@pytest.mark.parametrize("what", ["missing", "a directory"])
def test_showing_a_file_that_cannot_be_read(tmp_path, what):
    target = tmp_path / "nothing.crt" if what == "missing" else tmp_path
    assert_typed_failure(run_gwx("pki", "show", target), "IO_ERROR")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"name": "x"}',
                                     b'{"name": "x", "algorithm": "md5-rsa", "next_crl_number": 1}'],
                         ids=["broken-json", "not-utf8", "not-an-object", "no-algorithm", "unknown-algorithm"])
def test_a_corrupt_ca_json_is_a_typed_error(ca_dir, tmp_path, content):
    damaged = tmp_path / "ca"
    damaged.mkdir()
    for f in ca_dir.iterdir():
        if f.is_file():
            (damaged / f.name).write_bytes(f.read_bytes())
    (damaged / "issued").mkdir()
    (damaged / "ca.json").write_bytes(content)
    with pytest.raises(CaError) as err:
        CertificateAuthority.open(damaged, PASSPHRASE)
    assert err.value.code == "PKI_CA_CORRUPT"
    out = run_gwx("pki", "crl", "--ca", damaged, "--out", tmp_path / "crl.pem", env=ENV)
    assert_typed_failure(out, "PKI_CA_CORRUPT")  # the CA directory given cannot be used: exit 2
    assert not (tmp_path / "crl.pem").exists()


def test_a_ca_directory_missing_its_certificate(ca_dir, tmp_path):
    partial = tmp_path / "ca"
    partial.mkdir()
    (partial / "ca.json").write_bytes((ca_dir / "ca.json").read_bytes())
    (partial / "ca.key").write_bytes((ca_dir / "ca.key").read_bytes())
    (partial / "ca.key").chmod(0o600)
    out = run_gwx("pki", "crl", "--ca", partial, "--out", tmp_path / "crl.pem", env=ENV)
    assert str(partial / "ca.crt") in assert_typed_failure(out, "IO_ERROR")


# --- exit codes by kind: what README "Command line" promises -------------------------------------


def test_a_config_error_exits_2_as_documented(tmp_path):
    (tmp_path / "node.toml").write_text('node_id = "county-a"\nretry_windw = 5\n', "utf-8")
    stderr = assert_typed_failure(run_gwx("node", "status", "--dir", tmp_path), "NODE_CONFIG", exit_code=2)
    assert "retry_windw" in stderr
    stderr = assert_typed_failure(run_gwx("node", "status", "--dir", tmp_path / "nowhere"), "NODE_CONFIG", 2)
    assert "gwx node init" in stderr


def test_a_wrong_passphrase_exits_3(ca_dir, tmp_path):
    out = run_gwx("pki", "crl", "--ca", ca_dir, "--out", tmp_path / "crl.pem",
                  env={"GWX_PASSPHRASE": "not the passphrase at all"})
    assert_typed_failure(out, "PKI_WRONG_PASSPHRASE", exit_code=3)


def test_a_node_that_is_not_running_exits_4_try_again(tmp_path):
    # (`gwx node status` reads the node directory and works on a stopped node; a clerk's command
    # needs the node's local API.)
    out = run_gwx("inbox", "--node", "http://127.0.0.1:9", env={"GWX_TOKEN": "x"})
    assert_typed_failure(out, "CLI_NODE_UNREACHABLE", exit_code=4)


def test_the_readme_exit_code_table_is_the_code_s():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text("utf-8")
    documented = {int(m) for m in re.findall(r"^\| (\d) \| ", readme, re.MULTILINE)}
    assert documented == {0, *error_kinds.EXIT_CODE.values()}
    assert "Errors print `gwx: CODE: message`" in readme
    help_text = run_gwx("--help").stdout.decode()
    assert "gwx: CODE: message" in help_text and "4 try again later" in help_text
