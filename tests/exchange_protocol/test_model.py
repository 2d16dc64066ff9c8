"""DocumentMetadata: structure checked at construction, policy and warnings in check_metadata."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from exchange_protocol.errors import (
    ClassifiedRefused,
    CopyNumberRequired,
    DuplicateRecipient,
    InvalidMetadataValue,
    InvalidRecipientCode,
    MetadataError,
    NoMainRecipient,
    SignerRequired,
)
from exchange_protocol.ids import IdGenerator, id_time
from exchange_protocol.kinds import Kind, Role, SecrecyLevel, Urgency
from exchange_protocol.model import (
    PRINTED_BEFORE_WRITTEN,
    URGENT_WITHOUT_DEADLINE,
    Classification,
    DocumentMetadata,
    assign_id,
    check_metadata,
)
from pki.unit_code import make_unit_code

A, B, C = "91350100M000100Y43", "11100000000013127D", make_unit_code("11371300MB0000001")
CST = timezone(timedelta(hours=8))


def doc(**changes) -> DocumentMetadata:
    base = dict(kind=Kind.NOTICE, title="关于开展安全生产检查的通知", issuers=(A,), to=(B,), cc=(C,),
                written_on=date(2026, 11, 20))
    return DocumentMetadata(**{**base, **changes})


def field_of(exc: MetadataError) -> str:
    return exc.details["field"]


def test_recipients_carry_their_role() -> None:
    assert doc().recipients() == ((B, Role.MAIN), (C, Role.COPY))


@pytest.mark.parametrize("kind", list(Kind))
def test_signer_required_exactly_on_qingshi_and_baogao(kind: Kind) -> None:
    if kind in (Kind.REQUEST, Kind.REPORT):
        with pytest.raises(SignerRequired) as info:
            doc(kind=kind)
        assert field_of(info.value) == "signers" and kind.value in info.value.message
        assert doc(kind=kind, signers=("张三",)).signers == ("张三",)
    else:
        assert doc(kind=kind).kind is kind


def test_classified_documents_need_a_copy_number_and_the_callers_consent() -> None:
    secret = Classification(SecrecyLevel.JIMI, "1年")
    with pytest.raises(CopyNumberRequired) as info:
        doc(classification=secret)
    assert field_of(info.value) == "copy_number"
    meta = doc(classification=secret, copy_number="000012")
    with pytest.raises(ClassifiedRefused) as refused:
        check_metadata(meta)
    assert refused.value.code == "DOC_CLASSIFIED_REFUSED" and "机密★1年" in refused.value.message
    assert check_metadata(meta, allow_classified=True) == ()


def test_extra_urgent_without_deadline_is_a_warning_not_an_error() -> None:
    warnings = check_metadata(doc(urgency=Urgency.EXTRA_URGENT))
    assert [(w.code, w.field) for w in warnings] == [(URGENT_WITHOUT_DEADLINE, "deadline")]
    assert check_metadata(doc(urgency=Urgency.URGENT)) == ()
    deadline = datetime(2026, 11, 23, 17, tzinfo=CST)
    assert check_metadata(doc(urgency=Urgency.EXTRA_URGENT, deadline=deadline)) == ()


def test_printed_before_written_is_a_warning() -> None:
    warnings = check_metadata(doc(printed_on=date(2026, 11, 19)))
    assert [w.code for w in warnings] == [PRINTED_BEFORE_WRITTEN]


@pytest.mark.parametrize(("changes", "error", "field"), [
    ({"to": ()}, NoMainRecipient, "to"),
    ({"to": (B, B)}, DuplicateRecipient, "to[1]"),
    ({"cc": (B,)}, DuplicateRecipient, "cc[0]"),
    ({"to": (B, "91350100M000100Y44")}, InvalidRecipientCode, "to[1]"),
    ({"cc": ("91350100m000100y43",)}, InvalidRecipientCode, "cc[0]"),      # valid but not normalised
    ({"issuers": ()}, InvalidMetadataValue, "issuers"),
    ({"issuers": ("x",)}, InvalidRecipientCode, "issuers[0]"),
    ({"title": ""}, InvalidMetadataValue, "title"),
    ({"title": "   "}, InvalidMetadataValue, "title"),
    ({"title": "通" * 201}, InvalidMetadataValue, "title"),
    ({"title": "关于\n检查"}, InvalidMetadataValue, "title"),
    ({"title": " 关于检查"}, InvalidMetadataValue, "title"),
    ({"title": 42}, MetadataError, "title"),
    ({"written_on": "2026-11-20"}, MetadataError, "written_on"),
    ({"written_on": datetime(2026, 11, 20, tzinfo=CST)}, MetadataError, "written_on"),
    ({"deadline": datetime(2026, 11, 23, 17)}, InvalidMetadataValue, "deadline"),
    ({"deadline": datetime(2026, 11, 23, 17, tzinfo=timezone(timedelta(seconds=30)))},
     InvalidMetadataValue, "deadline"),
    ({"copy_number": "12345"}, InvalidMetadataValue, "copy_number"),
    ({"copy_number": "１２３４５６"}, InvalidMetadataValue, "copy_number"),
    ({"copy_number": 123456}, InvalidMetadataValue, "copy_number"),
    ({"signers": ("",)}, InvalidMetadataValue, "signers[0]"),
    ({"id": "a b"}, InvalidMetadataValue, "id"),
    ({"id": ""}, InvalidMetadataValue, "id"),
    ({"kind": "通知"}, MetadataError, "kind"),
    ({"urgency": "特急"}, MetadataError, "urgency"),
    ({"note": "x" * 2001}, InvalidMetadataValue, "note"),
])
def test_bad_values_name_the_field(changes, error, field) -> None:
    with pytest.raises(error) as info:
        doc(**changes)
    assert field_of(info.value) == field


def test_lists_become_tuples_and_the_value_is_immutable() -> None:
    meta = doc(to=[B], signers=["张三"])
    assert meta.to == (B,) and meta.signers == ("张三",)
    with pytest.raises(AttributeError):
        meta.title = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("text", "level", "period"), [
    ("非密", SecrecyLevel.FEIMI, None), ("秘密", SecrecyLevel.MIMI, None),
    ("机密★1年", SecrecyLevel.JIMI, "1年"), ("绝密★长期", SecrecyLevel.JUEMI, "长期"),
    ("秘密★6个月", SecrecyLevel.MIMI, "6个月"),
])
def test_classification_text(text: str, level: SecrecyLevel, period: str | None) -> None:
    parsed = Classification.parse(text)
    assert (parsed.level, parsed.period) == (level, period) and parsed.format() == text


@pytest.mark.parametrize("text", ["非密★1年", "内部", "机密★", "机密★01年", "机密★一年", ""])
def test_bad_classification_text(text: str) -> None:
    with pytest.raises(InvalidMetadataValue) as info:
        Classification.parse(text)
    assert field_of(info.value) == "classification"


def test_assign_id_gives_a_time_ordered_id_once() -> None:
    now = datetime(2026, 11, 20, 9, 30, tzinfo=CST)
    meta = assign_id(doc(), now, IdGenerator())
    assert meta.id is not None and id_time(meta.id) == now
    assert assign_id(meta, now + timedelta(days=1)) is meta
    assert assign_id(doc(id="legacy-OA-0001"), now).id == "legacy-OA-0001"
    assert replace(meta, id=None) == doc()
