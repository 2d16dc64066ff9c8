"""exchange_protocol.envelope_crypto: CMS AuthEnvelopedData, checked against openssl cms both ways."""

from __future__ import annotations

import io
import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol import errors as E
from exchange_protocol.envelope_crypto import (
    OID_DATA,
    DecryptionKey,
    PayloadDecryptor,
    Recipient,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    encrypted_length,
)
from tests.exchange_protocol.envelope_support import network
from tests.support import run_openssl

PLAINTEXT = "公文正文 body\r\n".encode() * 300


@pytest.fixture(scope="module", params=["b", "r"], ids=["ec-p256", "rsa3072"])
def node(request):
    return network().nodes[request.param]


def openssl_decrypt(node, payload: bytes, tmp_path) -> bytes:
    (tmp_path / "p.der").write_bytes(payload)
    result = run_openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "p.der",
                         "-recip", node.creds.directory / "enc.leaf.pem", "-inkey", node.enc_key_pem,
                         check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_openssl_opens_what_we_encrypt(node, tmp_path):
    payload = encrypt_bytes(PLAINTEXT, node.recipient)
    assert openssl_decrypt(node, payload, tmp_path) == PLAINTEXT
    printed = run_openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", tmp_path / "p.der",
                          text=True).stdout
    assert "authEnvelopedData" in printed and "aes-256-gcm" in printed
    assert ("dhSinglePass-stdDH-sha256kdf-scheme" in printed) == (node.id == "b")
    assert ("rsaesOaep" in printed) == (node.id == "r")


def test_openssl_opens_a_streamed_payload(node, tmp_path):
    src = os.urandom(3 * 65536 + 17)
    out = io.BytesIO()
    sealed = encrypt_stream(io.BytesIO(src), out, len(src), node.recipient, chunk_size=65536)
    assert sealed.length == len(out.getvalue()) == node.recipient.encrypted_length(len(src))
    assert openssl_decrypt(node, out.getvalue(), tmp_path) == src


def test_we_open_what_openssl_encrypts(node, tmp_path):
    (tmp_path / "in").write_bytes(PLAINTEXT)
    opts = (["-keyopt", "ecdh_kdf_md:sha256"] if node.id == "b" else
            ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"])
    result = run_openssl("cms", "-encrypt", "-aes-256-gcm", "-binary", "-in", tmp_path / "in",
                         "-outform", "DER", "-out", tmp_path / "o.der",
                         "-recip", node.creds.directory / "enc.leaf.pem", *opts, check=False)
    assert result.returncode == 0, result.stderr.decode()
    assert decrypt_bytes((tmp_path / "o.der").read_bytes(), node.key) == PLAINTEXT


def test_openssl_defaults_we_refuse_are_refused_with_typed_errors(node, tmp_path):
    # openssl's defaults: SHA-1 KDF for ECDH, PKCS#1 v1.5 key transport for RSA (padding-oracle history).
    (tmp_path / "in").write_bytes(b"x")
    run_openssl("cms", "-encrypt", "-aes-256-gcm", "-binary", "-in", tmp_path / "in", "-outform", "DER",
                "-out", tmp_path / "o.der", "-recip", node.creds.directory / "enc.leaf.pem", check=False)
    with pytest.raises(E.EnvelopeUnsupportedAlgorithm):
        decrypt_bytes((tmp_path / "o.der").read_bytes(), node.key)


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(max_size=5000), cuts=st.lists(st.integers(0, 6000), max_size=6))
def test_random_payloads_round_trip_however_they_are_chunked(plaintext, cuts):
    node = network().nodes["b"]
    payload = encrypt_bytes(plaintext, node.recipient)
    assert len(payload) == node.recipient.encrypted_length(len(plaintext))
    dec = PayloadDecryptor(node.key, expected_length=len(payload))
    got, last = b"", 0
    for cut in sorted(c for c in cuts if c <= len(payload)) + [len(payload)]:
        got += dec.update(payload[last:cut])
        last = cut
    dec.finalize()
    assert got == plaintext


class _Zeros(io.RawIOBase):
    """An endless source that holds nothing in memory."""

    def readable(self):
        return True

    def readinto(self, b):
        b[:] = bytes(len(b))
        return len(b)


class _Sink(io.RawIOBase):
    def __init__(self):
        self.n = 0
        self.chunks = []

    def writable(self):
        return True

    def write(self, b):
        self.n += len(b)
        return len(b)


def test_large_payloads_stream_in_bounded_memory(tmp_path):
    node = network().nodes["b"]
    size = 48 * 1024 * 1024
    tracemalloc.start()
    try:
        with open(tmp_path / "p.der", "wb") as spool:
            sealed = encrypt_stream(_Zeros(), spool, size, node.recipient, chunk_size=1 << 20)
        with open(tmp_path / "p.der", "rb") as src:
            n = decrypt_stream(src, _Sink(), node.key, length=sealed.length, chunk_size=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == size
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte payload"


# ---- hostile payloads -----------------------------------------------------------------------------
def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1:]


def test_altered_ciphertext_or_tag_fails_the_gcm_check_only_at_the_end():
    node = network().nodes["b"]
    payload = encrypt_bytes(PLAINTEXT, node.recipient)
    for index in (len(payload) - len(PLAINTEXT) - 18 + 5, len(payload) - 1):
        dec = PayloadDecryptor(node.key)
        out = dec.update(_flip(payload, index))
        assert len(out) == len(PLAINTEXT)  # streamed out, unauthenticated …
        with pytest.raises(E.EnvelopeTagMismatch) as info:
            dec.finalize()  # … and refused at the end
        assert info.value.code == "ENV_TAG_MISMATCH"


