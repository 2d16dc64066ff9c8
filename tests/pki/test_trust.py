"""Trust decisions: each way a path can fail is its own typed error."""

from __future__ import annotations

import datetime as dt

import pytest

from pki.certificates import utcnow
from pki.crl import build_crl
from pki.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    CertificateUntrusted,
    CertificateWrongUsage,
    RevocationUnknown,
)
from pki.revocation import CrlChecker
from pki.trust import Purpose, TrustStore, verify_certificate
from tests.support import PASSPHRASE

UNIT = "11100000000013127D"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    from pki.ca import CertificateAuthority

    base = tmp_path_factory.mktemp("trust")
    root = CertificateAuthority.init_root(base / "root", "根CA", PASSPHRASE)
    inter = root.create_intermediate(base / "inter", "市级CA", PASSPHRASE)
    creds = inter.issue_node("county", "127.0.0.1", base / "node", PASSPHRASE)
    return root, inter, creds


def test_leaf_through_intermediate_verifies(network):
    root, inter, creds = network
    path = verify_certificate(creds.tls_certificate, TrustStore.of([root.certificate]), utcnow(),
                              intermediates=[inter.certificate], purpose=Purpose.TLS_SERVER)
    assert path == [creds.tls_certificate, inter.certificate, root.certificate]


def test_missing_intermediate_is_untrusted(network):
    root, _, creds = network
    with pytest.raises(CertificateUntrusted):
        verify_certificate(creds.tls_certificate, TrustStore.of([root.certificate]), utcnow())


def test_other_network_is_untrusted(network, make_ca):
    _, inter, creds = network
    other = make_ca("别的网络")
    with pytest.raises(CertificateUntrusted):
        verify_certificate(creds.tls_certificate, TrustStore.of([other.certificate]), utcnow(),
                           intermediates=[inter.certificate])


def test_forged_issuer_name_is_untrusted(network, make_ca, tmp_path):
    """A CA that copies our root's name but has another key must not be accepted."""
    root, _, _ = network
    fake = make_ca(root.name)
    fake_leaf = fake.issue_node("evil", "127.0.0.1", tmp_path / "evil", PASSPHRASE).tls_certificate
    assert fake_leaf.issuer == root.certificate.subject
    with pytest.raises(CertificateUntrusted):
        verify_certificate(fake_leaf, TrustStore.of([root.certificate]), utcnow())


def test_expired_and_not_yet_valid(network):
    root, inter, creds = network
    store = TrustStore.of([root.certificate])
    leaf = creds.signing_certificate
    with pytest.raises(CertificateExpired):
        verify_certificate(leaf, store, leaf.not_valid_after_utc + dt.timedelta(seconds=1), [inter.certificate])
    with pytest.raises(CertificateNotYetValid):
        verify_certificate(leaf, store, leaf.not_valid_before_utc - dt.timedelta(seconds=1), [inter.certificate])


def test_purposes(network):
    root, inter, creds = network
    store = TrustStore.of([root.certificate])
    now = utcnow()
    verify_certificate(creds.signing_certificate, store, now, [inter.certificate], Purpose.SIGNING)
    verify_certificate(creds.encryption_certificate, store, now, [inter.certificate], Purpose.ENCRYPTION)
    with pytest.raises(CertificateWrongUsage):
        verify_certificate(creds.signing_certificate, store, now, [inter.certificate], Purpose.TLS_CLIENT)
    with pytest.raises(CertificateWrongUsage):
        verify_certificate(creds.encryption_certificate, store, now, [inter.certificate], Purpose.SIGNING)
    with pytest.raises(CertificateWrongUsage):
        verify_certificate(creds.tls_certificate, store, now, [inter.certificate], Purpose.TIME_STAMPING)


