"""pki.ocsp: our responder, checked by openssl ocsp (requests made by openssl, responses verified by it)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from asn1crypto import ocsp as aocsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as xocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki import ocsp
from pki.ca import CertificateAuthority
from pki.certificates import pem
from tests.support import PASSPHRASE, run_openssl

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("ocsp")
    root = CertificateAuthority.init_root(base / "root", "OCSP Root", PASSPHRASE)
    ca = root.create_intermediate(base / "int", "County CA", PASSPHRASE)
    good = ca.issue_seal_certificate("91350100M000100Y43", "好单位", ca.algorithm.generate().public_key())
    bad = ca.issue_seal_certificate("91350100M000100Y43", "坏单位", ca.algorithm.generate().public_key())
    ca.revoke(bad, "key_compromise", NOW - dt.timedelta(hours=1))
    (base / "good.pem").write_bytes(pem(good))
    (base / "bad.pem").write_bytes(pem(bad))
    return base, root, ca, good, bad, ca.ocsp_responder_signer()


def openssl(*args: str) -> subprocess.CompletedProcess:
    return run_openssl("ocsp", *args, check=False, text=True)


def answer(base: Path, ca, signer, request: Path, out: str) -> Path:
    (base / out).write_bytes(ocsp.respond(request.read_bytes(), ca, signer, NOW))
    return base / out


def test_openssl_request_round_trip_good_and_revoked(env):
    base, _, ca, _, _, signer = env
    r = openssl("-reqout", str(base / "req.der"), "-issuer", str(base / "int" / "ca.crt"),
                "-cert", str(base / "good.pem"), "-cert", str(base / "bad.pem"))
    assert r.returncode == 0, r.stderr
    resp = answer(base, ca, signer, base / "req.der", "resp.der")
    out = openssl("-respin", str(resp), "-reqin", str(base / "req.der"), "-CAfile", str(base / "root" / "root.crt"),
                  "-verify_other", str(base / "int" / "ca.crt"))
    assert out.returncode == 0 and "Response verify OK" in out.stderr + out.stdout, out.stderr
    status = openssl("-respin", str(resp), "-issuer", str(base / "int" / "ca.crt"), "-CAfile",
                     str(base / "root" / "root.crt"), "-cert", str(base / "good.pem"), "-cert", str(base / "bad.pem"),
                     "-resp_text", "-no_nonce")
    text = status.stdout
    assert "Response verify OK" in status.stderr + text
    assert "good.pem: good" in text
    assert "bad.pem: revoked" in text and "Reason: keyCompromise" in text
    assert "OCSP Nonce" in text  # openssl sent one: we echoed it
    assert "Next Update" in text


def test_openssl_notices_a_response_to_another_nonce(env):
    base, _, ca, _, _, signer = env
    for name in ("a", "b"):
        openssl("-reqout", str(base / f"{name}.der"), "-issuer", str(base / "int" / "ca.crt"),
                "-cert", str(base / "good.pem"))
    resp = answer(base, ca, signer, base / "a.der", "ra.der")
    out = openssl("-respin", str(resp), "-reqin", str(base / "b.der"), "-CAfile", str(base / "root" / "root.crt"),
                  "-verify_other", str(base / "int" / "ca.crt"))
    assert "Nonce Verify error" in out.stderr + out.stdout


def test_openssl_rejects_response_signed_by_a_stranger(env, tmp_path):
    base, _, ca, _, _, _ = env
    stranger = CertificateAuthority.init_root(tmp_path / "x", "Stranger", PASSPHRASE).ocsp_responder_signer()
    openssl("-reqout", str(base / "s.der"), "-issuer", str(base / "int" / "ca.crt"), "-cert", str(base / "good.pem"))
    resp = answer(base, ca, stranger, base / "s.der", "rs.der")
    out = openssl("-respin", str(resp), "-CAfile", str(base / "root" / "root.crt"),
                  "-verify_other", str(base / "int" / "ca.crt"))
    assert "Response verify OK" not in out.stderr + out.stdout


def test_unknown_for_foreign_issuer_and_never_issued_serial(env, tmp_path):
    _, root, ca, good, _, signer = env
    other = CertificateAuthority.init_root(tmp_path / "o", "Other", PASSPHRASE)
    foreign = other.issue_seal_certificate("91350100M000100Y43", "外单位", other.algorithm.generate().public_key())
    request = ocsp.make_request(foreign, other.certificate)  # right serial space, wrong issuer
    single = next(xocsp.load_der_ocsp_response(ocsp.respond(request, ca, signer, NOW)).responses)
    assert single.certificate_status == xocsp.OCSPCertStatus.UNKNOWN
    fake = xocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *ocsp.issuer_hashes(ca.certificate, "sha256"), 12345, hashes.SHA256()
    ).build().public_bytes(serialization.Encoding.DER)
    single = next(xocsp.load_der_ocsp_response(ocsp.respond(fake, ca, signer, NOW)).responses)
    assert single.certificate_status == xocsp.OCSPCertStatus.UNKNOWN
    single = next(xocsp.load_der_ocsp_response(
        ocsp.respond(ocsp.make_request(good, ca.certificate), ca, signer, NOW)).responses)
    assert single.certificate_status == xocsp.OCSPCertStatus.GOOD
    assert single.next_update_utc == NOW + ocsp.DEFAULT_VALIDITY


@pytest.mark.parametrize("garbage", [b"", b"\x30\x00", b"hello", b"\x30\x05\x30\x03\x30\x01\x00",
                                     b"\x30" + b"\xff" * 10])
def test_garbage_requests_get_malformed_request(env, garbage):
    _, _, ca, _, _, signer = env
    assert xocsp.load_der_ocsp_response(ocsp.respond(garbage, ca, signer, NOW)).response_status \
        == xocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_failing_store_gets_internal_error(env):
    _, _, ca, good, _, signer = env

    class BrokenStore:
        certificate = ca.certificate

        def has_issued(self, serial):
            raise OSError("disk gone")

        def revocations(self):
            return {}

    resp = ocsp.respond(ocsp.make_request(good, ca.certificate), BrokenStore(), signer, NOW)
    assert xocsp.load_der_ocsp_response(resp).response_status == xocsp.OCSPResponseStatus.INTERNAL_ERROR


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_responder_never_raises(env, blob):
    _, _, ca, _, _, signer = env
    status = aocsp.OCSPResponse.load(ocsp.respond(blob, ca, signer, NOW))["response_status"].native
    assert status in ("malformed_request", "successful")
