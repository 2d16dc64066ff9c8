"""exchange_protocol.envelope: the routing header (strict canonical JSON) and the rules between a bundle's headers."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol import errors as E
from exchange_protocol.envelope import (
    EnvelopeHeader,
    HeaderDraft,
    MessageType,
    check_bundle,
    decode_header,
)
from exchange_protocol.ids import IdGenerator
from tests.exchange_protocol.strategies import unit_codes

NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
IDS = IdGenerator()
UNIT_A, UNIT_B = "91350100M000100Y43", "11100000000013127D"


def header(**changes) -> EnvelopeHeader:
    fields = dict(message_id=IDS.new(NOW), type="document", origin_node="a", destination_node="b",
                  from_unit=UNIT_A, to_units=(UNIT_B,), created=NOW, expires=NOW + dt.timedelta(days=1),
                  in_reply_to=None, max_hops=8, payload_length=1234, payload_digest="ab" * 32)
    fields.update(changes)
    return EnvelopeHeader(**fields)


def as_json(h: EnvelopeHeader) -> dict:
    return json.loads(h.encode())


def reencode(d: dict) -> bytes:
    return json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


# ---- header ----------------------------------------------------------------------------------------
def test_header_round_trips_through_its_canonical_bytes():
    h = header(type="receipt", in_reply_to=IDS.new(NOW), to_units=(UNIT_B, UNIT_A))
    data = h.encode()
    assert decode_header(data) == h
    assert data == reencode(json.loads(data))  # sorted keys, no spaces: the canonical form
    assert json.loads(data)["type"] == "receipt"


@settings(max_examples=60, deadline=None)
@given(type=st.sampled_from(list(MessageType)), to=st.lists(unit_codes(), min_size=1, max_size=5, unique=True),
       created=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2090, 1, 1),
                            timezones=st.just(dt.UTC)),
       ttl=st.integers(1, 10**8), hops=st.integers(1, 64), length=st.integers(0, 2**62),
       digest=st.binary(min_size=32, max_size=32), origin=st.from_regex(r"\A[a-z0-9][a-z0-9.-]{0,20}\Z"))
def test_random_headers_round_trip(type, to, created, ttl, hops, length, digest, origin):
    h = EnvelopeHeader(IDS.new(created), type, origin, "dest-1", UNIT_A, tuple(to), created,
                       created + dt.timedelta(seconds=ttl),
                       None if type is MessageType.DOCUMENT else IDS.new(created), hops,
                       payload_length=length, payload_digest=digest.hex())
    assert decode_header(h.encode()) == h


def test_a_header_is_its_draft_completed_with_the_payload_fields():
    draft = HeaderDraft.new("reply", "a", "b", UNIT_A, [UNIT_B], NOW, dt.timedelta(hours=2), in_reply_to=IDS.new(NOW))
    sealed = draft.complete(99, b"\x07" * 32)
    assert isinstance(sealed, HeaderDraft) and sealed.message_id == draft.message_id
    assert sealed.to_json() == {**draft.to_json(), "payload_length": 99, "payload_sha256": "07" * 32}
    assert HeaderDraft.from_json(json.loads(json.dumps(draft.to_json()))) == draft


@pytest.mark.parametrize("mutate, code", [
    (lambda d: d.update(payload_length=1), "ENV_UNKNOWN_FIELD"),  # a draft has no payload yet
    (lambda d: d.pop("origin"), "ENV_MISSING_FIELD"),
    (lambda d: d.update(to="x"), "ENV_WRONG_TYPE"),
    (lambda d: d.update(max_hops=0), "ENV_INVALID_FIELD"),
    (lambda d: d.update(v=2), "ENV_UNSUPPORTED_VERSION"),
])
def test_a_draft_is_read_as_strictly_as_a_header(mutate, code):
    raw = HeaderDraft.new("document", "a", "b", UNIT_A, [UNIT_B], NOW, dt.timedelta(hours=2)).to_json()
    mutate(raw)
    with pytest.raises(E.EnvelopeHeaderInvalid) as info:
        HeaderDraft.from_json(raw)
    assert info.value.code == code
    with pytest.raises(E.EnvelopeMalformedHeader):
        HeaderDraft.from_json([raw])


def test_a_draft_that_could_never_be_sealed_is_refused_when_made():
    with pytest.raises(E.EnvelopeInvalidField) as info:
        HeaderDraft.new("bounce", "a", "b", None, [], NOW, dt.timedelta(hours=2), in_reply_to=IDS.new(NOW))
    assert info.value.details["field"] == "to"


@pytest.mark.parametrize("mutate, error, code", [
    (lambda d: d.update(extra=1), E.EnvelopeUnknownField, "ENV_UNKNOWN_FIELD"),
    (lambda d: d.pop("expires"), E.EnvelopeMissingField, "ENV_MISSING_FIELD"),
    (lambda d: d.update(max_hops=True), E.EnvelopeWrongType, "ENV_WRONG_TYPE"),
    (lambda d: d.update(max_hops="8"), E.EnvelopeWrongType, "ENV_WRONG_TYPE"),
    (lambda d: d.update(to=UNIT_B), E.EnvelopeWrongType, "ENV_WRONG_TYPE"),
    (lambda d: d.update(to=[1]), E.EnvelopeWrongType, "ENV_WRONG_TYPE"),
    (lambda d: d.update(id="not-a-uuid"), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(id=d["id"].upper()), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(id="6ba7b810-9dad-11d1-80b4-00c04fd430c8"), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(type="fax"), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(to=["91350100M000100Y44"]), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(to=[UNIT_B, UNIT_B]), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(to=[]), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(origin="Bad Node"), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(expires=d["created"]), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(created="2026-03-02 08:00:00"), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(created="2026-02-30T08:00:00Z"), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(max_hops=0), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(payload_length=-1), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(payload_sha256="AB" * 32), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(type="receipt"), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),  # no in_reply_to
    (lambda d: d.update({"from": None}), E.EnvelopeInvalidField, "ENV_INVALID_FIELD"),
    (lambda d: d.update(v=2), E.EnvelopeUnsupportedVersion, "ENV_UNSUPPORTED_VERSION"),
])
def test_header_decoding_refuses_with_typed_errors(mutate, error, code):
    d = as_json(header())
    mutate(d)
    with pytest.raises(error) as info:
        decode_header(reencode(d))
    assert info.value.code == code


@pytest.mark.parametrize("data", [
    b"", b"[]", b"{", b"\xff\xfe", b'{"v":1,"v":1}', b"NaN",
])
def test_malformed_header_bytes_are_refused(data):
    with pytest.raises(E.EnvelopeMalformedHeader):
        decode_header(data)


def test_non_canonical_header_bytes_are_refused():
    data = header().encode()
    spaced = json.dumps(json.loads(data), sort_keys=True, ensure_ascii=False).encode()  # ", " and ": "
    with pytest.raises(E.EnvelopeMalformedHeader, match="canonical"):
        decode_header(spaced)
    with pytest.raises(E.EnvelopeMalformedHeader, match="canonical"):
        decode_header(b"\xef\xbb\xbf" + data)


def test_node_generated_messages_may_omit_the_unit_but_not_the_reference():
    ack = header(type="transport-ack", from_unit=None, to_units=(), in_reply_to=IDS.new(NOW))
    assert decode_header(ack.encode()) == ack
    with pytest.raises(E.EnvelopeInvalidField):
        header(type="bounce", from_unit=None, to_units=(), in_reply_to=IDS.new(NOW))  # a bounce is addressed to units


def test_header_times_are_normalised_to_utc_seconds():
    cst = dt.timezone(dt.timedelta(hours=8))
    h = header(created=dt.datetime(2026, 3, 2, 16, 0, 0, 999999, tzinfo=cst))
    assert as_json(h)["created"] == "2026-03-02T08:00:00Z"
    with pytest.raises(E.EnvelopeInvalidField):
        header(created=dt.datetime(2026, 3, 2, 8, 0))  # naive


# ---- the rules between a bundle's headers ------------------------------------------------------------
def test_a_bundle_of_headers_for_distinct_destinations_sharing_one_payload_is_accepted():
    check_bundle([header(destination_node=f"n{i}") for i in range(5)])
    check_bundle([header()])


@pytest.mark.parametrize("second, error, code", [
    (dict(destination_node="b"), E.EnvelopeBundleDuplicateDestination, "ENV_BUNDLE_DUPLICATE_DESTINATION"),
    (dict(destination_node="c", origin_node="x"), E.EnvelopeBundleMixedOrigins, "ENV_BUNDLE_MIXED_ORIGINS"),
    (dict(destination_node="c", payload_length=1235), E.EnvelopeBundlePayloadMismatch, "ENV_BUNDLE_PAYLOAD_MISMATCH"),
    (dict(destination_node="c", payload_digest="cd" * 32), E.EnvelopeBundlePayloadMismatch,
     "ENV_BUNDLE_PAYLOAD_MISMATCH"),
    ("same id", E.EnvelopeBundleDuplicateId, "ENV_BUNDLE_DUPLICATE_ID"),
])
def test_headers_that_break_a_bundle_rule_get_typed_errors(second, error, code):
    first = header()
    other = header(destination_node="c", message_id=first.message_id) if second == "same id" else header(**second)
    with pytest.raises(error) as info:
        check_bundle([first, other])
    assert info.value.code == code and isinstance(info.value, E.EnvelopeBundleInvalid)


def test_a_header_decoded_before_does_not_vouch_for_other_bytes():
    # Decoded headers are remembered by their exact bytes: a copy differing in one byte, or the same
    # header re-spaced, is judged on its own — and a refusal is given again every time.
    data = header().encode()
    assert decode_header(data) is decode_header(bytearray(data))  # the same bytes: the same header
    other = data.replace(b'"max_hops":8', b'"max_hops":9')
    assert other != data and decode_header(other).max_hops == 9
    spaced = data.replace(b",", b", ", 1)
    for _ in range(2):
        with pytest.raises(E.EnvelopeMalformedHeader):
            decode_header(spaced)


def test_only_small_headers_are_remembered():
    # A fan-out header naming thousands of units is decoded afresh each time, so what a peer sends
    # cannot grow the cache past 4,096 × CACHED_HEADER_BYTES; it decodes the same all the same.
    from exchange_protocol.envelope import CACHED_HEADER_BYTES
    from pki.unit_code import make_unit_code

    small = header().encode()
    assert len(small) <= CACHED_HEADER_BYTES and decode_header(small) is decode_header(small)
    units = tuple(make_unit_code(f"9135010000{i:06d}M") for i in range(300))
    big = header(to_units=units).encode()
    assert len(big) > CACHED_HEADER_BYTES
    first, second = decode_header(big), decode_header(big)
    assert first == second and first is not second and first.to_units == units
