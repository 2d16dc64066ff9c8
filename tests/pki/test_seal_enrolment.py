"""A unit's seal from its own key: the request (software key on its node, or a key on a PKCS#11
token), the seal maker's checks and SESeal, the install — and what is refused on each side.

The CA is our own; a softhsm2 token holds the token key; openssl checks the requests' self-signatures
and the issued seal certificates; ``gwx pki verify-seal``'s function judges the SESeal.
"""

from __future__ import annotations

import stat
import uuid

import pytest

from pki.algorithms import ECDSA_P256_SHA256
from pki.ca import CertificateAuthority
from pki.csr import REQUEST_LABEL, make_request, pem_block, pem_blocks
from pki.errors import GwxError
from pki.node_enrolment import create_node_request
from pki.pkcs11 import Pkcs11Signer, generate_keypair_on_token
from pki.seal_enrolment import (
    SEAL_REQUEST_FILE,
    create_seal_request,
    install_seal_response,
    issue_seal_for_request,
    seal_key_of,
    write_seal_request,
)
from pki.seal_store import load_seal_credential
from pki.seal_verify import verify_seal
from pki.signer import SoftwareSigner
from tests.pki.seal_support import OTHER_UNIT, UNIT, UNIT_NAME
from tests.pki.softhsm import SoftHsm, softhsm_fixture  # noqa: F401  (the `softhsm` fixture)
from tests.support import PASSPHRASE, run_openssl

NODE_PASSPHRASE = b"the node's own passphrase"


@pytest.fixture
def ca(tmp_path, new_root_ca):
    return new_root_ca(tmp_path / "ca", "临沂市电子政务CA")


def error_of(call, *args, **kwargs) -> GwxError:
    with pytest.raises(GwxError) as info:
        call(*args, **kwargs)
    return info.value


def openssl_verifies_request(tmp_path, text: bytes) -> str:
    path = tmp_path / "seal-request.pem"
    path.write_bytes(text)
    out = run_openssl("req", "-verify", "-noout", "-subject", "-nameopt", "utf8", "-in", path, text=True)
    assert "verify OK" in out.stderr, out.stderr
    return out.stdout


def test_seal_made_from_the_units_own_key_verifies_and_signs(tmp_path, ca):
    seal_dir = tmp_path / "node" / "units" / UNIT
    text = create_seal_request(seal_dir, UNIT, UNIT_NAME, NODE_PASSPHRASE)
    assert stat.S_IMODE((seal_dir / "seal.key").stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (seal_dir / "seal.key").read_bytes()
    assert (seal_dir / SEAL_REQUEST_FILE).read_bytes() == text
    assert UNIT in openssl_verifies_request(tmp_path, text)

    issued = issue_seal_for_request(ca, text, UNIT, UNIT_NAME)
    seal = install_seal_response(seal_dir, issued.response, ca.root_certificate,
                                 seal_key_of(seal_dir, NODE_PASSPHRASE))
    assert seal.unit_code == UNIT and seal.name == UNIT_NAME
    run_openssl("verify", "-CAfile", ca.directory / "root.crt", seal_dir / "seal.crt")
    # The directory is what issue-seal writes: it opens for signing with the node's passphrase.
    credential = load_seal_credential(seal_dir, NODE_PASSPHRASE)
    assert credential.certificate == issued.certificate
    assert verify_seal((seal_dir / "seal.esl").read_bytes(), trust_roots=[ca.root_certificate],
                       unit_code=UNIT).seal.es_id == seal.es_id


def test_under_an_intermediate_the_seal_response_carries_the_chain(tmp_path, ca):
    county_ca = ca.create_intermediate(tmp_path / "county-ca", "兰山区CA", PASSPHRASE)
    seal_dir = tmp_path / "seal"
    text = create_seal_request(seal_dir, UNIT, UNIT_NAME, NODE_PASSPHRASE)
    issued = issue_seal_for_request(county_ca, text, UNIT, UNIT_NAME)
    install_seal_response(seal_dir, issued.response, ca.root_certificate, seal_key_of(seal_dir, NODE_PASSPHRASE))
    assert load_seal_credential(seal_dir, NODE_PASSPHRASE).chain == (county_ca.certificate,)


def test_a_seal_key_on_a_token_never_leaves_it(tmp_path, ca, softhsm: SoftHsm):
    label = f"seal-{uuid.uuid4().hex[:8]}"
    token_key = generate_keypair_on_token(softhsm.module, softhsm.token_label, softhsm.pin, label,
                                          ECDSA_P256_SHA256)
    seal_dir = tmp_path / "token-seal"
    with Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, label) as signer:
        text = write_seal_request(seal_dir, signer, UNIT, UNIT_NAME)
    assert UNIT in openssl_verifies_request(tmp_path, text)
    issued = issue_seal_for_request(ca, text, UNIT, UNIT_NAME)
    assert issued.certificate.public_key() == token_key.public_key
    install_seal_response(seal_dir, issued.response, ca.root_certificate, token_key.public_key)
    assert sorted(p.name for p in seal_dir.iterdir()) == ["seal.crt", "seal.esl", SEAL_REQUEST_FILE]
    # What the token signs verifies under the installed certificate.
    with Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, label,
                      certificate=issued.certificate) as signer:
        signer.algorithm.verify(issued.certificate.public_key(), signer.sign(b"data"), b"data")