def test_non_ca_certificate_cannot_issue(network, tmp_path):
    """A leaf used as an issuer (same name trick) is refused even if its signature checks."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from pki.keystore import read_private_key

    root, inter, creds = network
    leaf_key = read_private_key(creds.directory / "sign.key", PASSPHRASE)
    sub_key = root.algorithm.generate()
    forged = (x509.CertificateBuilder().subject_name(x509.Name([]))
              .issuer_name(creds.signing_certificate.subject).public_key(sub_key.public_key())
              .serial_number(1).not_valid_before(utcnow() - dt.timedelta(hours=1))
              .not_valid_after(utcnow() + dt.timedelta(days=1)).sign(leaf_key, hashes.SHA256()))
    with pytest.raises(CertificateUntrusted):
        verify_certificate(forged, TrustStore.of([root.certificate]), utcnow(),
                           intermediates=[creds.signing_certificate, inter.certificate])


def test_revocation_check_is_asked_for_every_link(network):
    root, inter, creds = network
    asked = []

    def revocation(cert, issuer, now):
        asked.append((cert.serial_number, issuer.serial_number))
        if cert == inter.certificate:
            raise CertificateRevoked("intermediate revoked")

    with pytest.raises(CertificateRevoked):
        verify_certificate(creds.tls_certificate, TrustStore.of([root.certificate]), utcnow(),
                           [inter.certificate], revocation=revocation)
    assert asked == [(creds.tls_certificate.serial_number, inter.certificate.serial_number),
                     (inter.certificate.serial_number, root.certificate.serial_number)]


def test_a_certificate_whose_name_does_not_decode_is_refused_not_a_crash(network):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    root, inter, creds = network
    der = creds.tls_certificate.public_bytes(Encoding.DER)
    # "county" is the leaf's CN, a UTF8String: replace its bytes with invalid UTF-8 of the same length.
    at = der.index(b"county")
    broken = x509.load_der_x509_certificate(der[:at] + b"\xff\xfe\xfd\xfc\xfb\xfa" + der[at + 6:])
    with pytest.raises(CertificateUntrusted):
        verify_certificate(broken, TrustStore.of([root.certificate]), utcnow(), [inter.certificate])


def test_a_node_tls_or_service_key_cannot_pass_as_a_signing_or_seal_key(network, root_ca):
    """The TLS certificate names the node too: it must not sign envelope headers or receipts."""
    root, inter, creds = network
    store = TrustStore.of([root.certificate])
    for cert in (creds.tls_certificate,):
        with pytest.raises(CertificateWrongUsage):
            verify_certificate(cert, store, utcnow(), [inter.certificate], Purpose.SIGNING)
        with pytest.raises(CertificateWrongUsage):
            verify_certificate(cert, store, utcnow(), [inter.certificate], Purpose.SEAL)
    # The node's own signing certificate is a signing certificate but not a seal's.
    verify_certificate(creds.signing_certificate, store, utcnow(), [inter.certificate], Purpose.SIGNING)
    with pytest.raises(CertificateWrongUsage):
        verify_certificate(creds.signing_certificate, store, utcnow(), [inter.certificate], Purpose.SEAL)
    roots = TrustStore.of([root_ca.certificate])
    for service in (root_ca.tsa_signer().certificate, root_ca.ocsp_responder_signer().certificate):
        for purpose in (Purpose.SIGNING, Purpose.SEAL):
            with pytest.raises(CertificateWrongUsage):
                verify_certificate(service, roots, utcnow(), (), purpose)
    seal_cert = root_ca.issue_seal_certificate("11100000000013127D", "单位", root_ca.algorithm.generate().public_key())
    verify_certificate(seal_cert, roots, utcnow(), (), Purpose.SEAL)
    with pytest.raises(CertificateWrongUsage):
        verify_certificate(seal_cert, roots, utcnow(), (), Purpose.SIGNING)


def test_only_the_seal_maker_may_make_seals(root_ca):
    """A unit's seal key must not be able to sign SESeal structures for other units."""
    roots = TrustStore.of([root_ca.certificate])
    maker = root_ca.seal_maker_signer().certificate
    verify_certificate(maker, roots, utcnow(), (), Purpose.SEAL_MAKING)
    with pytest.raises(CertificateWrongUsage):
        verify_certificate(maker, roots, utcnow(), (), Purpose.SEAL)  # nor is the maker a unit's seal
    seal_cert = root_ca.issue_seal_certificate("11100000000013127D", "单位", root_ca.algorithm.generate().public_key())
    with pytest.raises(CertificateWrongUsage):
        verify_certificate(seal_cert, roots, utcnow(), (), Purpose.SEAL_MAKING)


class CountingCrlChecker(CrlChecker):
    def __init__(self, crls) -> None:
        super().__init__(crls)
        self.asked = 0

    def __call__(self, cert, issuer, now) -> None:
        self.asked += 1
        super().__call__(cert, issuer, now)


