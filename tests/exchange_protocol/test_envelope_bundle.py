"""Bundles (issue 8 §4, fan-out): one payload encrypted once for K destination nodes, one header per
destination signed by the origin; every destination opens its own header, a relay checks all of them
without a key and forwards a subset per next hop without re-encrypting or re-signing, and a bundle
that breaks a rule is refused with a typed error before any payload byte is used."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol import errors as E
from exchange_protocol.envelope_crypto import decrypt_bytes, encrypt_bytes
from exchange_protocol.envelope_seal import (
    EnvelopeOpener,
    RelayCheck,
    open_envelope,
    open_envelope_bytes,
    seal_bundle,
    seal_bundle_stream,
    write_envelope,
)
from exchange_protocol.frame import FrameLimits, SignedHeader, decode_frame, encode_envelope
from tests.exchange_protocol.envelope_support import NOW, destinations, network
from tests.support import run_openssl

BODY = "关于做好防汛工作的通知".encode() * 300


def drafts(*nodes, origin="a", **changes):
    net = network()
    return [net.draft(origin=origin, destination=n, **changes) for n in nodes]


def bundle(*nodes, body=BODY, **changes):
    net = network()
    return seal_bundle(drafts(*nodes, **changes), body, net.nodes["a"].sender,
                       [net.nodes[n].recipient for n in nodes])


def open_as(data: bytes, node: str, now=NOW, policy=None):
    net = network()
    return open_envelope_bytes(data, policy or net.policy, net.nodes[node].key, node, now)


def relay(data: bytes, policy=None):
    check = RelayCheck(policy or network().policy, NOW)
    payload = check.feed(data)
    verified, sha = check.close()
    return verified, payload, sha


# ---- round trips ---------------------------------------------------------------------------------------
def test_each_destination_opens_its_own_header_of_one_bundle():
    sealed = bundle("b", "c", "r")  # EC under the root, EC under an intermediate, RSA
    assert [h.destination_node for h in sealed.headers] == ["b", "c", "r"]
    assert len({h.message_id for h in sealed.headers}) == 3
    assert len({(h.payload_length, h.payload_digest) for h in sealed.headers}) == 1  # one payload
    for i, node in enumerate(("b", "c", "r")):
        opened, plaintext = open_as(sealed.data, node)
        assert plaintext == BODY and opened.header == sealed.headers[i]
        assert opened.identity_digest == decode_frame(sealed.data)[0].signed[i].identity()
        assert opened.envelope_digest == hashlib.sha256(sealed.data).hexdigest()
        assert [v.header for v in opened.verified.headers] == list(sealed.headers)


def test_a_bundle_of_one_is_the_ordinary_envelope():
    sealed = bundle("b")
    head = decode_frame(sealed.data)[0]
    assert head.count == 1 and sealed.data[6:8] == b"\x00\x01"
    assert open_as(sealed.data, "b")[1] == BODY


def test_a_bundle_for_two_hundred_nodes_is_sealed_once_and_opens_at_each():
    net = network()
    dests = destinations(200)
    ds = [net.draft(destination=d.id) for d in dests]
    started = time.perf_counter()
    sealed = seal_bundle(ds, BODY, net.nodes["a"].sender, [d.recipient for d in dests])
    sealing = time.perf_counter() - started
    head, payload, _ = decode_frame(sealed.data)
    assert head.count == 200 and len(sealed.headers) == 200
    # Encrypted once: the payload grows by the wrapped keys, not by 200 copies of the document.
    assert len(payload) < len(BODY) + 200 * 300
    for d in (dests[0], dests[117], dests[199]):
        opened, plaintext = open_envelope_bytes(sealed.data, net.policy, d.key, d.id, NOW)
        assert plaintext == BODY and opened.header.destination_node == d.id
    assert sealing < 30  # ~1 signature and one key wrap per destination, on a loaded 2-core machine


@functools.cache
def _sealed_once():
    return bundle("b", "c", "r", body=os.urandom(5000))


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(0, 20000), max_size=10), node=st.sampled_from(["b", "c", "r"]))
def test_a_bundle_opens_the_same_however_it_is_chunked(cuts, node):
    sealed = _sealed_once()
    data = sealed.data
    opener = EnvelopeOpener(network().policy, network().nodes[node].key, node, NOW)
    got, last = b"", 0
    for cut in sorted(c for c in cuts if c <= len(data)) + [len(data)]:
        got += opener.feed(data[last:cut])
        last = cut
    opened = opener.close()
    assert opened.header.destination_node == node
    assert got == open_as(data, node)[1] and len(got) == 5000


# ---- relays ----------------------------------------------------------------------------------------
def test_a_relay_splits_a_bundle_by_next_hop_without_re_encrypting_or_re_signing():
    sealed = bundle("b", "c", "r")
    verified, payload, sha = relay(sealed.data)
    assert sha == hashlib.sha256(sealed.data).hexdigest()
    assert [v.header for v in verified.headers] == list(sealed.headers)
    to_c = verified.subset_prefix(["c"], verified.head.hops + 1) + payload
    to_b_and_r = verified.subset_prefix(["r", "b"], verified.head.hops + 1) + payload
    assert decode_frame(to_c)[0].count == 1 and decode_frame(to_b_and_r)[0].count == 2
    assert decode_frame(to_c)[1] == payload  # the same payload bytes, as the origin encrypted them
    for frame, node in ((to_c, "c"), (to_b_and_r, "b"), (to_b_and_r, "r")):
        opened, plaintext = open_as(frame, node)
        assert plaintext == BODY and opened.hops == 1
        original = verified.for_node(node)
        assert opened.header == original.header
        assert opened.identity_digest == original.identity_digest  # the same envelope, for dedupe


def test_a_destination_that_also_relays_forwards_the_other_headers_from_what_it_opened():
    sealed = bundle("b", "c", "r")
    head, payload, _ = decode_frame(sealed.data)
    opened, plaintext = open_as(sealed.data, "b")
    assert plaintext == BODY
    others = [v.header.destination_node for v in opened.verified.headers if v.header.destination_node != "b"]
    forwarded = opened.verified.subset_prefix(others, opened.hops + 1) + payload
    assert open_as(forwarded, "r")[1] == BODY
    with pytest.raises(E.EnvelopeWrongRecipient):
        open_as(forwarded, "b")  # its own header is not in what it forwards


def test_a_subset_must_name_destinations_of_the_bundle_and_respect_their_hop_limits():
    verified, _, _ = relay(bundle("b", "c", max_hops=2).data)
    with pytest.raises(ValueError):
        verified.subset_prefix(["r"], 1)
    with pytest.raises(ValueError):
        verified.subset_prefix([], 1)
    with pytest.raises(E.EnvelopeTooManyHops):
        verified.subset_prefix(["b"], 3)


# ---- hostile bundles ---------------------------------------------------------------------------------
def _rebuild(data: bytes, change) -> bytes:
    """The bundle's frame with its signed headers passed through ``change`` (a list to a list)."""
    head, payload, _ = decode_frame(data)
    return encode_envelope(change(list(head.signed)), payload, head.hops)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