def test_the_seal_maker_refuses_a_request_for_another_unit_a_forgery_and_a_nodes_request(tmp_path, ca):
    text = create_seal_request(tmp_path / "seal", UNIT, UNIT_NAME, NODE_PASSPHRASE)
    before = len(ca.issued())
    assert error_of(issue_seal_for_request, ca, text, OTHER_UNIT, "别的单位").code == "PKI_REQUEST_UNIT_MISMATCH"
    der = pem_blocks(text, REQUEST_LABEL)[0]
    tampered = pem_block(REQUEST_LABEL, der.replace(UNIT.encode(), OTHER_UNIT.encode()))
    assert error_of(issue_seal_for_request, ca, tampered, OTHER_UNIT, "别的单位").code == "PKI_REQUEST_BAD_SIGNATURE"
    node_request = create_node_request(tmp_path / "creds", "county-a", ca.root_certificate, NODE_PASSPHRASE).pem
    assert error_of(issue_seal_for_request, ca, node_request, UNIT, UNIT_NAME).code == "PKI_REQUEST_ROLES"
    asks_role = pem_block(REQUEST_LABEL, make_request(SoftwareSigner(ECDSA_P256_SHA256.generate()),
                                                      common_name=UNIT_NAME, role="tls", unit_code=UNIT))
    assert error_of(issue_seal_for_request, ca, asks_role, UNIT, UNIT_NAME).code == "PKI_REQUEST_ROLES"
    assert len(ca.issued()) == before
    issue_seal_for_request(ca, text, UNIT, UNIT_NAME)
    again = create_seal_request(tmp_path / "again", UNIT, UNIT_NAME, NODE_PASSPHRASE)
    assert error_of(issue_seal_for_request, ca, again, UNIT, UNIT_NAME).code == "PKI_ALREADY_ISSUED"


def test_a_seal_response_for_another_key_or_from_another_ca_is_not_installed(tmp_path, ca):
    mine = tmp_path / "mine"
    create_seal_request(mine, UNIT, UNIT_NAME, NODE_PASSPHRASE)
    theirs = create_seal_request(tmp_path / "theirs", UNIT, UNIT_NAME, NODE_PASSPHRASE)
    response = issue_seal_for_request(ca, theirs, UNIT, UNIT_NAME).response
    err = error_of(install_seal_response, mine, response, ca.root_certificate, seal_key_of(mine, NODE_PASSPHRASE))
    assert err.code == "PKI_RESPONSE_KEY_MISMATCH"
    other = CertificateAuthority.init_root(tmp_path / "other", "别的CA", PASSPHRASE)
    own_request = (mine / SEAL_REQUEST_FILE).read_bytes()
    err = error_of(install_seal_response, mine, issue_seal_for_request(other, own_request, UNIT, UNIT_NAME).response,
                   ca.root_certificate, seal_key_of(mine, NODE_PASSPHRASE))
    assert err.code == "PKI_RESPONSE_UNTRUSTED"
    assert sorted(p.name for p in mine.iterdir()) == ["seal.key", SEAL_REQUEST_FILE]


def test_a_seal_key_is_never_made_twice(tmp_path):
    seal_dir = tmp_path / "seal"
    text = create_seal_request(seal_dir, UNIT, UNIT_NAME, NODE_PASSPHRASE)
    assert error_of(create_seal_request, seal_dir, UNIT, UNIT_NAME, NODE_PASSPHRASE).code == "SEAL_EXISTS"
    assert (seal_dir / SEAL_REQUEST_FILE).read_bytes() == text
    assert error_of(create_seal_request, tmp_path / "bad", "12345", UNIT_NAME, NODE_PASSPHRASE).code == \
        "PKI_INVALID_UNIT_CODE"
    assert not (tmp_path / "bad").exists()