def test_altered_wrapped_key_fails_to_unwrap():
    node = network().nodes["b"]
    payload = encrypt_bytes(b"x" * 100, node.recipient)
    end = payload.index(OID_DATA) - 3  # the wrapped key ends where EncryptedContentInfo (30 81 xx) begins
    assert payload[end - 42:end - 40] == b"\x04\x28"  # OCTET STRING of 40 bytes: the wrapped key
    wrapped_at = end - 20
    with pytest.raises(E.EnvelopeDecryptionFailed):
        decrypt_bytes(_flip(payload, wrapped_at), node.key)


def test_a_payload_for_another_node_is_not_for_us():
    net = network()
    payload = encrypt_bytes(b"secret", net.nodes["a"].recipient)
    with pytest.raises(E.EnvelopeNotForMe) as info:
        decrypt_bytes(payload, net.nodes["b"].key)
    assert info.value.code == "ENV_NO_RECIPIENT_INFO"


def test_one_payload_for_several_recipients_opens_with_each_key_and_is_as_long_as_announced():
    net = network()
    nodes = [net.nodes[n] for n in ("a", "c", "r")]
    recipients = [n.recipient for n in nodes]
    payload = encrypt_bytes(PLAINTEXT, recipients)
    assert len(payload) == encrypted_length(len(PLAINTEXT), recipients)
    for node in nodes:
        assert decrypt_bytes(payload, node.key) == PLAINTEXT
    out = io.BytesIO()
    sealed = encrypt_stream(io.BytesIO(PLAINTEXT), out, len(PLAINTEXT), recipients, chunk_size=1000)
    assert sealed.length == len(out.getvalue()) == len(payload)
    assert decrypt_bytes(out.getvalue(), net.nodes["r"].key) == PLAINTEXT
    with pytest.raises(E.EnvelopeNotForMe):
        decrypt_bytes(payload, net.nodes["b"].key)


def test_recipients_must_be_some_and_each_once():
    net = network()
    for recipients in ([], [net.nodes["b"].recipient, Recipient(net.nodes["b"].creds.encryption_certificate)]):
        with pytest.raises(E.EnvelopeRecipientUnusable):
            encrypt_bytes(b"x", recipients)


def test_a_payload_for_a_previous_key_opens_with_the_keys_held_during_a_renewal():
    # A renewed node holds its new key first and its previous one until the overlap ends: what a
    # peer sealed for either certificate opens (EC and RSA keys side by side), anything else is not for it.
    net = network()
    current, previous = net.nodes["b"].key, net.nodes["r"].key
    for sealed_for in ("b", "r"):
        payload = encrypt_bytes(b"secret", net.nodes[sealed_for].recipient)
        assert decrypt_bytes(payload, [current, previous]) == b"secret"
        out = io.BytesIO()
        assert decrypt_stream(io.BytesIO(payload), out, (previous, current), chunk_size=7) == len(b"secret")
        assert out.getvalue() == b"secret"
    with pytest.raises(E.EnvelopeNotForMe):  # the previous key dropped: the old certificate's envelopes stop
        decrypt_bytes(encrypt_bytes(b"secret", net.nodes["r"].recipient), [current])
    with pytest.raises(E.EnvelopeNotForMe):
        decrypt_bytes(encrypt_bytes(b"secret", net.nodes["a"].recipient), [current, previous])


def test_a_key_that_does_not_match_its_certificate_is_refused():
    net = network()
    with pytest.raises(E.EnvelopeRecipientUnusable):
        DecryptionKey(net.nodes["a"].key.private_key, net.nodes["b"].creds.encryption_certificate)


def test_a_signing_certificate_is_not_an_encryption_recipient():
    with pytest.raises(E.EnvelopeRecipientUnusable):
        Recipient(network().nodes["b"].creds.signing_certificate)


@pytest.mark.parametrize("cut", [0, 1, 10, 200, -19, -18, -1])
def test_truncated_payloads_are_refused(cut):
    node = network().nodes["b"]
    payload = encrypt_bytes(PLAINTEXT, node.recipient)
    with pytest.raises(E.EnvelopeMalformedPayload):
        decrypt_bytes(payload[:cut], node.key)


def test_garbage_and_lying_lengths_are_malformed_not_crashes():
    node = network().nodes["b"]
    payload = encrypt_bytes(b"abc", node.recipient)
    for bad in (b"\x30\x80" + payload[2:], payload + b"\x00", b"\x30\x03\x02\x01\x00", os.urandom(300),
                b"\x30" + b"\x84\xff\xff\xff\xff" + payload[4:]):
        with pytest.raises(E.EnvelopeMalformedPayload):
            decrypt_bytes(bad, node.key)


def test_the_prefix_buffer_is_capped():
    node = network().nodes["b"]
    dec = PayloadDecryptor(node.key, prefix_cap=1024)
    # A ContentInfo claiming a huge recipientInfos SET: the decryptor must give up, not buffer on.
    head = b"\x30\x84\x10\x00\x00\x00\x06\x0b*\x86H\x86\xf7\r\x01\t\x10\x01\x17\xa0\x84\x0f\xff\xff\xf0"
    with pytest.raises(E.EnvelopeMalformedPayload):
        dec.update(head)
        for _ in range(10):
            dec.update(bytes(200))