def _signed(header, by="a") -> SignedHeader:
    header_bytes = header.encode()
    return SignedHeader(header_bytes, network().nodes[by].sender.sign(header_bytes))


def _tampered_header(signed):
    h = signed[1].header_bytes.replace(b'"max_hops":8', b'"max_hops":9')
    return [signed[0], SignedHeader(h, signed[1].signature), signed[2]]


def _tampered_signature(signed):
    return [*signed[:2], SignedHeader(signed[2].header_bytes, _flip(signed[2].signature, -3))]


def _completed(sealed, *nodes, by="a", origin="a", **changes):
    """Headers for ``nodes`` completed for ``sealed``'s payload (or ``changes``' fields), signed ``by``."""
    first = sealed.headers[0]
    fields = dict(payload_length=first.payload_length, payload_digest=bytes.fromhex(first.payload_digest))
    fields.update(changes)
    return [_signed(d.complete(fields["payload_length"], fields["payload_digest"]), by)
            for d in drafts(*nodes, origin=origin)]


def _other_payload_fields():
    sealed = bundle("b", "c")
    return _rebuild(sealed.data, lambda s: s + _completed(sealed, "r", payload_digest=b"\x07" * 32))


def _all_fields_lie_about_the_length():
    sealed = bundle("b", "c")
    wrong = sealed.headers[0].payload_length + 1
    return _rebuild(sealed.data, lambda s: _completed(sealed, "b", "c", payload_length=wrong))


