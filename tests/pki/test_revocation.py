"""pki.revocation: judging CRLs and OCSP responses, and the checkers pki.trust takes."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import ocsp as aocsp
from cryptography import x509

from pki import crl as crlmod
from pki import ocsp
from pki.ca import CertificateAuthority
from pki.errors import (
    CertificateRevoked,
    CrlBadSignature,
    OcspBadSignature,
    RevocationStale,
    RevocationUnknown,
)
from pki.revocation import (
    _SET_AFTER,
    CrlChecker,
    CrlCheckerAt,
    OcspChecker,
    check_crl,
    check_ocsp,
    first_conclusive,
)
from pki.trust import TrustStore, verify_certificate
from tests.support import PASSPHRASE

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("rev")
    root = CertificateAuthority.init_root(base / "root", "Rev Root", PASSPHRASE)
    ca = root.create_intermediate(base / "int", "County CA", PASSPHRASE)
    new = lambda: ca.issue_seal_certificate(  # noqa: E731
        "91350100M000100Y43", "单位", ca.algorithm.generate().public_key())
    good, bad = new(), new()
    ca.revoke(bad, "key_compromise", NOW - dt.timedelta(hours=2))
    return root, ca, good, bad


def test_crl_good_and_revoked_with_reason_and_date(env):
    _, ca, good, bad = env
    crl = crlmod.build_crl(ca, NOW)
    check_crl(good, ca.certificate, crl, NOW)
    with pytest.raises(CertificateRevoked) as err:
        check_crl(bad, ca.certificate, crl, NOW)
    assert err.value.code == "PKI_CERT_REVOKED"
    assert err.value.details["reason"] == "key_compromise"
    assert err.value.details["revoked_at"] == (NOW - dt.timedelta(hours=2)).isoformat()


def test_tampered_crl_is_a_bad_signature(env):
    _, ca, good, _ = env
    der = bytearray(crlmod.crl_der(crlmod.build_crl(ca, NOW)))
    der[-3] ^= 0x01
    with pytest.raises(CrlBadSignature) as err:
        check_crl(good, ca.certificate, x509.load_der_x509_crl(bytes(der)), NOW)
    assert err.value.code == "PKI_CRL_BAD_SIGNATURE"


def test_crl_signed_by_another_key_with_the_same_name_is_refused(env, tmp_path):
    _, ca, good, _ = env
    impostor = CertificateAuthority.init_root(tmp_path / "imp", "County CA", PASSPHRASE)  # different key
    forged = crlmod.build_crl(impostor, NOW)
    with pytest.raises(RevocationUnknown):  # other issuer DN (O differs) or bad signature: never "good"
        check_crl(good, ca.certificate, forged, NOW)


def test_stale_crl_and_future_crl(env):
    _, ca, good, _ = env
    crl = crlmod.build_crl(ca, NOW, next_update_in=dt.timedelta(hours=1))
    with pytest.raises(RevocationStale) as err:
        check_crl(good, ca.certificate, crl, NOW + dt.timedelta(hours=2))
    assert err.value.code == "PKI_REVOCATION_STALE"
    assert isinstance(err.value, RevocationUnknown)
    with pytest.raises(RevocationStale):
        check_crl(good, ca.certificate, crl, NOW - dt.timedelta(hours=1))


def test_crl_checker_picks_the_issuers_newest_usable_crl(env):
    root, ca, good, bad = env
    old = crlmod.build_crl(ca, NOW - dt.timedelta(days=30))  # stale
    fresh = crlmod.build_crl(ca, NOW)
    root_crl = crlmod.build_crl(root, NOW)
    checker = CrlChecker([old, root_crl, fresh])
    checker(good, ca.certificate, NOW)
    with pytest.raises(CertificateRevoked):
        checker(bad, ca.certificate, NOW)
    with pytest.raises(RevocationStale):
        CrlChecker([old])(good, ca.certificate, NOW)
    with pytest.raises(RevocationUnknown):
        CrlChecker([root_crl])(good, ca.certificate, NOW)


def test_trust_path_uses_the_crl_checker(env):
    root, ca, good, bad = env
    checker = CrlChecker([crlmod.build_crl(ca, NOW), crlmod.build_crl(root, NOW)])
    store = TrustStore.of([root.certificate])
    assert verify_certificate(good, store, NOW, [ca.certificate], revocation=checker)[0] == good
    with pytest.raises(CertificateRevoked):
        verify_certificate(bad, store, NOW, [ca.certificate], revocation=checker)


def test_ocsp_delegated_responder_good_revoked_and_nonce(env):
    _, ca, good, bad = env
    signer = ca.ocsp_responder_signer()
    resp = ocsp.respond(ocsp.make_request(good, ca.certificate, b"n" * 16), ca, signer, NOW)
    check_ocsp(good, ca.certificate, resp, NOW, nonce=b"n" * 16)
    with pytest.raises(RevocationUnknown) as err:
        check_ocsp(good, ca.certificate, resp, NOW, nonce=b"m" * 16)  # replayed answer to another request
    assert err.value.code == "PKI_OCSP_NONCE_MISMATCH"
    resp = ocsp.respond(ocsp.make_request(bad, ca.certificate), ca, signer, NOW)
    with pytest.raises(CertificateRevoked) as err:
        check_ocsp(bad, ca.certificate, resp, NOW)
    assert err.value.details["reason"] == "key_compromise" and err.value.details["source"] == "ocsp"


def test_ocsp_signed_by_the_issuer_itself_is_accepted(env):
    _, ca, good, _ = env
    resp = ocsp.respond(ocsp.make_request(good, ca.certificate), ca, ca.signer(), NOW)
    check_ocsp(good, ca.certificate, resp, NOW)


def test_ocsp_from_wrong_responders_is_a_bad_signature(env, tmp_path):
    root, ca, good, _ = env
    request = ocsp.make_request(good, ca.certificate)
    stranger = CertificateAuthority.init_root(tmp_path / "s", "Stranger", PASSPHRASE).ocsp_responder_signer()
    with pytest.raises(OcspBadSignature):
        check_ocsp(good, ca.certificate, ocsp.respond(request, ca, stranger, NOW), NOW)
    # the root's responder is real, but delegated by the root, not by the certificate's issuer
    with pytest.raises(OcspBadSignature):
        check_ocsp(good, ca.certificate, ocsp.respond(request, ca, root.ocsp_responder_signer(), NOW), NOW)
    # a certificate the issuer signed, but without OCSPSigning
    tsa = ca.tsa_signer()
    with pytest.raises(OcspBadSignature):
        check_ocsp(good, ca.certificate, ocsp.respond(request, ca, tsa, NOW), NOW)


def test_tampered_and_stale_ocsp(env):
    _, ca, good, _ = env
    resp = bytes(ocsp.respond(ocsp.make_request(good, ca.certificate), ca, ca.ocsp_responder_signer(), NOW))
    stale_at = NOW + ocsp.DEFAULT_VALIDITY + dt.timedelta(minutes=1)
    with pytest.raises(RevocationStale):
        check_ocsp(good, ca.certificate, bytes(resp), stale_at)
    parsed = aocsp.OCSPResponse.load(bytes(resp))
    basic = parsed["response_bytes"]["response"].parsed
    tbs = basic["tbs_response_data"]
    tbs["produced_at"] = NOW + dt.timedelta(seconds=1)  # alter what was signed, keep the signature
    tampered = aocsp.OCSPResponse({"response_status": "successful", "response_bytes": {
        "response_type": "basic_ocsp_response", "response": aocsp.BasicOCSPResponse({
            "tbs_response_data": aocsp.ResponseData.load(tbs.dump(force=True)),
            "signature_algorithm": basic["signature_algorithm"], "signature": basic["signature"],
            "certs": basic["certs"]})}}).dump()
    with pytest.raises(OcspBadSignature):
        check_ocsp(good, ca.certificate, tampered, NOW)


def test_ocsp_unknown_malformed_and_error_statuses(env, tmp_path):
    _, ca, good, _ = env
    other = CertificateAuthority.init_root(tmp_path / "o", "Other", PASSPHRASE)
    foreign = other.issue_seal_certificate("91350100M000100Y43", "x", other.algorithm.generate().public_key())
    resp = ocsp.respond(ocsp.make_request(foreign, other.certificate), other, other.ocsp_responder_signer(), NOW)
    with pytest.raises(RevocationUnknown):  # a valid response, but about another certificate
        check_ocsp(good, ca.certificate, resp, NOW)
    with pytest.raises(RevocationUnknown) as err:
        check_ocsp(good, ca.certificate, b"garbage", NOW)
    assert err.value.code == "PKI_OCSP_MALFORMED"
    with pytest.raises(RevocationUnknown):
        check_ocsp(good, ca.certificate, ocsp.respond(b"junk", ca, ca.ocsp_responder_signer(), NOW), NOW)


def test_ocsp_checker_with_injected_fetch_and_fallback_to_crl(env):
    _, ca, good, bad = env
    signer = ca.ocsp_responder_signer()
    seen = []

    def fetch(request: bytes) -> bytes:
        seen.append(request)
        return ocsp.respond(request, ca, signer, NOW)

    checker = OcspChecker(fetch)
    checker(good, ca.certificate, NOW)
    with pytest.raises(CertificateRevoked):
        checker(bad, ca.certificate, NOW)
    assert len(seen) == 2 and seen[0] != seen[1]

    def down(request: bytes) -> bytes:
        raise ConnectionRefusedError("responder down")

    with pytest.raises(RevocationUnknown):
        OcspChecker(down)(good, ca.certificate, NOW)
    both = first_conclusive(OcspChecker(down), CrlChecker([crlmod.build_crl(ca, NOW)]))
    both(good, ca.certificate, NOW)
    with pytest.raises(CertificateRevoked):
        both(bad, ca.certificate, NOW)


def test_ocsp_checker_refuses_a_replayed_response(env):
    _, ca, good, _ = env
    old = ocsp.respond(ocsp.make_request(good, ca.certificate, b"x" * 16), ca, ca.ocsp_responder_signer(), NOW)
    with pytest.raises(RevocationUnknown) as err:
        OcspChecker(lambda request: old)(good, ca.certificate, NOW)
    assert err.value.code == "PKI_OCSP_NONCE_MISMATCH"


def test_remembered_crl_signatures_cannot_vouch_for_another_crl(env):
    """The authentic CRL is accepted (and its signature remembered); a CRL differing in one byte of
    its signature is still refused afterwards, and an authentic CRL's answer never carries over."""
    _, ca, good, bad = env
    authentic = crlmod.build_crl(ca, NOW)
    check_crl(good, ca.certificate, authentic, NOW)
    check_crl(good, ca.certificate, authentic, NOW)  # remembered
    der = bytearray(crlmod.crl_der(authentic))
    der[-3] ^= 0x01
    with pytest.raises(CrlBadSignature):
        check_crl(good, ca.certificate, x509.load_der_x509_crl(bytes(der)), NOW)
    with pytest.raises(CertificateRevoked):  # revocation itself is never remembered
        check_crl(bad, ca.certificate, authentic, NOW)


