"""Enrolling a node without the CA: the node's request, the CA's checks and signature, the install.

A real root CA from our own code; openssl judges what the node asked for (``openssl req -verify``) and
what the CA issued (``openssl verify`` with the purposes peers use). Hostile requests are built by
hand: a request signed by another key than the one it names, one altered after signing, keys of the
wrong type, one asking for CA:TRUE, three keys naming two nodes — each refused with its code and
nothing issued. Hostile responses: another node's certificates, another CA's, a certificate of the
wrong purpose or naming another node — each refused with nothing installed.
"""

from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from pki import profiles
from pki.algorithms import ECDSA_P256_SHA256
from pki.ca import CertificateAuthority
from pki.certificates import node_id_of, pem
from pki.csr import REQUEST_LABEL, make_request, pem_block, pem_blocks
from pki.errors import GwxError, WrongPassphrase
from pki.keystore import read_private_key
from pki.node_enrolment import (
    REQUEST_FILE,
    create_node_request,
    install_node_response,
    installed_node_id,
    sign_node_request,
)
from pki.signer import SoftwareSigner
from tests.support import PASSPHRASE, run_openssl

NODE_PASSPHRASE = b"the node's own passphrase"


@pytest.fixture
def ca(tmp_path, new_root_ca):
    return new_root_ca(tmp_path / "ca", "临沂市电子政务CA")


def request_for(tmp_path, ca, node_id="county-a"):
    creds = tmp_path / node_id / "credentials"
    return creds, create_node_request(creds, node_id, ca.root_certificate, NODE_PASSPHRASE)


def error_of(call, *args, **kwargs) -> GwxError:
    with pytest.raises(GwxError) as info:
        call(*args, **kwargs)
    return info.value


def bundle(*ders: bytes) -> bytes:
    return b"".join(pem_block(REQUEST_LABEL, d) for d in ders)


