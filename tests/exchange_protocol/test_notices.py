"""Notices (签收, 退回, 撤回, 催办, 答复 …) and their batches round-trip exactly and refuse malformed input
with typed codes; packing keeps every run within one payload."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_protocol.canonical import canonical_json
from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.notices import (
    BATCHABLE,
    MAX_BATCH,
    MAX_NOTICE_BYTES,
    MAX_SIGNED_NOTICE_BYTES,
    Notice,
    NoticeError,
    batch_key,
    decode_notice,
    decode_notices,
    encode_notices,
    pack_notices,
)
from pki.unit_code import make_unit_code
from tests.exchange_protocol.strategies import unit_codes

AT = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC)
UNIT = "11100000000013127D"


@given(kind=st.sampled_from([t for t in MessageType if t not in (MessageType.DOCUMENT, MessageType.ESCALATE,
                                                                      MessageType.FORWARD, MessageType.FORWARDED)]),
       units=st.lists(unit_codes(), max_size=5, unique=True),
       by=st.text(min_size=1, max_size=20).filter(str.strip),
       reason=st.text(min_size=1, max_size=50).filter(str.strip),
       text=st.none() | st.text(max_size=50))
def test_round_trip(kind, units, by, reason, text):
    notice = Notice(kind, "0193a5b2-0000-7000-8000-000000000001", tuple(units), AT, by, reason, text)
    assert decode_notice(notice.encode()) == notice


def test_a_forwarded_notice_names_its_cover_and_the_units_and_reads_back():
    cover = "0193a5b2-0000-7000-8000-000000000002"
    notice = Notice(MessageType.FORWARDED, "0193a5b2-0000-7000-8000-000000000001", (UNIT,), AT, "李四", text=cover)
    assert decode_notice(notice.encode()) == notice
    for units, text in (((UNIT,), None), ((UNIT,), "not an id"), ((), cover)):
        with pytest.raises(NoticeError) as err:
            Notice(MessageType.FORWARDED, "0193a5b2-0000-7000-8000-000000000001", units, AT, "李四", text=text)
        assert err.value.code == "NOTICE_BAD_FORWARD"


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


# ---- batches (version 2): several notices answering one message in one payload --------------------
DOC = "0193a5b2-0000-7000-8000-000000000001"


def _receipts(count: int, *, by: str = "收发员") -> list[Notice]:
    return [Notice(MessageType.RECEIPT, DOC, (make_unit_code(f"54430702MA{1000 + i:07d}"),),
                   AT + dt.timedelta(seconds=i), f"{by}{i}") for i in range(count)]


@given(kind=st.sampled_from(sorted(BATCHABLE)),
       units=st.lists(unit_codes(), min_size=1, max_size=12, unique=True),
       by=st.lists(st.text(min_size=1, max_size=20).filter(str.strip), min_size=12, max_size=12),
       reason=st.text(min_size=1, max_size=50).filter(str.strip),
       text=st.none() | st.text(max_size=50))
def test_a_batch_round_trips_with_each_notice_its_own_units_person_and_time(kind, units, by, reason, text):
    notices = tuple(Notice(kind, DOC, (u,), AT + dt.timedelta(minutes=i), by[i], reason, text)
                    for i, u in enumerate(units))
    data = encode_notices(notices)
    assert json.loads(data)["v"] == (1 if len(notices) == 1 else 2)
    assert decode_notices(data) == notices
    if len(notices) > 1:  # assembled from its entries' bytes: the canonical JSON of the whole, byte for byte
        assert data == canonical_json({"v": 2, "type": kind.value, "doc_id": DOC,
                                       "notices": [_entry_of(n) for n in notices]})


def test_a_single_notice_is_written_as_version_1_and_both_readers_agree():
    [one] = _receipts(1)
    assert encode_notices([one]) == one.encode()
    assert decode_notices(one.encode()) == (one,) and decode_notice(one.encode()) == one


def test_a_batch_is_one_payload_smaller_than_its_notices_apart():
    notices = _receipts(25)
    batch = encode_notices(notices)
    assert len(batch) < sum(len(n.encode()) for n in notices)
    with pytest.raises(NoticeError):  # a reader of single notices does not take a batch for one
        decode_notice(batch)


def _batch(count: int = 3) -> dict:
    return json.loads(encode_notices(_receipts(count)))


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda d: d.update(notices=[]), "NOTICE_BATCH_EMPTY"),
    (lambda d: d["notices"].append(dict(d["notices"][0])), "NOTICE_DUPLICATE_UNIT"),
    (lambda d: d["notices"][1].update(units=d["notices"][0]["units"] + d["notices"][1]["units"]),
     "NOTICE_DUPLICATE_UNIT"),
    (lambda d: d.update(type="recall"), "NOTICE_NOT_BATCHABLE"),
    (lambda d: d.update(type="transport-ack"), "NOTICE_NOT_BATCHABLE"),
    (lambda d: d["notices"][0].update(by=None), "NOTICE_BY_REQUIRED"),
    (lambda d: d.update(doc_id="not a 公文标识"), "NOTICE_BAD_DOC_ID"),
    (lambda d: d.pop("doc_id"), "NOTICE_INVALID"),
    (lambda d: d.update(extra=1), "NOTICE_INVALID"),
    (lambda d: d.update(v=3), "NOTICE_INVALID"),
    (lambda d: d.update(notices={"units": []}), "NOTICE_INVALID"),
    (lambda d: d["notices"][0].update(v=1), "NOTICE_INVALID"),
    (lambda d: d["notices"][0].update(type="receipt"), "NOTICE_INVALID"),
    (lambda d: d["notices"][0].pop("at"), "NOTICE_INVALID"),
    (lambda d: d["notices"][0].update(at="yesterday"), "NOTICE_INVALID"),
    (lambda d: d["notices"][0].update(units=["11100000000013127A"]), "NOTICE_INVALID"),
])
def test_malformed_batches_are_refused_with_their_code(mutate, code):
    raw = _batch()
    mutate(raw)
    with pytest.raises(NoticeError) as err:
        decode_notices(json.dumps(raw, ensure_ascii=False).encode())
    assert err.value.code == code


def test_oversized_batches_are_refused_before_they_are_read():
    raw = _batch(2)
    raw["notices"] = [dict(raw["notices"][0], units=[make_unit_code(f"54430702MA{i:07d}")])
                      for i in range(MAX_BATCH + 1)]
    with pytest.raises(NoticeError) as err:
        decode_notices(json.dumps(raw, ensure_ascii=False).encode())
    assert err.value.code == "NOTICE_BATCH_TOO_LARGE"
    with pytest.raises(NoticeError) as err:
        encode_notices(_receipts(MAX_BATCH + 1))
    assert err.value.code == "NOTICE_BATCH_TOO_LARGE"
    wordy = _receipts(60, by="签" * 1900)  # ~5.7 KB each: 60 of them are far past the payload's cap
    with pytest.raises(NoticeError) as err:
        encode_notices(wordy)
    assert err.value.code == "NOTICE_BATCH_TOO_LARGE"
    with pytest.raises(NoticeError) as err:  # and on reading: more bytes than a notice payload may have
        decode_notices(json.dumps({"v": 2, "type": "receipt", "doc_id": DOC,
                                   "notices": [_entry_of(n) for n in wordy]}, ensure_ascii=False).encode())
    assert "more than the" in err.value.message


def _entry_of(notice: Notice) -> dict:
    return {k: v for k, v in json.loads(notice.encode()).items() if k not in ("v", "type", "doc_id")}


def test_a_batch_cannot_mix_types_or_documents():
    receipts = _receipts(2)
    other_doc = Notice(MessageType.RECEIPT, "0193a5b2-0000-7000-8000-000000000002", (UNIT,), AT, "张三")
    returned = Notice(MessageType.RETURN, DOC, (UNIT,), AT, "张三", "不属本单位")
    for mixed in ([*receipts, other_doc], [*receipts, returned]):
        with pytest.raises(NoticeError) as err:
            encode_notices(mixed)
        assert err.value.code == "NOTICE_BATCH_MIXED"


@given(count=st.integers(1, 700), by_len=st.integers(1, 1900), max_count=st.integers(1, MAX_BATCH))
def test_packing_keeps_order_and_every_run_fits_one_payload(count, by_len, max_count):
    notices = _receipts(count, by="签" * by_len)
    runs = pack_notices(notices, max_count=max_count)
    assert [n for run in runs for n in run] == notices
    for run in runs:
        assert len(run) <= max_count
        assert len(encode_notices(run)) <= MAX_NOTICE_BYTES
    # As few runs as the byte cap allows: each run but the last was full or could not take the next.
    for run, following in zip(runs, runs[1:], strict=False):
        assert len(run) == max_count or len(encode_notices_unchecked([*run, following[0]])) > MAX_NOTICE_BYTES


def encode_notices_unchecked(notices: list[Notice]) -> bytes:
    return json.dumps({"v": 2, "type": notices[0].type.value, "doc_id": notices[0].doc_id,
                       "notices": [_entry_of(n) for n in notices]}, ensure_ascii=False,
                      separators=(",", ":"), sort_keys=True).encode()


def test_packing_never_puts_one_unit_twice_in_a_run():
    first, second = _receipts(2)
    again = Notice(MessageType.RECEIPT, DOC, first.units, AT, "李四")
    assert pack_notices([first, second, again]) == [(first, second), (again,)]


def test_which_drafts_may_share_an_envelope():
    now = AT
    ttl = dt.timedelta(days=1)
    reply_to = "0193a5b2-0000-7000-8000-0000000000aa"

    def header(kind, destination="city", in_reply_to=reply_to, to=(UNIT,)):
        return HeaderDraft.new(kind, "county", destination, make_unit_code("54430702MA0001001"), to, now, ttl,
                               in_reply_to=in_reply_to)
    key = batch_key(header(MessageType.RECEIPT))
    assert key is not None and key == batch_key(header(MessageType.RECEIPT))
    assert key != batch_key(header(MessageType.RETURN))
    assert key != batch_key(header(MessageType.RECEIPT, destination="town"))
    assert key != batch_key(header(MessageType.RECEIPT, in_reply_to="0193a5b2-0000-7000-8000-0000000000bb"))
    assert key != batch_key(header(MessageType.RECEIPT, to=(make_unit_code("11100000000013128"),)))
    assert batch_key(header(MessageType.RECALL)) is None
    assert batch_key(header(MessageType.URGE)) is None


# --- 督办 -----------------------------------------------------------------------------------------
from exchange_protocol.notices import Escalation, EscalationError, decode_escalation  # noqa: E402

LATE = make_unit_code("11371302MB0000001")
SUPERVISOR = make_unit_code("11371300MB0000001")
SENDER = make_unit_code("11371300MB0000002")


def _escalation(**changes) -> Escalation:
    fields = {"doc_id": "d1", "unit": LATE, "supervisor": SUPERVISOR, "sent_by": SENDER, "title": "关于冬季安全的通知",
              "deadline": AT, "escalated_at": AT + dt.timedelta(days=4), "working_days_late": 3}
    return Escalation(**{**fields, **changes})


def test_an_escalation_and_its_settlement_round_trip():
    opened = _escalation()
    assert decode_escalation(opened.encode()) == opened and not opened.settled
    settled = _escalation(settled_at=AT + dt.timedelta(days=5), settled_by="王五", settled_as="signed_for")
    assert decode_escalation(settled.encode()) == settled and settled.settled


@pytest.mark.parametrize("changes", [
    {"unit": SUPERVISOR}, {"supervisor": "91110000000000000X"}, {"title": ""}, {"title": "题" * 201},
    {"working_days_late": -1}, {"working_days_late": True}, {"deadline": AT.replace(tzinfo=None)},
    {"settled_at": AT}, {"settled_at": AT, "settled_by": "王五", "settled_as": "registered"},
    {"doc_id": "../x"},
])
def test_a_bad_escalation_is_refused(changes):
    with pytest.raises(EscalationError) as err:
        _escalation(**changes)
    assert err.value.code == "NOTICE_ESCALATION_INVALID"


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("title"), lambda d: d.update(extra=1), lambda d: d.update(v=2), lambda d: d.update(type="urge"),
    lambda d: d.update(deadline="2026-11-21 09:30"), lambda d: d.update(working_days_late="3"),
    lambda d: d.update(settled_by=7), lambda d: d.update(unit=None),
])
def test_a_malformed_escalation_payload_is_refused(mutate):
    raw = json.loads(_escalation().encode())
    mutate(raw)
    with pytest.raises(NoticeError):
        decode_escalation(json.dumps(raw).encode())


def test_an_escalation_is_not_a_plain_notice_and_the_header_must_say_the_same():
    with pytest.raises(NoticeError) as err:
        Notice(MessageType.ESCALATE, "d1", (LATE,), AT)
    assert err.value.code == "NOTICE_TYPE_MISMATCH"
    with pytest.raises(NoticeError):
        decode_notices(_escalation().encode())
    e = _escalation()
    good = HeaderDraft.new(MessageType.ESCALATE, "county-a", "city", LATE, (SUPERVISOR,), AT, dt.timedelta(days=1))
    e.check_header(good)
    for header in (HeaderDraft.new(MessageType.ESCALATE, "county-a", "city", SENDER, (SUPERVISOR,), AT,
                                   dt.timedelta(days=1)),
                   HeaderDraft.new(MessageType.ESCALATE, "county-a", "city", LATE, (SENDER,), AT, dt.timedelta(days=1)),
                   HeaderDraft.new(MessageType.URGE, "county-a", "city", LATE, (SUPERVISOR,), AT, dt.timedelta(days=1),
                                   in_reply_to=good.message_id)):
        with pytest.raises(EscalationError):
            e.check_header(header)


# --- the optional unit-signed statement (exchange_protocol.statements) ---------------------------------
def test_a_statement_travels_in_a_single_notice_and_in_each_batch_entry():
    signed = Notice(MessageType.RECEIPT, "0193a5b2-0000-7000-8000-000000000001", (UNIT,), AT, "张三",
                    evidence=b"\x30\x82statement")
    plain = Notice(MessageType.RECEIPT, "0193a5b2-0000-7000-8000-000000000001", (make_unit_code("11100000000013128"),),
                   AT, "李四")
    assert decode_notices(signed.encode()) == (signed,)
    assert decode_notices(encode_notices([signed, plain])) == (signed, plain)
    assert b"evidence" not in plain.encode()  # an older node reads it exactly as before


def test_an_older_nodes_notice_without_evidence_still_decodes():
    old = json.dumps({"v": 1, "type": "receipt", "doc_id": "0193a5b2-0000-7000-8000-000000000001", "units": [UNIT],
                      "by": "张三", "at": "2026-11-21T09:30:00Z", "reason": None, "text": None}).encode()
    (notice,) = decode_notices(old)
    assert notice.evidence is None and notice.by == "张三"


@pytest.mark.parametrize("evidence", [123, "not base64!", ""])
def test_bad_evidence_is_a_typed_error(evidence):
    raw = {"v": 1, "type": "receipt", "doc_id": "0193a5b2-0000-7000-8000-000000000001", "units": [UNIT],
           "by": "张三", "at": "2026-11-21T09:30:00Z", "reason": None, "text": None, "evidence": evidence}
    with pytest.raises(NoticeError) as info:
        decode_notices(json.dumps(raw).encode())
    assert info.value.code == "NOTICE_BAD_EVIDENCE"


def test_only_a_receipt_or_return_of_one_unit_carries_evidence():
    with pytest.raises(NoticeError) as info:
        Notice(MessageType.URGE, "0193a5b2-0000-7000-8000-000000000001", (UNIT,), AT, evidence=b"x")
    assert info.value.code == "NOTICE_BAD_EVIDENCE"


def test_a_full_batch_of_notices_with_statements_fits_one_payload_and_only_statements_earn_the_room():
    units = [make_unit_code(f"5437130200{i:07d}") for i in range(MAX_BATCH)]
    statement = b"\x30\x82" + bytes(range(256)) * 9  # the size of a statement with two intermediate CAs
    signed = [Notice(MessageType.RECEIPT, "0193a5b2-0000-7000-8000-000000000001", (u,), AT, "张三", evidence=statement)
              for u in units]
    [run] = pack_notices(signed)
    data = encode_notices(run)
    assert MAX_NOTICE_BYTES < len(data) <= MAX_SIGNED_NOTICE_BYTES and decode_notices(data) == tuple(signed)
    padded = json.loads(data)
    for entry in padded["notices"]:  # the same bytes without statements: refused as before
        del entry["evidence"]
        entry["text"] = "字" * 1000
    with pytest.raises(NoticeError) as info:
        decode_notices(json.dumps(padded, ensure_ascii=False).encode())
    assert info.value.code == "NOTICE_BATCH_TOO_LARGE"