class _CountingCrl:
    """A CRL that counts how often its issuer name is decoded (the costly part of matching it)."""

    def __init__(self, crl: x509.CertificateRevocationList) -> None:
        self._crl, self.issuer_reads = crl, 0

    @property
    def issuer(self) -> x509.Name:
        self.issuer_reads += 1
        return self._crl.issuer

    def __getattr__(self, name):
        return getattr(self._crl, name)


def test_a_checker_matches_its_crls_to_an_issuer_once_and_judges_every_certificate_afresh(env, tmp_path):
    """Which CRLs are the issuer's is worked out at the first certificate of that issuer, not again
    for each (the CRLs of three other CAs beside it); yet every certificate still gets its own verdict:
    the revoked one is refused each time, before and after the good one."""
    root, ca, good, bad = env
    others = [root.create_intermediate(tmp_path / f"other-{i}", f"Other CA {i}", PASSPHRASE)
              for i in range(2)]
    crls = [_CountingCrl(crlmod.build_crl(c, NOW)) for c in [root, *others, ca]]
    checker = CrlChecker(crls)
    rounds = []
    for _ in range(50):
        with pytest.raises(CertificateRevoked):
            checker(bad, ca.certificate, NOW)
        checker(good, ca.certificate, NOW)
        rounds.append([c.issuer_reads for c in crls])
    assert rounds[-1] == rounds[0]  # was two more each round for every CRL: each name, each call
    assert max(rounds[0]) <= 2  # matching (and the ca's authenticated once)
    with pytest.raises(RevocationStale):  # the window is the moment's, never remembered
        checker(good, ca.certificate, NOW + dt.timedelta(days=30))
    checker(good, ca.certificate, NOW)


