"""A network holds to its profile: the CA of an SM2 root signs SM2 keys only, a P-256 network's CA never
an SM2 key — whether the key comes to `issue`, in a request, or by an algorithm override — and a sealed
signature verifies only with the algorithm of the network whose root it chains to."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki import ca as ca_module
from pki import profiles
from pki.algorithms import SM2_SM3
from pki.ca import CertificateAuthority
from pki.errors import HsmSm2Unsupported, RequestInvalid, SealBadSignature, UnsupportedAlgorithm
from pki.node_enrolment import create_node_request, sign_node_request
from pki.seal_enrolment import create_token_seal_request, issue_seal_for_request, seal_request
from pki.seal_signature import make_sealed_signature, verify_sealed_signature
from pki.seal_store import make_seal
from pki.seal_token import TokenRef
from pki.signer import SoftwareSigner
from pki.sm2 import Sm2PrivateKey
from tests.support import PASSPHRASE

UNIT, UNIT_NAME = "91350100M000100Y43", "临沂市财政局"
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mixed")])


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    base = tmp_path_factory.mktemp("profiles")
    sm = CertificateAuthority.init_root(base / "sm", "国密根CA", PASSPHRASE, algorithm="sm2-sm3")
    p256 = CertificateAuthority.init_root(base / "p256", "P-256 Root", PASSPHRASE)
    return sm, p256


def test_an_sm2_ca_refuses_to_issue_for_a_p256_key_and_a_p256_ca_for_an_sm2_key(cas):
    sm, p256 = cas
    with pytest.raises(UnsupportedAlgorithm) as err:
        sm.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), NAME, profiles.SEAL)
    assert err.value.code == "PKI_PROFILE_MISMATCH" and "SM2" in err.value.message
    with pytest.raises(UnsupportedAlgorithm):
        p256.issue(Sm2PrivateKey.generate().public_key(), NAME, profiles.SEAL)


def test_requests_of_the_other_profile_are_refused_before_anything_is_issued(cas, tmp_path):
    sm, p256 = cas
    p256_request = seal_request(SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), UNIT, UNIT_NAME)
    sm2_request = seal_request(SoftwareSigner(Sm2PrivateKey.generate()), UNIT, UNIT_NAME)
    for ca, data in ((sm, p256_request), (p256, sm2_request)):
        issued = len(ca.active_certificates(lambda c: True))
        with pytest.raises(RequestInvalid) as err:
            issue_seal_for_request(ca, data, UNIT, UNIT_NAME)
        assert err.value.code == "PKI_REQUEST_KEY_TYPE"
        assert len(ca.active_certificates(lambda c: True)) == issued
    node_request = create_node_request(tmp_path / "n", "n1.test", p256.root_certificate, PASSPHRASE)
    with pytest.raises(RequestInvalid) as err:
        sign_node_request(sm, node_request.pem, "n1.example")
    assert err.value.code == "PKI_REQUEST_KEY_TYPE"


def test_issue_node_refuses_an_algorithm_of_the_other_profile(cas, tmp_path):
    sm, p256 = cas
    with pytest.raises(UnsupportedAlgorithm):
        sm.issue_node("n2.test", "n2.example", tmp_path / "a", PASSPHRASE, algorithm="ecdsa")
    with pytest.raises(UnsupportedAlgorithm):
        p256.issue_node("n3.test", "n3.example", tmp_path / "b", PASSPHRASE, algorithm="sm2")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_token_seal_key_is_refused_on_an_sm_network_until_pkcs11_sm2_exists(tmp_path):
    ref = TokenRef("/nonexistent/libsofthsm2.so", "unit", "seal", None, "GWX_TEST_PIN")
    with pytest.raises(HsmSm2Unsupported) as err:
        create_token_seal_request(tmp_path / "seal", UNIT, UNIT_NAME, ref, SM2_SM3)
    assert err.value.code == "PKI_HSM_SM2_UNSUPPORTED" and "PKCS#11" in err.value.message
    assert not (tmp_path / "seal").exists()


def test_a_p256_sealed_signature_under_an_sm2_root_is_refused(cas, monkeypatch):
    sm, _ = cas
    # A seal certificate for a P-256 key that an SM2 CA issued before it held to its profile.
    monkeypatch.setattr(ca_module, "require_network_key", lambda network, key: None, raising=False)
    key = ec.generate_private_key(ec.SECP256R1())
    cert, seal = make_seal(sm, "91350100M000101Y1F", UNIT_NAME, key.public_key())
    monkeypatch.undo()
    der = make_sealed_signature(b"data", SoftwareSigner(key, cert), seal, property_info="p")
    with pytest.raises(SealBadSignature) as err:
        verify_sealed_signature(der, b"data", trust_roots=[sm.root_certificate])
    assert "sm2-sm3" in err.value.message
