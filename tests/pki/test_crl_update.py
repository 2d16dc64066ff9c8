"""What a node judges when its parent offers CRLs (pki.crl.judge_crl_update), what it answers OCSP
from (pki.ocsp.CrlView, with the delegated signer of pki.ocsp_signer), and a stale CRL that still
proves revocation when a fresh one is being fetched (CrlChecker(accept_stale=True))."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.x509 import ocsp as xocsp

from pki import crl as crlmod
from pki import ocsp, ocsp_signer, profiles
from pki.ca import CertificateAuthority
from pki.errors import (
    CertificateRevoked,
    CrlUpdateRefused,
    DirectorySignerExists,
    MalformedEncoding,
    RevocationStale,
)
from pki.revocation import CrlChecker, check_ocsp
from tests.support import PASSPHRASE

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("crl-update")
    root = CertificateAuthority.init_root(base / "root", "Update Root", PASSPHRASE)
    county = root.create_intermediate(base / "county", "County CA", PASSPHRASE)
    leaf = lambda ca: ca.issue_seal_certificate(  # noqa: E731
        "91350100M000100Y43", "单位", ca.algorithm.generate().public_key())
    good, bad = leaf(root), leaf(root)
    root.revoke(bad, "key_compromise", NOW - dt.timedelta(hours=1))
    return base, root, county, good, bad


def pem_of(*crls) -> bytes:
    return b"".join(crlmod.crl_pem(c) for c in crls)


def test_a_newer_crl_of_every_ca_is_taken_and_the_same_is_unchanged(env):
    _, root, county, _, _ = env
    held = [crlmod.build_crl(root, NOW), crlmod.build_crl(county, NOW)]
    newer = [crlmod.build_crl(root, NOW), crlmod.build_crl(county, NOW)]
    taken = crlmod.judge_crl_update(pem_of(*newer), held, [root.certificate, county.certificate])
    assert taken is not None and {crlmod.crl_number(c) for c in taken} == {crlmod.crl_number(c) for c in newer}
    assert crlmod.judge_crl_update(pem_of(*held), held, [root.certificate, county.certificate]) is None
    # One CA newer, the other the same: taken. A first CRL of a CA not held before: taken.
    assert crlmod.judge_crl_update(pem_of(newer[0], held[1]), held, [root.certificate, county.certificate])
    assert crlmod.judge_crl_update(pem_of(*newer), held[:1], [root.certificate, county.certificate])


def test_an_older_crl_is_a_rollback(env):
    _, root, _, _, _ = env
    older, held = crlmod.build_crl(root, NOW), crlmod.build_crl(root, NOW)
    with pytest.raises(CrlUpdateRefused) as err:
        crlmod.judge_crl_update(pem_of(older), [held], [root.certificate])
    assert err.value.code == "PKI_CRL_ROLLBACK"
    assert err.value.details["held"] == crlmod.crl_number(held) > err.value.details["offered"]


def test_a_crl_of_another_ca_under_the_same_name_is_untrusted(env, tmp_path):
    _, root, _, _, _ = env
    impostor = CertificateAuthority.init_root(tmp_path / "impostor", "Update Root", PASSPHRASE)
    for _ in range(5):  # a higher number than anything held changes nothing
        forged = crlmod.build_crl(impostor, NOW)
    with pytest.raises(CrlUpdateRefused) as err:
        crlmod.judge_crl_update(pem_of(forged), [crlmod.build_crl(root, NOW)], [root.certificate])
    assert err.value.code == "PKI_CRL_UNTRUSTED"
    with pytest.raises(CrlUpdateRefused):  # nor is a CRL of a CA this node does not know at all
        crlmod.judge_crl_update(pem_of(crlmod.build_crl(impostor, NOW)), [], [])


def test_only_a_ca_certificate_may_vouch_for_a_crl(env):
    _, root, _, _, _ = env
    crl = crlmod.build_crl(root, NOW)
    assert crlmod.judge_crl_update(pem_of(crl), [], [root.certificate])
    # A leaf certificate under the CA's very name and key (not a CA, no cRLSign) does not vouch for it.
    leaf = root.issue(root.certificate.public_key(), root.certificate.subject, profiles.SEAL)
    assert crl.is_signature_valid(leaf.public_key())
    with pytest.raises(CrlUpdateRefused) as err:
        crlmod.judge_crl_update(pem_of(crl), [], [leaf])
    assert err.value.code == "PKI_CRL_UNTRUSTED"


def test_a_crl_leaving_a_ca_out_is_incomplete_and_garbage_is_malformed(env):
    _, root, county, _, _ = env
    held = [crlmod.build_crl(root, NOW), crlmod.build_crl(county, NOW)]
    with pytest.raises(CrlUpdateRefused) as err:
        crlmod.judge_crl_update(pem_of(crlmod.build_crl(root, NOW)), held, [root.certificate, county.certificate])
    assert err.value.code == "PKI_CRL_INCOMPLETE"
    with pytest.raises(MalformedEncoding) as bad:
        crlmod.judge_crl_update(b"<html>not a crl</html>", held, [root.certificate])
    assert bad.value.code == "PKI_CRL_MALFORMED"


def test_a_stale_crl_still_proves_revocation_when_accepting_stale(env):
    _, root, _, good, bad = env
    stale = crlmod.build_crl(root, NOW - dt.timedelta(days=10), dt.timedelta(days=1))
    with pytest.raises(RevocationStale):
        CrlChecker([stale])(good, root.certificate, NOW)
    lenient = CrlChecker([stale], accept_stale=True)
    lenient(good, root.certificate, NOW)
    with pytest.raises(CertificateRevoked):
        lenient(bad, root.certificate, NOW)


def test_the_crl_view_answers_good_revoked_and_unknown_signed_by_the_delegated_signer(env, tmp_path):
    base, root, _, good, bad = env
    signer = ocsp_signer.issue(root, base / "ocsp", PASSPHRASE)
    again = ocsp_signer.open_directory(base / "ocsp", PASSPHRASE)
    assert again.certificate == signer.certificate and again.issuer == root.certificate
    with pytest.raises(DirectorySignerExists):
        ocsp_signer.issue(root, base / "ocsp", PASSPHRASE)
    view = ocsp.CrlView(root.certificate, crlmod.build_crl(root, NOW))

    def single(cert, issuer):
        data = ocsp.respond(ocsp.make_request(cert, issuer), view, again.signer, NOW)
        return next(xocsp.load_der_ocsp_response(data).responses), data

    status, data = single(good, root.certificate)
    assert status.certificate_status is xocsp.OCSPCertStatus.GOOD
    check_ocsp(good, root.certificate, data, NOW)  # the delegated signer is accepted by our verifier
    status, _ = single(bad, root.certificate)
    assert status.certificate_status is xocsp.OCSPCertStatus.REVOKED
    assert status.revocation_reason.name == "key_compromise"
    other = CertificateAuthority.init_root(tmp_path / "other", "Other", PASSPHRASE)
    foreign = other.issue_seal_certificate("91350100M000100Y43", "外", other.algorithm.generate().public_key())
    status, _ = single(foreign, other.certificate)
    assert status.certificate_status is xocsp.OCSPCertStatus.UNKNOWN
