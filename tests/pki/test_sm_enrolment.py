"""Enrolment on a 国密 network: a node makes SM2 keys (the root says which), requests signed with SM2
and SM3 are checked by the CA (a forged one refused), and the SM2 certificates install; a unit's
seal key likewise. openssl checks the requests' self-signatures."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node.cli.main import main
from pki.algorithms import ECDSA_P256_SHA256, SM2_SM3
from pki.ca import CertificateAuthority
from pki.csr import REQUEST_LABEL, make_request, pem_block, pem_blocks, read_requests
from pki.errors import RequestBadSignature
from pki.keystore import read_private_key
from pki.node_enrolment import create_node_request, install_node_response, sign_node_request
from pki.seal_enrolment import create_seal_request, install_seal_response, issue_seal_for_request, seal_key_of
from pki.signer import SoftwareSigner
from pki.sm2 import Sm2PrivateKey, Sm2PublicKey
from pki.x509_sm2 import public_key_of
from tests.support import PASSPHRASE, PASSPHRASE_TEXT

from .sm_support import openssl

NODE_PASSPHRASE = b"the node's own passphrase"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertificateAuthority.init_root(tmp_path_factory.mktemp("sm-enrol") / "ca", "国密注册CA", PASSPHRASE,
                                          algorithm="sm2-sm3")


def test_a_node_under_an_sm2_root_makes_sm2_keys_and_installs_sm2_certificates(ca, tmp_path):
    creds = tmp_path / "n1" / "credentials"
    request = create_node_request(creds, "county-a", ca.root_certificate, NODE_PASSPHRASE,
                                  tls_root=ca.transport.root_certificate)
    for role in ("sign", "enc"):
        assert isinstance(read_private_key(creds / f"{role}.key", NODE_PASSPHRASE), Sm2PrivateKey)
    assert isinstance(read_private_key(creds / "tls.key", NODE_PASSPHRASE), ec.EllipticCurvePrivateKey)
    for index, der in enumerate(pem_blocks(request.pem, REQUEST_LABEL)):
        (tmp_path / f"r{index}.pem").write_bytes(pem_block(REQUEST_LABEL, der))
        sm2 = [] if index == 0 else ["-vfyopt", "distid:1234567812345678"]  # the TLS request (first) is P-256
        done = openssl("req", "-verify", "-noout", "-in", str(tmp_path / f"r{index}.pem"), *sm2)
        assert done.returncode == 0 and b"verify OK" in done.stdout + done.stderr, done.stderr
    signed = sign_node_request(ca, request.pem, "10.1.2.3")
    installed = install_node_response(creds, signed.response, NODE_PASSPHRASE)
    assert installed["tls"].signature_algorithm_oid.dotted_string == ECDSA_P256_SHA256.oid
    for role, cert in installed.items():
        if role == "tls":  # P-256 under the transport root (test_sm_transport)
            continue
        assert cert.signature_algorithm_oid.dotted_string == SM2_SM3.oid
        assert isinstance(public_key_of(cert), Sm2PublicKey)
        SoftwareSigner(read_private_key(creds / f"{role}.key", NODE_PASSPHRASE), cert)  # key ↔ certificate


def test_a_forged_sm2_request_is_refused(ca):
    victim = Sm2PrivateKey.generate()
    honest = make_request(SoftwareSigner(victim), common_name="county-b", role="sign")
    forged = bytearray(honest)
    forged[-4] ^= 0x01  # inside the SM2 signature
    with pytest.raises(RequestBadSignature):
        read_requests(pem_block(REQUEST_LABEL, bytes(forged)))
    checked = read_requests(pem_block(REQUEST_LABEL, honest))[0]
    assert checked.public_key == victim.public_key() and checked.role == "sign"


def test_a_units_sm2_seal_key_is_enrolled(ca, tmp_path):
    seal_dir = tmp_path / "units" / "91350100M000100Y43"
    request = create_seal_request(seal_dir, "91350100M000100Y43", "临沂市财政局", NODE_PASSPHRASE, SM2_SM3)
    issued = issue_seal_for_request(ca, request, "91350100M000100Y43", "临沂市财政局")
    assert issued.seal.sign_alg_oid == SM2_SM3.oid
    seal = install_seal_response(seal_dir, issued.response, ca.root_certificate,
                                 seal_key_of(seal_dir, NODE_PASSPHRASE))
    assert seal.der == issued.seal.der


def test_the_cli_makes_sm2_keys_for_a_node_and_its_seal_under_an_sm2_root(ca, tmp_path, monkeypatch):
    monkeypatch.setenv("GWX_PASSPHRASE", PASSPHRASE_TEXT)
    node_dir = tmp_path / "node"
    assert main(["node", "request", "--dir", str(node_dir), "--node-id", "county-c",
                 "--root", str(ca.directory / "root.crt"), "--tls-root", str(ca.directory / "transport" / "root.crt"),
                 "--out", str(tmp_path / "req.pem")]) == 0
    assert isinstance(read_private_key(node_dir / "credentials" / "sign.key", PASSPHRASE), Sm2PrivateKey)
    assert main(["node", "request-seal", "--dir", str(node_dir), "--unit", "11100000000013127D",
                 "--name", "国密单位", "--out", str(tmp_path / "seal.req")]) == 0
    assert isinstance(read_private_key(node_dir / "units" / "11100000000013127D" / "seal.key", PASSPHRASE),
                      Sm2PrivateKey)
