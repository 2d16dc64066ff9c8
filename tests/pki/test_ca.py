"""The CA's output as other tools see it: openssl accepts what we issue, for the purposes we grant."""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pki.ca import CertificateAuthority
from pki.certificates import load_certificates, node_id_of, unit_code_of
from pki.errors import CaError, InvalidInput, InvalidUnitCode, UnknownCertificate, WrongPassphrase
from pki.keystore import read_private_key
from pki.trust import Purpose, TrustStore, verify_certificate
from tests.support import PASSPHRASE, run_openssl

UNIT = "11100000000013127D"


def test_openssl_accepts_node_tls_certificate_for_server_and_client(root_ca, tmp_path):
    creds = root_ca.issue_node("county-a", "county-a.gov.example", tmp_path / "n", PASSPHRASE)
    for purpose in ("sslserver", "sslclient"):
        out = run_openssl("verify", "-CAfile", root_ca.directory / "root.crt", "-purpose", purpose,
                          tmp_path / "n" / "tls.crt")
        assert b": OK" in out.stdout
    assert node_id_of(creds.tls_certificate) == "county-a"
    san = creds.tls_certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "county-a.gov.example" in san.get_values_for_type(x509.DNSName)


def test_signing_certificate_is_not_a_tls_certificate(root_ca, tmp_path):
    root_ca.issue_node("county-b", "127.0.0.1", tmp_path / "n", PASSPHRASE)
    proc = run_openssl("verify", "-CAfile", root_ca.directory / "root.crt", "-purpose", "sslserver",
                       tmp_path / "n" / "sign.crt", check=False)
    assert proc.returncode != 0
    ku = x509.load_pem_x509_certificate((tmp_path / "n" / "sign.crt").read_bytes()).extensions \
        .get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.content_commitment


def test_node_keys_are_encrypted_and_owner_only(root_ca, tmp_path):
    root_ca.issue_node("county-c", "127.0.0.1", tmp_path / "n", PASSPHRASE)
    for role in ("tls", "sign", "enc"):
        path = tmp_path / "n" / f"{role}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
        with pytest.raises(WrongPassphrase):
            read_private_key(path, b"not the passphrase")
        assert run_openssl("pkey", "-in", path, "-passin", "pass:wrong-one", check=False).returncode != 0
    assert stat.S_IMODE((root_ca.directory / "ca.key").stat().st_mode) == 0o600


def test_intermediate_chain_verifies_with_openssl(root_ca, tmp_path):
    inter = root_ca.create_intermediate(tmp_path / "inter", "兰山区CA", PASSPHRASE)
    inter.issue_node("lanshan", "127.0.0.1", tmp_path / "n", PASSPHRASE)
    # tls.crt carries the intermediate after the leaf: openssl finds it with -untrusted.
    out = run_openssl("verify", "-CAfile", root_ca.directory / "root.crt",
                      "-untrusted", tmp_path / "inter" / "ca.crt", "-purpose", "sslserver", tmp_path / "n" / "tls.crt")
    assert b": OK" in out.stdout
    # The intermediate may not create further CAs (pathlen 0).
    bc = inter.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0


def test_intermediates_per_level_chain_to_the_root(root_ca, tmp_path):
    """A city CA allowed one level below it, county CAs under it: a county node verifies with
    the root alone (openssl, and pki.trust the node uses)."""
    city = root_ca.create_intermediate(tmp_path / "city", "临沂市CA", PASSPHRASE, levels_below=1)
    county = city.create_intermediate(tmp_path / "county", "兰山区CA", PASSPHRASE)
    creds = county.issue_node("lanshan", "127.0.0.1", tmp_path / "n", PASSPHRASE)
    out = run_openssl("verify", "-CAfile", root_ca.directory / "root.crt", "-untrusted", tmp_path / "n" / "tls.crt",
                      "-purpose", "sslclient", tmp_path / "n" / "tls.crt")
    assert b": OK" in out.stdout
    chain = load_certificates((tmp_path / "n" / "tls.crt").read_bytes())
    path = verify_certificate(chain[0], TrustStore.of([root_ca.certificate]), dt.datetime.now(dt.UTC), chain[1:],
                              Purpose.TLS_CLIENT)
    assert [c.subject for c in path] == [creds.tls_certificate.subject, county.certificate.subject,
                                        city.certificate.subject, root_ca.certificate.subject]


