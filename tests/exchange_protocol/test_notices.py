"""Notices (签收, 退回, 撤回, 催办, 答复 …) round-trip exactly and refuse malformed input."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_protocol.envelope import MessageType
from exchange_protocol.notices import Notice, NoticeError, decode_notice
from tests.exchange_protocol.strategies import unit_codes

AT = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC)
UNIT = "11100000000013127D"


@given(kind=st.sampled_from([t for t in MessageType if t not in (MessageType.DOCUMENT,)]),
       units=st.lists(unit_codes(), max_size=5, unique=True),
       by=st.text(min_size=1, max_size=20).filter(str.strip),
       reason=st.text(min_size=1, max_size=50).filter(str.strip),
       text=st.none() | st.text(max_size=50))
def test_round_trip(kind, units, by, reason, text):
    notice = Notice(kind, "0193a5b2-0000-7000-8000-000000000001", tuple(units), AT, by, reason, text)
    assert decode_notice(notice.encode()) == notice


def test_return_needs_reason_and_receipt_needs_person():
    with pytest.raises(NoticeError) as err:
        Notice(MessageType.RETURN, "d1", (UNIT,), AT, "张三", "  ")
    assert err.value.code == "NOTICE_REASON_REQUIRED"
    with pytest.raises(NoticeError) as err:
        Notice(MessageType.RECEIPT, "d1", (UNIT,), AT, None)
    assert err.value.code == "NOTICE_BY_REQUIRED"


def _good() -> dict:
    return json.loads(Notice(MessageType.RECEIPT, "d1", (UNIT,), AT, "张三").encode())


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("by"),
    lambda d: d.update(extra=1),
    lambda d: d.update(v=2),
    lambda d: d.update(type="document"),
    lambda d: d.update(type="telegram"),
    lambda d: d.update(units=["11100000000013127A"]),
    lambda d: d.update(units="11100000000013127D"),
    lambda d: d.update(at="2026-11-21 09:30"),
    lambda d: d.update(by=5),
    lambda d: d.update(doc_id=None),
])
def test_malformed_notices_are_typed_errors(mutate):
    raw = _good()
    mutate(raw)
    with pytest.raises(NoticeError):
        decode_notice(json.dumps(raw).encode())


@pytest.mark.parametrize("data", [b"", b"[]", b"{", b"\xff\xfe", b"{}" + b" " * 70000])
def test_garbage_is_a_typed_error(data):
    with pytest.raises(NoticeError):
        decode_notice(data)


def test_a_unit_named_twice_is_refused():
    with pytest.raises(NoticeError) as err:
        Notice(MessageType.URGE, "d1", (UNIT, UNIT), AT, "张三")
    assert err.value.code == "NOTICE_DUPLICATE_UNIT"
    raw = _good()
    raw["units"] = [UNIT, UNIT]
    with pytest.raises(NoticeError):
        decode_notice(json.dumps(raw).encode())
