"""A 国密 network's CA (gwx pki init-root --profile sm): SM2-with-SM3 certificates for the root, an
intermediate, nodes, seals and the CA's services, and SM2-signed CRLs — accepted by our own trust
and revocation checks and by `openssl verify` / `openssl crl`, which we did not write."""

from __future__ import annotations

import datetime as dt
import json

import gmalg
import pytest
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as ax
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.cli.main import main
from pki import crl as crls
from pki import trust
from pki.algorithms import ECDSA_P256_SHA256, SM2_SM3, algorithm_for_profile
from pki.ca import CertificateAuthority
from pki.certificates import pem
from pki.errors import (
    CertificateRevoked,
    CertificateUntrusted,
    CrlBadSignature,
    CrlUpdateRefused,
    UnsupportedAlgorithm,
)
from pki.revocation import check_crl
from pki.sm2 import DEFAULT_ID, Sm2PrivateKey, Sm2PublicKey
from pki.x509_sm2 import assemble_certificate, assemble_crl, public_key_of, signed_by
from tests.support import PASSPHRASE, PASSPHRASE_TEXT

from .sm_support import openssl, openssl_verifies_link, openssl_verifies_signature, signature_rs

SM2_WITH_SM3 = "1.2.156.10197.1.501"


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    base = tmp_path_factory.mktemp("sm-network")
    root = CertificateAuthority.init_root(base / "root", "国密测试网络根CA", PASSPHRASE, algorithm="sm2-sm3")
    city = root.create_intermediate(base / "city", "临沂市CA", PASSPHRASE)
    node = city.issue_node("n1.linyi", "n1.example", base / "n1", PASSPHRASE)
    seal_key = Sm2PrivateKey.generate()
    seal = city.issue_seal_certificate("91350100M000100Y43", "临沂市财政局", seal_key.public_key())
    return base, root, city, node, seal


def test_every_certificate_is_sm2_with_sm3_over_an_sm2_key(network):
    _, root, city, node, seal = network
    for cert in (root.certificate, city.certificate, node.signing_certificate, node.encryption_certificate, seal):
        assert cert.signature_algorithm_oid.dotted_string == SM2_WITH_SM3
        assert isinstance(public_key_of(cert), Sm2PublicKey)
    # but node TLS, which Python's ssl cannot do with SM2: P-256 under the transport CA (test_sm_transport)
    assert node.tls_certificate.issuer == city.transport.certificate.subject
    assert root.algorithm is SM2_SM3 and city.algorithm is SM2_SM3
    usage = node.encryption_certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment and not usage.key_agreement  # SM2 enciphers the content key


def _pub_pem(cert: x509.Certificate) -> bytes:
    return public_key_of(cert).public_bytes(serialization.Encoding.PEM)


def test_openssl_verifies_every_link_of_the_sm2_chains(network, tmp_path):
    base, root, city, node, seal = network
    root_file, city_file = base / "root" / "root.crt", base / "city" / "ca.crt"
    own = openssl_verifies_signature(_pub_pem(root.certificate), root.certificate.tbs_certificate_bytes,
                                     root.certificate.signature, tmp_path)
    assert own.returncode == 0 and b"Verified OK" in own.stdout, own.stderr  # the root's self-signature
    assert openssl_verifies_link(city_file, root_file).returncode == 0
    (tmp_path / "seal.crt").write_bytes(pem(seal))
    for leaf in (base / "n1" / "sign.crt", base / "n1" / "enc.crt", tmp_path / "seal.crt"):
        done = openssl_verifies_link(leaf, city_file)
        assert done.returncode == 0 and b": OK" in done.stdout, (leaf, done.stderr)
    for service in ("sealmaker", "ocsp", "tsa", "dirsigner"):
        done = openssl_verifies_link(base / "root" / f"{service}.crt", root_file)
        assert done.returncode == 0, (service, done.stderr)
    # the same link against the wrong issuer is refused: OpenSSL checks, it does not wave through
    assert openssl_verifies_link(base / "n1" / "sign.crt", root_file).returncode != 0


