"""Enrolment on the command line: ``gwx node request`` / ``request-seal`` / ``install-certs`` on the
node, ``gwx pki sign-request`` / ``issue-seal --request`` at the CA, then ``gwx node init`` without
``--ca``. The node's commands run while the CA directory is moved out of reach and with the node's own
passphrase; openssl checks the requests and what was issued; refusals are typed, with their exit codes.
"""

from __future__ import annotations

import json
import stat

import pytest

from node.config import load_config
from pki.ca import CertificateAuthority
from pki.certificates import load_certificate
from pki.csr import REQUEST_LABEL, pem_block, pem_blocks
from tests.node.enrolment_support import Parties, enrol_node
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, run_gwx, run_openssl

UNIT = "11100000000013127D"
UNIT_NAME = "临沂市人民政府办公室"
NODE_PASSPHRASE = "the county's own passphrase"


@pytest.fixture
def parties(tmp_path, new_root_ca):
    new_root_ca(tmp_path / "admin" / "ca", "临沂市电子政务CA")
    return Parties(tmp_path / "admin" / "ca", PASSPHRASE_TEXT, NODE_PASSPHRASE, tmp_path / "hand-over")


def test_a_node_enrolled_without_the_ca_is_ready(tmp_path, parties):
    node_dir = tmp_path / "operator" / "county-a"
    enrol_node(parties, node_dir, "county-a", [{"code": UNIT, "name": UNIT_NAME}], host="10.1.2.3")
    hand, creds = parties.hand_over, node_dir / "credentials"
    # The request: three self-signed PKCS#10 requests openssl accepts, naming the node and each role.
    blocks = pem_blocks((hand / "county-a.req").read_bytes(), REQUEST_LABEL)
    assert len(blocks) == 3
    for index, der in enumerate(blocks):
        (tmp_path / f"{index}.csr").write_bytes(pem_block(REQUEST_LABEL, der))
        out = run_openssl("req", "-verify", "-noout", "-subject", "-nameopt", "compat", "-in",
                          tmp_path / f"{index}.csr", text=True)
        assert "verify OK" in out.stderr and out.stdout.strip().endswith(f"/OU={['tls', 'sign', 'enc'][index]}"
                                                                          "/CN=county-a")
    # Keys encrypted with the node's passphrase, owner-only; certificates openssl accepts for their use.
    for name in ("tls.key", "sign.key", "enc.key"):
        assert stat.S_IMODE((creds / name).stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in (creds / name).read_bytes()
    assert stat.S_IMODE((node_dir / "units" / UNIT / "seal.key").stat().st_mode) == 0o600
    run_openssl("verify", "-CAfile", parties.ca_dir / "root.crt", "-purpose", "sslserver", creds / "tls.crt")
    run_openssl("verify", "-CAfile", parties.ca_dir / "root.crt", "-purpose", "sslclient", creds / "tls.crt")
    run_openssl("verify", "-CAfile", parties.ca_dir / "root.crt", "-purpose", "smimesign", creds / "sign.crt")
    run_openssl("verify", "-CAfile", parties.ca_dir / "root.crt", node_dir / "units" / UNIT / "seal.crt")
    # init took the host from the TLS certificate and wrote a node that is ready to run.
    config = load_config(node_dir)
    assert config.peer_api.host == "10.1.2.3" and [u.code for u in config.units] == [UNIT]
    status = run_gwx("node", "status", "--dir", node_dir, "--json")
    report = json.loads(status.stdout)
    assert report["readiness"]["ready"] is True, report
    # The node's keys open with its own passphrase only: the CA's does not open them.
    refused = run_gwx("node", "install-certs", "--dir", node_dir, hand / "county-a.resp", env=parties.admin_env)
    assert refused.returncode == 3 and b"PKI_WRONG_PASSPHRASE" in refused.stderr


def test_sign_request_prints_what_it_signed(tmp_path, parties):
    node_dir = tmp_path / "node"
    made = parties.operator("node", "request", "--dir", node_dir, "--node-id", "county-b",
                            "--root", parties.root, "--out", tmp_path / "b.req").stdout.decode()
    fingerprint = made.split("key fingerprint ")[1].split()[0]
    out = parties.admin("pki", "sign-request", "--ca", parties.ca_dir, "--request", tmp_path / "b.req",
                        "--host", "county-b.example", "--out", tmp_path / "b.resp").stdout.decode()
    assert f"request for node 'county-b', key fingerprint {fingerprint}" in out
    for words in ("TLS server and client", "signing", "encryption", "valid ", "SHA-256 "):
        assert words in out
    assert out.count("serial ") == 3


def test_a_tampered_request_is_refused_and_no_response_written(tmp_path, parties):
    parties.operator("node", "request", "--dir", tmp_path / "node", "--node-id", "county-a",
                     "--root", parties.root, "--out", tmp_path / "a.req")
    ders = pem_blocks((tmp_path / "a.req").read_bytes(), REQUEST_LABEL)
    (tmp_path / "x.req").write_bytes(b"".join(pem_block(REQUEST_LABEL, d.replace(b"county-a", b"county-x"))
                                              for d in ders))
    out = run_gwx("pki", "sign-request", "--ca", parties.ca_dir, "--request", tmp_path / "x.req", "--host",
                  "10.1.2.3", "--out", tmp_path / "x.resp", env=parties.admin_env)
    assert out.returncode == 1 and b"gwx: PKI_REQUEST_BAD_SIGNATURE: " in out.stderr
    assert not (tmp_path / "x.resp").exists()
    out = run_gwx("pki", "sign-request", "--ca", parties.ca_dir, "--request", tmp_path / "a.req", "--host",
                  "10.1.2.3", "--node-id", "county-b", "--out", tmp_path / "a.resp", env=parties.admin_env)
    assert out.returncode == 2 and b"PKI_REQUEST_NODE_MISMATCH" in out.stderr
    assert not (tmp_path / "a.resp").exists()


def test_another_nodes_response_is_refused_and_init_says_what_is_missing(tmp_path, parties):
    for node_id in ("county-a", "county-b"):
        parties.operator("node", "request", "--dir", tmp_path / node_id, "--node-id", node_id,
                         "--root", parties.root, "--out", tmp_path / f"{node_id}.req")
    parties.admin("pki", "sign-request", "--ca", parties.ca_dir, "--request", tmp_path / "county-b.req",
                  "--host", "10.1.2.4", "--out", tmp_path / "county-b.resp")
    out = run_gwx("node", "install-certs", "--dir", tmp_path / "county-a", tmp_path / "county-b.resp",
                  env=parties.operator_env)
    assert out.returncode == 2 and b"PKI_RESPONSE_KEY_MISMATCH" in out.stderr
    assert not (tmp_path / "county-a" / "credentials" / "tls.crt").exists()
    # A seal response for a unit whose request was made on the other node (was: PKI_KEY_MISSING, exit 3).
    parties.operator("node", "request-seal", "--dir", tmp_path / "county-b", "--unit", UNIT, "--name", UNIT_NAME,
                     "--out", tmp_path / "b-seal.req")
    parties.admin("pki", "issue-seal", "--ca", parties.ca_dir, "--request", tmp_path / "b-seal.req", "--unit", UNIT,
                  "--name", UNIT_NAME, "--out", tmp_path / "b-seal.resp")
    out = run_gwx("node", "install-certs", "--dir", tmp_path / "county-a", tmp_path / "b-seal.resp",
                  env=parties.operator_env)
    assert out.returncode == 2 and b"PKI_RESPONSE_NO_REQUEST" in out.stderr and b"request-seal" in out.stderr
    assert not (tmp_path / "county-a" / "units").exists()
    units = tmp_path / "units.toml"
    units.write_text(f'[[units]]\ncode = "{UNIT}"\nname = "{UNIT_NAME}"\n', "utf-8")
    parties.admin("pki", "crl", "--ca", parties.ca_dir, "--out", tmp_path / "crl.pem")
    out = run_gwx("node", "init", "--dir", tmp_path / "county-a", "--node-id", "county-a", "--units", units,
                  "--crl", tmp_path / "crl.pem", env=parties.operator_env)
    assert out.returncode == 2 and b"PKI_REQUEST_PENDING" in out.stderr and b"install-certs" in out.stderr
    assert not (tmp_path / "county-a" / "node.toml").exists()


def test_init_without_the_ca_needs_every_seal_and_the_crls(tmp_path, parties):
    node_dir = tmp_path / "node"
    hand = parties.hand_over
    hand.mkdir()
    parties.operator("node", "request", "--dir", node_dir, "--node-id", "county-a",
                     "--root", parties.root, "--out", hand / "a.req")
    parties.admin("pki", "sign-request", "--ca", parties.ca_dir, "--request", hand / "a.req", "--host", "127.0.0.1",
                  "--out", hand / "a.resp")
    parties.operator("node", "install-certs", "--dir", node_dir, hand / "a.resp")
    units = tmp_path / "units.toml"
    units.write_text(f'[[units]]\ncode = "{UNIT}"\nname = "{UNIT_NAME}"\n', "utf-8")
    parties.admin("pki", "crl", "--ca", parties.ca_dir, "--out", hand / "crl.pem")
    init = ("node", "init", "--dir", node_dir, "--node-id", "county-a", "--units", units)
    out = run_gwx(*init, "--crl", hand / "crl.pem", env=parties.operator_env)
    assert out.returncode == 2 and b"has no seal" in out.stderr and b"request-seal" in out.stderr
    out = run_gwx(*init, "--crl", hand / "crl.pem", "--node-id", "county-z", env=parties.operator_env)
    assert out.returncode == 2 and b"county-z" in out.stderr
    parties.operator("node", "request-seal", "--dir", node_dir, "--unit", UNIT, "--name", UNIT_NAME,
                     "--out", hand / "u.req")
    parties.admin("pki", "issue-seal", "--ca", parties.ca_dir, "--request", hand / "u.req", "--unit", UNIT,
                  "--name", UNIT_NAME, "--out", hand / "u.resp")
    parties.operator("node", "install-certs", "--dir", node_dir, hand / "u.resp")
    out = run_gwx(*init, env=parties.operator_env)
    assert out.returncode == 2 and b"--crl" in out.stderr
    out = run_gwx(*init, "--crl", hand / "crl.pem", "--host", "10.9.9.9", env=parties.operator_env)
    assert out.returncode == 2 and b"not in the node's TLS certificate (127.0.0.1)" in out.stderr
    assert not (node_dir / "node.toml").exists()
    parties.operator(*init, "--crl", hand / "crl.pem")
    assert load_config(node_dir).node_id == "county-a"


def test_an_enrolled_node_renews_with_new_keys_of_its_own(tmp_path, parties):
    """The renewal of README "Renewing …" for a node whose keys never left it: a new request in a new
    directory, signed with --renew (the old certificates stay valid), installed there, then renewed from."""
    node_dir, renewed = tmp_path / "operator" / "county-a", tmp_path / "operator" / "county-a-2027"
    enrol_node(parties, node_dir, "county-a", [{"code": UNIT, "name": UNIT_NAME}])
    hand, creds = parties.hand_over, node_dir / "credentials"
    old = load_certificate((creds / "tls.crt").read_bytes()).serial_number
    parties.operator("node", "request", "--dir", renewed, "--node-id", "county-a", "--root", parties.root,
                     "--out", hand / "renew.req")
    sign = ("pki", "sign-request", "--ca", parties.ca_dir, "--request", hand / "renew.req", "--node-id",
            "county-a", "--host", "127.0.0.1", "--out", hand / "renew.resp")
    again = run_gwx(*sign, env=parties.admin_env)  # the refusal names --renew: sign-request takes it
    assert again.returncode == 2 and b"PKI_ALREADY_ISSUED" in again.stderr and b"--renew" in again.stderr
    both = run_gwx(*sign, "--renew", "--replace", env=parties.admin_env)
    assert both.returncode == 2 and b"not allowed with" in both.stderr and not (hand / "renew.resp").exists()
    assert b"stay valid" in parties.admin(*sign, "--renew").stdout
    parties.operator("node", "install-certs", "--dir", renewed, hand / "renew.resp")
    wrong = run_gwx("node", "renew", "--dir", node_dir, "--from", renewed, env=parties.operator_env)
    assert wrong.returncode == 2 and b"give that as --from" in wrong.stderr
    parties.operator("node", "renew", "--dir", node_dir, "--from", renewed / "credentials")
    new = load_certificate((creds / "tls.crt").read_bytes()).serial_number
    assert new == load_certificate((renewed / "credentials" / "tls.crt").read_bytes()).serial_number != old
    revoked = parties.ca_dir / "revocations.json"
    assert not revoked.exists() or json.loads(revoked.read_text("utf-8")) == {}  # both sets valid: the overlap
    report = json.loads(run_gwx("node", "status", "--dir", node_dir, "--json").stdout)
    assert report["readiness"]["ready"] is True, report


def test_issue_seal_with_a_request_refuses_a_key_passphrase_and_another_unit(tmp_path, parties):
    parties.operator("node", "request", "--dir", tmp_path / "node", "--node-id", "county-a",
                     "--root", parties.root, "--out", tmp_path / "a.req")
    parties.operator("node", "request-seal", "--dir", tmp_path / "node", "--unit", UNIT, "--name", UNIT_NAME,
                     "--out", tmp_path / "u.req")
    (tmp_path / "pass").write_text("another passphrase")
    base = ("pki", "issue-seal", "--ca", parties.ca_dir, "--request", tmp_path / "u.req", "--name", UNIT_NAME,
            "--out", tmp_path / "u.resp")
    out = run_gwx(*base, "--unit", UNIT, "--key-passphrase-file", tmp_path / "pass", env=parties.admin_env)
    assert out.returncode == 2 and b"--key-passphrase-file" in out.stderr
    out = run_gwx(*base, "--unit", "91350100M000100Y43", env=parties.admin_env)
    assert out.returncode == 2 and b"PKI_REQUEST_UNIT_MISMATCH" in out.stderr
    out = run_gwx("pki", "issue-seal", "--ca", parties.ca_dir, "--request", tmp_path / "a.req", "--unit", UNIT,
                  "--name", UNIT_NAME, "--out", tmp_path / "u.resp", env=parties.admin_env)
    assert out.returncode == 2 and b"PKI_REQUEST_ROLES" in out.stderr
    assert not (tmp_path / "u.resp").exists()


def test_init_warns_when_the_crls_miss_a_ca_above_an_enrolled_node(tmp_path):
    root = CertificateAuthority.init_root(tmp_path / "admin" / "root", "临沂市电子政务CA", PASSPHRASE)
    county = root.create_intermediate(tmp_path / "admin" / "county", "兰山区CA", PASSPHRASE)
    parties = Parties(county.directory, PASSPHRASE_TEXT, NODE_PASSPHRASE, tmp_path / "hand-over")
    unit = [{"code": UNIT, "name": UNIT_NAME}]
    out = enrol_node(parties, tmp_path / "a", "county-a", unit)
    assert b"warning" in out.stderr and "临沂市电子政务CA" in out.stderr.decode()
    run_gwx("pki", "crl", "--ca", root.directory, "--out", tmp_path / "root.crl", env=parties.admin_env)
    unit = [{"code": "91350100M000100Y43", "name": "福州市鼓楼区人民政府办公室"}]
    out = enrol_node(parties, tmp_path / "b", "county-b", unit, other_crls=(tmp_path / "root.crl",))
    assert b"warning" not in out.stderr, out.stderr.decode()


def test_request_seal_on_a_token_needs_the_token_the_key_label_and_a_pin_source(tmp_path, parties):
    node_dir = tmp_path / "operator" / "county-a"
    half = run_gwx("node", "request-seal", "--dir", node_dir, "--unit", UNIT, "--name", UNIT_NAME,
                   "--out", tmp_path / "seal.req", "--token-module", "/usr/lib/softhsm/libsofthsm2.so",
                   "--token", "ukey", env=parties.operator_env)
    assert half.returncode == 2 and b"INVALID_INPUT" in half.stderr and b"--key-label" in half.stderr
    no_pin = run_gwx("node", "request-seal", "--dir", node_dir, "--unit", UNIT, "--name", UNIT_NAME,
                     "--out", tmp_path / "seal.req", "--token-module", "/usr/lib/softhsm/libsofthsm2.so",
                     "--token", "ukey", "--key-label", "seal-1", env=parties.operator_env)
    assert no_pin.returncode == 2 and b"SEAL_TOKEN_PIN_MISSING" in no_pin.stderr
    assert not (node_dir / "units").exists() and not (tmp_path / "seal.req").exists()


def test_a_node_of_an_sm_network_is_enrolled_with_both_roots_and_is_ready(tmp_path):
    """On a 国密 network the operator is given the transport root beside the SM2 root: the node makes a
    P-256 TLS key and SM2 signing and encryption keys, gets its TLS certificate from the transport CA
    (which openssl checks for TLS), and init finds every CRL it needs in what gwx pki crl wrote."""
    CertificateAuthority.init_root(tmp_path / "admin" / "ca", "国密注册网络CA", PASSPHRASE, algorithm="sm2-sm3")
    parties = Parties(tmp_path / "admin" / "ca", PASSPHRASE_TEXT, NODE_PASSPHRASE, tmp_path / "hand-over")
    node_dir = tmp_path / "operator" / "county-s"
    done = enrol_node(parties, node_dir, "county-s", [{"code": UNIT, "name": UNIT_NAME}], host="10.1.2.4")
    assert b"warning" not in done.stderr
    creds = node_dir / "credentials"
    assert (creds / "tls-root.crt").read_bytes() == (parties.ca_dir / "transport" / "root.crt").read_bytes()
    for purpose in ("sslserver", "sslclient"):
        run_openssl("verify", "-CAfile", creds / "tls-root.crt", "-purpose", purpose, creds / "tls.crt")
    run_openssl("verify", "-vfyopt", "distid:1234567812345678", "-partial_chain", "-CAfile", creds / "root.crt",
                creds / "sign.crt")
    report = json.loads(run_gwx("node", "status", "--dir", node_dir, "--json").stdout)
    assert report["readiness"]["ready"] is True, report
