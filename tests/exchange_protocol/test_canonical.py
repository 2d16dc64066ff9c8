"""Canonical JSON and the strict JSON reader."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_protocol.canonical import MAX_DEPTH, _depth, canonical_json, load_json
from exchange_protocol.errors import MalformedJson, MetadataError, NotCanonicalEncodable

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
).filter(lambda v: canonical_ok(v))


def canonical_ok(value) -> bool:
    try:
        canonical_json(value)
    except NotCanonicalEncodable:
        return False
    return True


def test_sorted_compact_utf8_without_escapes() -> None:
    out = canonical_json({"title": "关于开展检查的通知", "kind": "通知", "a": [1, True, None]})
    assert out == '{"a":[1,true,null],"kind":"通知","title":"关于开展检查的通知"}'.encode()
    assert b"\\u" not in out


def test_key_order_of_the_input_does_not_matter() -> None:
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == canonical_json({"a": {"c": 3, "d": 2}, "b": 1})


@given(json_values)
def test_round_trip_and_stability(value) -> None:
    encoded = canonical_json(value)
    decoded = load_json(encoded, max_bytes=10**7)
    assert canonical_json(decoded) == encoded
    assert json.loads(encoded) == decoded


@pytest.mark.parametrize("value", [1.5, {"a": 0.0}, {1: "x"}, {"a": object()}, "\ud800", {"s": {1, 2}}, b"x"])
def test_values_without_a_canonical_form_are_refused(value) -> None:
    with pytest.raises(NotCanonicalEncodable):
        canonical_json(value)


def test_nesting_is_bounded_on_both_sides() -> None:
    deep = []
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(NotCanonicalEncodable):
        canonical_json(deep)
    with pytest.raises(MalformedJson):
        load_json(b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2), max_bytes=1000)
    with pytest.raises(MalformedJson):
        load_json(b"[" * 100_000 + b"]" * 100_000, max_bytes=10**6)


@pytest.mark.parametrize(("data", "depth"), [
    (b"1", 0), (b"{}", 0), (b"[]", 0), (b'{"a":1}', 1), (b"[[]]", 1), (b'[1,[2,{"b":[]}],{}]', 3),
    (b'{"a":[1,2,{"c":{"d":null}}],"e":"x"}', 4),
])
def test_nesting_is_measured_to_the_deepest_value(data, depth) -> None:
    nested = b"[" * (MAX_DEPTH - depth) + data + b"]" * (MAX_DEPTH - depth)
    load_json(nested, max_bytes=10_000)  # exactly at the limit: accepted
    with pytest.raises(MalformedJson):
        load_json(b"[" + nested + b"]", max_bytes=10_000)


def test_the_nesting_check_stops_at_the_limit() -> None:
    """Untrusted JSON is refused as soon as it is found deeper than MAX_DEPTH: the check does not walk
    on below the limit (ten thousand levels of a hostile document, or a long flat list of codes in
    a META.json, cost what the first MAX_DEPTH + 1 levels cost). Its timing against json.loads is
    in bench/protocol.py (``load_json_meta``), not here: a wall-clock ratio flakes on a busy machine."""
    class NeverVisited(list):
        def __iter__(self):
            raise AssertionError("the check walked below the limit")

        def __bool__(self):
            raise AssertionError("the check walked below the limit")
    deep: list = NeverVisited([1])
    for _ in range(10_000):
        deep = [deep]
    assert _depth(deep) == MAX_DEPTH + 1
    assert _depth(["11430700MB0000001X"] * 3600) == 1


@pytest.mark.parametrize("data", [
    b'{"a":1,"a":2}',                  # duplicate keys: parsers disagree on which wins
    b'{"a":NaN}', b'[Infinity]', b'[-Infinity]',
    b'\xff\xfe{}',                      # not UTF-8
    b'{"a":', b'', b'{"a":1} x',
    "{}".encode("utf-16"),
])
def test_hostile_json_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedJson) as info:
        load_json(data, max_bytes=1000)
    assert info.value.code == "PROTO_MALFORMED_JSON"


def test_size_limit_and_error_class() -> None:
    with pytest.raises(MetadataError):
        load_json(b"[" + b"1," * 600 + b"1]", max_bytes=1000, error=MetadataError)


def test_utf8_bom_is_tolerated() -> None:
    assert load_json(b"\xef\xbb\xbf" + '{"文种":"函"}'.encode(), max_bytes=100) == {"文种": "函"}


@pytest.mark.parametrize(("value", "path"), [
    ({"a": [1, {"b": 1.5}]}, "$.a[1].b"), ({"to": ["x", {2: "y"}]}, "$.to[1]"), ([[None, object()]], "$[0][1]"),
])
def test_a_refusal_names_where_the_value_sits(value, path) -> None:
    """The error says where in the document the value without a canonical form is."""
    with pytest.raises(NotCanonicalEncodable) as info:
        canonical_json(value)
    assert info.value.details["path"] == path and path in info.value.message


def test_a_scalar_below_the_deepest_level_is_refused_too() -> None:
    deep = [1]
    for _ in range(MAX_DEPTH):
        deep = [deep]
    with pytest.raises(NotCanonicalEncodable):
        canonical_json(deep)
    assert canonical_json(deep[0]).startswith(b"[[")  # one level less is fine
