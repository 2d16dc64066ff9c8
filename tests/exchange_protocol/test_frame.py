"""exchange_protocol.frame: the binary frame (version 2) — K signed headers, one payload — as documented,
however it is chunked, and hostile frames refused with typed errors before anything oversized is read."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol import errors as E
from exchange_protocol.frame import (
    FIXED_LEN,
    FrameDecoder,
    FrameLimits,
    SignedHeader,
    decode_frame,
    encode_envelope,
    encode_prefix,
    frame_length,
    prefix_length,
    read_layout,
)

HB, SIG, PAYLOAD = b'{"h":1}', b"\x30\x03sig", bytes(range(256)) * 40
ONE = [SignedHeader(HB, SIG)]
THREE = [SignedHeader(b'{"h":%d}' % i, b"\x30\x04sig" + bytes([i])) for i in range(3)]


def test_frame_layout_is_as_documented():
    data = encode_envelope(THREE, PAYLOAD, hops=3)
    assert data[:4] == b"GWXE" and data[4] == 2 and data[5] == 3
    assert struct.unpack(">HQ", data[6:16]) == (3, len(PAYLOAD))
    table = [struct.unpack(">II", data[16 + 8 * i:24 + 8 * i]) for i in range(3)]
    assert table == [(len(s.header_bytes), len(s.signature)) for s in THREE]
    assert data[40:] == b"".join(s.header_bytes + s.signature for s in THREE) + PAYLOAD
    head, payload, sha = decode_frame(data)
    assert (head.version, head.hops, head.signed, head.payload_length, payload) == (2, 3, tuple(THREE),
                                                                                    len(PAYLOAD), PAYLOAD)
    assert sha == hashlib.sha256(data).hexdigest()


def test_an_ordinary_envelope_is_a_frame_of_one_header():
    data = encode_envelope(ONE, PAYLOAD)
    assert len(data) == FIXED_LEN + 8 + len(HB) + len(SIG) + len(PAYLOAD)
    head = decode_frame(data)[0]
    assert head.count == 1 and head.single() == ONE[0]
    with pytest.raises(E.EnvelopeBundleUnsupported) as info:
        decode_frame(encode_envelope(THREE, PAYLOAD))[0].single()
    assert info.value.code == "ENV_BUNDLE_UNSUPPORTED"


signed_headers = st.builds(SignedHeader, st.binary(max_size=200), st.binary(max_size=200))


@settings(max_examples=40, deadline=None)
@given(signed=st.lists(signed_headers, min_size=1, max_size=6), payload=st.binary(max_size=3000),
       cuts=st.lists(st.integers(0, 6000), max_size=8), hops=st.integers(0, 255))
def test_frame_decodes_the_same_however_it_is_chunked(signed, payload, cuts, hops):
    data = encode_envelope(signed, payload, hops)
    assert frame_length(data[:prefix_length(data)]) == len(data)
    dec = FrameDecoder()
    got, last = b"", 0
    for cut in sorted(c for c in cuts if c <= len(data)) + [len(data)]:
        got += dec.feed(data[last:cut])
        last = cut
    assert dec.close() == hashlib.sha256(data).hexdigest()
    assert (dec.head.signed, dec.head.hops, got) == (tuple(signed), hops, payload)


def test_identity_digest_is_per_header_and_ignores_hops_and_the_other_headers():
    whole = decode_frame(encode_envelope(THREE, PAYLOAD, 0))[0]
    relayed = decode_frame(whole.prefix(hops=5, signed=[THREE[1]]) + PAYLOAD)[0]
    assert relayed.hops == 5 and relayed.signed == (THREE[1],)
    assert relayed.signed[0].identity() == whole.signed[1].identity()
    assert len({s.identity() for s in whole.signed}) == 3
    other_sig = SignedHeader(THREE[1].header_bytes, THREE[1].signature + b"x")
    assert other_sig.identity() != THREE[1].identity()
    assert whole.prefix(hops=6)[5] == 6 and whole.prefix(hops=6)[6:] == whole.prefix()[6:]


def _bad(data: bytes, limits=FrameLimits()):
    dec = FrameDecoder(limits)
    dec.feed(data)
    return dec.close()


def _fixed(count: int, payload: int = 10, version: int = 2) -> bytes:
    return struct.pack(">4sBBHQ", b"GWXE", version, 0, count, payload)


VALID = encode_envelope(THREE, PAYLOAD)


@pytest.mark.parametrize("data, error, code", [
    (b"GWXF" + VALID[4:], E.EnvelopeBadMagic, "ENV_BAD_MAGIC"),
    (b"PK\x03\x04", E.EnvelopeBadMagic, "ENV_BAD_MAGIC"),  # refused on the first bytes
    (b"GWXE\x01" + VALID[5:], E.EnvelopeUnsupportedVersion, "ENV_UNSUPPORTED_VERSION"),  # version 1 is not read
    (b"GWXE\x03" + VALID[5:], E.EnvelopeUnsupportedVersion, "ENV_UNSUPPORTED_VERSION"),
    (_fixed(0) + b"x" * 40, E.EnvelopeMalformedFrame, "ENV_MALFORMED_FRAME"),  # no header at all
    (VALID + b"\0", E.EnvelopeMalformedFrame, "ENV_MALFORMED_FRAME"),
    (VALID[:10], E.EnvelopeTruncated, "ENV_TRUNCATED"),
    (VALID[:FIXED_LEN + 12], E.EnvelopeTruncated, "ENV_TRUNCATED"),  # inside the table
    (VALID[:FIXED_LEN + 24 + 3], E.EnvelopeTruncated, "ENV_TRUNCATED"),  # inside the first header
    (VALID[:-1], E.EnvelopeTruncated, "ENV_TRUNCATED"),
    (b"", E.EnvelopeTruncated, "ENV_TRUNCATED"),
])
def test_hostile_frames_get_typed_errors(data, error, code):
    with pytest.raises(error) as info:
        _bad(data)
    assert info.value.code == code


@pytest.mark.parametrize("limits, error, code", [
    (FrameLimits(max_payload=len(PAYLOAD) - 1), E.EnvelopePayloadTooLarge, "ENV_PAYLOAD_TOO_LARGE"),
    (FrameLimits(max_headers=2), E.EnvelopeTooManyHeaders, "ENV_TOO_MANY_HEADERS"),
])
def test_caps_on_the_payload_and_the_header_count_are_enforced_from_the_fixed_part_alone(limits, error, code):
    # Only the 16 fixed bytes are fed: the refusal must not wait for (or buffer) the table or the rest.
    with pytest.raises(error) as info:
        FrameDecoder(limits).feed(VALID[:FIXED_LEN])
    assert info.value.code == code and isinstance(info.value, E.EnvelopeTooLarge)


@pytest.mark.parametrize("limits, error, code", [
    (FrameLimits(max_header=len(THREE[2].header_bytes) - 1), E.EnvelopeHeaderTooLarge, "ENV_HEADER_TOO_LARGE"),
    (FrameLimits(max_signature=len(THREE[2].signature) - 1), E.EnvelopeSignatureTooLarge,
     "ENV_SIGNATURE_TOO_LARGE"),
    (FrameLimits(max_head_bytes=sum(len(s.header_bytes + s.signature) for s in THREE) - 1), E.EnvelopeHeadTooLarge,
     "ENV_HEAD_TOO_LARGE"),
])
def test_caps_on_headers_and_signatures_are_enforced_from_the_table_alone(limits, error, code):
    table_end = prefix_length(VALID)
    with pytest.raises(error) as info:
        FrameDecoder(limits).feed(VALID[:table_end])
    assert info.value.code == code and isinstance(info.value, E.EnvelopeTooLarge)
    with pytest.raises(error):
        read_layout(VALID[:table_end], limits)


def test_claimed_huge_counts_and_lengths_are_refused_without_reading_them():
    with pytest.raises(E.EnvelopeTooManyHeaders):
        FrameDecoder().feed(_fixed(0xFFFF))
    with pytest.raises(E.EnvelopeHeaderTooLarge):
        FrameDecoder().feed(_fixed(1) + struct.pack(">II", 0xFFFFFFFF, 10))
    # Many headers each under the cap, together over the total: refused from the table.
    with pytest.raises(E.EnvelopeHeadTooLarge):
        FrameDecoder().feed(_fixed(1000) + struct.pack(">II", 16 * 1024, 32 * 1024) * 1000)


def test_a_prefix_length_needs_the_fixed_part_and_a_layout_the_table():
    assert prefix_length(VALID[:FIXED_LEN]) == FIXED_LEN + 8 * 3
    with pytest.raises(E.EnvelopeTruncated):
        prefix_length(VALID[:FIXED_LEN - 1])
    with pytest.raises(E.EnvelopeTruncated):
        read_layout(VALID[:FIXED_LEN + 8])
    layout = read_layout(VALID[:FIXED_LEN + 24])
    assert layout.frame_length == len(VALID) and layout.head_length == len(VALID) - len(PAYLOAD)


def test_the_writer_refuses_what_the_frame_cannot_hold():
    with pytest.raises(E.EnvelopeMalformedFrame):
        encode_prefix([], 10)
    with pytest.raises(E.EnvelopeMalformedFrame):
        encode_prefix(ONE, 10, hops=256)
