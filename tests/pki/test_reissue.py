"""The CA refuses to issue a second live identity: credentials for a node id, or a seal for a unit,
while the earlier ones are valid and unrevoked — unless the PKI admin says it is a replacement."""

from __future__ import annotations

import datetime as dt

import pytest

from pki.ca import CertificateAuthority
from pki.certificates import load_certificates
from pki.crl import build_crl
from pki.errors import AlreadyIssued
from pki.seal_store import issue_seal
from pki.seal_verify import verify_seal
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, run_gwx

UNIT = make_unit_code("91350100M00060000")
ENV = {"GWX_PASSPHRASE": PASSPHRASE_TEXT}


@pytest.fixture
def ca(tmp_path, new_root_ca):
    new_root_ca(tmp_path / "ca", "重发测试CA")
    return tmp_path / "ca"


def serials(directory) -> set[int]:
    return {load_certificates((directory / f"{r}.crt").read_bytes())[0].serial_number for r in ("tls", "sign", "enc")}


def test_a_second_issue_for_a_node_id_is_refused_and_issues_nothing(ca, tmp_path):
    assert run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "127.0.0.1",
                   "--out", tmp_path / "n1", env=ENV).returncode == 0
    issued = len(list((ca / "issued").iterdir()))
    out = run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "10.0.0.2",
                  "--out", tmp_path / "n2", env=ENV)
    err = out.stderr.decode()
    assert out.returncode == 2 and "gwx: PKI_ALREADY_ISSUED: " in err and "county-a" in err and "--replace" in err
    assert not (tmp_path / "n2").exists() and len(list((ca / "issued").iterdir())) == issued


def test_replacing_a_node_revokes_the_old_certificates_as_superseded(ca, tmp_path):
    run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "127.0.0.1", "--out", tmp_path / "n1",
            env=ENV)
    out = run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "127.0.0.1",
                  "--out", tmp_path / "n2", "--replace", env=ENV)
    assert out.returncode == 0, out.stderr.decode()
    assert "superseded" in out.stdout.decode() and "gwx pki crl" in out.stdout.decode()
    authority = CertificateAuthority.open(ca, PASSPHRASE)
    revoked = authority.revocations()
    assert serials(tmp_path / "n1") <= set(revoked) and not serials(tmp_path / "n2") & set(revoked)
    assert {revoked[s].reason for s in serials(tmp_path / "n1")} == {"superseded"}
    crl = build_crl(authority, dt.datetime.now(dt.UTC))
    assert {e.serial_number for e in crl} == serials(tmp_path / "n1")
    # Now that the replacement is the only live identity, a third plain issue is refused again.
    with pytest.raises(AlreadyIssued):
        authority.issue_node("county-a", "127.0.0.1", tmp_path / "n3", PASSPHRASE)


def test_an_expired_identity_can_be_renewed_without_replace(ca, tmp_path):
    authority = CertificateAuthority.open(ca, PASSPHRASE)
    authority.issue_node("county-x", "127.0.0.1", tmp_path / "old", PASSPHRASE, valid_days=2,
                         now=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    authority.issue_node("county-x", "127.0.0.1", tmp_path / "new", PASSPHRASE)
    assert not authority.revocations()


def test_a_second_seal_for_a_unit_is_refused_and_a_replacement_keeps_the_old_one_valid(ca, tmp_path):
    args = ("pki", "issue-seal", "--ca", ca, "--unit", UNIT, "--name", "福州市仓山区人民政府办公室")
    assert run_gwx(*args, "--out", tmp_path / "s1", env=ENV).returncode == 0
    out = run_gwx(*args, "--out", tmp_path / "s2", env=ENV)
    assert out.returncode == 2 and "gwx: PKI_ALREADY_ISSUED: " in out.stderr.decode() and UNIT in out.stderr.decode()
    assert not (tmp_path / "s2").exists()
    help_text = run_gwx("pki", "issue-seal", "--help").stdout.decode()
    assert "--replace" in help_text and "NOT revoked" in help_text
    out = run_gwx(*args, "--out", tmp_path / "s2", "--replace", env=ENV)
    assert out.returncode == 0, out.stderr.decode()
    authority = CertificateAuthority.open(ca, PASSPHRASE)
    assert not authority.revocations()
    crl = build_crl(authority, dt.datetime.now(dt.UTC))
    for seal in ("s1", "s2"):  # documents sealed with the old seal keep verifying, with revocation checked
        result = verify_seal((tmp_path / seal / "seal.esl").read_bytes(), trust_roots=[authority.root_certificate],
                             crls=[crl], unit_code=UNIT)
        assert result.revocation_checked
    with pytest.raises(AlreadyIssued):
        issue_seal(authority, UNIT, "x", tmp_path / "s3", PASSPHRASE)


def test_issue_node_help_says_what_replacing_does():
    text = run_gwx("pki", "issue-node", "--help").stdout.decode()
    assert "--replace" in text and "superseded" in text and "CRL" in text


def test_renewing_a_node_issues_new_credentials_and_keeps_the_old_valid(ca, tmp_path):
    run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "127.0.0.1", "--out", tmp_path / "n1",
            env=ENV)
    out = run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "127.0.0.1",
                  "--out", tmp_path / "n2", "--renew", env=ENV)
    assert out.returncode == 0, out.stderr.decode()
    assert "gwx node renew" in out.stdout.decode() and "superseded" not in out.stdout.decode()
    authority = CertificateAuthority.open(ca, PASSPHRASE)
    assert not authority.revocations() and not serials(tmp_path / "n1") & serials(tmp_path / "n2")
    live = {c.serial_number for c in authority.active_certificates(lambda c: True)}
    assert serials(tmp_path / "n1") | serials(tmp_path / "n2") <= live  # both sets valid: the overlap
    refused = run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "127.0.0.1",
                      "--out", tmp_path / "n3", "--renew", "--replace", env=ENV)
    assert refused.returncode == 2 and "PKI_" in refused.stderr.decode() and not (tmp_path / "n3").exists()
    held = run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "county-a", "--host", "127.0.0.1",
                   "--out", tmp_path / "n1", "--renew", env=ENV)  # never over keys in use
    assert held.returncode != 0 and "--replace" in held.stderr.decode()
