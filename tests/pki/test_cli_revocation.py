"""gwx pki revoke / gwx pki crl, end to end through the real CLI entry point and openssl."""

from __future__ import annotations

import subprocess

import pytest

from node.cli.main import main
from pki.ca import CertificateAuthority
from pki.certificates import pem
from pki.node_enrolment import create_node_request, sign_node_request
from pki.seal_store import issue_seal
from tests.support import PASSPHRASE, PASSPHRASE_TEXT


@pytest.fixture
def ca(tmp_path, monkeypatch, new_root_ca):
    monkeypatch.setenv("GWX_PASSPHRASE", PASSPHRASE_TEXT)
    return new_root_ca(tmp_path / "ca", "CLI Root")  # a copy of the process's: these tests revoke with it


def openssl_crl(path, ca_dir, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "crl", "-in", str(path), "-noout", "-text", "-CAfile",
                           str(ca_dir / "root.crt"), *extra], capture_output=True, text=True)


def test_revoke_certificate_then_publish_crl(ca, tmp_path, capsys):
    leaf = ca.issue_seal_certificate("91350100M000100Y43", "测试单位", ca.algorithm.generate().public_key())
    (tmp_path / "leaf.pem").write_bytes(pem(leaf))
    assert main(["pki", "revoke", "--ca", str(ca.directory), str(tmp_path / "leaf.pem"),
                 "--reason", "keyCompromise"]) == 0
    assert f"{leaf.serial_number:x}" in capsys.readouterr().out
    assert main(["pki", "crl", "--ca", str(ca.directory), "--out", str(tmp_path / "ca.crl")]) == 0
    result = openssl_crl(tmp_path / "ca.crl", ca.directory)
    assert "verify OK" in result.stderr + result.stdout
    assert f"{leaf.serial_number:X}" in result.stdout and "Key Compromise" in result.stdout


def test_revoke_a_seal_revokes_its_certificate(ca, tmp_path, capsys):
    credential = issue_seal(ca, "91350100M000100Y43", "测试县财政局", tmp_path / "seal", PASSPHRASE)
    seal_file = next((tmp_path / "seal").glob("*.esl"))
    assert main(["pki", "revoke", "--ca", str(ca.directory), str(seal_file), "--reason", "cessation_of_operation",
                 "--json"]) == 0
    assert "测试县财政局" in capsys.readouterr().out
    serial = credential.certificate.serial_number
    assert ca.revocations()[serial].reason == "cessation_of_operation"
    assert main(["pki", "crl", "--ca", str(ca.directory), "--out", str(tmp_path / "c.der"), "--der"]) == 0
    result = openssl_crl(tmp_path / "c.der", ca.directory, "-inform", "DER")
    assert "verify OK" in result.stderr + result.stdout
    assert f"{serial:X}" in result.stdout and "Cessation Of Operation" in result.stdout


def test_a_response_file_revokes_the_node_certificates_in_it_never_a_ca_certificate(ca, tmp_path, capsys):
    """A node's old credentials after a renewal, as the admin holds them: the enrolment response (it opens
    with '#' lines — once taken for a seal: SEAL_MALFORMED). A CA certificate of this CA in the file (an
    intermediate's, as a response's chain carries) stays valid."""
    request = create_node_request(tmp_path / "node", "county-a", ca.root_certificate, b"the node's passphrase")
    signed = sign_node_request(ca, request.pem, "10.1.2.3")
    sub = ca.create_intermediate(tmp_path / "sub", "兰山区CA", PASSPHRASE)
    (tmp_path / "county-a.resp").write_bytes(signed.response + pem(sub.certificate))
    assert main(["pki", "revoke", "--ca", str(ca.directory), str(tmp_path / "county-a.resp"),
                 "--reason", "superseded"]) == 0
    assert "end-entity certificates of county-a.resp" in capsys.readouterr().out
    assert set(ca.revocations()) == {c.serial_number for c in signed.certificates.values()}
    # A file of CA certificates alone (the intermediate with its root): which one is meant is not guessed.
    (tmp_path / "chain.crt").write_bytes(pem(sub.certificate) + pem(ca.root_certificate))
    assert main(["pki", "revoke", "--ca", str(ca.directory), str(tmp_path / "chain.crt"),
                 "--reason", "superseded"]) == 2
    err = capsys.readouterr().err
    assert "holds only CA certificates (2)" in err and "give it alone" in err and "issued none" not in err
    assert set(ca.revocations()) == {c.serial_number for c in signed.certificates.values()}  # nothing more


def test_bad_reason_foreign_certificate_and_garbage_are_typed_errors(ca, tmp_path, capsys):
    other = CertificateAuthority.init_root(tmp_path / "other", "Other Root", PASSPHRASE)
    foreign = other.issue_seal_certificate("91350100M000100Y43", "外单位", other.algorithm.generate().public_key())
    (tmp_path / "foreign.pem").write_bytes(pem(foreign))
    assert main(["pki", "revoke", "--ca", str(ca.directory), str(tmp_path / "foreign.pem")]) != 0
    assert "PKI_UNKNOWN_CERTIFICATE" in capsys.readouterr().err
    assert main(["pki", "revoke", "--ca", str(ca.directory), str(tmp_path / "foreign.pem"),
                 "--reason", "bored"]) == 2
    assert "PKI_INVALID_INPUT" in capsys.readouterr().err
    (tmp_path / "junk.esl").write_bytes(b"\x30\x03junk")
    assert main(["pki", "revoke", "--ca", str(ca.directory), str(tmp_path / "junk.esl")]) == 2
    assert "SEAL_MALFORMED" in capsys.readouterr().err
    assert ca.revocations() == {}


def test_wrong_passphrase_exits_3(ca, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GWX_PASSPHRASE", "not the passphrase")
    assert main(["pki", "crl", "--ca", str(ca.directory), "--out", str(tmp_path / "x.crl")]) == 3
    assert not (tmp_path / "x.crl").exists()


def test_issue_ocsp_signer_writes_a_responder_key_openssl_accepts_and_never_overwrites_it(ca, tmp_path, capsys):
    out = tmp_path / "ocsp"
    assert main(["pki", "issue-ocsp-signer", "--ca", str(ca.directory), "--out", str(out)]) == 0
    assert "ocsp_signer" in capsys.readouterr().out
    result = subprocess.run(["openssl", "verify", "-purpose", "ocsphelper", "-CAfile", str(ca.directory / "root.crt"),
                             str(out / "signer.crt")], capture_output=True, text=True)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(out / "signer.crt"), "-noout", "-text"],
                          capture_output=True, text=True).stdout
    assert "OCSP Signing" in text and "OCSP No Check" in text
    key = (out / "signer.key").read_bytes()
    assert main(["pki", "issue-ocsp-signer", "--ca", str(ca.directory), "--out", str(out)]) == 2
    assert "PKI_SIGNER_EXISTS" in capsys.readouterr().err
    assert (out / "signer.key").read_bytes() == key
