"""发文字号: exact format, tolerant parse of legacy brackets, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange_protocol.doc_number import DocNumber, parse_doc_number
from exchange_protocol.errors import InvalidDocNumber
from tests.exchange_protocol.strategies import doc_numbers

LEGACY_PAIRS = [("[", "]"), ("【", "】"), ("(", ")"), ("（", "）")]


def test_the_standard_example() -> None:
    parsed = parse_doc_number("临政发〔2012〕10号")
    assert parsed.number == DocNumber("临政发", 2012, 10)
    assert not parsed.normalised
    assert str(parsed.number) == "临政发〔2012〕10号"


@pytest.mark.parametrize(("open_", "close"), LEGACY_PAIRS)
def test_legacy_brackets_are_normalised(open_: str, close: str) -> None:
    parsed = parse_doc_number(f"国办发{open_}2016{close}3号")
    assert parsed.normalised and parsed.number.format() == "国办发〔2016〕3号"


def test_surrounding_and_inner_spaces_are_normalised() -> None:
    parsed = parse_doc_number(" 京政办发 〔2020〕 15 号\n")
    assert parsed.number.format() == "京政办发〔2020〕15号" and parsed.normalised


@pytest.mark.parametrize("text", [
    "临政发〔2012〕010号",      # leading zero
    "临政发〔2012〕第10号",     # 第 belongs to 令号, not 发文字号
    "临政发〔12〕10号",         # two-digit year
    "临政发〔02012〕10号",
    "临政发〔2012】10号",       # mismatched brackets
    "临政发2012〕10号",
    "临政发〔2012〕10",         # no 号
    "〔2012〕10号",             # no 机关代字
    "临政发〔2012〕0号",
    "临政发〔2012〕1000000号",
    "临政3发〔2012〕1号",       # digit in 机关代字
    "临政发〔２０１２〕１０号",  # full-width digits
    "临政发〔2012〕1\x000号",
    "",
    "x" * 100,
])
def test_malformed_numbers_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidDocNumber) as info:
        parse_doc_number(text, field="FWZH")
    assert info.value.code == "DOC_INVALID_DOC_NUMBER" and info.value.details["field"] == "FWZH"


def test_construction_validates() -> None:
    for args in [("", 2012, 1), ("临政发", 999, 1), ("临政发", 2012, 0), ("临 政", 2012, 1), ("临政发", "2012", 1)]:
        with pytest.raises(InvalidDocNumber):
            DocNumber(*args)


@given(doc_numbers())
def test_format_then_parse_is_identity(number: DocNumber) -> None:
    parsed = parse_doc_number(number.format())
    assert parsed.number == number and not parsed.normalised


@given(doc_numbers(), st.sampled_from(LEGACY_PAIRS))
def test_any_legacy_spelling_parses_to_the_same_number(number: DocNumber, pair) -> None:
    text = f"{number.agency}{pair[0]}{number.year}{pair[1]}{number.serial}号"
    parsed = parse_doc_number(text)
    assert parsed.number == number and parsed.normalised


@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        parsed = parse_doc_number(text)
    except InvalidDocNumber:
        return
    assert parse_doc_number(parsed.number.format()).number == parsed.number