class _LookupCountingCrl(_CountingCrl):
    """A CRL that counts its serial-number lookups (pyca walks every entry for each)."""

    lookups = 0

    def get_revoked_certificate_by_serial_number(self, serial: int):
        self.lookups += 1
        return self._crl.get_revoked_certificate_by_serial_number(serial)


def test_a_checker_reads_a_crls_serials_once_and_refuses_a_listed_certificate_as_the_crl_says(env):
    """Once a checker has asked a CRL about a few certificates, an unlisted certificate passes without a
    walk through the CRL's entries (pyca's lookup is one per call, over every entry); a listed one is
    refused each time with the entry's reason and dates, exactly as :func:`check_crl` refuses it."""
    _, ca, good, bad = env
    crl = _LookupCountingCrl(crlmod.build_crl(ca, NOW))
    checker = CrlChecker([crl])
    for _ in range(40):
        checker(good, ca.certificate, NOW)
    assert crl.lookups == _SET_AFTER - 1  # the first few asked the CRL (a one-off check stays cheap); was 40
    with pytest.raises(CertificateRevoked) as direct:
        check_crl(bad, ca.certificate, crlmod.build_crl(ca, NOW), NOW)
    for _ in range(2):
        with pytest.raises(CertificateRevoked) as err:
            checker(bad, ca.certificate, NOW)
        assert err.value.code == "PKI_CERT_REVOKED" and err.value.details == direct.value.details
    assert crl.lookups == _SET_AFTER + 1
    with pytest.raises(RevocationStale):  # the window still judged at each call, from the CRL read once
        checker(good, ca.certificate, NOW + dt.timedelta(days=30))


