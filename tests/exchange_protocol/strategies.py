"""Hypothesis strategies for valid 公文 metadata (shared by the exchange_protocol tests)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from hypothesis import strategies as st

from exchange_protocol.doc_number import DocNumber
from exchange_protocol.kinds import Kind, SecrecyLevel, Urgency
from exchange_protocol.model import DOC_ID_PUNCTUATION, MAX_ID, Classification, DocumentMetadata
from pki.unit_code import ALPHABET, make_unit_code

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
# Text a clerk might type: CJK, ASCII letters and digits, some punctuation, inner spaces.
TEXT_CHARS = st.one_of(CJK, st.sampled_from("abcXYZ0123456789《》“”、，。（）〔〕- ·"))


def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(TEXT_CHARS, min_size=1, max_size=max_size).map(str.strip).filter(bool)


def doc_ids() -> st.SearchStrategy[str]:
    """公文标识 as legacy systems write them (any text the model's one rule admits)."""
    run = st.text(st.one_of(CJK, st.sampled_from("azAZ09Ω٣２" + DOC_ID_PUNCTUATION)), min_size=1, max_size=12)
    ids = st.lists(run, min_size=1, max_size=4).map(".".join)
    return ids.filter(lambda s: len(s) <= MAX_ID)


def unit_codes() -> st.SearchStrategy[str]:
    head = st.text(st.sampled_from(ALPHABET), min_size=2, max_size=2)
    division = st.text(st.sampled_from("0123456789"), min_size=6, max_size=6)
    org = st.text(st.sampled_from(ALPHABET), min_size=9, max_size=9)
    return st.builds(lambda a, b, c: make_unit_code(a + b + c), head, division, org)


def doc_numbers() -> st.SearchStrategy[DocNumber]:
    return st.builds(DocNumber, st.text(CJK, min_size=1, max_size=8), st.integers(1000, 9999),
                     st.integers(1, 999_999))


offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
deadlines = st.builds(lambda d, tz: d.replace(tzinfo=tz),
                      st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)), offsets)
dates = st.dates(date(1990, 1, 1), date(2099, 12, 31))


@st.composite
def metadata(draw: st.DrawFn, *, classified: bool = False) -> DocumentMetadata:
    units = draw(st.lists(unit_codes(), min_size=2, max_size=8, unique=True))
    split = draw(st.integers(1, len(units) - 1))
    kind = draw(st.sampled_from(list(Kind)))
    signers = draw(st.lists(texts(10), min_size=1 if kind.requires_signer else 0, max_size=3))
    level = draw(st.sampled_from(list(SecrecyLevel))) if classified else SecrecyLevel.FEIMI
    period = draw(st.sampled_from([None, "1年", "6个月", "长期", "30年"])) if level is not SecrecyLevel.FEIMI \
        else None
    copy_number = draw(st.from_regex(r"\A[0-9]{6}\Z")) if level is not SecrecyLevel.FEIMI \
        else draw(st.none() | st.from_regex(r"\A[0-9]{6}\Z"))
    return DocumentMetadata(
        kind=kind,
        title=draw(texts(200)),
        issuers=tuple(draw(st.lists(unit_codes(), min_size=1, max_size=3, unique=True))),
        to=tuple(units[:split]),
        cc=tuple(units[split:]),
        written_on=draw(dates),
        doc_number=draw(st.none() | doc_numbers()),
        signers=tuple(signers),
        urgency=draw(st.none() | st.sampled_from(list(Urgency))),
        classification=Classification(level, period),
        deadline=draw(st.none() | deadlines),
        copy_number=copy_number,
        printed_by=draw(st.none() | texts(100)),
        printed_on=draw(st.none() | dates),
        note=draw(st.none() | texts(300)),
        attachments_note=draw(st.none() | texts(300)),
        id=draw(st.none() | st.uuids().map(str) | doc_ids()),
    )
