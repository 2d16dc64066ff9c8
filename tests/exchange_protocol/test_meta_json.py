"""META.json / metadata.json: the contract both ways, hostile input, legacy mapping, short names."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings

from exchange_protocol.errors import (
    ClassifiedRefused,
    InvalidDocNumber,
    InvalidMetadataValue,
    InvalidRecipientCode,
    MalformedMetadata,
    MetadataError,
    MetadataWrongType,
    MissingMetadataField,
    NoMainRecipient,
    SignerRequired,
    UnknownKind,
    UnknownMetadataField,
)
from exchange_protocol.ids import IdGenerator, id_time
from exchange_protocol.kinds import Kind, Urgency
from exchange_protocol.meta_json import (
    DOC_NUMBER_NORMALISED,
    LEGACY_KIND_MAPPED,
    LEGACY_URGENCY_MAPPED,
    MAX_META_BYTES,
    SHORT_NAMES,
    from_short_names,
    meta_to_json,
    parse_meta,
    to_short_names,
)
from exchange_protocol.model import URGENT_WITHOUT_DEADLINE, DocumentMetadata
from tests.exchange_protocol.strategies import metadata

A, B, C = "91350100M000100Y43", "11100000000013127D", "91110000600037341L"
CONTRACT_KEYS = {"kind", "title", "doc_number", "issuers", "signers", "to", "cc", "written_on", "urgency",
                 "classification", "deadline", "copy_number", "printed_by", "printed_on", "note",
                 "attachments_note", "id"}


def example(**changes) -> dict:
    base = {"kind": "通知", "title": "关于开展冬季安全生产检查的通知", "doc_number": "临政发〔2026〕12号",
            "issuers": [A], "signers": ["张三"], "to": [B], "cc": [C], "written_on": "2026-11-20",
            "urgency": "特急", "classification": "非密", "deadline": "2026-11-23T17:00:00+08:00",
            "copy_number": None, "printed_by": "临沂市人民政府办公室", "printed_on": "2026-11-20", "note": None,
            "attachments_note": None, "id": None}
    base.update(changes)
    return base


def encode(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def test_the_contract_example() -> None:
    parsed = parse_meta(encode(example()))
    meta = parsed.metadata
    assert meta.kind is Kind.NOTICE and meta.urgency is Urgency.EXTRA_URGENT
    assert meta.doc_number.format() == "临政发〔2026〕12号"
    assert meta.deadline == datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert meta.to == (B,) and meta.cc == (C,) and meta.written_on == date(2026, 11, 20)
    assert parsed.warnings == ()
    out = json.loads(meta_to_json(meta))
    assert set(out) == CONTRACT_KEYS and out == example()


def test_canonical_bytes_are_sorted_utf8_and_readable() -> None:
    raw = meta_to_json(parse_meta(encode(example())).metadata)
    assert raw.startswith(b'{"attachments_note":null,"cc":["91110000600037341L"],')
    assert "关于开展冬季安全生产检查的通知".encode() in raw and b"\\u" not in raw and b" " not in raw


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
@given(metadata())
def test_round_trip_through_canonical_json(meta: DocumentMetadata) -> None:
    raw = meta_to_json(meta)
    again = parse_meta(raw).metadata
    assert again == meta
    assert meta_to_json(again) == raw


@settings(max_examples=40)
@given(metadata(classified=True))
def test_round_trip_on_a_classified_network_and_through_short_names(meta: DocumentMetadata) -> None:
    assert parse_meta(meta_to_json(meta), allow_classified=True).metadata == meta
    assert from_short_names(to_short_names(meta), allow_classified=True).metadata == meta


def test_short_names_are_pinyin_initials_for_every_field() -> None:
    assert set(SHORT_NAMES) == CONTRACT_KEYS
    assert SHORT_NAMES["id"] == "GWBS" and SHORT_NAMES["classification"] == "MJHBMQX"
    assert SHORT_NAMES["urgency"] == "JJCD" and SHORT_NAMES["doc_number"] == "FWZH"
    short = to_short_names(parse_meta(encode(example())).metadata)
    assert short["WZ"] == "通知" and short["ZSJG"] == [B] and short["BLSX"] == "2026-11-23T17:00:00+08:00"
    with pytest.raises(UnknownMetadataField) as info:
        from_short_names({**short, "DMSJ": "2026-01-01"})
    assert info.value.details["field"] == "DMSJ"


def test_optional_fields_may_be_left_out() -> None:
    minimal = {"kind": "函", "title": "关于商请支持的函", "issuers": [A], "to": [B], "written_on": "2026-11-20"}
    meta = parse_meta(encode(minimal)).metadata
    assert meta.cc == () and meta.classification.format() == "非密" and meta.id is None


def test_missing_id_is_assigned_when_the_time_is_given() -> None:
    now = datetime(2026, 11, 20, 10, tzinfo=timezone(timedelta(hours=8)))
    meta = parse_meta(encode(example()), now=now, ids=IdGenerator()).metadata
    assert id_time(meta.id) == now
    kept = parse_meta(encode(example(id="OA-2026-0001")), now=now).metadata
    assert kept.id == "OA-2026-0001"


BAD_FIELDS = [
    (example(foo=1), UnknownMetadataField, "foo"),
    ({k: v for k, v in example().items() if k != "to"}, MissingMetadataField, "to"),
    (example(kind=None), MissingMetadataField, "kind"),
    (example(kind=3), MetadataWrongType, "kind"),
    (example(kind="指令"), UnknownKind, "kind"),
    (example(kind="指示"), UnknownKind, "kind"),
    (example(title=""), InvalidMetadataValue, "title"),
    (example(title=["关于"]), MetadataWrongType, "title"),
    (example(title="关" * 201), InvalidMetadataValue, "title"),
    (example(to=B), MetadataWrongType, "to"),
    (example(to=[]), NoMainRecipient, "to"),
    (example(to=[B, "91350100M000100Y44"]), InvalidRecipientCode, "to[1]"),
    (example(to=[7]), MetadataWrongType, "to[0]"),
    (example(cc=[B]), MetadataError, "cc[0]"),
    (example(issuers=None), MissingMetadataField, "issuers"),
    (example(signers="张三"), MetadataWrongType, "signers"),
    (example(kind="请示", signers=[]), SignerRequired, "signers"),
    (example(written_on="2026/11/20"), InvalidMetadataValue, "written_on"),
    (example(written_on="20261120"), InvalidMetadataValue, "written_on"),
    (example(written_on="2026-02-30"), InvalidMetadataValue, "written_on"),
    (example(written_on=20261120), MetadataWrongType, "written_on"),
    (example(printed_on="yesterday"), InvalidMetadataValue, "printed_on"),
    (example(deadline="2026-11-23T17:00:00"), InvalidMetadataValue, "deadline"),
    (example(deadline="2026-11-23"), InvalidMetadataValue, "deadline"),
    (example(deadline="2026-11-23T25:00:00+08:00"), InvalidMetadataValue, "deadline"),
    (example(urgency="急件"), InvalidMetadataValue, "urgency"),
    (example(urgency=True), MetadataWrongType, "urgency"),
    (example(classification="机密★1年", copy_number="000001"), ClassifiedRefused, "classification"),
    (example(classification="绝密"), ClassifiedRefused, "classification"),
    (example(classification="内部"), InvalidMetadataValue, "classification"),
    (example(copy_number="12345"), InvalidMetadataValue, "copy_number"),
    (example(copy_number=1), MetadataWrongType, "copy_number"),
    (example(doc_number="临政发〔2026〕012号"), InvalidDocNumber, "doc_number"),
    (example(doc_number="临政发〔2026〕第12号"), InvalidDocNumber, "doc_number"),
    (example(id=""), InvalidMetadataValue, "id"),
    (example(id=12), MetadataWrongType, "id"),
    (example(note={"a": 1}), MetadataWrongType, "note"),
    (example(printed_by="x" * 101), InvalidMetadataValue, "printed_by"),
]


@pytest.mark.parametrize(("obj", "error", "field"), BAD_FIELDS,
                         ids=[f"{i}-{f}-{e.__name__}" for i, (_, e, f) in enumerate(BAD_FIELDS)])
def test_bad_fields_are_typed_errors_naming_the_field(obj, error, field) -> None:
    with pytest.raises(error) as info:
        parse_meta(encode(obj))
    assert info.value.details["field"] == field
    assert info.value.code.startswith("DOC_")


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", '"通知"'.encode(), b"null", b"\xff\xfe", encode(example())[:-1],
    b'{"kind":"\xe9\x80\x9a\xe7\x9f\xa5","kind":"\xe5\x87\xbd"}',    # duplicate key
    b'{"kind":NaN}',
    b"[" * 10_000 + b"]" * 10_000,
    b" " * (MAX_META_BYTES + 1),
])
def test_malformed_documents(data: bytes) -> None:
    with pytest.raises(MalformedMetadata) as info:
        parse_meta(data)
    assert info.value.code == "DOC_MALFORMED_JSON"


def test_windows_bom_is_tolerated() -> None:
    assert parse_meta(b"\xef\xbb\xbf" + encode(example())).metadata.kind is Kind.NOTICE


def test_large_distribution_list_fits() -> None:
    from pki.unit_code import make_unit_code
    units = [make_unit_code(f"1137130000{i:07d}") for i in range(4000)]
    meta = parse_meta(encode(example(to=units[:3600], cc=units[3600:]))).metadata
    assert len(meta.recipients()) == 4000


@pytest.mark.parametrize(("kind", "mapped", "lossy_word"), [
    ("指示", Kind.OPINION, "通知"), ("条例", Kind.NOTICE, "印发通知"), ("规定", Kind.NOTICE, "印发通知"),
    ("会议纪要", Kind.MINUTES, "纪要"),
])
def test_legacy_kinds_map_with_a_warning(kind: str, mapped: Kind, lossy_word: str) -> None:
    parsed = parse_meta(encode(example(kind=kind)), legacy=True)
    assert parsed.metadata.kind is mapped
    (warning,) = [w for w in parsed.warnings if w.code == LEGACY_KIND_MAPPED]
    assert warning.field == "kind" and kind in warning.message and lossy_word in warning.message


@pytest.mark.parametrize(("urgency", "mapped"), [("特提", Urgency.EXTRA_URGENT), ("急件", Urgency.URGENT),
                                                 ("平急", Urgency.URGENT), ("平件", None)])
def test_legacy_urgency_maps_with_a_warning(urgency: str, mapped) -> None:
    parsed = parse_meta(encode(example(urgency=urgency)), legacy=True)
    assert parsed.metadata.urgency is mapped
    assert [w.field for w in parsed.warnings if w.code == LEGACY_URGENCY_MAPPED] == ["urgency"]


def test_legacy_brackets_in_the_doc_number_are_normalised_with_a_warning() -> None:
    parsed = parse_meta(encode(example(doc_number="临政发【2026】12号")))
    assert parsed.metadata.doc_number.format() == "临政发〔2026〕12号"
    assert [w.code for w in parsed.warnings] == [DOC_NUMBER_NORMALISED]
    assert b"\xe3\x80\x94" in meta_to_json(parsed.metadata)  # 〔 written exactly


def test_extra_urgent_without_deadline_warns_through_parse() -> None:
    parsed = parse_meta(encode(example(deadline=None)))
    assert [w.code for w in parsed.warnings] == [URGENT_WITHOUT_DEADLINE]


def test_a_deadline_already_past_is_refused_when_sending_but_not_when_received() -> None:
    now = datetime(2026, 11, 24, 9, tzinfo=timezone(timedelta(hours=8)))
    obj = encode(example(deadline="2026-11-23T17:00:00+08:00"))
    with pytest.raises(InvalidMetadataValue) as info:
        parse_meta(obj, now=now)
    assert info.value.code == "DOC_DEADLINE_PASSED" and info.value.details["field"] == "deadline"
    assert "2026-11-23T17:00:00+08:00" in info.value.message
    # Judging a received package (no sending time): overdue is a state, not an invalid document.
    assert parse_meta(obj).metadata.deadline.day == 23


def test_dates_out_of_order_are_refused_when_sending_and_warned_when_received() -> None:
    now = datetime(2026, 11, 21, 1, tzinfo=UTC)  # 09:00 on the 21st in Beijing
    future = encode(example(written_on="2027-03-01", printed_on=None, deadline="2027-03-05T17:00:00+08:00"))
    with pytest.raises(InvalidMetadataValue) as info:
        parse_meta(future, now=now)
    assert info.value.code == "DOC_DATES_OUT_OF_ORDER" and info.value.details["field"] == "written_on"
    # Dated today in Beijing while it is still yesterday in UTC: that is today, not the future.
    late_utc = datetime(2026, 11, 20, 17, tzinfo=UTC)  # 01:00 on the 21st in Beijing
    assert parse_meta(encode(example(written_on="2026-11-21", printed_on=None)), now=late_utc).metadata
    printed_first = encode(example(written_on="2026-11-20", printed_on="2026-11-19"))
    with pytest.raises(InvalidMetadataValue) as info:
        parse_meta(printed_first, now=now)
    assert info.value.code == "DOC_DATES_OUT_OF_ORDER" and info.value.details["field"] == "printed_on"
    assert "印发日期" in info.value.message
    # A received document keeps its dates: a warning for the clerk, not a refusal.
    assert [w.code for w in parse_meta(printed_first).warnings] == ["DOC_PRINTED_BEFORE_WRITTEN"]