def test_a_valid_verdict_is_remembered_only_while_nothing_it_rests_on_changes(tmp_path):
    from pki.ca import CertificateAuthority

    now = utcnow()
    root = CertificateAuthority.init_root(tmp_path / "root", "根CA", PASSPHRASE, now=now - dt.timedelta(days=1))
    inter = root.create_intermediate(tmp_path / "inter", "市级CA", PASSPHRASE)
    leaf = inter.issue_node("county", "127.0.0.1", tmp_path / "node", PASSPHRASE).tls_certificate
    trust, chain = TrustStore.of([root.certificate]), [inter.certificate]
    crls = [build_crl(root, now - dt.timedelta(hours=1)), build_crl(inter, now - dt.timedelta(hours=1))]
    checker = CountingCrlChecker(crls)

    def judge(at, revocation=checker):
        return verify_certificate(leaf, trust, at, chain, Purpose.TLS_SERVER, revocation)

    path = judge(now)
    assert checker.asked == 2
    assert judge(now + dt.timedelta(minutes=5)) == path and checker.asked == 2  # remembered: not asked again
    with pytest.raises(CertificateExpired):  # past the leaf's notAfter: judged again, and refused
        judge(leaf.not_valid_after_utc + dt.timedelta(seconds=1))
    with pytest.raises(RevocationUnknown):  # past the CRLs' nextUpdate: stale, whatever was remembered
        judge(min(c.next_update_utc for c in crls) + dt.timedelta(seconds=1))
    inter.revoke(leaf, "key_compromise", now=now)
    revoked = CrlChecker([build_crl(root, now), build_crl(inter, now)])  # a new CRL: another key
    for _ in range(2):  # and a failure is never remembered as anything
        with pytest.raises(CertificateRevoked):
            judge(now + dt.timedelta(minutes=5), revoked)
    asked = []
    for _ in range(2):  # a check without a verdict token (OCSP, a function): asked every time
        judge(now, lambda cert, issuer, at: asked.append(cert))
    assert len(asked) == 4


def test_a_ca_chain_judged_for_one_leaf_serves_the_next_leaf_under_it_but_each_leaf_is_judged(tmp_path):
    from pki.ca import CertificateAuthority

    now = utcnow()
    root = CertificateAuthority.init_root(tmp_path / "root", "根CA", PASSPHRASE, now=now - dt.timedelta(days=1))
    inter = root.create_intermediate(tmp_path / "inter", "县级CA", PASSPHRASE)
    first, second, revoked, signing = (
        inter.issue_node(name, f"127.0.0.{i}", tmp_path / name, PASSPHRASE)
        for i, name in enumerate(("a", "b", "c", "d"), start=1))
    revoked = revoked.tls_certificate
    inter.revoke(revoked, "key_compromise", now=now)
    trust = TrustStore.of([root.certificate])
    checker = CountingCrlChecker([build_crl(root, now), build_crl(inter, now)])
    at = now + dt.timedelta(minutes=5)

    def judge(leaf, purpose=Purpose.TLS_SERVER, revocation=checker):
        # as a CMS signature offers it: the leaf itself among the certificates that came with it
        return verify_certificate(leaf, trust, at, [leaf, inter.certificate], purpose, revocation)

    assert judge(first.tls_certificate) == [first.tls_certificate, inter.certificate, root.certificate]
    assert checker.asked == 2  # the leaf, and the county CA under the root
    assert judge(second.tls_certificate) == [second.tls_certificate, inter.certificate, root.certificate]
    assert checker.asked == 3  # the new leaf alone: the CA's chain was judged already
    for _ in range(2):  # the leaf's own revocation, every time (a failure is never remembered)
        with pytest.raises(CertificateRevoked):
            judge(revoked)
    with pytest.raises(CertificateWrongUsage):  # and its own purpose: a signing certificate is no TLS server's
        judge(signing.signing_certificate)
    root.revoke(inter.certificate, "ca_compromise", now=now)
    fresh = CountingCrlChecker([build_crl(root, now), build_crl(inter, now)])  # new CRLs: the chain judged anew
    with pytest.raises(CertificateRevoked):
        judge(signing.tls_certificate, revocation=fresh)
    with pytest.raises(CertificateRevoked):
        judge(first.tls_certificate, revocation=fresh)


def test_a_remembered_path_is_only_for_the_intermediates_it_was_judged_with(network):
    """Paths are found by leaf, store, purpose and revocation token, then by the intermediates offered:
    a leaf judged with its CA offered does not chain when asked again without it."""
    root, inter, creds = network
    trust, now = TrustStore.of([root.certificate]), utcnow()
    checker = CrlChecker([build_crl(root, now), build_crl(inter, now)])
    leaf = creds.tls_certificate
    assert verify_certificate(leaf, trust, now, [inter.certificate], Purpose.TLS_SERVER, checker)[1] == inter.certificate
    for offered in ([], [root.certificate]):
        with pytest.raises(CertificateUntrusted):
            verify_certificate(leaf, trust, now, offered, Purpose.TLS_SERVER, checker)
    assert verify_certificate(leaf, trust, now, (inter.certificate,), Purpose.TLS_SERVER, checker)[1] == inter.certificate
