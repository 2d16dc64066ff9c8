"""A 国密 network's TLS answer: a P-256 transport CA beside the SM2 root (pki.ca ``transport/``).

OpenSSL 3.0 under Python's ``ssl`` neither verifies SM2-signed certificates in a handshake nor uses
SM2 TLS keys, so node TLS certificates come from a P-256 root whose EKU (serverAuth, clientAuth)
limits it to TLS; every other certificate stays SM2. Checked: what the CA makes, `openssl verify`
with TLS purposes (and its refusal of another purpose), a real TLS 1.3 handshake between two nodes'
contexts, revocation through the transport CA's CRL, enrolment, and pki.trust refusing a signing
certificate under the TLS-only root.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.cli.main import main
from node.federation.tls import client_context, node_contexts, server_context
from pki import profiles, trust
from pki.algorithms import ECDSA_P256_SHA256, SM2_SM3
from pki.ca import CertificateAuthority
from pki.crl import load_crls
from pki.errors import (
    CaError,
    CertificateRevoked,
    CertificateWrongUsage,
    InvalidInput,
    RequestInvalid,
    WrongPassphrase,
)
from pki.node_enrolment import create_node_request, install_node_response, sign_node_request
from pki.revocation import CrlChecker
from pki.sm2 import Sm2PublicKey
from pki.x509_sm2 import public_key_of
from tests.support import PASSPHRASE, PASSPHRASE_TEXT

from .sm_support import openssl

NODE_PASSPHRASE = b"the node's own passphrase"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    base = tmp_path_factory.mktemp("sm-transport")
    root = CertificateAuthority.init_root(base / "root", "国密传输测试CA", PASSPHRASE, algorithm="sm2-sm3")
    city = root.create_intermediate(base / "city", "临沂市CA", PASSPHRASE)
    a = root.issue_node("a.linyi", "127.0.0.1", base / "a", PASSPHRASE)
    b = city.issue_node("b.linyi", "127.0.0.1", base / "b", PASSPHRASE)
    return base, root, city, a, b


def test_an_sm_root_comes_with_a_p256_transport_root_for_tls_alone(network, tmp_path):
    base, root, city, _a, _b = network
    transport = root.transport
    assert transport.directory == base / "root" / "transport" and transport.kind == "transport"
    cert = transport.certificate
    assert cert.signature_algorithm_oid.dotted_string == ECDSA_P256_SHA256.oid
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    # it is the network's: named after the SM2 root, and opened again from the directory
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "国密传输测试CA"
    again = CertificateAuthority.open(base / "root", PASSPHRASE)
    assert again.transport.certificate == cert and again.algorithm is SM2_SM3
    # no seal maker, directory signer, OCSP or TSA of its own: those stay SM2, with the SM2 CA
    assert not (transport.directory / "sealmaker.key").exists()
    # the intermediate's transport CA hangs under the root's
    assert city.transport.certificate.issuer == cert.subject
    assert city.transport.root_certificate == cert
    international = CertificateAuthority.init_root(tmp_path / "intl", "国际算法CA", PASSPHRASE)
    assert international.transport is international and international.separate_transport() is None
    assert not (tmp_path / "intl" / "transport").exists()


def test_node_tls_is_p256_under_the_transport_ca_and_the_rest_sm2(network):
    base, root, city, a, b = network
    for node, issuer in ((a, root), (b, city)):
        assert isinstance(node.tls_certificate.public_key(), ec.EllipticCurvePublicKey)
        assert node.tls_certificate.issuer == issuer.transport.certificate.subject
        for cert in (node.signing_certificate, node.encryption_certificate):
            assert isinstance(public_key_of(cert), Sm2PublicKey) and cert.issuer == issuer.certificate.subject
    assert (base / "a" / "tls-root.crt").read_bytes() == (base / "root" / "transport" / "root.crt").read_bytes()
    assert (base / "a" / "root.crt").read_bytes() == (base / "root" / "root.crt").read_bytes()


def test_openssl_verifies_node_tls_for_tls_only(network):
    base, *_ = network
    for node, untrusted in (("a", []), ("b", ["-untrusted", str(base / "b" / "tls.crt")])):
        for purpose in ("sslserver", "sslclient"):
            done = openssl("verify", "-CAfile", base / node / "tls-root.crt", *untrusted, "-purpose", purpose,
                           base / node / "tls.crt")
            assert done.returncode == 0 and b": OK" in done.stdout, (node, purpose, done.stderr)
    # the root's own EKU stops it vouching for anything else — OpenSSL reads it so too
    done = openssl("verify", "-CAfile", base / "a" / "tls-root.crt", "-purpose", "smimesign", base / "a" / "tls.crt")
    assert done.returncode != 0


def test_a_signing_certificate_under_the_tls_only_root_is_refused(network):
    _, root, _city, _a, _b = network
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged-signer")])
    forged = root.transport.issue(key.public_key(), subject, profiles.NODE_SIGNING)
    store = trust.TrustStore.of([root.root_certificate, root.transport.root_certificate])
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(CertificateWrongUsage, match="vouches only for"):
        trust.verify_certificate(forged, store, now, purpose=trust.Purpose.SIGNING)
    with pytest.raises(CertificateWrongUsage):
        trust.verify_certificate(forged, store, now, purpose=trust.Purpose.SEAL)


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[str, bytes]:
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, bytes] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                seen["client"] = tls.getpeercert(binary_form=True)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(socket.create_connection(listener.getsockname()),
                                server_hostname="127.0.0.1") as tls:
            version = tls.version()
            tls.recv(1)  # the server's close: its side of the handshake is done
    finally:
        thread.join(10)
        listener.close()
    return version, seen.get("client", b"")


def test_two_nodes_of_a_sm_network_shake_hands_in_tls_13(network):
    base, *_ = network
    server = server_context(base / "a" / "tls.crt", base / "a" / "tls.key", base / "a" / "tls-root.crt", PASSPHRASE)
    client = client_context(base / "b" / "tls.crt", base / "b" / "tls.key", base / "b" / "tls-root.crt", PASSPHRASE)
    version, client_cert = _handshake(server, client)
    assert version == "TLSv1.3"
    assert x509.load_der_x509_certificate(client_cert).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)[0].value == "b.linyi"
    # trusting the SM2 root alone, as before the transport root, the handshake cannot succeed
    sm_only = client_context(base / "b" / "tls.crt", base / "b" / "tls.key", base / "b" / "root.crt", PASSPHRASE)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, sm_only)


def test_a_sm_nodes_contexts_from_one_decryption_of_its_key_shake_hands(network):
    """What a node's start makes (node_contexts: the SM2 transport key decrypted once, both contexts
    loaded from it in memory) shakes hands as the contexts made one by one do."""
    base, *_ = network
    _, server = node_contexts(base / "a" / "tls.crt", base / "a" / "tls.key", base / "a" / "tls-root.crt", PASSPHRASE)
    client, _ = node_contexts(base / "b" / "tls.crt", base / "b" / "tls.key", base / "b" / "tls-root.crt", PASSPHRASE)
    version, client_cert = _handshake(server, client)
    assert version == "TLSv1.3"
    assert x509.load_der_x509_certificate(client_cert).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)[0].value == "b.linyi"
    with pytest.raises(WrongPassphrase):
        node_contexts(base / "b" / "tls.crt", base / "b" / "tls.key", base / "b" / "tls-root.crt", b"not the passphrase")


def test_revoking_a_node_tls_certificate_goes_to_the_transport_crl(tmp_path, monkeypatch, capsys):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "国密吊销CA", PASSPHRASE, algorithm="sm2-sm3")
    node = ca.issue_node("c.linyi", "127.0.0.1", tmp_path / "c", PASSPHRASE)
    monkeypatch.setenv("GWX_PASSPHRASE", PASSPHRASE_TEXT)
    assert main(["pki", "revoke", "--ca", str(tmp_path / "ca"), str(tmp_path / "c" / "tls.crt")]) == 0
    assert node.tls_certificate.serial_number in ca.transport.revocations()
    assert node.tls_certificate.serial_number not in ca.revocations()
    assert main(["pki", "crl", "--ca", str(tmp_path / "ca"), "--out", str(tmp_path / "crl.pem")]) == 0
    crls = load_crls((tmp_path / "crl.pem").read_bytes())
    assert {c.issuer for c in crls} == {ca.certificate.subject, ca.transport.certificate.subject}
    checker, now = CrlChecker(crls), dt.datetime.now(dt.UTC)
    with pytest.raises(CertificateRevoked):
        checker(node.tls_certificate, ca.transport.certificate, now)
    checker(node.signing_certificate, ca.certificate, now)  # the SM2 one stands
    assert main(["pki", "crl", "--ca", str(tmp_path / "ca"), "--out", str(tmp_path / "crl.der"), "--der"]) != 0
    assert "transport" in capsys.readouterr().err


def test_enrolment_makes_a_p256_tls_key_checked_under_the_transport_root(network, tmp_path):
    _, root, _city, _a, _b = network
    creds = tmp_path / "n" / "credentials"
    with pytest.raises(InvalidInput, match="--tls-root"):
        create_node_request(creds, "county-t", root.root_certificate, NODE_PASSPHRASE)
    with pytest.raises(InvalidInput, match="transport root"):  # the SM2 root given for TLS
        create_node_request(creds, "county-t", root.root_certificate, NODE_PASSPHRASE,
                            tls_root=root.root_certificate)
    request = create_node_request(creds, "county-t", root.root_certificate, NODE_PASSPHRASE,
                                  tls_root=root.transport.root_certificate)
    signed = sign_node_request(root, request.pem, "10.1.2.3")
    installed = install_node_response(creds, signed.response, NODE_PASSPHRASE)
    assert installed["tls"].issuer == root.transport.certificate.subject
    assert isinstance(public_key_of(installed["sign"]), Sm2PublicKey)
    assert (creds / "tls-root.crt").read_bytes() == (root.directory / "transport" / "root.crt").read_bytes()
    # an SM2 key asking for TLS is refused at the CA: the network's TLS keys are P-256
    sm2_all = create_node_request(tmp_path / "m" / "credentials", "county-m", root.root_certificate,
                                  NODE_PASSPHRASE, "sm2-sm3", tls_root=root.transport.root_certificate)
    with pytest.raises(RequestInvalid) as refused:
        sign_node_request(root, sm2_all.pem, "10.1.2.4")
    assert refused.value.code == "PKI_REQUEST_KEY_TYPE"


def test_a_transport_ca_makes_no_intermediate_of_its_own(network, tmp_path):
    _, root, *_ = network
    with pytest.raises(CaError) as refused:
        root.transport.create_intermediate(tmp_path / "t", "传输中间CA", PASSPHRASE)
    assert refused.value.code == "PKI_CA_TRANSPORT"


def test_init_warns_of_a_missing_transport_crl_on_an_sm_network(network, tmp_path):
    """A node refuses every peer whose TLS certificate's CA has no CRL in its crl.pem: on a 国密
    network the transport CAs count, for a node the CA provisions and for an enrolled one alike."""
    from node.provision import cas_without_crl, enrolled_cas_without_crl
    from pki.crl import build_crl

    _, root, city, _a, _b = network
    now = dt.datetime.now(dt.UTC)
    sm_only = [build_crl(root, now)]
    assert cas_without_crl(city, sm_only) == [root.transport.certificate.subject.rfc4514_string()]
    assert cas_without_crl(city, [*sm_only, build_crl(root.transport, now)]) == []
    node = tmp_path / "node"
    request = create_node_request(node / "credentials", "county-w", root.root_certificate, NODE_PASSPHRASE,
                                  tls_root=root.transport.root_certificate)
    install_node_response(node / "credentials", sign_node_request(city, request.pem, "10.1.2.5").response,
                          NODE_PASSPHRASE)
    assert sorted(enrolled_cas_without_crl(node, sm_only)) == sorted(
        c.subject.rfc4514_string() for c in (city.certificate, city.transport.certificate, root.transport.certificate))
    every = [*sm_only, build_crl(root.transport, now), build_crl(city, now), build_crl(city.transport, now)]
    assert enrolled_cas_without_crl(node, every) == []


def test_an_sm_ca_without_its_transport_ca_says_so_rather_than_issue_sm2_tls(tmp_path):
    import shutil

    ca = CertificateAuthority.init_root(tmp_path / "ca", "缺传输CA", PASSPHRASE, algorithm="sm2-sm3")
    shutil.rmtree(tmp_path / "ca" / "transport")
    opened = CertificateAuthority.open(tmp_path / "ca", PASSPHRASE)
    assert opened.separate_transport() is None
    with pytest.raises(CaError) as missing:
        opened.issue_node("d.linyi", "127.0.0.1", tmp_path / "d", PASSPHRASE)
    assert missing.value.code == "PKI_TRANSPORT_MISSING" and not (tmp_path / "d" / "tls.crt").exists()
    assert ca.algorithm is SM2_SM3
