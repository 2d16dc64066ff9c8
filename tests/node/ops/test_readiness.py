"""Readiness judged from the node directory alone (`gwx node status` on a stopped node): what blocks
the node is named, with the check, the verdict and the code behind it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil

import pytest

from exchange_protocol.directory_signing import sign_directory
from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.directory_source import read_source
from node.ops import directory_state, readiness
from node.ops.crl_state import record_fetch
from node.provision import init_node
from pki import directory_signer
from pki.ca import CertificateAuthority
from pki.crl import build_crl, crl_pem
from pki.keystore import write_public_file
from pki.seal_store import issue_seal
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, run_gwx

UNIT = make_unit_code("91350100M00050000")


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory):
    """A CA and a node provisioned once for the module; each test takes a copy of both (what is tested
    here is readiness, not provisioning: a new CA and node cost ~0.5 s of CPU, a copy ~0.03 s)."""
    base = tmp_path_factory.mktemp("readiness-template")
    ca = CertificateAuthority.init_root(base / "ca", "就绪测试CA", PASSPHRASE)
    config, _ = init_node(base / "node", "county-r", ca, [{"code": UNIT, "name": "福州市鼓楼区人民政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    (config.directory / "tokens" / "operator.token").unlink()  # as the docs advise
    return base


@pytest.fixture
def node(provisioned, tmp_path):
    for part in ("ca", "node"):
        shutil.copytree(provisioned / part, tmp_path / part)
    return CertificateAuthority.open(tmp_path / "ca", PASSPHRASE), load_config(tmp_path / "node")


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
    assert verdicts(report) == {"revocation": "ok", "certificates": "ok", "seals": "ok", "directory": "ok",
                                "store": "ok", "disk": "ok"}
    assert report["queues"] == {} and report["peers"] == []


def test_a_renewed_node_says_until_when_its_previous_encryption_key_serves(node, tmp_path):
    ca, config = node
    ca.issue_node("county-r", "127.0.0.1", tmp_path / "renewed", PASSPHRASE, renew=True)
    out = run_gwx("node", "renew", "--dir", config.directory, "--from", tmp_path / "renewed", "--overlap", "2h",
                  env={"GWX_PASSPHRASE": PASSPHRASE.decode()})
    assert out.returncode == 0, out.stderr.decode()
    [kept] = (config.credentials_dir / "previous").iterdir()
    until = json.loads((kept / "overlap.json").read_text())["until"]
    check = {c["name"]: c for c in status(config)["readiness"]["checks"]}["certificates"]
    assert check["verdict"] == "ok" and f"previous encryption key opens envelopes until {until}" in check["message"]
    # Past the overlap the status says nothing of it, and reading it destroys nothing (the node does that).
    assert readiness._certificates(config, dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).message.count(
        "previous") == 0
    assert kept.exists()


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
    # A root node (no [parent]): the CA operator is who publishes the next one.
    assert "next-update passed at" in revocation["message"] and "no [parent] to fetch from" in revocation["message"]
    assert "the CA operator publishes" in revocation["message"]
    config.crl_path.unlink()
    assert verdicts(status(config))["revocation"] == "fail"


def test_a_stale_crl_names_the_last_fetch_from_the_parent(node):
    ca, config = node
    edit_config(config.directory, lambda doc: set_section_values(
        doc, "parent", {"node_id": "city", "url": "https://127.0.0.1:7443"}))
    write_public_file(config.crl_path, crl_pem(build_crl(ca, dt.datetime.now(dt.UTC) - dt.timedelta(days=9),
                                                         dt.timedelta(days=2))))

    def message() -> str:
        return next(c for c in status(config)["readiness"]["checks"] if c["name"] == "revocation")["message"]
    assert "no fetch from the parent city has completed yet" in message()
    config_now = load_config(config.directory)
    record_fetch(config_now, "city", dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC), "unchanged")
    assert "the parent city had nothing newer at 2026-11-30T08:00:00Z" in message()
    record_fetch(config_now, "city", dt.datetime(2026, 11, 30, 8, 5, tzinfo=dt.UTC), "try-again",
                 "PEER_UNREACHABLE", "cannot reach city at https://127.0.0.1:7443")
    text = message()
    assert "is out of date: next-update passed at" in text
    assert ("last fetch from city failed at 2026-11-30T08:05:00Z: PEER_UNREACHABLE: cannot reach city at "
            "https://127.0.0.1:7443 (last success 2026-11-30T08:00:00Z)") in text
    assert "ENV_REVOCATION_UNKNOWN (senders keep them and try again)" in text


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


def install_directory(ca, config, version: int, issued: dt.datetime) -> None:
    """A directory of this one node, issued at ``issued`` (next update after 1 day, expiry after 30)."""
    source = config.directory.parent / "network.toml"
    source.write_text(f'''network = "福州市电子政务外网"
version = {version}
[[nodes]]
id = "county-r"
urls = ["https://127.0.0.1:7443"]
level = "county"
credentials = "{config.credentials_dir}"
[[units]]
code = "{UNIT}"
name = "福州市鼓楼区人民政府办公室"
level = "county"
node = "county-r"
''', "utf-8")
    signer = directory_signer.from_ca(ca)
    directory = read_source(source, issued)
    if ca.separate_transport() is not None:  # a 国密 network's directory names its transport root (gwx net build)
        directory = dataclasses.replace(directory, transport_root=ca.transport.root_certificate)
    data = sign_directory(directory, signer.signer, signer.chain)
    write_public_file(config.network_directory_path, data)


def directory_check(report: dict) -> dict:
    return next(c for c in report["readiness"]["checks"] if c["name"] == "directory")


def test_a_current_directory_is_named_with_its_version_and_expiry(node):
    ca, config = node
    install_directory(ca, config, 4, dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    check = directory_check(status(config))
    assert check["verdict"] == "ok"
    assert "version 4 (issued 2 h 0 min ago)" in check["message"] and "expires" in check["message"]


def test_an_expired_directory_is_a_warning_that_names_it_never_a_stop(node):
    ca, config = node
    install_directory(ca, config, 7, dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
    report = status(config)
    check = directory_check(report)
    assert check["verdict"] == "warn" and report["readiness"]["ready"] is True
    assert "version 7 (issued 31 d 0 h ago) EXPIRED on" in check["message"]
    assert "still used for routing" in check["message"]
    text = run_gwx("node", "status", "--dir", config.directory)
    assert text.returncode == 0 and "ready: yes" in text.stdout.decode()
    assert "EXPIRED" in text.stdout.decode()


def test_a_directory_past_its_next_update_is_a_warning(node):
    ca, config = node
    install_directory(ca, config, 8, dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    check = directory_check(status(config))
    assert check["verdict"] == "warn" and "past its next update" in check["message"]


def test_a_node_with_a_parent_and_no_directory_yet_is_warned(node):
    _, config = node
    edit_config(config.directory, lambda doc: set_section_values(
        doc, "parent", {"node_id": "city", "url": "https://127.0.0.1:7443"}))
    check = directory_check(status(config))
    assert check["verdict"] == "warn" and check["code"] == "NODE_NO_DIRECTORY"
    assert "parent city" in check["message"]


def test_the_gauges_parse_the_held_directory_once_per_version(node, monkeypatch):
    """/metrics looks every 5 s: the directory is parsed again only when the file changes (a city's
    directory costs ~0.1 s of CPU to parse; 163 nodes parsing it every 5 s saturated two cores)."""
    ca, config = node
    parsed = []
    real = directory_state.read_unverified
    monkeypatch.setattr(directory_state, "read_unverified", lambda data: parsed.append(len(data)) or real(data))
    reader = directory_state.HeldDirectoryReader(config)
    now = dt.datetime.now(dt.UTC)
    assert directory_state.directory_figures(config, now, reader) == {}  # none held yet
    install_directory(ca, config, 4, now - dt.timedelta(hours=2))
    for _ in range(5):
        assert directory_state.directory_figures(config, now, reader)["version"] == 4.0
    assert len(parsed) == 1
    install_directory(ca, config, 5, now - dt.timedelta(hours=1))
    assert directory_state.directory_figures(config, now, reader)["version"] == 5.0
    assert len(parsed) == 2


def test_units_hosted_without_a_seal_are_counted_their_signature_missing(node):
    _, config = node
    shutil.rmtree(config.units[0].seal_dir)  # hosted, its seal not (yet) installed
    report = status(config)
    seals = next(c for c in report["readiness"]["checks"] if c["name"] == "seals")
    assert seals["verdict"] == "warn", seals
    assert "1 hosted unit without a seal" in seals["message"] and "carry no unit signature" in seals["message"]
    assert report["readiness"]["ready"] is True  # it still receives, 签收s and 退回s


def test_an_sm_node_trusting_another_transport_root_than_its_directory_names_is_warned(tmp_path):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "国密就绪CA", PASSPHRASE, algorithm="sm2-sm3")
    config, _ = init_node(tmp_path / "node", "county-r", ca, [{"code": UNIT, "name": "福州市鼓楼区人民政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    install_directory(ca, config, 3, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert readiness._directory(config, dt.datetime.now(dt.UTC)).verdict == "ok"  # the same root: nothing to say
    other = CertificateAuthority.init_root(tmp_path / "other", "另一个国密CA", PASSPHRASE, algorithm="sm2-sm3")
    shutil.copy(other.directory / "transport" / "root.crt", config.credentials_dir / "tls-root.crt")
    check = directory_check(status(config))
    assert check["verdict"] == "warn" and check["code"] == "NODE_TLS_ROOT_MISMATCH"
    assert "国密就绪CA TLS传输" in check["message"] and "另一个国密CA TLS传输" in check["message"]
