"""exchange_protocol.envelope_seal: sealed envelopes between real nodes, checked by openssl, and a
corpus of hostile envelopes generated from valid ones."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol import errors as E
from exchange_protocol.envelope_crypto import encrypt_bytes
from exchange_protocol.envelope_seal import (
    EnvelopeOpener,
    RelayCheck,
    open_envelope,
    open_envelope_bytes,
    open_frame,
    seal_envelope,
    seal_stream,
    write_envelope,
)
from exchange_protocol.frame import SignedHeader, decode_frame, encode_envelope
from pki.errors import CertificateRevoked, RevocationStale
from tests.exchange_protocol.envelope_support import NOW, network
from tests.support import run_openssl

BODY = "关于开展安全检查的通知".encode() * 200


def sealed(origin="a", destination="b", body=BODY, **draft):
    net = network()
    sender = net.nodes["rogue-a" if origin == "rogue-a" else origin].sender
    return seal_envelope(net.draft(origin="a" if origin == "rogue-a" else origin, destination=destination, **draft),
                         body, sender, net.nodes[destination].recipient)


def open_as(data: bytes, node="b", now=NOW, policy=None):
    net = network()
    return open_envelope_bytes(data, policy or net.policy, net.nodes[node].key, node, now)


def open_decoded(data: bytes, node="b", now=NOW, policy=None):
    """As a receiver opens a frame it has read whole: decoded (and digested) once, then opened."""
    net = network()
    policy = policy or net.policy
    head, payload, sha = decode_frame(data, policy.limits, policy.digest)
    return open_frame(head, payload, sha, policy, net.nodes[node].key, node, now)


OPENERS = {"streamed": open_as, "decoded": open_decoded}


@pytest.mark.parametrize("opener", sorted(OPENERS))
@pytest.mark.parametrize("origin, destination", [("a", "b"), ("c", "a"), ("a", "r"), ("r", "c")])
def test_envelopes_open_at_their_destination(origin, destination, opener):
    env = sealed(origin, destination)
    opened, plaintext = OPENERS[opener](env.data, destination)
    assert plaintext == BODY
    assert opened.header == env.header and opened.plaintext_length == len(BODY)
    assert opened.envelope_digest == hashlib.sha256(env.data).hexdigest()
    assert opened.signer_certificate == network().nodes[origin].creds.signing_certificate


@settings(max_examples=15, deadline=None)
@given(body=st.binary(max_size=3000), type=st.sampled_from(["document", "urge", "reply", "recall"]))
def test_random_envelopes_round_trip(body, type):
    env = sealed(body=body, type=type, in_reply_to=None if type == "document" else network().draft().message_id)
    opened, plaintext = open_as(env.data)
    assert plaintext == body and opened.header.type == type


def test_openssl_verifies_the_header_signature_and_opens_the_payload(tmp_path):
    net = network()
    for origin in ("a", "c"):  # c is issued by an intermediate, which travels in the signature
        env = sealed(origin, "b")
        head, payload, _ = decode_frame(env.data)
        (tmp_path / "header.json").write_bytes(head.single().header_bytes)
        (tmp_path / "sig.der").write_bytes(head.single().signature)
        (tmp_path / "payload.der").write_bytes(payload)
        verified = run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                               "-content", tmp_path / "header.json", "-CAfile", net.base / "root.pem",
                               "-purpose", "any", "-out", os.devnull, check=False)
        assert verified.returncode == 0, verified.stderr.decode()
        # Altered header bytes: openssl must disagree too.
        (tmp_path / "header.json").write_bytes(head.single().header_bytes.replace(b'"max_hops":8', b'"max_hops":9'))
        assert run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                           "-content", tmp_path / "header.json", "-CAfile", net.base / "root.pem",
                           "-purpose", "any", "-out", os.devnull, check=False).returncode != 0
        decrypted = run_openssl("cms", "-decrypt", "-binary", "-inform", "DER",
                                "-in", tmp_path / "payload.der",
                                "-recip", net.nodes["b"].creds.directory / "enc.leaf.pem",
                                "-inkey", net.nodes["b"].enc_key_pem, check=False)
        assert decrypted.returncode == 0 and decrypted.stdout == BODY


def test_streamed_envelopes_from_file_to_file(tmp_path):
    net = network()
    body = os.urandom(3 * 1024 * 1024 + 5)
    (tmp_path / "body").write_bytes(body)
    with open(tmp_path / "body", "rb") as src, open(tmp_path / "spool", "w+b") as spool:
        header, prefix = seal_stream(net.draft(), src, len(body), spool, net.nodes["a"].sender,
                                     net.nodes["b"].recipient)
        spool.seek(0)
        with open(tmp_path / "env", "wb") as out:
            sent_sha = write_envelope(prefix, spool, out)
    with open(tmp_path / "env", "rb") as src, open(tmp_path / "plain.tmp", "wb") as dst:
        opened = open_envelope(src, dst, net.policy, net.nodes["b"].key, "b", NOW, chunk_size=256 * 1024)
    assert (tmp_path / "plain.tmp").read_bytes() == body
    assert opened.envelope_digest == sent_sha == hashlib.sha256((tmp_path / "env").read_bytes()).hexdigest()
    assert opened.header == header and header.payload_length == (tmp_path / "spool").stat().st_size


def test_a_wrong_recipient_is_refused_before_any_payload_byte():
    env = sealed("a", "b")
    head_end = len(decode_frame(env.data)[0].prefix())
    net = network()
    opener = EnvelopeOpener(net.policy, net.nodes["c"].key, "c", NOW)
    with pytest.raises(E.EnvelopeWrongRecipient) as info:
        opener.feed(env.data[:head_end])
    assert info.value.code == "ENV_WRONG_RECIPIENT"


# ---- the hostile corpus ------------------------------------------------------------------------------
def _reframe(data: bytes, header_bytes=None, signature=None, payload=None, hops=None) -> bytes:
    head, old_payload, _ = decode_frame(data)
    signed = head.single()
    return encode_envelope([SignedHeader(signed.header_bytes if header_bytes is None else header_bytes,
                                         signed.signature if signature is None else signature)],
                           old_payload if payload is None else payload, head.hops if hops is None else hops)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def _signed_by(signer_node: str, header) -> bytes:
    return network().nodes[signer_node].sender.sign(header.encode())  # with its intermediates


def _tag_failure_signed_by_origin() -> bytes:
    # The origin signs the digest of a payload whose ciphertext is corrupt: digest fine, GCM tag not.
    net = network()
    payload = _flip(encrypt_bytes(BODY, net.nodes["b"].recipient), -100)
    header = net.draft().complete(len(payload), hashlib.sha256(payload).digest())
    return encode_envelope([SignedHeader(header.encode(), _signed_by("a", header))], payload)


def _not_origin() -> bytes:
    net = network()
    payload = encrypt_bytes(BODY, net.nodes["b"].recipient)
    header = net.draft(origin="a").complete(len(payload), hashlib.sha256(payload).digest())
    return encode_envelope([SignedHeader(header.encode(), _signed_by("c", header))], payload)  # c signs for a


def _revoked():
    def check(cert, issuer, at):
        raise CertificateRevoked("revoked in this test")
    return dataclasses.replace(network().policy, revocation=check)


def _stale_crl():
    def check(cert, issuer, at):
        raise RevocationStale("the CRL's nextUpdate has passed")
    return dataclasses.replace(network().policy, revocation=check)


def _altered_header() -> bytes:
    env = sealed()
    head = decode_frame(env.data)[0]
    return _reframe(env.data, header_bytes=head.single().header_bytes.replace(b'"max_hops":8', b'"max_hops":9'))


HOSTILE = {
    "wrong-recipient": (lambda: sealed("a", "c").data, {}, E.EnvelopeWrongRecipient),
    "expired": (lambda: sealed().data, {"now": NOW + dt.timedelta(days=1, seconds=1)}, E.EnvelopeExpired),
    "hops-over-origin-limit": (lambda: _reframe(sealed(max_hops=2).data, hops=3), {}, E.EnvelopeTooManyHops),
    "hops-over-our-limit": (lambda: _reframe(sealed(max_hops=64).data, hops=17), {}, E.EnvelopeTooManyHops),
    "signature-byte-flipped": (lambda: _reframe(sealed().data, signature=_flip(decode_frame(sealed().data)[0].single().signature, -3)),
                               {}, E.EnvelopeBadSignature),
    "signature-garbage": (lambda: _reframe(sealed().data, signature=os.urandom(300)), {}, E.EnvelopeBadSignature),
    "signature-empty": (lambda: _reframe(sealed().data, signature=b""), {}, E.EnvelopeBadSignature),
    "header-altered": (_altered_header, {}, E.EnvelopeBadSignature),
    "signer-untrusted-ca": (lambda: sealed("rogue-a").data, {}, E.EnvelopeSignerUntrusted),
    "signer-not-origin": (_not_origin, {}, E.EnvelopeSignerNotOrigin),
    "signer-certificate-expired": (lambda: sealed(ttl_days=2000).data, {"now": NOW + dt.timedelta(days=900)},
                                   E.EnvelopeSignerUntrusted),
    "signer-revoked": (lambda: sealed().data, {"policy": "revoked"}, E.EnvelopeSignerUntrusted),
    # Our stale CRL is our problem, not the sender's: a transient code, never a bounce.
    "our-crl-stale": (lambda: sealed().data, {"policy": "stale"}, E.EnvelopeRevocationUnknown),
    "payload-byte-flipped": (lambda: _flip(sealed().data, -50), {}, E.EnvelopePayloadDigestMismatch),
    "payload-swapped": (lambda: _reframe(sealed().data, payload=decode_frame(sealed().data)[1]), {},
                        E.EnvelopePayloadDigestMismatch),
    "payload-length-lies": (lambda: _reframe(sealed().data, payload=decode_frame(sealed().data)[1] + b"\0"), {},
                            E.EnvelopeMalformedFrame),
    "gcm-tag-failure": (_tag_failure_signed_by_origin, {}, E.EnvelopeTagMismatch),
    "truncated-payload": (lambda: sealed().data[:-1], {}, E.EnvelopeTruncated),
    "truncated-head": (lambda: sealed().data[:24 + 10], {}, E.EnvelopeTruncated),
    "trailing-bytes": (lambda: sealed().data + b"\n", {}, E.EnvelopeMalformedFrame),
    "bad-magic": (lambda: b"GWXX" + sealed().data[4:], {}, E.EnvelopeBadMagic),
}


@pytest.mark.parametrize("opener", sorted(OPENERS))  # both ways of opening judge alike
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_envelopes_get_typed_errors(name, opener):
    make, kwargs, error = HOSTILE[name]
    if kwargs.get("policy") == "revoked":
        kwargs = {"policy": _revoked()}
    elif kwargs.get("policy") == "stale":
        kwargs = {"policy": _stale_crl()}
    with pytest.raises(error) as info:
        OPENERS[opener](make(), **kwargs)
    assert isinstance(info.value, E.EnvelopeError)
    assert info.value.code == error.code
    if name == "signer-revoked":
        assert info.value.details["cause"] == "PKI_CERT_REVOKED"


def test_a_decoded_frame_is_opened_by_the_streaming_openers_rules(monkeypatch):
    """open_frame (the acceptor's path) is an EnvelopeOpener given the decoded head: a rule of the opener's
    — the header checks, the payload digest, the GCM tag — is written once and holds on both paths, and
    the frame is not decoded a second time."""
    from exchange_protocol import envelope_seal

    net, data = network(), sealed().data
    head, payload, sha = decode_frame(data, net.policy.limits, net.policy.digest)
    calls = []
    close = envelope_seal.EnvelopeOpener.close
    monkeypatch.setattr(envelope_seal.EnvelopeOpener, "close", lambda self: calls.append("opener") or close(self))
    monkeypatch.setattr(envelope_seal.FrameDecoder, "feed", lambda *a: calls.append("decoded again"))
    opened, plaintext = open_frame(head, payload, sha, net.policy, net.nodes["b"].key, "b", NOW)
    assert calls == ["opener"] and opened.envelope_digest == sha and plaintext == BODY


def test_a_decoded_head_and_its_frame_digest_are_given_together_or_not_at_all():
    """A head without the frame's digest would open into an envelope whose transport receipt binds
    nothing (an empty envelope_digest); a digest without its head would be ignored."""
    net, data = network(), sealed().data
    head, payload, sha = decode_frame(data, net.policy.limits, net.policy.digest)
    key = net.nodes["b"].key
    with pytest.raises(TypeError, match="given together"):
        EnvelopeOpener(net.policy, key, "b", NOW, head=head)
    with pytest.raises(TypeError, match="given together"):
        EnvelopeOpener(net.policy, key, "b", NOW, envelope_digest=sha)
    with pytest.raises(TypeError, match="given together"):
        open_frame(head, payload, "", net.policy, key, "b", NOW)
    opener = EnvelopeOpener(net.policy, key, "b", NOW, head=head, envelope_digest=sha)
    assert opener.feed(payload) == BODY and opener.close().envelope_digest == sha


# ---- relays ------------------------------------------------------------------------------------------
def test_a_relay_checks_without_the_key_and_forwards_with_one_more_hop():
    net = network()
    env = sealed("a", "b")
    relay = RelayCheck(net.policy, NOW)
    payload = relay.feed(env.data)
    verified, sha = relay.close()
    assert sha == hashlib.sha256(env.data).hexdigest() and verified.headers[0].header == env.header
    forwarded = verified.subset_prefix(["b"], hops=verified.head.hops + 1) + payload
    assert forwarded == env.data[:5] + b"\x01" + env.data[6:]  # one more hop, nothing else changed
    opened, plaintext = open_as(forwarded)
    assert plaintext == BODY and opened.hops == 1
    assert opened.identity_digest == verified.headers[0].identity_digest  # same envelope for duplicate detection


def test_a_relay_refuses_a_corrupted_payload_and_a_last_hop():
    net = network()
    relay = RelayCheck(net.policy, NOW)
    relay.feed(_flip(sealed().data, -7))
    with pytest.raises(E.EnvelopePayloadDigestMismatch):
        relay.close()
    relay = RelayCheck(net.policy, NOW)
    relay.feed(_reframe(sealed(max_hops=2).data, hops=2))
    with pytest.raises(E.EnvelopeTooManyHops):
        relay.close()
