# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""One rule for what a 公文标识 may be, applied wherever an id enters the protocol.

An id that no route can address (a path, a query, markup, "..") must never be accepted: once a
document carries one, the recipient cannot open, 签收 or 退回 it and the sender cannot track it.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import jsonschema_rs
import pytest

from exchange_protocol.envelope import MessageType
from exchange_protocol.errors import InvalidDocumentId
from exchange_protocol.meta_json import parse_meta
from exchange_protocol.model import _ASCII_DOC_ID, DOC_ID_PATTERN, MAX_ID, _doc_id_char, check_doc_id
from exchange_protocol.notices import Notice, NoticeError, decode_notice
from exchange_protocol.package import build_package
from exchange_protocol.package_verify import verify_package
from node.localnet import notice_pdf
from tests.exchange_protocol.package_fixtures import (  # noqa: F401
    NOW,
    UNIT,
    make_meta,
    pki_env,
    with_forced_id,
)

UNADDRESSABLE = ["../../etc/passwd", "..", ".", "a?b=1#c", "<script>", "a/b", "a\\b", ".hidden", "trailing.",
                 "a..b", "a b", "a\nb", "abc\n", "%2e%2e", "a&b", "x" * (MAX_ID + 1), "", 'a"b', "a'b", "a\tb",
                 "a\u3000b", "a\x85b", "a\u2028b", "a>b", "a#b", "a%b", "a\x00b", "a／b", "😀", "文" * (MAX_ID + 1)]
# Ids older versions accepted and that are harmless: brackets, 【】, 、, ·, ＿, letters and digits of
# any script (a CJK extension B ideograph, Greek, Arabic-Indic digits, fullwidth digits).
GOOD = ["019cade2-11c0-7640-8aa8-958c96f2b6f2", "legacy-OA-0001", "临政发〔2026〕12号", "OA:2026~0001",
        "办公厅(2026)_7", "a.b.c", "x" * MAX_ID, "[2024]", "闽政【2024】3号", "甲、乙", "OA·2024", "OA＿7",
        "𠀀𠀁-1", "Ωmega", "٣٤٥", "２０２４", "（第1号）", "文" * MAX_ID]
AT = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize("doc_id", UNADDRESSABLE)
def test_the_model_refuses_an_id_no_route_could_address(doc_id):
    with pytest.raises(InvalidDocumentId) as info:
        check_doc_id(doc_id)
    assert info.value.code == "DOC_INVALID_ID" and info.value.details["field"] == "id"


@pytest.mark.parametrize("doc_id", GOOD)
def test_ids_gwx_and_legacy_systems_make_are_accepted(doc_id):
    assert check_doc_id(doc_id) == doc_id
    assert parse_meta(_meta_json(doc_id)).metadata.id == doc_id
    notice = Notice(MessageType.URGE, doc_id, (UNIT,), AT)  # a peer's 催办 about it is read too
    assert decode_notice(notice.encode()).doc_id == doc_id


@pytest.mark.parametrize("doc_id", UNADDRESSABLE)
def test_meta_json_with_such_an_id_is_refused_naming_the_field(doc_id):
    with pytest.raises(InvalidDocumentId) as info:
        parse_meta(_meta_json(doc_id))
    assert info.value.details["field"] == "id"


# Letters Unicode 16 added (Cyrillic Tje) in the sample below: the validator's tables know them,
# Python 3.11's unicodedata (Unicode 14) does not — a difference of Unicode versions, not of rules.
UNICODE_16 = {0x1C89, 0x1C8A}


def test_the_published_pattern_and_the_model_agree_on_every_id():
    # The pattern the schemas publish, judged by a real ECMA-262 validator, accepts exactly the ids
    # the model does: those above, and one- and two-character ids over a wide sample of Unicode.
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": DOC_ID_PATTERN, "maxLength": MAX_ID})
    samples = [chr(c) for c in (*range(0x20, 0x3100), *range(0x4E00, 0x4E40), *range(0xFF00, 0xFFF0),
                                0x20000, 0x1F600, 0x10FFFD) if not 0xD800 <= c < 0xE000 and c not in UNICODE_16]
    ids = [*GOOD, *UNADDRESSABLE, *samples, *(f"a{c}b" for c in samples), *(f"{c}.{c}" for c in samples)]
    disagree = [doc_id for doc_id in ids if validator.is_valid(doc_id) != _accepted(doc_id)]
    assert not disagree, [f"{d!r}" for d in disagree[:20]]


def test_the_ascii_shortcut_takes_exactly_the_ascii_ids_the_rule_takes():
    # check_doc_id answers an ASCII id by one regular expression (the ids gwx makes are UUIDs) and
    # any other by the characters' Unicode categories: over every ASCII character alone, in pairs and
    # around a dot, the shortcut matches exactly the ids the rule accepts — no id changes its answer.
    chars = [chr(c) for c in range(128)]
    ids = [*chars, *(a + b for a in chars for b in chars), *(f"{a}.{b}" for a in chars for b in chars),
           "x" * MAX_ID, "a.b.c", "a..b", "019cade2-11c0-7640-8aa8-958c96f2b6f2", "abc\n"]
    by_rule = {d: all(run and all(map(_doc_id_char, run)) for run in d.split(".")) for d in ids}
    disagree = [d for d in ids if bool(_ASCII_DOC_ID.fullmatch(d)) != by_rule[d]]
    assert not disagree, disagree[:20]
    assert all(_accepted(d) == by_rule[d] for d in ids)


def _accepted(doc_id: str) -> bool:
    try:
        check_doc_id(doc_id)
        return True
    except InvalidDocumentId:
        return False


@pytest.mark.parametrize("doc_id", ["../../etc/passwd", "a?b=1#c", "<script>"])
def test_a_notice_about_such_an_id_is_refused(doc_id):
    with pytest.raises(NoticeError) as info:
        Notice(MessageType.URGE, doc_id, (UNIT,), AT)
    assert info.value.code == "NOTICE_BAD_DOC_ID"
    raw = json.loads(Notice(MessageType.URGE, "d1", (UNIT,), AT).encode())
    raw["doc_id"] = doc_id
    with pytest.raises(NoticeError) as info:
        decode_notice(json.dumps(raw).encode())
    assert info.value.code == "NOTICE_BAD_DOC_ID"


def test_a_sealed_package_carrying_such_an_id_fails_verification_on_its_metadata(pki_env):
    # A peer running older code (or a hostile one) can still seal a package with such an id.
    out = io.BytesIO()
    build_package(out, metadata=with_forced_id(make_meta(), "../../etc/passwd"), body=notice_pdf(),
                  seal_key=pki_env.seal, at=NOW)
    out.seek(0)
    report = verify_package(out, [pki_env.root], NOW, validate_pdf=False)
    assert not report.ok
    assert report.check("metadata").status == "fail" and report.check("metadata").code == "DOC_INVALID_ID"


def _meta_json(doc_id: str) -> bytes:
    meta = json.loads(json.dumps({"kind": "通知", "title": "关于开展冬季安全生产检查的通知", "issuers": [UNIT],
                                  "to": ["11100000000013127D"], "written_on": "2026-11-20", "id": doc_id}))
    return json.dumps(meta, ensure_ascii=False).encode()