def test_a_checker_keeps_refusing_a_forged_crl_and_a_certificate_of_another_issuer(env, tmp_path):
    """A CRL that does not verify is refused on every call (its verdict is not turned into a pass by
    being remembered), and a certificate whose issuer is not the CRLs' is still not judged by them."""
    root, ca, good, _ = env
    der = bytearray(crlmod.crl_der(crlmod.build_crl(ca, NOW)))
    der[-3] ^= 0x01
    checker = CrlChecker([x509.load_der_x509_crl(bytes(der))])
    for _ in range(3):
        with pytest.raises(CrlBadSignature):
            checker(good, ca.certificate, NOW)
    other = root.create_intermediate(tmp_path / "other", "Another County CA", PASSPHRASE)
    foreign = other.issue_seal_certificate("91350100M000100Y43", "单位", other.algorithm.generate().public_key())
    checker = CrlChecker([crlmod.build_crl(ca, NOW)])
    checker(good, ca.certificate, NOW)
    for _ in range(2):
        with pytest.raises(RevocationUnknown) as err:
            checker(foreign, ca.certificate, NOW)
        assert "not by the certificate's issuer" in err.value.message


def test_judged_at_a_past_moment_a_later_crl_is_evidence_and_only_earlier_revocations_count(env):
    # The moment a time-stamp proves: bad was revoked two hours before NOW.
    _, ca, good, bad = env
    later = CrlCheckerAt([crlmod.build_crl(ca, NOW + dt.timedelta(days=400))])  # published more than a year on
    later(good, ca.certificate, NOW - dt.timedelta(hours=3))
    later(bad, ca.certificate, NOW - dt.timedelta(hours=3))  # not yet revoked then
    with pytest.raises(CertificateRevoked):
        later(bad, ca.certificate, NOW - dt.timedelta(hours=1))
    # The present-day checker takes that CRL for a clock problem; the past-moment one does not.
    with pytest.raises(RevocationUnknown):
        CrlChecker([crlmod.build_crl(ca, NOW + dt.timedelta(days=400))])(good, ca.certificate, NOW)
    # A CRL whose window ended before the moment says nothing about it; no CRL of the issuer, neither.
    early = CrlCheckerAt([crlmod.build_crl(ca, NOW - dt.timedelta(days=30), next_update_in=dt.timedelta(days=1))])
    with pytest.raises(RevocationUnknown) as err:
        early(good, ca.certificate, NOW)
    assert err.value.code == "PKI_REVOCATION_STALE"
    with pytest.raises(RevocationUnknown):
        CrlCheckerAt([])(good, ca.certificate, NOW)


