"""Readiness judged from the node directory alone (`gwx node status` on a stopped node): what blocks
the node is named, with the check, the verdict and the code behind it."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from node.ops import readiness
from node.provision import init_node
from pki.ca import CertificateAuthority
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file
from pki.seal_store import issue_seal
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, run_gwx

UNIT = make_unit_code("91350100M00050000")


@pytest.fixture
def node(tmp_path):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "就绪测试CA", PASSPHRASE)
    config, _ = init_node(tmp_path / "node", "county-r", ca, [{"code": UNIT, "name": "福州市鼓楼区人民政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    (config.directory / "tokens" / "operator.token").unlink()  # as the docs advise
    return ca, config


def status(config) -> dict:
    out = run_gwx("node", "status", "--dir", config.directory, "--json")
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def verdicts(report: dict) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in report["readiness"]["checks"]}


def test_a_new_node_that_never_ran_is_ready_and_not_running(node):
    _, config = node
    report = status(config)
    assert report["running"] is None and report["readiness"]["ready"] is True
    assert verdicts(report) == {"revocation": "ok", "certificates": "ok", "seals": "ok", "store": "ok", "disk": "ok"}
    assert report["queues"] == {} and report["peers"] == []


def test_a_stale_crl_is_named_as_what_blocks_the_node(node):
    ca, config = node
    write_public_file(config.crl_path, crl_pem(build_crl(ca, dt.datetime.now(dt.UTC) - dt.timedelta(days=9),
                                                         dt.timedelta(days=2))))
    report = status(config)
    assert report["readiness"]["ready"] is False
    revocation = next(c for c in report["readiness"]["checks"] if c["name"] == "revocation")
    assert revocation["verdict"] == "fail" and revocation["code"] == "PKI_REVOCATION_STALE"
    text = run_gwx("node", "status", "--dir", config.directory).stdout.decode()
    assert "ready: NO" in text and "FAIL revocation" in text and "not running" in text
    config.crl_path.unlink()
    assert verdicts(status(config))["revocation"] == "fail"


def test_an_expired_seal_and_a_seal_about_to_expire(node):
    ca, config = node
    unit = config.units[0]
    shutil.rmtree(unit.seal_dir)
    issue_seal(ca, unit.code, unit.name, unit.seal_dir, PASSPHRASE, valid_days=10,
               now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3), replace=True)
    check = next(c for c in readiness.file_checks(config, dt.datetime.now(dt.UTC)) if c.name == "seals")
    assert check.verdict == "warn" and unit.code in check.message and "expires" in check.message
    report = readiness.report(readiness.file_checks(config, dt.datetime.now(dt.UTC) + dt.timedelta(days=8)))
    assert report["ready"] is False
    seals = next(c for c in report["checks"] if c["name"] == "seals")
    assert seals["verdict"] == "fail" and "expired" in seals["message"] and seals["code"] == "SEAL_EXPIRED"
