"""Canonical JSON: the one encoding exchange_protocol signs, hashes and stores.

Every JSON document gwx signs or digests (a package's ``metadata.json``, manifests, envelope headers)
goes through :func:`canonical_json`, so two nodes that build the same value produce the same bytes:

- keys sorted (by code point, as :func:`json.dumps` sorts ``str``), no insignificant whitespace;
- UTF-8, non-ASCII characters written as themselves (``ensure_ascii=False``): 公文 metadata is
  Chinese text and ``\\uXXXX`` escapes would only make it unreadable;
- only ``str``, ``int``, ``bool``, ``None``, lists/tuples and ``str``-keyed dicts. Floats are refused:
  their decimal rendering is the classic source of canonicalisation disagreements between
  languages, and nothing gwx exchanges needs them (times are strings, sizes are integers).
- strings are emitted as given (no Unicode normalisation): normalising here would make the signed
  bytes differ from what the caller holds. Lone surrogates are refused.

:func:`load_json` is the matching strict reader for untrusted bytes: size-bounded, duplicate keys
refused (a classic signature-confusion trick: two parsers picking different duplicates), NaN and
Infinity refused, nesting bounded, a leading UTF-8 BOM tolerated because Windows OA systems write one.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import MalformedJson, NotCanonicalEncodable, ProtocolError

MAX_DEPTH = 32
_BOM = b"\xef\xbb\xbf"


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON bytes, or raise :class:`NotCanonicalEncodable`."""
    _check(obj, "$", 0)
    try:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotCanonicalEncodable("string with a lone surrogate cannot be encoded as UTF-8",
                                    reason=str(exc)) from None


_SCALARS = (str, bool, int)  # bool is an int subclass; both are exact, so both are fine


def _check(obj: Any, path: Any, depth: int) -> None:
    """Refuse what has no canonical form. ``path`` is where ``obj`` sits, as (parent's path, key or
    index) pairs down from ``"$"``, written out only for an error: formatting it for every value
    was most of the cost of encoding a header. Scalars inside a container are judged in its loop."""
    if depth > MAX_DEPTH:
        where = _where(path)
        raise NotCanonicalEncodable(f"nesting deeper than {MAX_DEPTH} at {where}", path=where)
    if obj is None or isinstance(obj, _SCALARS):
        return
    if isinstance(obj, float):
        where = _where(path)
        raise NotCanonicalEncodable(f"float at {where}: canonical JSON carries integers and strings only",
                                    path=where)
    deep = depth >= MAX_DEPTH  # its items, scalars too, sit too deep
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            if deep or not (item is None or isinstance(item, _SCALARS)):
                _check(item, (path, i), depth + 1)
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                where = _where(path)
                raise NotCanonicalEncodable(f"non-string key {key!r} at {where}", path=where)
            if deep or not (value is None or isinstance(value, _SCALARS)):
                _check(value, (path, key), depth + 1)
        return
    where = _where(path)
    raise NotCanonicalEncodable(f"{type(obj).__name__} at {where} has no JSON form", path=where)


def _where(path: Any) -> str:
    """``("$", "a"), 0)`` → ``"$.a[0]"``."""
    parts = []
    while isinstance(path, tuple):
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return path + "".join(reversed(parts))


def load_json(data: bytes, *, max_bytes: int, what: str = "JSON",
              error: type[ProtocolError] = MalformedJson) -> Any:
    """Parse untrusted JSON ``data`` strictly; failures raise ``error`` (a typed error class)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise error(f"{what} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise error(f"{what} is {len(data)} bytes, more than the {max_bytes} allowed",
                    size=len(data), limit=max_bytes)
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 (byte {exc.start})", offset=exc.start) from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Refused as exc:
        raise error(f"{what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                    line=exc.lineno, column=exc.colno) from None
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    if _depth(value) > MAX_DEPTH:
        raise error(f"{what} is nested deeper than {MAX_DEPTH}")
    return value


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """How deep the deepest value sits (0: ``value`` is a scalar or empty), at most MAX_DEPTH + 1.

    Level by level and iterative (the input is already parsed, but a recursive walk could still hit
    the limit). Only containers are kept for the next level: a META.json naming 3,600 recipients
    costs one type check per code, not a stack entry, a pop and a max() each — that was two thirds
    of parsing it, and each node receiving a 通知 parses it several times."""
    depth, containers = 0, [value] if isinstance(value, (dict, list)) else []
    while containers and depth <= MAX_DEPTH:
        inner: list[Any] = []
        found = False
        for item in containers:
            children = item.values() if isinstance(item, dict) else item
            if children:
                found = True
                inner.extend(c for c in children if isinstance(c, (dict, list)))
        if not found:
            break
        depth += 1
        containers = inner
    return depth
