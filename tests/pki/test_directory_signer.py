"""The directory-signing purpose: only the directory signer signs the network directory, and it signs
nothing else (envelopes, seals, TLS). openssl agrees on what the certificate is for."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from exchange_protocol import errors as E
from exchange_protocol.envelope_seal import Sender, open_envelope_bytes, seal_envelope
from pki import directory_signer, profiles
from pki.ca import CertificateAuthority
from pki.certificates import NODE_URI_PREFIX, utcnow
from pki.errors import CaMissing, CertificateWrongUsage, DirectorySignerExists, WrongPassphrase
from pki.profiles import DIRECTORY_SIGNING
from pki.signer import SoftwareSigner
from pki.trust import Purpose, TrustStore, verify_certificate
from tests.exchange_protocol.envelope_support import NOW, network
from tests.support import PASSPHRASE, run_gwx, run_openssl

OTHER_PURPOSES = (Purpose.SIGNING, Purpose.SEAL, Purpose.SEAL_MAKING, Purpose.TLS_SERVER, Purpose.TLS_CLIENT,
                  Purpose.OCSP_SIGNING, Purpose.TIME_STAMPING)


def test_a_new_ca_holds_a_directory_signer_for_that_purpose_only(root_ca):
    signer = directory_signer.from_ca(root_ca)
    cert = signer.certificate
    roots = TrustStore.of([root_ca.certificate])
    verify_certificate(cert, roots, utcnow(), (), Purpose.DIRECTORY_SIGNING)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [DIRECTORY_SIGNING]
    for purpose in OTHER_PURPOSES:
        with pytest.raises(CertificateWrongUsage):
            verify_certificate(cert, roots, utcnow(), (), purpose)


def test_no_other_certificate_may_sign_a_directory(root_ca, tmp_path):
    creds = root_ca.issue_node("dir-node", "127.0.0.1", tmp_path / "n", PASSPHRASE)
    roots = TrustStore.of([root_ca.certificate])
    others = (creds.signing_certificate, creds.tls_certificate, creds.encryption_certificate,
              root_ca.seal_maker_signer().certificate, root_ca.ocsp_responder_signer().certificate,
              root_ca.tsa_signer().certificate)
    for cert in others:
        with pytest.raises(CertificateWrongUsage):
            verify_certificate(cert, roots, utcnow(), (), Purpose.DIRECTORY_SIGNING)


def test_the_directory_signer_cannot_sign_an_envelope():
    """Even a directory-signing certificate naming node a (which Sender needs) cannot sign a's envelopes."""
    net = network()
    key = net.root.algorithm.generate()
    cert = net.root.issue(key.public_key(), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a")]),
                          profiles.DIRECTORY_SIGNER, sans=[x509.UniformResourceIdentifier(NODE_URI_PREFIX + "a")],
                          now=NOW - dt.timedelta(days=1))
    forged_sender = Sender("a", SoftwareSigner(key, cert))
    env = seal_envelope(net.draft(), b"body", forged_sender, net.nodes["b"].recipient)
    with pytest.raises(E.EnvelopeSignerUntrusted) as info:
        open_envelope_bytes(env.data, net.policy, net.nodes["b"].key, "b", NOW)
    assert info.value.details["cause"] == "PKI_CERT_WRONG_USAGE"
    # The same envelope signed by a's own signing key opens: the refusal is the purpose.
    env = seal_envelope(net.draft(), b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    assert open_envelope_bytes(env.data, net.policy, net.nodes["b"].key, "b", NOW)[1] == b"body"


def test_an_intermediate_issues_a_signer_directory_that_chains_to_the_root(root_ca, tmp_path):
    inter = root_ca.create_intermediate(tmp_path / "inter", "县CA", PASSPHRASE)
    signer = directory_signer.issue(inter, tmp_path / "signer", b"another passphrase")
    again = directory_signer.open_directory(tmp_path / "signer", b"another passphrase")
    assert again.certificate == signer.certificate and again.chain == (inter.certificate,)
    path = verify_certificate(again.certificate, TrustStore.of([again.root]), utcnow(), again.chain,
                              Purpose.DIRECTORY_SIGNING)
    assert path[-1] == root_ca.certificate
    with pytest.raises(WrongPassphrase):
        directory_signer.open_directory(tmp_path / "signer", b"not it")
    with pytest.raises(DirectorySignerExists):
        directory_signer.issue(inter, tmp_path / "signer", b"another passphrase")
    assert directory_signer.open_directory(tmp_path / "signer", b"another passphrase").certificate == signer.certificate
    with pytest.raises(CaMissing):
        directory_signer.open_directory(tmp_path / "nothing-here", PASSPHRASE)


def test_a_ca_without_a_signer_is_told_how_to_get_one(make_ca):
    ca = make_ca()
    (ca.directory / "dirsigner.key").unlink()
    with pytest.raises(CaMissing, match="issue-directory-signer"):
        directory_signer.from_ca(CertificateAuthority.open(ca.directory, PASSPHRASE))


def test_cli_issues_a_signer_openssl_sees_as_no_smime_or_tls_signer(make_ca, tmp_path):
    ca = make_ca()
    pw = tmp_path / "pw"
    pw.write_bytes(PASSPHRASE)
    out = run_gwx("pki", "issue-directory-signer", "--ca", ca.directory, "--out", tmp_path / "s",
                  "--passphrase-file", pw)
    assert out.returncode == 0, out.stderr
    assert b"gwx net build --signer" in out.stdout
    cert = tmp_path / "s" / "signer.crt"
    assert b": OK" in run_openssl("verify", "-CAfile", ca.directory / "root.crt", cert).stdout
    for purpose in ("smimesign", "sslserver", "sslclient"):
        proc = run_openssl("verify", "-CAfile", ca.directory / "root.crt", "-purpose", purpose, cert, check=False)
        assert proc.returncode != 0, purpose
    bad = run_gwx("pki", "issue-directory-signer", "--ca", ca.directory, "--out", tmp_path / "t",
                  env={"GWX_PASSPHRASE": "wrong passphrase"})
    assert bad.returncode == 3 and b"PKI_WRONG_PASSPHRASE" in bad.stderr and b"Traceback" not in bad.stderr