def _duplicate_destination():
    sealed = bundle("b", "c")
    return _rebuild(sealed.data, lambda s: s + _completed(sealed, "b"))


def _duplicate_id():
    sealed = bundle("b", "c")
    again = sealed.headers[0]
    copy = type(again)(**{**again.__dict__, "destination_node": "r"})
    return _rebuild(sealed.data, lambda s: s + [_signed(copy)])


def _mixed_origins():
    sealed = bundle("b", "c")
    return _rebuild(sealed.data, lambda s: s + _completed(sealed, "r", by="c", origin="c"))


def _one_expired():
    sealed = bundle("b", "c")
    short = drafts("r", ttl_days=1)[0]
    short = type(short)(**{**short.__dict__, "expires": NOW - dt.timedelta(seconds=1),
                           "created": NOW - dt.timedelta(days=1)})
    first = sealed.headers[0]
    late = _signed(short.complete(first.payload_length, bytes.fromhex(first.payload_digest)))
    return _rebuild(sealed.data, lambda s: s + [late])


def _over_cap():
    return bundle("b", "c", "r").data


def _truncated_table():
    return bundle("b", "c", "r").data[:16 + 20]


HOSTILE = {
    "header-tampered": (lambda: _rebuild(bundle("b", "c", "r").data, _tampered_header), E.EnvelopeBadSignature),
    "signature-tampered": (lambda: _rebuild(bundle("b", "c", "r").data, _tampered_signature),
                           E.EnvelopeBadSignature),
    "signatures-swapped": (lambda: _rebuild(bundle("b", "c").data, lambda s: [
        SignedHeader(s[0].header_bytes, s[1].signature), SignedHeader(s[1].header_bytes, s[0].signature)]),
        E.EnvelopeBadSignature),
    "payload-tampered": (lambda: _flip(bundle("b", "c", "r").data, -40), E.EnvelopePayloadDigestMismatch),
    "payload-fields-differ": (_other_payload_fields, E.EnvelopeBundlePayloadMismatch),
    "payload-length-lies": (_all_fields_lie_about_the_length, E.EnvelopeMalformedFrame),
    "duplicate-destination": (_duplicate_destination, E.EnvelopeBundleDuplicateDestination),
    "duplicate-message-id": (_duplicate_id, E.EnvelopeBundleDuplicateId),
    "mixed-origins": (_mixed_origins, E.EnvelopeBundleMixedOrigins),
    "one-header-expired": (_one_expired, E.EnvelopeExpired),
    "over-the-header-cap": (_over_cap, E.EnvelopeTooManyHeaders),
    "truncated-table": (_truncated_table, E.EnvelopeTruncated),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bundles_get_typed_errors_at_a_destination_and_at_a_relay(name):
    make, error = HOSTILE[name]
    data = make()
    net = network()
    policy = net.policy
    if name == "over-the-header-cap":
        policy = type(policy)(**{**policy.__dict__, "limits": FrameLimits(max_headers=2)})
    for attempt in (lambda: open_as(data, "b", policy=policy), lambda: relay(data, policy)):
        with pytest.raises(error) as info:
            attempt()
        assert info.value.code == error.code and isinstance(info.value, E.EnvelopeError)


@pytest.mark.parametrize("name", ["header-tampered", "signature-tampered", "one-header-expired", "mixed-origins"])
def test_every_header_is_judged_before_any_payload_byte_is_used(name):
    data = HOSTILE[name][0]()
    head = decode_frame(data)[0]
    opener = EnvelopeOpener(network().policy, network().nodes["b"].key, "b", NOW)
    with pytest.raises(HOSTILE[name][1]):
        opener.feed(data[:len(head.prefix())])  # the head alone: the bad header is the last or a later one


def test_a_node_no_header_is_for_is_refused_before_the_payload():
    data = bundle("b", "c").data
    opener = EnvelopeOpener(network().policy, network().nodes["r"].key, "r", NOW)
    with pytest.raises(E.EnvelopeWrongRecipient) as info:
        opener.feed(data[:len(decode_frame(data)[0].prefix())])
    assert "b, c" in info.value.message


@pytest.mark.parametrize("make, error", [
    (lambda: drafts("b", "b"), E.EnvelopeBundleDuplicateDestination),
    (lambda: drafts("b", "c") + drafts("r", origin="c"), E.EnvelopeBundleMixedOrigins),
])
def test_sealing_refuses_a_bundle_that_breaks_a_rule(make, error):
    net = network()
    ds = make()
    with pytest.raises(error):
        seal_bundle(ds, BODY, net.nodes["a"].sender, [net.nodes[d.destination_node].recipient for d in ds])


def test_sealing_refuses_more_headers_than_a_reader_accepts_and_mismatched_recipients():
    net = network()
    ds = drafts("b", "c", "r")
    recipients = [net.nodes[n].recipient for n in ("b", "c", "r")]
    with pytest.raises(E.EnvelopeTooManyHeaders):
        seal_bundle(ds, BODY, net.nodes["a"].sender, recipients, limits=FrameLimits(max_headers=2))
    with pytest.raises(E.EnvelopeInvalidField):
        seal_bundle(ds, BODY, net.nodes["a"].sender, list(reversed(recipients)))
    with pytest.raises(E.EnvelopeInvalidField):
        seal_bundle(ds, BODY, net.nodes["a"].sender, recipients[:2])


# ---- streaming -----------------------------------------------------------------------------------------
def test_a_large_bundle_is_sealed_and_opened_in_bounded_memory(tmp_path):
    net = network()
    size = 24 * 1024 * 1024 + 3
    with open(tmp_path / "body", "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(size % (1 << 20)))
    nodes = ("b", "c", "r")
    tracemalloc.start()
    try:
        with open(tmp_path / "body", "rb") as src, open(tmp_path / "spool", "w+b") as spool:
            headers, prefix = seal_bundle_stream(drafts(*nodes), src, size, spool, net.nodes["a"].sender,
                                                 [net.nodes[n].recipient for n in nodes])
            spool.seek(0)
            with open(tmp_path / "bundle", "wb") as out:
                sent_sha = write_envelope(prefix, spool, out)
        with open(tmp_path / "bundle", "rb") as src, open(tmp_path / "plain", "wb") as dst:
            opened = open_envelope(src, dst, net.policy, net.nodes["r"].key, "r", NOW, chunk_size=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte bundle"
    assert opened.header == headers[2] and opened.envelope_digest == sent_sha
    assert opened.plaintext_length == size
    assert hashlib.sha256((tmp_path / "plain").read_bytes()).digest() == \
        hashlib.sha256((tmp_path / "body").read_bytes()).digest()


def test_openssl_opens_a_bundle_payload_with_each_recipients_key(tmp_path):
    net = network()
    payload = encrypt_bytes(BODY, [net.nodes["b"].recipient, net.nodes["r"].recipient])
    (tmp_path / "p.der").write_bytes(payload)
    for node in ("b", "r"):  # P-256 key agreement and RSA-OAEP key transport, side by side
        n = net.nodes[node]
        result = run_openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "p.der",
                             "-recip", n.creds.directory / "enc.leaf.pem", "-inkey", n.enc_key_pem, check=False)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == BODY
    # c's key is not among them: openssl cannot open it either, and neither can we.
    c = net.nodes["c"]
    assert run_openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "p.der",
                       "-recip", c.creds.directory / "enc.leaf.pem", "-inkey", c.enc_key_pem,
                       check=False).returncode != 0
    with pytest.raises(E.EnvelopeNotForMe):
        decrypt_bytes(payload, c.key)
    assert [decrypt_bytes(payload, net.nodes[n].key) for n in ("b", "r")] == [BODY, BODY]
