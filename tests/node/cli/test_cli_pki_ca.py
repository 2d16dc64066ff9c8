"""``gwx pki init-root / issue-node / show``: the PKI admin's commands as a user runs them."""

from __future__ import annotations

import json
import stat

from tests.support import PASSPHRASE_TEXT, run_gwx, run_openssl

ENV = {"GWX_PASSPHRASE": PASSPHRASE_TEXT}
UNIT = "11100000000013127D"


def test_init_root_issue_node_and_show(tmp_path):
    ca = tmp_path / "ca"
    out = run_gwx("pki", "init-root", "--dir", ca, "--name", "临沂市电子政务CA", env=ENV)
    assert out.returncode == 0, out.stderr
    assert "临沂市电子政务CA" in out.stdout.decode()
    assert stat.S_IMODE((ca / "ca.key").stat().st_mode) == 0o600

    node = tmp_path / "node"
    out = run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "lanshan", "--host", "127.0.0.1", "--out", node, env=ENV)
    assert out.returncode == 0, out.stderr
    for name in ("tls.crt", "sign.crt", "enc.crt", "tls.key", "sign.key", "enc.key"):
        assert (node / name).exists()
    run_openssl("verify", "-CAfile", ca / "root.crt", "-purpose", "sslserver", node / "tls.crt")
    # Another node's credentials into the same directory would replace keys in use: refused.
    before = {p.name: p.read_bytes() for p in node.iterdir()}
    out = run_gwx("pki", "issue-node", "--ca", ca, "--node-id", "luozhuang", "--host", "127.0.0.1", "--out", node,
                  env=ENV)
    assert out.returncode == 2 and b"PKI_NODE_CREDENTIALS_EXIST" in out.stderr
    assert {p.name: p.read_bytes() for p in node.iterdir()} == before

    shown = run_gwx("pki", "show", node / "tls.crt", "--json")
    info = json.loads(shown.stdout)
    assert info["node_id"] == "lanshan" and info["issuer"]["organizationName"] == "临沂市电子政务CA"
    assert "临沂市电子政务CA" in run_gwx("pki", "show", ca / "root.crt").stdout.decode()  # not escaped
    # A chain file (leaf, then the CA above it) shows every certificate in it, in order — not the first alone.
    chain = tmp_path / "chain.crt"
    chain.write_bytes((node / "tls.crt").read_bytes() + (ca / "root.crt").read_bytes())
    info = json.loads(run_gwx("pki", "show", chain, "--json").stdout)
    assert info["type"] == "certificate chain" and len(info["certificates"]) == 2
    assert info["certificates"][0]["node_id"] == "lanshan"
    assert info["certificates"][1]["subject"] == info["certificates"][0]["issuer"]
    text = run_gwx("pki", "show", chain).stdout.decode()
    assert "certificate 1 of 2:" in text and "certificate 2 of 2:" in text and "lanshan" in text


def test_show_reads_a_crl_and_a_seal(tmp_path):
    ca = tmp_path / "ca"
    assert run_gwx("pki", "init-root", "--dir", ca, "--name", "测试CA", env=ENV).returncode == 0
    seal = tmp_path / "seal"
    out = run_gwx("pki", "issue-seal", "--ca", ca, "--unit", UNIT, "--name", "临沂市人民政府办公室", "--out", seal, env=ENV)
    assert out.returncode == 0, out.stderr
    assert run_gwx("pki", "revoke", "--ca", ca, seal / "seal.crt", "--reason", "key_compromise", env=ENV).returncode == 0
    assert run_gwx("pki", "crl", "--ca", ca, "--out", tmp_path / "crl.pem", env=ENV).returncode == 0

    crl = json.loads(run_gwx("pki", "show", tmp_path / "crl.pem", "--json").stdout)
    assert crl["type"] == "crl" and crl["revoked"][0]["reason"] == "key_compromise"
    sealed = json.loads(run_gwx("pki", "show", seal / "seal.esl", "--json").stdout)
    assert sealed["type"] == "seal" and sealed["name"] == "临沂市人民政府办公室"


def test_passphrase_from_file_never_from_an_argument(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("passphrase from a file\n")
    out = run_gwx("pki", "init-root", "--dir", tmp_path / "ca", "--name", "CA", "--passphrase-file", pw)
    assert out.returncode == 0, out.stderr
    # Without GWX_PASSPHRASE, a file or a terminal there is no passphrase: a typed error, exit 3.
    out = run_gwx("pki", "issue-node", "--ca", tmp_path / "ca", "--node-id", "n", "--host", "127.0.0.1",
                  "--out", tmp_path / "n")
    assert out.returncode == 3 and b"PKI_NO_PASSPHRASE" in out.stderr
    # The wrong passphrase: exit 3, the CA untouched.
    out = run_gwx("pki", "issue-node", "--ca", tmp_path / "ca", "--node-id", "n", "--host", "127.0.0.1",
                  "--out", tmp_path / "n", env={"GWX_PASSPHRASE": "not the passphrase"})
    assert out.returncode == 3 and b"PKI_WRONG_PASSPHRASE" in out.stderr


def test_bad_input_is_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x30\x82\x01" + b"\x00" * 40)
    out = run_gwx("pki", "show", garbage)
    assert out.returncode == 2 and b"gwx: " in out.stderr and b"Traceback" not in out.stderr
    out = run_gwx("pki", "init-root", "--dir", tmp_path / "ca", "--name", "", env=ENV)
    assert out.returncode == 2 and b"PKI_INVALID_INPUT" in out.stderr


def test_show_says_what_it_reads_when_given_something_else(tmp_path):
    ca = tmp_path / "ca"
    assert run_gwx("pki", "init-root", "--dir", ca, "--name", "测试CA", env=ENV).returncode == 0
    (tmp_path / "body.pdf").write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    (tmp_path / "random.bin").write_bytes(b"\x00\x01not anything at all")
    # gwx's own request and response files (they open with '#' lines): what each is, and what reads it
    (tmp_path / "n.req").write_text("# gwx node enrolment request: node county-a, its TLS, signing and "
                                    "encryption keys\n-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                    "-----END CERTIFICATE REQUEST-----\n")
    (tmp_path / "n.resp").write_bytes(b"# gwx node enrolment response: node county-a\n" + (ca / "root.crt").read_bytes())
    for path, what in ((tmp_path / "body.pdf", b"a PDF document"), (ca / "ca.key", b"a private key"),
                       (tmp_path / "random.bin", b"not a certificate, CRL or seal"),
                       (tmp_path / "n.req", b"a node's enrolment request (gwx pki sign-request"),
                       (tmp_path / "n.resp", b"a node's enrolment response (gwx node install-certs")):
        out = run_gwx("pki", "show", path)
        assert out.returncode == 2, out.stderr
        assert what in out.stderr and b"reads certificates" in out.stderr, out.stderr
        assert b"trailing bytes" not in out.stderr.split(b";")[0] and b"is binary DER" not in out.stderr
