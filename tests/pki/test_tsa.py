"""pki.tsa: RFC 3161 against openssl ts in both directions, and hostile input."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pki import tsa
from pki.ca import CertificateAuthority
from pki.certificates import pem
from pki.errors import (
    InvalidInput,
    TsaBadSignature,
    TsaDigestMismatch,
    TsaMalformed,
    TsaRejected,
    TsaUntrusted,
)
from tests.support import PASSPHRASE, run_openssl

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DATA = "关于开展2026年度公文交换测试的通知".encode() * 20


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("tsa")
    root = CertificateAuthority.init_root(base / "root", "TSA Test Root", PASSPHRASE)
    inter = root.create_intermediate(base / "int", "County CA", PASSPHRASE)
    signer = inter.tsa_signer()
    (base / "root.pem").write_bytes(pem(root.certificate))
    (base / "untrusted.pem").write_bytes(pem(signer.certificate) + pem(inter.certificate))
    (base / "data").write_bytes(DATA)
    return base, root, inter, signer


def ts(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``openssl ts``: the time-stamping tool we did not write."""
    return run_openssl("ts", *args, check=check, text=True)


def openssl_query(base: Path, *extra: str) -> bytes:
    ts("-query", "-data", str(base / "data"), "-sha256", *extra, "-out", str(base / "req.tsq"))
    return (base / "req.tsq").read_bytes()


def test_openssl_request_answered_and_verified_by_openssl(env):
    base, root, inter, signer = env
    request = openssl_query(base, "-cert")
    response = tsa.respond(request, signer, NOW, serial=0x1234567890ABCDEF1, extra_certs=[inter.certificate])
    (base / "resp.tsr").write_bytes(response)
    verified = ts("-verify", "-in", str(base / "resp.tsr"), "-data", str(base / "data"),
                  "-CAfile", str(base / "root.pem"), "-untrusted", str(base / "untrusted.pem"), check=False)
    assert verified.returncode == 0, verified.stderr
    assert "Verification: OK" in verified.stdout
    text = ts("-reply", "-in", str(base / "resp.tsr"), "-text").stdout
    assert "Status: Granted." in text
    assert "Serial number: 0x01234567890ABCDEF1" in text
    assert f"Policy OID: {tsa.DEFAULT_POLICY}" in text
    assert "Nonce: 0x" in text
    assert hashlib.sha256(DATA).hexdigest()[:2] in text.replace(" ", "").lower()


def test_openssl_rejects_our_token_for_other_data(env):
    base, _, inter, signer = env
    response = tsa.respond(openssl_query(base, "-cert"), signer, NOW, 7, extra_certs=[inter.certificate])
    (base / "resp.tsr").write_bytes(response)
    (base / "other").write_bytes(DATA + b"!")
    result = ts("-verify", "-in", str(base / "resp.tsr"), "-data", str(base / "other"),
                "-CAfile", str(base / "root.pem"), "-untrusted", str(base / "untrusted.pem"), check=False)
    assert result.returncode != 0


def test_our_round_trip_reports_time_serial_policy_and_nonce(env):
    _, root, inter, signer = env
    request = tsa.make_request(DATA, nonce=424242)
    response = tsa.respond(request, signer, NOW, serial=99, extra_certs=[inter.certificate])
    stamp = tsa.verify_response(response, DATA, trust_roots=[root.certificate], nonce=424242)
    assert (stamp.gen_time, stamp.serial, stamp.policy, stamp.nonce) == (NOW, 99, tsa.DEFAULT_POLICY, 424242)
    assert stamp.accuracy_micros == 1_000_000
    assert stamp.tsa_certificate == signer.certificate
    # the digest form verifies the same token
    token = tsa.token_from_response(response)
    tsa.verify_token(token, digest=hashlib.sha256(DATA).digest(), trust_roots=[root.certificate])


def test_other_data_and_replayed_nonce_are_refused(env):
    _, root, inter, signer = env
    response = tsa.respond(tsa.make_request(DATA, nonce=1), signer, NOW, 5, extra_certs=[inter.certificate])
    with pytest.raises(TsaDigestMismatch):
        tsa.verify_response(response, DATA + b"x", trust_roots=[root.certificate])
    with pytest.raises(TsaDigestMismatch) as err:
        tsa.verify_response(response, DATA, trust_roots=[root.certificate], nonce=2)
    assert err.value.code == "TSA_NONCE_MISMATCH"


def test_token_without_certificate_needs_it_supplied(env):
    base, root, inter, signer = env
    response = tsa.respond(openssl_query(base), signer, NOW, 8)  # no -cert: certReq false
    token = tsa.token_from_response(response)
    with pytest.raises(TsaBadSignature):
        tsa.verify_token(token, DATA, trust_roots=[root.certificate])
    stamp = tsa.verify_token(token, DATA, trust_roots=[root.certificate],
                             tsa_certificates=[signer.certificate, inter.certificate])
    assert stamp.serial == 8
    (base / "resp.tsr").write_bytes(response)
    result = ts("-verify", "-in", str(base / "resp.tsr"), "-data", str(base / "data"),
                "-CAfile", str(base / "root.pem"), "-untrusted", str(base / "untrusted.pem"), check=False)
    assert result.returncode == 0, result.stderr


