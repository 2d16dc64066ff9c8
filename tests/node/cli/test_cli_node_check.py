"""``gwx node check`` as an operator runs it on a node directory: one line per check (ok / warning /
error), the exit code by the worst line (0 / 1 / 2), the same as JSON with --json."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import sqlite3

import pytest

from node.provision import init_node
from node.store.opener import open_store
from node.store.sqlite.migrations import LATEST_VERSION
from pki.ca import CertificateAuthority
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file
from pki.seal_store import issue_seal
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, run_gwx

UNIT = make_unit_code("91350100M00070000")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    base = tmp_path_factory.mktemp("check")
    ca = CertificateAuthority.init_root(base / "ca", "检查测试CA", PASSPHRASE)
    config, _ = init_node(base / "node", "county-c", ca, [{"code": UNIT, "name": "福州市台江区人民政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    return ca, config.directory


@pytest.fixture
def node(pristine, tmp_path):
    """A copy of a freshly made node directory, for one test to spoil."""
    ca, directory = pristine
    copy = tmp_path / "node"
    shutil.copytree(directory, copy)
    return ca, copy


def check(directory) -> tuple[int, dict[str, dict]]:
    out = run_gwx("node", "check", "--dir", directory, "--json", text=True)
    assert "Traceback" not in out.stderr, out.stderr
    report = json.loads(out.stdout)
    return out.returncode, {c["name"]: c for c in report["checks"]} | {"result": report["result"]}


def test_a_new_node_is_ok_on_every_line_and_exits_0(node):
    _, directory = node
    out = run_gwx("node", "check", "--dir", directory, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    names = [line.split()[1] for line in lines if line.startswith("ok ")]
    assert names == ["config", "keys", "certificates", "seals", "revocation", "directory", "store", "disk"]
    assert "4 private keys, encrypted; they and 3 token files readable by the owner alone" in out.stdout
    assert lines[-1] == "result: ok"
    code, checks = check(directory)
    assert code == 0 and checks["result"] == "ok" and {c["verdict"] for n, c in checks.items() if n != "result"} == {"ok"}
    assert "督办: escalated after 3 working days" in checks["config"]["details"][0]
    # unset: the node's own process (one check process gained nothing on two cores: performance.md)
    assert checks["config"]["details"][1] == "package checks: in the node's own process ([processing] check_processes = 0)"


def test_the_check_processes_set_are_named(node):
    _, directory = node
    with open(directory / "node.toml", "a", encoding="utf-8") as f:
        f.write("\n[processing]\ncheck_processes = 3\n")
    code, checks = check(directory)
    assert code == 0, checks
    assert checks["config"]["details"][1] == ("package checks: 3 check processes beside the node's "
                                              "([processing] check_processes)")
    toml = directory / "node.toml"
    toml.write_text(toml.read_text("utf-8").replace("check_processes = 3", "check_processes = 65"), "utf-8")
    out = run_gwx("node", "check", "--dir", directory, text=True)
    assert out.returncode != 0 and "[processing] check_processes must be 0–64, got 65" in out.stderr


@pytest.mark.parametrize("path", ["credentials/sign.key", f"units/{UNIT}/seal.key", "tokens/operator.token",
                                  "tokens.json"])
def test_a_key_or_token_others_can_read_is_an_error_exit_2(node, path):
    _, directory = node
    (directory / path).chmod(0o644)
    code, checks = check(directory)
    assert code == 2 and checks["result"] == "error"
    keys = checks["keys"]
    assert keys["verdict"] == "error" and keys["code"] == "PKI_INSECURE_KEY_FILE"
    assert f"others can read {path} (mode 644)" in keys["message"]
    assert checks["certificates"]["verdict"] == "ok"  # the other lines are still checked


def test_a_key_in_clear_is_an_error(node):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _, directory = node
    clear = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = directory / "credentials" / "enc.key"
    path.write_bytes(clear)
    code, checks = check(directory)
    assert code == 2 and checks["keys"]["verdict"] == "error"
    assert "not encrypted with the node passphrase: credentials/enc.key" in checks["keys"]["message"]


def test_a_seal_ending_within_30_days_is_a_warning_exit_1(node):
    ca, directory = node
    shutil.rmtree(directory / "units" / UNIT)
    issue_seal(ca, UNIT, "福州市台江区人民政府办公室", directory / "units" / UNIT, PASSPHRASE, valid_days=25,
               replace=True)
    out = run_gwx("node", "check", "--dir", directory, text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    [seals] = [line for line in out.stdout.splitlines() if line.split()[1] == "seals"]
    assert seals.startswith("warning") and f"seal of {UNIT}" in seals and "expires on" in seals
    assert out.stdout.splitlines()[-1] == "result: warning"


def test_a_stale_crl_is_an_error_naming_the_code(node):
    ca, directory = node
    write_public_file(directory / "crl.pem", crl_pem(build_crl(ca, dt.datetime.now(dt.UTC) - dt.timedelta(days=9),
                                                              dt.timedelta(days=2))))
    code, checks = check(directory)
    assert code == 2 and checks["revocation"]["verdict"] == "error"
    assert checks["revocation"]["code"] == "PKI_REVOCATION_STALE" and "out of date" in checks["revocation"]["message"]


def test_the_store_current_older_and_newer_than_this_gwx(node):
    _, directory = node

    async def make() -> None:
        store = await open_store(directory / "data")
        await store.close()
    asyncio.run(make())
    code, checks = check(directory)
    assert code == 0 and checks["store"]["message"] == f"the database opens, schema version {LATEST_VERSION} (current)"

    db = sqlite3.connect(directory / "data" / "gwx.db")
    with db:
        db.execute("DELETE FROM schema_version WHERE version = ?", (LATEST_VERSION,))
    code, checks = check(directory)
    assert code == 1 and checks["store"]["verdict"] == "warning"
    assert f"schema version {LATEST_VERSION - 1}: the node migrates it to {LATEST_VERSION}" in checks["store"]["message"]

    with db:
        db.execute("INSERT INTO schema_version VALUES (?, 'from a newer gwx', '2027-01-01T00:00:00.000000Z')",
                   (LATEST_VERSION + 5,))
    db.close()
    code, checks = check(directory)
    assert code == 2 and checks["store"]["code"] == "STORE_SCHEMA_TOO_NEW"


def test_a_missing_signing_key_and_an_unloadable_config(node):
    _, directory = node
    (directory / "credentials" / "sign.key").unlink()
    code, checks = check(directory)
    assert code == 2 and checks["keys"]["code"] == "PKI_KEY_MISSING"
    (directory / "node.toml").write_text("node_id = 3\n")
    out = run_gwx("node", "check", "--dir", directory, text=True)
    assert out.returncode == 2 and "gwx: NODE_CONFIG: " in out.stderr and "Traceback" not in out.stderr
    # --json: not the lines (nothing could be checked) but the error object every gwx command prints
    out = run_gwx("node", "check", "--dir", directory, "--json", text=True)
    shown = json.loads(out.stdout)
    assert out.returncode == 2 and shown["ok"] is False and shown["error"]["code"] == "NODE_CONFIG", out.stdout
