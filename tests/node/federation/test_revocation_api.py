"""The root node's OCSP answers (node.federation.revocation_api.RevocationService) come from the CRL it
holds, signed by the delegated signer: current CRL → good / revoked; a CRL past its next update →
tryLater (a responder must not vouch from stale data); no OCSP signer → NODE_NO_OCSP. On a P-256 and on
a 国密 network (an SM2 CRL, an SM2-signed answer)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.x509 import ocsp as xocsp

from node.config_edit import edit_config, set_section_values
from node.federation.revocation_api import RevocationService
from pki import ocsp_signer
from pki.ca import CertificateAuthority
from pki.crl import build_crl, crl_pem
from pki.errors import GwxError
from pki.keystore import write_public_file
from pki.ocsp import make_request
from pki.revocation import check_ocsp
from tests.node.federation.federation_support import node_context, provision_county_and_city
from tests.support import PASSPHRASE


@pytest.fixture(params=["ecdsa-p256-sha256", "sm2-sm3"], ids=["p256", "sm"])
def root(tmp_path, request):
    base = provision_county_and_city(tmp_path, "应答测试CA", {}, {}, algorithm=request.param)
    ca = CertificateAuthority.open(base / "ca", PASSPHRASE)
    ocsp_signer.issue(ca, base / "county" / "ocsp", PASSPHRASE)
    edit_config(base / "county", lambda doc: set_section_values(doc, "revocation", {"ocsp_signer": "ocsp"}))
    leaf = ca.issue_seal_certificate("91350100M000100Y43", "单位", ca.algorithm.generate().public_key())
    return base, ca, leaf


def answer(base, ca, leaf, now) -> bytes:
    return RevocationService(node_context(base / "county")).answer(make_request(leaf, ca.certificate), now)


def test_a_current_crl_answers_good_then_revoked(root):
    base, ca, leaf = root
    now = dt.datetime.now(dt.UTC)
    write_public_file(base / "county" / "crl.pem", crl_pem(build_crl(ca, now)))
    data = answer(base, ca, leaf, now)
    assert xocsp.load_der_ocsp_response(data).certificate_status is xocsp.OCSPCertStatus.GOOD
    check_ocsp(leaf, ca.certificate, data, now)
    ca.revoke(leaf, "ca_compromise", now)
    write_public_file(base / "county" / "crl.pem", crl_pem(build_crl(ca, now)))
    response = xocsp.load_der_ocsp_response(answer(base, ca, leaf, now))
    assert response.certificate_status is xocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason.name == "ca_compromise"


def test_a_stale_crl_answers_try_later(root):
    base, ca, leaf = root
    now = dt.datetime.now(dt.UTC)
    write_public_file(base / "county" / "crl.pem",
                      crl_pem(build_crl(ca, now - dt.timedelta(days=9), dt.timedelta(days=2))))
    assert xocsp.load_der_ocsp_response(answer(base, ca, leaf, now)).response_status \
        is xocsp.OCSPResponseStatus.TRY_LATER


def test_a_node_without_an_ocsp_signer_says_so(root):
    base, ca, leaf = root
    service = RevocationService(node_context(base / "city"))
    assert not service.configured
    with pytest.raises(GwxError) as err:
        service.answer(make_request(leaf, ca.certificate), dt.datetime.now(dt.UTC))
    assert err.value.code == "NODE_NO_OCSP"