def test_request_signed_and_installed_gives_what_issue_node_gives(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    # Keys: encrypted at rest, owner-only; the request as handed in is kept beside them.
    for role in profiles.NODE_ROLES:
        key_file = creds / f"{role}.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
        with pytest.raises(WrongPassphrase):
            read_private_key(key_file, b"not the passphrase")
    assert stat.S_IMODE(creds.stat().st_mode) == 0o700
    assert (creds / REQUEST_FILE).read_bytes() == request.pem
    # openssl checks each request's self-signature and reads the node id and role from it.
    for index, der in enumerate(pem_blocks(request.pem, REQUEST_LABEL)):
        (tmp_path / f"r{index}.pem").write_bytes(pem_block(REQUEST_LABEL, der))
        out = run_openssl("req", "-verify", "-noout", "-subject", "-nameopt", "compat", "-in",
                          tmp_path / f"r{index}.pem", text=True)
        assert "verify OK" in out.stderr + out.stdout
        assert f"/OU={list(profiles.NODE_ROLES)[index]}/CN=county-a" in out.stdout

    signed = sign_node_request(ca, request.pem, "10.1.2.3")
    assert signed.node_id == "county-a" and signed.key_fingerprint == request.key_fingerprint
    installed = install_node_response(creds, signed.response, NODE_PASSPHRASE)
    assert installed == signed.certificates
    # openssl accepts each certificate for what a peer uses it for.
    for role, purpose in (("tls", "sslserver"), ("tls", "sslclient"), ("sign", "smimesign")):
        run_openssl("verify", "-CAfile", ca.directory / "root.crt", "-purpose", purpose, creds / f"{role}.crt")
    run_openssl("verify", "-CAfile", ca.directory / "root.crt", creds / "enc.crt")
    # The same certificates issue-node makes: subject, names and extensions, only the keys differ.
    reference = ca.issue_node("county-b", "10.1.2.3", tmp_path / "b", PASSPHRASE)
    for role, ref in (("tls", reference.tls_certificate), ("sign", reference.signing_certificate),
                      ("enc", reference.encryption_certificate)):
        got = installed[role]
        assert [a.oid for a in got.subject] == [a.oid for a in ref.subject]
        assert got.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role
        assert node_id_of(got) == "county-a"
        assert {e.oid: e.value for e in got.extensions if e.oid != x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER
                and e.oid != x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME} == \
            {e.oid: e.value for e in ref.extensions if e.oid != x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER
             and e.oid != x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME}
        # The key is the node's: its own file opens it and it certifies that key.
        SoftwareSigner(read_private_key(creds / f"{role}.key", NODE_PASSPHRASE), got)
    assert installed_node_id(creds, NODE_PASSPHRASE) == "county-a"


def test_under_an_intermediate_the_response_carries_the_chain(tmp_path, ca):
    county_ca = ca.create_intermediate(tmp_path / "county-ca", "兰山区CA", PASSPHRASE)
    creds, request = request_for(tmp_path, ca)
    signed = sign_node_request(county_ca, request.pem, "10.1.2.3")
    install_node_response(creds, signed.response, NODE_PASSPHRASE)
    chain = x509.load_pem_x509_certificates((creds / "tls.crt").read_bytes())
    assert chain[1] == county_ca.certificate and len(chain) == 2  # leaf, then the intermediate; never the root
    run_openssl("verify", "-CAfile", ca.directory / "root.crt", "-untrusted", county_ca.directory / "ca.crt",
                "-purpose", "sslserver", creds / "tls.crt")


class ForgingSigner(SoftwareSigner):
    """Names one key in the request and signs it with another: what a forger who lacks the key can do."""

    def __init__(self, named, signing_key):
        super().__init__(signing_key)
        self._named = named

    @property
    def public_key(self):
        return self._named


def three(node_ids=("county-a",) * 3, roles=("tls", "sign", "enc"), keys=None):
    keys = keys or [ECDSA_P256_SHA256.generate() for _ in roles]
    return bundle(*(make_request(SoftwareSigner(k), common_name=n, role=r) for k, n, r in zip(keys, node_ids, roles,
                                                                                               strict=True)))


def test_a_forged_request_is_refused_and_nothing_issued(tmp_path, ca):
    victim = ECDSA_P256_SHA256.generate().public_key()
    forged = make_request(ForgingSigner(victim, ECDSA_P256_SHA256.generate()), common_name="county-a", role="tls")
    others = [make_request(SoftwareSigner(ECDSA_P256_SHA256.generate()), common_name="county-a", role=r)
              for r in ("sign", "enc")]
    data = bundle(forged, *others)
    (tmp_path / "forged.pem").write_bytes(pem_block(REQUEST_LABEL, forged))
    assert "verify failure" in run_openssl("req", "-verify", "-noout", "-in", tmp_path / "forged.pem", text=True).stderr
    before = len(ca.issued())
    assert error_of(sign_node_request, ca, data, "10.1.2.3").code == "PKI_REQUEST_BAD_SIGNATURE"
    assert len(ca.issued()) == before


def test_a_request_altered_after_signing_is_refused(tmp_path, ca):
    _, request = request_for(tmp_path, ca)
    # Another node id in the same number of bytes: the DER still parses, the signature no longer fits.
    ders = [d.replace(b"county-a", b"county-x") for d in pem_blocks(request.pem, REQUEST_LABEL)]
    err = error_of(sign_node_request, ca, bundle(*ders), "10.1.2.3")
    assert err.code == "PKI_REQUEST_BAD_SIGNATURE"
    (tmp_path / "altered.pem").write_bytes(pem_block(REQUEST_LABEL, ders[0]))
    assert "verify failure" in run_openssl("req", "-verify", "-noout", "-in", tmp_path / "altered.pem", text=True).stderr


def builder_request(key, *, ca_true=False, hash_=hashes.SHA256()) -> bytes:
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "tls"), x509.NameAttribute(NameOID.COMMON_NAME,
                                                                                        "county-a")]))
    if ca_true:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return b.sign(key, hash_).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("key", [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP384R1()),
                                 rsa.generate_private_key(65537, 2048)], ids=["ed25519", "p384", "rsa2048"])
