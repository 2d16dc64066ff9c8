"""文种, 紧急程度, 密级 vocabularies and the legacy mapping tables."""

from __future__ import annotations

import pytest

from exchange_protocol.errors import InvalidMetadataValue, UnknownKind
from exchange_protocol.kinds import Kind, Urgency, map_legacy_kind, parse_kind, parse_urgency


def test_the_fifteen_kinds_of_2012() -> None:
    assert [k.value for k in Kind] == ["决议", "决定", "命令", "公报", "公告", "通告", "意见", "通知", "通报",
                                       "报告", "请示", "批复", "议案", "函", "纪要"]
    for kind in Kind:
        assert parse_kind(kind.value) is kind


@pytest.mark.parametrize("text", ["令", "命令", "命令(令)", "命令（令）"])
def test_ling_and_mingling_are_one_kind(text: str) -> None:
    assert parse_kind(text) is Kind.ORDER


def test_only_upward_documents_require_a_signer() -> None:
    assert {k for k in Kind if k.requires_signer} == {Kind.REPORT, Kind.REQUEST}


@pytest.mark.parametrize(("legacy", "kind", "lossy"), [
    ("会议纪要", Kind.MINUTES, False),
    ("指示", Kind.OPINION, True),
    ("条例", Kind.NOTICE, True),
    ("规定", Kind.NOTICE, True),
])
def test_legacy_kinds_map_with_a_note(legacy: str, kind: Kind, lossy: bool) -> None:
    mapped = map_legacy_kind(legacy)
    assert (mapped.kind, mapped.lossy, mapped.source) == (kind, lossy, legacy)
    assert mapped.note and legacy in mapped.note
    with pytest.raises(UnknownKind) as info:
        parse_kind(legacy)  # the strict parser points to the mapping instead of guessing
    assert kind.value in info.value.message


def test_current_kinds_map_to_themselves_and_unknown_ones_are_refused() -> None:
    assert map_legacy_kind("令").kind is Kind.ORDER and map_legacy_kind("令").note is None
    for bad in ["指令", "", "通知书", None, 5]:
        with pytest.raises(UnknownKind) as info:
            map_legacy_kind(bad)  # type: ignore[arg-type]
        assert info.value.code == "DOC_UNKNOWN_KIND" and info.value.details["field"] == "kind"


@pytest.mark.parametrize(("text", "legacy", "expected"), [
    ("特急", False, Urgency.EXTRA_URGENT), ("加急", False, Urgency.URGENT), (None, False, None),
    ("特提", True, Urgency.EXTRA_URGENT), ("急件", True, Urgency.URGENT), ("平急", True, Urgency.URGENT),
    ("平件", True, None), ("特急", True, Urgency.EXTRA_URGENT),
])
def test_urgency(text, legacy, expected) -> None:
    assert parse_urgency(text, legacy=legacy) is expected


@pytest.mark.parametrize("text", ["特提", "急件", "平急", "急", "", ["特急"]])
def test_unmapped_urgency_is_refused(text) -> None:
    with pytest.raises(InvalidMetadataValue) as info:
        parse_urgency(text)
    assert info.value.details["field"] == "urgency"
