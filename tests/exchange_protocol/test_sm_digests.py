"""The protocol's digests on a 国密 network are SM3 (exchange_protocol.digests): the header's payload
digest (``payload_sm3``), the frame digest a transport receipt binds (``envelope_sm3``) and the replay
identity — each checked with `openssl dgst -sm3` over the bytes. A mismatch is refused with the codes
an international network gives, and a digest of the other profile is PKI_PROFILE_MISMATCH."""

from __future__ import annotations

import json
import struct

import pytest

from exchange_protocol import digests
from exchange_protocol import errors as E
from exchange_protocol.envelope import decode_header
from exchange_protocol.envelope_crypto import encrypt_bytes
from exchange_protocol.envelope_seal import open_envelope_bytes, seal_envelope
from exchange_protocol.frame import SignedHeader, decode_frame, encode_prefix
from exchange_protocol.transport_receipt import TransportReceipt, parse_receipt, sign_receipt, verify_receipt
from pki.errors import UnsupportedAlgorithm
from tests.exchange_protocol.envelope_support import NOW, network, sm_network
from tests.support import run_openssl

PLAINTEXT = "国密公文正文 SM3 digests\r\n".encode() * 300


def openssl_dgst(algorithm: str, data: bytes) -> str:
    """`openssl dgst -ALG -r` over ``data``: the hex digest."""
    return run_openssl("dgst", f"-{algorithm}", "-r", input=data).stdout.decode().split()[0]


def openssl_sm3(data: bytes) -> str:
    return openssl_dgst("sm3", data)


@pytest.fixture(scope="module")
def sm():
    return sm_network()


@pytest.fixture(scope="module")
def sealed(sm):
    return seal_envelope(sm.draft(), PLAINTEXT, sm.nodes["a"].sender, sm.nodes["b"].recipient)


def test_the_header_names_its_payload_by_sm3(sealed):
    head, payload, _ = decode_frame(sealed.data, digest="sm3")
    raw = json.loads(head.single().header_bytes)
    assert "payload_sha256" not in raw and raw["payload_sm3"] == openssl_sm3(payload)
    header = decode_header(head.single().header_bytes)
    assert (header.digest_algorithm, header.payload_digest) == ("sm3", raw["payload_sm3"])


def test_the_opened_envelope_and_its_receipt_bind_the_frame_by_sm3_and_the_sender_checks_it(sm, sealed):
    opened, plain = open_envelope_bytes(sealed.data, sm.policy, sm.nodes["b"].key, "b", NOW)
    assert plain == PLAINTEXT and opened.envelope_digest == openssl_sm3(sealed.data)
    receipt = TransportReceipt(opened.header.message_id, opened.envelope_digest, NOW, "b",
                               digest_algorithm=opened.header.digest_algorithm)
    wire = sign_receipt(receipt, sm.nodes["b"].sender.signer)
    body = json.loads(parse_receipt(wire)[1])
    assert "envelope_sha256" not in body and body["envelope_sm3"] == openssl_sm3(sealed.data)
    args = dict(trust=sm.policy.trust, now=NOW, message_id=opened.header.message_id, receiver_node="b")
    verified = verify_receipt(wire, envelope_digest=openssl_sm3(sealed.data), digest_algorithm="sm3", **args)
    assert verified.receipt == receipt
    with pytest.raises(E.TransportReceiptMismatch) as err:  # the digest of other bytes
        verify_receipt(wire, envelope_digest="00" * 32, digest_algorithm="sm3", **args)
    assert err.value.code == "ENV_RECEIPT_MISMATCH"
    with pytest.raises(E.TransportReceiptMismatch) as err:  # a sender expecting the other profile's digest
        verify_receipt(wire, envelope_digest=openssl_sm3(sealed.data), digest_algorithm="sha256", **args)
    assert err.value.code == "ENV_RECEIPT_MISMATCH"


def test_the_replay_identity_is_sm3_over_the_header_and_its_signature(sm, sealed):
    opened, _ = open_envelope_bytes(sealed.data, sm.policy, sm.nodes["b"].key, "b", NOW)
    signed = decode_frame(sealed.data)[0].single()
    framed = struct.pack(">II", len(signed.header_bytes), len(signed.signature)) + signed.header_bytes + signed.signature
    assert opened.identity_digest == openssl_sm3(framed) == signed.identity("sm3")
    assert signed.identity("sha256") != opened.identity_digest  # the network's digest, not SHA-256


def test_a_changed_payload_byte_is_the_same_digest_mismatch_as_on_an_international_network(sm, sealed):
    head, payload, _ = decode_frame(sealed.data)
    changed = head.prefix() + payload[:-40] + bytes([payload[-40] ^ 1]) + payload[-39:]
    with pytest.raises(E.EnvelopePayloadDigestMismatch) as err:
        open_envelope_bytes(changed, sm.policy, sm.nodes["b"].key, "b", NOW)
    assert err.value.code == "ENV_PAYLOAD_DIGEST_MISMATCH"


def _signed_with_digest(net, algorithm: str) -> bytes:
    """A frame whose header, signed by the origin's own key, names the payload by ``algorithm``."""
    payload = encrypt_bytes(PLAINTEXT, net.nodes["b"].recipient)
    header_bytes = net.draft().complete(len(payload), digests.new(algorithm, payload).digest(), algorithm).encode()
    signed = SignedHeader(header_bytes, net.nodes["a"].sender.sign(header_bytes))
    return encode_prefix([signed], len(payload)) + payload


@pytest.mark.parametrize("profile, other", [("sm", "sha256"), ("international", "sm3")])
def test_a_header_naming_the_other_profiles_digest_is_a_profile_mismatch(sm, profile, other):
    net = sm if profile == "sm" else network()
    with pytest.raises(UnsupportedAlgorithm) as err:
        open_envelope_bytes(_signed_with_digest(net, other), net.policy, net.nodes["b"].key, "b", NOW)
    assert err.value.code == "PKI_PROFILE_MISMATCH"


def test_a_header_with_both_digests_or_neither_is_refused():
    net = network()
    sealed = seal_envelope(net.draft(), b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    raw = json.loads(decode_frame(sealed.data)[0].single().header_bytes)
    both = {**raw, "payload_sm3": raw["payload_sha256"]}
    neither = {k: v for k, v in raw.items() if k != "payload_sha256"}
    for bad, error in ((both, E.EnvelopeUnknownField), (neither, E.EnvelopeMissingField)):
        with pytest.raises(error):
            decode_header(json.dumps(bad, sort_keys=True, separators=(",", ":")).encode())


def test_the_international_network_keeps_sha256_byte_for_byte():
    net = network()
    sealed = seal_envelope(net.draft(), b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    head, payload, frame_digest = decode_frame(sealed.data)
    raw = json.loads(head.single().header_bytes)
    assert raw["payload_sha256"] == openssl_dgst("sha256", payload)
    assert frame_digest == openssl_dgst("sha256", sealed.data)
