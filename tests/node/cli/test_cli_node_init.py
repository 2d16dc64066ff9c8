"""``gwx node init`` is all or nothing: an interruption leaves nothing a second run trips over."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest

from node.config import load_config
from node.provision import init_node
from pki.errors import GwxError
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, REPO, run_gwx

UNITS = [{"code": make_unit_code(f"1137130{i:02d}MB00000{i:02d}"[:17]), "name": f"测试单位{i}"} for i in range(1, 13)]


@pytest.fixture
def ca(tmp_path_factory, new_root_ca):  # one per test: a CA issues a node id or a unit's seal once
    return new_root_ca(tmp_path_factory.mktemp("init-ca") / "ca", "初始化测试CA")


def test_a_failure_half_way_leaves_no_half_made_node(ca, tmp_path):
    units = [UNITS[0], {"code": "not-a-unit-code", "name": "坏单位"}]  # the second seal fails
    with pytest.raises(GwxError):
        init_node(tmp_path / "node", "county-x", ca, units, PASSPHRASE, peer_port=0, local_port=0)
    assert list(tmp_path.iterdir()) == []  # neither the node directory nor the staging one
    # The CA's side undone too: what it issued for the attempt (keys now deleted) is revoked, so the
    # second run is not refused as a duplicate issuance.
    withdrawn = ca.revocations()
    assert len(withdrawn) == 4 and {r.reason for r in withdrawn.values()} == {"cessation_of_operation"}
    config, _ = init_node(tmp_path / "node", "county-x", ca, units[:1], PASSPHRASE, peer_port=0, local_port=0)
    assert config.units[0].code == UNITS[0]["code"] and (config.units[0].seal_dir / "seal.esl").exists()


def test_init_into_an_existing_empty_directory_and_onto_a_file(ca, tmp_path):
    (tmp_path / "node").mkdir()
    config, _ = init_node(tmp_path / "node", "county-y", ca, UNITS[:1], PASSPHRASE, peer_port=0, local_port=0)
    assert load_config(tmp_path / "node").node_id == "county-y" and config.directory == (tmp_path / "node").resolve()
    assert [p.name for p in tmp_path.iterdir()] == ["node"]
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "UNITS.toml").write_text(f'[[units]]\ncode = "{UNITS[1]["code"]}"\nname = "单位"\n', "utf-8")
    out = run_gwx("node", "init", "--dir", tmp_path / "a-file", "--node-id", "z", "--ca", ca.directory,
                  "--units", tmp_path / "UNITS.toml", env={"GWX_PASSPHRASE": PASSPHRASE_TEXT})
    assert out.returncode == 2 and b"is a file, expected a directory" in out.stderr, out.stderr
    for command in (("pki", "init-root", "--dir", tmp_path / "a-file", "--name", "某CA"),
                    ("pki", "issue-node", "--ca", ca.directory, "--node-id", "z", "--host", "127.0.0.1",
                     "--out", tmp_path / "a-file")):
        out = run_gwx(*command, env={"GWX_PASSPHRASE": PASSPHRASE_TEXT})
        assert out.returncode == 2 and b"is a file, expected a directory" in out.stderr, out.stderr
    assert (tmp_path / "a-file").read_text() == "x"


def test_ctrl_c_during_init_then_init_again(ca, tmp_path):
    units = tmp_path / "UNITS.toml"
    units.write_text("".join(f'[[units]]\ncode = "{u["code"]}"\nname = "{u["name"]}"\n' for u in UNITS), "utf-8")
    work = tmp_path / "work"
    work.mkdir()
    node = work / "node"
    args = ["node", "init", "--dir", str(node), "--node-id", "county-c", "--ca", str(ca.directory),
            "--units", str(units)]
    env = {**os.environ, "GWX_PASSPHRASE": PASSPHRASE_TEXT, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "node.cli.main", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not any(work.rglob("seal.esl")):  # some seals are made: interrupt half way through
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    if proc.returncode == 0:  # it finished before the interrupt landed: then it is whole
        assert len(load_config(node).units) == len(UNITS)
        return
    assert proc.returncode == 130 and list(work.iterdir()) == []  # nothing left behind
    again = run_gwx(*args, env={"GWX_PASSPHRASE": PASSPHRASE_TEXT})
    assert again.returncode == 0, again.stderr
    assert len(load_config(node).units) == len(UNITS)


def test_nodes_made_with_the_ca_carry_the_network_s_current_crl_not_a_newer_one(ca, tmp_path):
    # The root node serves the CRL the operator published; a node made later with the same CA must
    # not hold a higher-numbered one, or it refuses the root's as a rollback (PKI_CRL_ROLLBACK).
    from pki.crl import crl_number, load_crls, publish_crl
    served = publish_crl(ca, dt.datetime.now(dt.UTC))
    init_node(tmp_path / "a", "county-a", ca, UNITS[:1], PASSPHRASE, peer_port=0, local_port=0)
    init_node(tmp_path / "b", "county-b", ca, UNITS[1:2], PASSPHRASE, peer_port=0, local_port=0)
    numbers = {crl_number(c) for n in ("a", "b") for c in load_crls((tmp_path / n / "crl.pem").read_bytes())}
    assert numbers == {crl_number(served)}