def test_token_made_by_openssl_with_our_tsa_key_verifies(env):
    base, root, inter, signer = env
    from cryptography.hazmat.primitives import serialization
    (base / "tsa.key").write_bytes(signer.private_key_for_tls().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (base / "tsa.crt").write_bytes(pem(signer.certificate))
    (base / "chain.pem").write_bytes(pem(inter.certificate))
    (base / "ts.cnf").write_text(f"""[ tsa ]
default_tsa = t
[ t ]
serial = {base}/serial
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ess_cert_id_alg = sha256
certs = {base}/chain.pem
""")
    (base / "serial").write_text("05\n")
    openssl_query(base, "-cert")
    ts("-reply", "-config", str(base / "ts.cnf"), "-queryfile", str(base / "req.tsq"),
       "-inkey", str(base / "tsa.key"), "-signer", str(base / "tsa.crt"), "-out", str(base / "ossl.tsr"))
    stamp = tsa.verify_response((base / "ossl.tsr").read_bytes(), DATA, trust_roots=[root.certificate])
    assert stamp.serial == 6 and stamp.policy == "1.2.3.4.1"  # openssl increments the file first


def test_untrusted_root_and_non_tsa_signer_are_refused(env, tmp_path):
    _, root, inter, signer = env
    other = CertificateAuthority.init_root(tmp_path / "other", "Other Root", PASSPHRASE)
    response = tsa.respond(tsa.make_request(DATA), signer, NOW, 1, extra_certs=[inter.certificate])
    with pytest.raises(TsaUntrusted):
        tsa.verify_response(response, DATA, trust_roots=[other.certificate])
    ocsp_signer = inter.ocsp_responder_signer()  # a real certificate, but not for time stamping
    response = tsa.respond(tsa.make_request(DATA), ocsp_signer, NOW, 1, extra_certs=[inter.certificate])
    with pytest.raises(TsaUntrusted):
        tsa.verify_response(response, DATA, trust_roots=[root.certificate])


def test_tampered_token_is_a_bad_signature(env):
    _, root, inter, signer = env
    token = bytearray(tsa.token_from_response(
        tsa.respond(tsa.make_request(DATA), signer, NOW, 3, extra_certs=[inter.certificate])))
    token[-4] ^= 0x10  # inside the signature value
    with pytest.raises(TsaBadSignature):
        tsa.verify_token(bytes(token), DATA, trust_roots=[root.certificate])


@pytest.mark.parametrize(("request_der", "fail_info"), [
    (b"", "bad_data_format"),
    (b"\x30\x03\x02\x01\x01", "bad_data_format"),
    (tsa.make_request(DATA, hash_name="sha256").replace(b"\x02\x01\x01", b"\x02\x01\x02", 1), "bad_request"),
    (tsa.make_request(DATA, policy="1.2.3.4"), "unaccepted_policy"),
])
def test_bad_requests_get_rejection_responses(env, request_der, fail_info):
    _, _, _, signer = env
    with pytest.raises(TsaRejected) as err:
        tsa.token_from_response(tsa.respond(request_der, signer, NOW, 1))
    assert err.value.details["fail_info"] == [fail_info]


def test_unsupported_hash_is_bad_alg(env):
    _, _, _, signer = env
    from asn1crypto import tsp as atsp
    req = atsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "md5"}, "hashed_message": b"\x00" * 16}}).dump()
    with pytest.raises(TsaRejected) as err:
        tsa.token_from_response(tsa.respond(req, signer, NOW, 1))
    assert err.value.details["fail_info"] == ["bad_alg"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
@example(tsa.make_request(DATA, nonce=7))  # the granted branch runs on every test run
@example(tsa.make_request(DATA, cert_req=False))
def test_responder_never_raises_on_arbitrary_bytes(env, blob):
    """Arbitrary bytes get a well-formed answer: a rejection saying why, or — only for bytes that
    are a valid request — a token that verifies over exactly the imprint the request asked for."""
    _, root, inter, signer = env
    response = tsa.respond(blob, signer, NOW, 1)
    try:
        token = tsa.token_from_response(response)
    except TsaRejected as err:
        assert err.details["status"] == "rejection" and len(err.details["fail_info"]) == 1
        return
    from asn1crypto import tsp as atsp
    imprint = atsp.TimeStampReq.load(blob, strict=True)["message_imprint"]["hashed_message"].native
    stamp = tsa.verify_token(token, digest=imprint, trust_roots=[root.certificate],
                             tsa_certificates=[signer.certificate, inter.certificate])
    assert stamp.message_imprint == imprint and stamp.gen_time == NOW


@pytest.mark.parametrize("garbage", [b"", b"junk", b"\x30\x00"])
def test_garbage_tokens_and_responses_are_malformed(env, garbage):
    _, root, _, _ = env
    with pytest.raises(TsaMalformed):
        tsa.verify_token(garbage, DATA, trust_roots=[root.certificate])
    with pytest.raises(TsaMalformed):
        tsa.token_from_response(garbage)


def test_request_needs_exactly_one_of_data_and_digest():
    with pytest.raises(InvalidInput):
        tsa.make_request()
    with pytest.raises(InvalidInput):
        tsa.make_request(digest=b"short")
