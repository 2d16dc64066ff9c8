"""pki.crl: CRLs read and verified by openssl, numbered, with reasons."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pki import crl as crlmod
from pki.ca import CertificateAuthority
from pki.errors import MalformedEncoding
from tests.support import PASSPHRASE

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(params=["ecdsa-p256-sha256", "rsa3072-sha256"], scope="module")
def ca_pair(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("crl")
    root = CertificateAuthority.init_root(base / "root", "CRL Root", PASSPHRASE, algorithm=request.param)
    return base, root


def _leaf(ca: CertificateAuthority) -> x509.Certificate:
    return ca.issue_seal_certificate("91350100M000100Y43", "测试单位", ca.algorithm.generate().public_key())


def openssl_text(path, ca_file) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "crl", "-in", str(path), "-noout", "-text", "-CAfile", str(ca_file)],
                          capture_output=True, text=True)


def test_openssl_verifies_crl_and_lists_revoked_serial_with_reason(ca_pair):
    base, ca = ca_pair
    leaf, other = _leaf(ca), _leaf(ca)
    ca.revoke(leaf, "key_compromise", NOW)
    crl = crlmod.build_crl(ca, NOW)
    (base / "c.pem").write_bytes(crlmod.crl_pem(crl))
    result = openssl_text(base / "c.pem", base / "root" / "root.crt")
    assert "verify OK" in result.stderr + result.stdout, result.stderr
    assert f"{leaf.serial_number:X}" in result.stdout
    assert f"{other.serial_number:X}" not in result.stdout
    assert "Key Compromise" in result.stdout
    assert "Authority Key Identifier" in result.stdout


def test_der_output_also_read_by_openssl(ca_pair):
    base, ca = ca_pair
    (base / "c.der").write_bytes(crlmod.crl_der(crlmod.build_crl(ca, NOW)))
    result = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(base / "c.der"), "-noout",
                             "-CAfile", str(base / "root" / "root.crt")], capture_output=True, text=True)
    assert "verify OK" in result.stderr + result.stdout


def test_openssl_detects_a_tampered_crl(ca_pair):
    base, ca = ca_pair
    ca.revoke(_leaf(ca), "superseded", NOW)
    der = bytearray(crlmod.crl_der(crlmod.build_crl(ca, NOW)))
    der[-3] ^= 0x01  # inside the signature
    (base / "t.der").write_bytes(bytes(der))
    result = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(base / "t.der"), "-noout",
                             "-CAfile", str(base / "root" / "root.crt")], capture_output=True, text=True)
    assert "verify OK" not in result.stderr + result.stdout


def test_crl_numbers_increase_and_validity_window_is_set(ca_pair):
    _, ca = ca_pair
    first = crlmod.build_crl(ca, NOW)
    second = crlmod.build_crl(ca, NOW, next_update_in=dt.timedelta(hours=1))
    number = lambda c: c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(second) == number(first) + 1
    assert second.next_update_utc == NOW + dt.timedelta(hours=1)
    assert second.last_update_utc <= NOW


def test_unspecified_reason_is_omitted(ca_pair):
    _, ca = ca_pair
    leaf = _leaf(ca)
    ca.revoke(leaf, "unspecified", NOW)
    entry = crlmod.build_crl(ca, NOW).get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry is not None and entry.revocation_date_utc == NOW
    with pytest.raises(x509.ExtensionNotFound):
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_load_crl_round_trips_and_rejects_garbage(ca_pair):
    _, ca = ca_pair
    crl = crlmod.build_crl(ca, NOW)
    assert crlmod.load_crl(crlmod.crl_pem(crl)) == crlmod.load_crl(crlmod.crl_der(crl))
    with pytest.raises(MalformedEncoding):
        crlmod.load_crl(b"not a crl")


def test_load_crls_reads_every_crl_of_a_concatenated_file(ca_pair, tmp_path):
    """A node's crl.pem holds the root's CRL and each intermediate's, one after the other."""
    _, root = ca_pair
    inter = root.create_intermediate(tmp_path / "inter", "CRL County CA", PASSPHRASE)
    root_crl, inter_crl = crlmod.build_crl(root, NOW), crlmod.build_crl(inter, NOW)
    bundle = crlmod.crl_pem(root_crl) + b"\n" + crlmod.crl_pem(inter_crl)
    assert [c.issuer for c in crlmod.load_crls(bundle)] == [root.certificate.subject, inter.certificate.subject]
    assert crlmod.load_crls(crlmod.crl_der(inter_crl)) == [inter_crl]
    with pytest.raises(MalformedEncoding) as refused:
        crlmod.load_crls(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert refused.value.code == "PKI_CRL_MALFORMED"


def test_crl_numbers_never_repeat_across_two_openings_of_one_ca(ca_pair):
    """A node's test harness keeps the CA open while the operator runs `gwx pki crl` on the same
    directory: each must take a number the other has not (a repeated or lower number would be
    refused downstream as a rollback, pki.crl.judge_crl_update)."""
    _, ca = ca_pair
    other = CertificateAuthority.open(ca.directory, PASSPHRASE)
    numbers = [crlmod.crl_number(crlmod.build_crl(opened, NOW)) for opened in (ca, other, ca, other)]
    assert numbers == sorted(set(numbers)), numbers


def test_current_crl_is_the_latest_published_until_something_is_revoked(tmp_path):
    ca = CertificateAuthority.init_root(tmp_path / "root", "Latest Root", PASSPHRASE)
    published = crlmod.publish_crl(ca, NOW)
    again = crlmod.current_crl(ca, NOW + dt.timedelta(days=1))
    # the same CRL, same number: a node made now agrees with what the root node serves
    assert crlmod.crl_number(again) == crlmod.crl_number(published)
    assert again.public_bytes(serialization.Encoding.DER) == published.public_bytes(serialization.Encoding.DER)
    ca.revoke(_leaf(ca), "key_compromise", NOW)
    fresh = crlmod.current_crl(ca, NOW + dt.timedelta(days=1))
    assert crlmod.crl_number(fresh) > crlmod.crl_number(published)
    assert len(fresh) == 1


def test_current_crl_is_the_published_one_until_it_expires(tmp_path):
    # Late in its life it is still what the root node serves: a node made then must agree with it.
    ca = CertificateAuthority.init_root(tmp_path / "root", "Aging Root", PASSPHRASE)
    published = crlmod.publish_crl(ca, NOW, dt.timedelta(days=7))
    late = crlmod.current_crl(ca, NOW + dt.timedelta(days=6))
    assert crlmod.crl_number(late) == crlmod.crl_number(published)
    expired = crlmod.current_crl(ca, NOW + dt.timedelta(days=7))
    assert crlmod.crl_number(expired) > crlmod.crl_number(published)
    assert expired.next_update_utc > published.next_update_utc