@pytest.mark.parametrize("algorithm", [None, "sm2-sm3"])  # the SM2 CRL is assembled by our own code
def test_judged_at_a_past_moment_the_invalidity_date_counts_when_earlier(tmp_path, algorithm):
    """RFC 5280 §5.3.2: a key known to have been compromised since an earlier date was invalid from then."""
    ca = CertificateAuthority.init_root(tmp_path / "ca", "Invalidity Root", PASSPHRASE,
                                        **({"algorithm": algorithm} if algorithm else {}))
    cert = ca.issue_seal_certificate("91350100M000100Y43", "单位", ca.algorithm.generate().public_key())
    ca.revoke(cert, "key_compromise", NOW - dt.timedelta(hours=1), invalid_since=NOW - dt.timedelta(days=2))
    crl = crlmod.build_crl(ca, NOW)
    with pytest.raises(CertificateRevoked) as err:  # revoked an hour ago, but compromised two days ago
        CrlCheckerAt([crl])(cert, ca.certificate, NOW - dt.timedelta(days=1))
    assert err.value.details["invalid_since"] == (NOW - dt.timedelta(days=2)).isoformat()
    CrlCheckerAt([crl])(cert, ca.certificate, NOW - dt.timedelta(days=3))  # before it too: still good


def test_a_tsa_key_compromised_fails_whatever_the_date_another_reason_only_before(tmp_path):
    """A thief of a TSA key can back-date tokens, so its genTime proves nothing (ETSI EN 319 102-1)."""
    ca = CertificateAuthority.init_root(tmp_path / "ca", "TSA Root", PASSPHRASE)
    tsa_cert = ca.tsa_signer().certificate
    seal = ca.issue_seal_certificate("91350100M000100Y43", "单位", ca.algorithm.generate().public_key())
    ca.revoke(tsa_cert, "key_compromise", NOW - dt.timedelta(hours=1))
    ca.revoke(seal, "key_compromise", NOW - dt.timedelta(hours=1))
    checker = CrlCheckerAt([crlmod.build_crl(ca, NOW)])
    with pytest.raises(CertificateRevoked):
        checker(tsa_cert, ca.certificate, NOW - dt.timedelta(days=1))
    checker(seal, ca.certificate, NOW - dt.timedelta(days=1))  # a seal's signature made before stays good