def test_a_key_of_the_wrong_type_or_size_is_refused(ca, key):
    tls = builder_request(key, hash_=None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    others = [make_request(SoftwareSigner(ECDSA_P256_SHA256.generate()), common_name="county-a", role=r)
              for r in ("sign", "enc")]
    err = error_of(sign_node_request, ca, bundle(tls, *others), "10.1.2.3")
    assert err.code == "PKI_REQUEST_KEY_TYPE", err


def test_a_request_asking_for_ca_true_is_refused_not_trimmed(ca):
    tls = builder_request(ECDSA_P256_SHA256.generate(), ca_true=True)
    others = [make_request(SoftwareSigner(ECDSA_P256_SHA256.generate()), common_name="county-a", role=r)
              for r in ("sign", "enc")]
    before = len(ca.issued())
    err = error_of(sign_node_request, ca, bundle(tls, *others), "10.1.2.3")
    assert err.code == "PKI_REQUEST_EXTENSIONS" and "CA:TRUE" in err.message
    assert len(ca.issued()) == before


def test_a_request_signed_with_sha1_is_refused(tmp_path, ca):
    # cryptography will not sign with SHA-1 any more; openssl still will, and so might a requester.
    key = tmp_path / "k.pem"
    key.write_bytes(ECDSA_P256_SHA256.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    tls = run_openssl("req", "-new", "-key", key, "-sha1", "-subj", "/OU=tls/CN=county-a").stdout
    others = [make_request(SoftwareSigner(ECDSA_P256_SHA256.generate()), common_name="county-a", role=r)
              for r in ("sign", "enc")]
    err = error_of(sign_node_request, ca, tls + bundle(*others), "10.1.2.3")
    assert err.code == "PKI_REQUEST_KEY_TYPE" and "sha1" in err.message


@pytest.mark.parametrize(("data", "code"), [
    (lambda: three(("county-a", "county-a", "county-b")), "PKI_REQUEST_NODE_MISMATCH"),
    (lambda: three(roles=("tls", "tls", "enc")), "PKI_REQUEST_ROLES"),
    (lambda: three(("county-a",) * 2, roles=("tls", "sign")), "PKI_REQUEST_ROLES"),
    (lambda: three(("County A!",) * 3), "PKI_REQUEST_SUBJECT"),
    (lambda: three(keys=[ECDSA_P256_SHA256.generate()] * 3), "PKI_REQUEST_KEY_REUSED"),
    (lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "PKI_REQUEST_MALFORMED"),
    (lambda: b"not a request at all", "PKI_REQUEST_MALFORMED"),
], ids=["two-node-ids", "role-twice", "role-missing", "bad-node-id", "one-key-thrice", "garbage-der", "no-pem"])
def test_requests_that_do_not_add_up_are_refused(ca, data, code):
    before = len(ca.issued())
    assert error_of(sign_node_request, ca, data(), "10.1.2.3").code == code
    assert len(ca.issued()) == before


def test_the_admin_names_the_node_and_a_second_request_needs_replace(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    assert error_of(sign_node_request, ca, request.pem, "10.1.2.3", node_id="county-b").code == \
        "PKI_REQUEST_NODE_MISMATCH"
    first = sign_node_request(ca, request.pem, "10.1.2.3", node_id="county-a")
    again = tmp_path / "again"
    second = create_node_request(again, "county-a", ca.root_certificate, NODE_PASSPHRASE)
    assert error_of(sign_node_request, ca, second.pem, "10.1.2.3").code == "PKI_ALREADY_ISSUED"
    replaced = sign_node_request(ca, second.pem, "10.1.2.3", replace=True)
    assert {c.serial_number for c in replaced.superseded} == {c.serial_number for c in first.certificates.values()}
    assert all(ca.revocations()[c.serial_number].reason == "superseded" for c in first.certificates.values())


def test_a_renewal_for_new_keys_of_the_node_keeps_the_old_certificates_valid(tmp_path, ca):
    _, request = request_for(tmp_path, ca)
    first = sign_node_request(ca, request.pem, "10.1.2.3")
    second = create_node_request(tmp_path / "renewed", "county-a", ca.root_certificate, NODE_PASSPHRASE)
    both = error_of(sign_node_request, ca, second.pem, "10.1.2.3", renew=True, replace=True)
    assert both.code == "PKI_INVALID_INPUT"
    renewed = sign_node_request(ca, second.pem, "10.1.2.3", renew=True)
    assert renewed.superseded == [] and ca.revocations() == {}
    assert {c.serial_number for c in renewed.certificates.values()}.isdisjoint(
        c.serial_number for c in first.certificates.values())


def test_keys_are_never_made_twice(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    again = error_of(create_node_request, creds, "county-a", ca.root_certificate, NODE_PASSPHRASE)
    assert again.code == "PKI_NODE_CREDENTIALS_EXIST" and "gwx node request --dir NEW_DIR" in again.message  # renewal
    assert (creds / REQUEST_FILE).read_bytes() == request.pem


def test_a_response_for_another_nodes_keys_is_refused_and_nothing_installed(tmp_path, ca):
    creds_a, _ = request_for(tmp_path, ca, "county-a")
    _, request_b = request_for(tmp_path, ca, "county-b")
    response_b = sign_node_request(ca, request_b.pem, "10.1.2.4").response
    err = error_of(install_node_response, creds_a, response_b, NODE_PASSPHRASE)
    assert err.code == "PKI_RESPONSE_KEY_MISMATCH"
    assert not any((creds_a / f"{role}.crt").exists() for role in profiles.NODE_ROLES)
    assert error_of(installed_node_id, creds_a, NODE_PASSPHRASE).code == "PKI_REQUEST_PENDING"


def test_a_response_from_another_ca_is_untrusted(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    other = CertificateAuthority.init_root(tmp_path / "other-ca", "别的CA", PASSPHRASE)
    err = error_of(install_node_response, creds, sign_node_request(other, request.pem, "10.1.2.3").response,
                   NODE_PASSPHRASE)
    assert err.code == "PKI_RESPONSE_UNTRUSTED"
    assert not (creds / "tls.crt").exists()


def hand_made_response(ca, request_pem, *, tls_profile=profiles.NODE_TLS, node_id="county-a") -> bytes:
    """A response a careless or hostile CA operator could make: each key certified as asked here."""
    from pki.csr import read_requests

    certs = []
    for r in read_requests(request_pem):
        if r.role == "tls":
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
            sans = [x509.UniformResourceIdentifier(f"urn:gwx:node:{node_id}"), x509.DNSName("county-a.example")]
            certs.append(ca.issue(r.public_key, subject, tls_profile, sans=sans))
        else:
            certs.append(ca.issue_node_certificate(node_id, "10.1.2.3", r.role, r.public_key))
    return b"".join(pem(c) for c in certs)


def test_a_certificate_of_the_wrong_purpose_is_refused(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    response = hand_made_response(ca, request.pem, tls_profile=profiles.NODE_SIGNING)
    err = error_of(install_node_response, creds, response, NODE_PASSPHRASE)
    assert err.code == "PKI_RESPONSE_WRONG_PURPOSE" and "tls" in err.message
    assert not (creds / "tls.crt").exists()


def test_certificates_naming_another_node_are_refused(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    err = error_of(install_node_response, creds, hand_made_response(ca, request.pem, node_id="county-z"),
                   NODE_PASSPHRASE)
    assert err.code == "PKI_RESPONSE_NODE_MISMATCH"


def test_installing_needs_the_nodes_passphrase_and_an_expired_response_is_untrusted(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    response = sign_node_request(ca, request.pem, "10.1.2.3").response
    assert error_of(install_node_response, creds, response, b"a wrong passphrase").code == "PKI_WRONG_PASSPHRASE"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=900)
    assert error_of(install_node_response, creds, response, NODE_PASSPHRASE, now=later).code == \
        "PKI_RESPONSE_UNTRUSTED"
    assert not (creds / "tls.crt").exists()


def test_a_response_without_a_request_or_certificates_is_refused(tmp_path, ca):
    creds, request = request_for(tmp_path, ca)
    assert error_of(install_node_response, tmp_path / "nothing", b"", NODE_PASSPHRASE).code == \
        "PKI_RESPONSE_NO_REQUEST"
    assert error_of(install_node_response, creds, b"# no certificates here\n", NODE_PASSPHRASE).code == \
        "PKI_RESPONSE_MALFORMED"
    assert error_of(install_node_response, creds, request.pem, NODE_PASSPHRASE).code == "PKI_RESPONSE_MALFORMED"


def test_a_signature_algorithm_nobody_knows_is_refused_not_a_traceback(ca):
    from asn1crypto import csr as a_csr

    der = make_request(SoftwareSigner(ECDSA_P256_SHA256.generate()), common_name="county-a", role="tls")
    request = a_csr.CertificationRequest.load(der)
    request["signature_algorithm"] = {"algorithm": "1.2.3.4.5"}
    others = [make_request(SoftwareSigner(ECDSA_P256_SHA256.generate()), common_name="county-a", role=r)
              for r in ("sign", "enc")]
    err = error_of(sign_node_request, ca, bundle(request.dump(force=True), *others), "10.1.2.3")
    assert err.code == "PKI_REQUEST_KEY_TYPE" and "1.2.3.4.5" in err.message


def test_rsa_keys_enrol_too_and_their_encryption_certificate_enciphers(tmp_path, ca):
    creds = tmp_path / "rsa-node"
    request = create_node_request(creds, "county-r", ca.root_certificate, NODE_PASSPHRASE, "rsa3072-sha256")
    installed = install_node_response(creds, sign_node_request(ca, request.pem, "10.1.2.9").response,
                                      NODE_PASSPHRASE)
    usage = installed["enc"].extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment and not usage.key_agreement
    assert installed["tls"].public_key().key_size == 3072
    run_openssl("verify", "-CAfile", ca.directory / "root.crt", "-purpose", "sslserver", creds / "tls.crt")


def test_the_root_a_node_trusts_must_be_a_root(tmp_path, ca):
    county_ca = ca.create_intermediate(tmp_path / "county-ca", "兰山区CA", PASSPHRASE)
    err = error_of(create_node_request, tmp_path / "n1", "county-a", county_ca.certificate, NODE_PASSPHRASE)
    assert err.code == "PKI_INVALID_INPUT" and "root" in err.message
    leaf = ca.issue_node("county-l", "10.1.2.3", tmp_path / "l", PASSPHRASE).tls_certificate
    assert error_of(create_node_request, tmp_path / "n2", "county-a", leaf, NODE_PASSPHRASE).code == \
        "PKI_INVALID_INPUT"
    assert not (tmp_path / "n1").exists() and not (tmp_path / "n2").exists()
    der = bytearray(ca.root_certificate.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    err = error_of(create_node_request, tmp_path / "n3", "county-a", x509.load_der_x509_certificate(bytes(der)),
                   NODE_PASSPHRASE)
    assert err.code == "PKI_INVALID_INPUT" and "self-signature" in err.message