def test_a_ca_refuses_to_issue_an_intermediate_no_verifier_would_accept(root_ca, tmp_path):
    county = root_ca.create_intermediate(tmp_path / "county", "兰山区CA", PASSPHRASE)  # levels_below=0
    with pytest.raises(CaError) as refused:
        county.create_intermediate(tmp_path / "town", "枣园镇CA", PASSPHRASE)
    assert refused.value.code == "PKI_CA_PATH_LENGTH"
    assert not (tmp_path / "town" / "ca.key").exists()
    city = root_ca.create_intermediate(tmp_path / "city", "临沂市CA", PASSPHRASE, levels_below=1)
    with pytest.raises(CaError):  # one level below the city CA, not two
        city.create_intermediate(tmp_path / "district", "兰山区CA", PASSPHRASE, levels_below=1)


def test_rsa_ca_issues_rsa_certificates_openssl_accepts(make_ca, tmp_path):
    ca = make_ca(algorithm="rsa3072-sha256")
    creds = ca.issue_node("rsa-node", "127.0.0.1", tmp_path / "n", PASSPHRASE)
    assert creds.tls_certificate.public_key().key_size == 3072
    enc_ku = creds.encryption_certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert enc_ku.key_encipherment and not enc_ku.key_agreement
    run_openssl("verify", "-CAfile", ca.directory / "root.crt", "-purpose", "sslclient", tmp_path / "n" / "tls.crt")


def test_serial_numbers_are_random_and_unique(root_ca):
    key = root_ca.algorithm.generate()
    serials = {root_ca.issue_seal_certificate(UNIT, "临沂市人民政府办公室", key.public_key()).serial_number
               for _ in range(20)}
    assert len(serials) == 20
    assert all(s.bit_length() > 120 for s in serials)


def test_seal_certificate_names_unit_and_code(root_ca):
    key = root_ca.algorithm.generate()
    cert = root_ca.issue_seal_certificate(UNIT.lower(), "临沂市人民政府办公室", key.public_key())
    assert unit_code_of(cert) == UNIT
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "临沂市人民政府办公室"
    with pytest.raises(InvalidUnitCode):
        root_ca.issue_seal_certificate("11100000000013127A", "x", key.public_key())


def test_certificates_never_outlive_their_issuer(make_ca, tmp_path):
    ca = make_ca()
    inter = ca.create_intermediate(tmp_path / "i", "短期CA", PASSPHRASE, valid_days=30)
    key = ca.algorithm.generate()
    cert = inter.issue_seal_certificate(UNIT, "单位", key.public_key(), valid_days=3650)
    assert cert.not_valid_after_utc <= inter.certificate.not_valid_after_utc


def test_reopen_with_wrong_passphrase_fails_and_overwrite_is_refused(root_ca):
    with pytest.raises(WrongPassphrase):
        CertificateAuthority.open(root_ca.directory, b"wrong passphrase!")
    with pytest.raises(CaError) as err:
        CertificateAuthority.init_root(root_ca.directory, "again", PASSPHRASE)
    assert err.value.code == "PKI_CA_EXISTS"
    reopened = CertificateAuthority.open(root_ca.directory, PASSPHRASE)
    assert reopened.certificate == root_ca.certificate


@pytest.mark.parametrize("node_id", ["", "Upper", "-lead", "a/b", "x" * 64, "节点"])
def test_bad_node_ids_are_refused(root_ca, tmp_path, node_id):
    with pytest.raises(InvalidInput):
        root_ca.issue_node(node_id, "127.0.0.1", tmp_path / "n", PASSPHRASE)


@pytest.mark.parametrize("host", ["", "bad host", "-x.example", "a..b"])
def test_bad_hosts_are_refused(root_ca, tmp_path, host):
    with pytest.raises(InvalidInput):
        root_ca.issue_node("ok", host, tmp_path / "n", PASSPHRASE)


def test_revocation_records_persist_and_unknown_serials_are_refused(make_ca):
    ca = make_ca()
    cert = ca.issue_seal_certificate(UNIT, "单位", ca.algorithm.generate().public_key())
    when = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
    entry = ca.revoke(cert, "key_compromise", now=when)
    assert entry.reason == "key_compromise"
    again = CertificateAuthority.open(ca.directory, PASSPHRASE)
    assert again.revocations()[cert.serial_number].revoked_at == when
    # Revoking again keeps the first date.
    assert again.revoke(cert, "superseded").revoked_at == when
    with pytest.raises(UnknownCertificate):
        again.revoke(12345, "unspecified")
    with pytest.raises(InvalidInput):
        again.revoke(cert, "because")


def test_service_certificates_carry_their_purposes(root_ca):
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ocsp = root_ca.ocsp_responder_signer().certificate
    tsa = root_ca.tsa_signer().certificate
    assert ExtendedKeyUsageOID.OCSP_SIGNING in ocsp.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    tsa_eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert tsa_eku.critical and list(tsa_eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert root_ca.seal_maker_signer().certificate.issuer == root_ca.certificate.subject