def test_openssl_refuses_a_certificate_whose_signature_we_broke(network, tmp_path):
    base, _root, _city, node, _seal = network
    der = bytearray(node.signing_certificate.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature's s
    broken = x509.load_der_x509_certificate(bytes(der))
    (tmp_path / "broken.crt").write_bytes(pem(broken))
    assert openssl_verifies_link(tmp_path / "broken.crt", base / "city" / "ca.crt").returncode != 0
    store = trust.TrustStore.of([network[1].root_certificate])
    with pytest.raises(CertificateUntrusted):
        trust.verify_certificate(broken, store, dt.datetime.now(dt.UTC), [network[2].certificate])


def test_our_trust_checks_sm2_paths_and_purposes(network):
    _, root, city, node, seal = network
    store = trust.TrustStore.of([root.root_certificate])
    now = dt.datetime.now(dt.UTC)
    path = trust.verify_certificate(node.signing_certificate, store, now, [city.certificate],
                                    purpose=trust.Purpose.SIGNING)
    assert path == [node.signing_certificate, city.certificate, root.root_certificate]
    trust.verify_certificate(seal, store, now, [city.certificate], purpose=trust.Purpose.SEAL)
    other = CertificateAuthority.init_root(network[0] / "other", "国密测试网络根CA", PASSPHRASE, algorithm="sm2-sm3")
    with pytest.raises(CertificateUntrusted):  # same name, another SM2 key: the signature decides
        trust.verify_certificate(node.signing_certificate, trust.TrustStore.of([other.root_certificate]), now,
                                 [city.certificate])
    assert not signed_by(city.certificate, other.root_certificate)


def test_node_keys_are_sm2_and_openssl_reads_them_with_the_passphrase(network):
    base, *_ = network
    for role in ("sign", "enc"):
        done = openssl("pkey", "-in", str(base / "n1" / f"{role}.key"), "-passin", f"pass:{PASSPHRASE_TEXT}",
                       "-noout", "-text")
        assert done.returncode == 0 and b"ASN1 OID: SM2" in done.stdout, done.stderr


def test_sm2_crl_lists_a_revocation_and_openssl_and_we_agree(network, tmp_path):
    base, root, city, node, seal = network
    city.revoke(seal, "key_compromise")
    crl = crls.publish_crl(city, dt.datetime.now(dt.UTC))
    assert crl.signature_algorithm_oid.dotted_string == SM2_WITH_SM3
    (tmp_path / "city.crl").write_bytes(crls.crl_pem(crl))
    text = openssl("crl", "-in", str(tmp_path / "city.crl"), "-noout", "-text")
    assert text.returncode == 0 and b"SM2-with-SM3" in text.stdout, text.stderr
    assert f"{seal.serial_number:X}".encode() in text.stdout and b"Key Compromise" in text.stdout
    signed = openssl_verifies_signature(_pub_pem(city.certificate), crl.tbs_certlist_bytes, crl.signature, tmp_path)
    assert signed.returncode == 0 and b"Verified OK" in signed.stdout, signed.stderr
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(CertificateRevoked):
        check_crl(seal, city.certificate, crl, now)
    check_crl(node.signing_certificate, city.certificate, crl, now)  # not listed: passes
    assert crls.judge_crl_update(crls.crl_pem(crl), [], [root.root_certificate, city.certificate]) is not None
    assert crls.current_crl(city, now) == crl  # our own check of its signature keeps it current


def test_a_crl_under_the_cas_name_signed_by_another_sm2_key_is_refused(network):
    _, root, city, node, _seal = network
    now = dt.datetime.now(dt.UTC)
    forged = assemble_crl(issuer=city.certificate.subject, this_update=now, next_update=now + dt.timedelta(days=1),
                          extensions=[(x509.CRLNumber(10**6), False)], revoked=[], algorithm=SM2_SM3,
                          sign=Sm2PrivateKey.generate().sign)
    assert not signed_by(forged, city.certificate)
    with pytest.raises(CrlBadSignature):
        check_crl(node.signing_certificate, city.certificate, forged, now)
    with pytest.raises(CrlUpdateRefused):
        crls.judge_crl_update(crls.crl_pem(forged), [], [root.root_certificate, city.certificate])


def test_init_root_profile_sm_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GWX_PASSPHRASE", PASSPHRASE_TEXT)
    assert main(["pki", "init-root", "--dir", str(tmp_path / "ca"), "--name", "国密根", "--profile", "sm"]) == 0
    out = capsys.readouterr().out
    assert "sm2-sm3" in out and f"node TLS (P-256, TLS only): {tmp_path / 'ca' / 'transport' / 'root.crt'}" in out
    ca = CertificateAuthority.open(tmp_path / "ca", PASSPHRASE)
    assert ca.algorithm is SM2_SM3 and isinstance(public_key_of(ca.certificate), Sm2PublicKey)
    assert main(["pki", "crl", "--ca", str(tmp_path / "ca"), "--out", str(tmp_path / "ca.crl")]) == 0
    crl = crls.load_crl((tmp_path / "ca.crl").read_bytes())
    done = openssl_verifies_signature(_pub_pem(ca.certificate), crl.tbs_certlist_bytes, crl.signature, tmp_path)
    assert done.returncode == 0, done.stderr
    # --profile and a contradicting --algorithm: a typed error, nothing created
    assert main(["pki", "init-root", "--dir", str(tmp_path / "ca2"), "--name", "x", "--profile", "sm",
                 "--algorithm", "ecdsa-p256-sha256"]) != 0
    assert "PKI_UNSUPPORTED_ALGORITHM" in capsys.readouterr().err
    assert not (tmp_path / "ca2" / "ca.key").exists()


def test_profile_names_map_to_algorithms():
    assert algorithm_for_profile("sm") is SM2_SM3
    assert algorithm_for_profile(None, "sm2-sm3") is SM2_SM3
    assert algorithm_for_profile("international").name == "ecdsa-p256-sha256"
    with pytest.raises(UnsupportedAlgorithm):
        algorithm_for_profile("quantum")


def test_ocsp_answers_and_time_stamps_are_sm2_signed_and_checked(network):
    _, root, _city, _node, _seal = network
    from pki import ocsp, tsa
    from pki.revocation import check_ocsp
    now = dt.datetime.now(dt.UTC)
    leaf = root.issue_seal_certificate("11100000000013127D", "国密OCSP测试单位", Sm2PrivateKey.generate().public_key())
    request = ocsp.make_request(leaf, root.certificate, b"n" * 16)
    check_ocsp(leaf, root.certificate, ocsp.respond(request, root, root.ocsp_responder_signer(), now), now,
               nonce=b"n" * 16)
    root.revoke(leaf, "key_compromise")
    answer = ocsp.respond(request, root, root.ocsp_responder_signer(), now)
    assert x509.ocsp.load_der_ocsp_response(answer).signature_algorithm_oid.dotted_string == SM2_WITH_SM3
    with pytest.raises(CertificateRevoked):
        check_ocsp(leaf, root.certificate, answer, now, nonce=b"n" * 16)
    token = tsa.respond(tsa.make_request(b"evidence", nonce=5), root.tsa_signer(), now, 42)
    assert tsa.verify_response(token, b"evidence", trust_roots=[root.root_certificate]).serial == 42


def test_gwx_pki_show_describes_sm2_certificates_and_crls(network, tmp_path, capsys):
    base, _root, city, _node, _seal = network
    assert main(["pki", "show", str(base / "root" / "root.crt"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["signature_algorithm"] == "SM2-with-SM3" and shown["public_key"] == "SM2"
    (tmp_path / "city.crl").write_bytes(crls.crl_pem(crls.build_crl(city, dt.datetime.now(dt.UTC))))
    assert main(["pki", "show", str(tmp_path / "city.crl")]) == 0
    assert "临沂市CA" in capsys.readouterr().out


def test_signed_by_checks_the_issuer_name_and_the_inner_algorithm_on_the_sm2_path_as_on_p256(network, tmp_path):
    _, root, city, _node, _seal = network
    now = dt.datetime.now(dt.UTC)
    other = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "不是这个CA")])
    parts = dict(subject=other, public_key=Sm2PrivateKey.generate().public_key(), serial=7, not_before=now,
                 not_after=now + dt.timedelta(days=1), extensions=[], algorithm=SM2_SM3)
    misnamed = assemble_certificate(issuer=other, issuer_key=city._key, **parts)
    assert SM2_SM3.verify(public_key_of(city.certificate),
                          misnamed.signature, misnamed.tbs_certificate_bytes) is None  # city's key signed it
    assert not signed_by(misnamed, city.certificate)
    assert signed_by(assemble_certificate(issuer=city.certificate.subject, issuer_key=city._key, **parts),
                     city.certificate)
    p256 = CertificateAuthority.init_root(tmp_path / "p256", "P-256 Root", PASSPHRASE)
    p256_misnamed = assemble_certificate(issuer=other, issuer_key=p256._key, **{
        **parts, "public_key": p256._key.public_key(), "algorithm": ECDSA_P256_SHA256})
    assert not signed_by(p256_misnamed, p256.certificate)  # the same answer on both paths
    # tbsCertificate.signature must name the outer signatureAlgorithm (RFC 5280 §4.1.1.2)
    good = assemble_certificate(issuer=city.certificate.subject, issuer_key=city._key, **parts)
    tampered = ax.Certificate.load(good.public_bytes(serialization.Encoding.DER))
    tbs = tampered["tbs_certificate"]
    tbs["signature"] = ax.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    tbs_der = tbs.dump(force=True)
    inner_differs = x509.load_der_x509_certificate(ax.Certificate({
        "tbs_certificate": ax.TbsCertificate.load(tbs_der), "signature_algorithm": tampered["signature_algorithm"],
        "signature_value": city._key.sign(tbs_der)}).dump())
    assert SM2_SM3.verify(public_key_of(city.certificate), inner_differs.signature, tbs_der) is None
    assert not signed_by(inner_differs, city.certificate)


def test_gmalg_verifies_the_whole_chain_read_from_the_files_the_ca_wrote(network):
    """A second, independent verifier for the whole chain (stock OpenSSL 3.0 checks SM2 links only one by
    one): the files are parsed by asn1crypto, not our objects, and every signature — node, city CA,
    root — checked by gmalg with the issuer's point and the default id, and every issuer name matched."""
    base, *_ = network
    chain = [*pem_to_der_all((base / "n1" / "sign.crt").read_bytes()),  # the node's certificate, its CA
             *pem_to_der_all((base / "n1" / "root.crt").read_bytes())]  # and the root the node was given
    certs = [ax.Certificate.load(der) for der in chain]
    assert [c.subject.native["common_name"] for c in certs] == ["n1.linyi", "临沂市CA", "国密测试网络根CA"]
    for cert, issuer in zip(certs, [*certs[1:], certs[-1]], strict=True):
        assert cert["tbs_certificate"]["issuer"] == issuer["tbs_certificate"]["subject"]
        assert cert["signature_algorithm"]["algorithm"].dotted == SM2_WITH_SM3
        point = issuer["tbs_certificate"]["subject_public_key_info"]["public_key"].native
        r, s = signature_rs(cert["signature_value"].native)
        verifier = gmalg.SM2(pk=point, uid=DEFAULT_ID)
        assert verifier.verify(cert["tbs_certificate"].dump(), r.to_bytes(32, "big"), s.to_bytes(32, "big"))
        assert not verifier.verify(cert["tbs_certificate"].dump() + b"x", r.to_bytes(32, "big"),
                                   s.to_bytes(32, "big"))


def pem_to_der_all(data: bytes) -> list[bytes]:
    return [der for _, _, der in asn1_pem.unarmor(data, multiple=True)]
