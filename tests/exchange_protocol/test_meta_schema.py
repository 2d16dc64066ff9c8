"""The published META.json schema and the parser agree: what one accepts the other accepts.

The schema is judged by a real JSON Schema validator (jsonschema-rs, ECMA-262 regular
expressions), so a pattern only Python understands would show up here.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings

from exchange_protocol.errors import ProtocolError
from exchange_protocol.meta_json import meta_to_dict, parse_meta
from exchange_protocol.meta_schema import meta_schema
from tests.exchange_protocol.strategies import metadata

A, B, C = "91350100M000100Y43", "11100000000013127D", "11370000MB00000015"
VALIDATOR = jsonschema_rs.validator_for(meta_schema())
EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "META.json"


def base(**changes) -> dict:
    obj = {"kind": "通知", "title": "关于开展冬季安全生产检查的通知", "issuers": [A], "to": [B], "written_on": "2026-11-20"}
    obj.update(changes)
    return {k: v for k, v in obj.items() if v != "<drop>"}


VALID = [
    base(),
    base(id="临政发〔2026〕12号", doc_number="临政发〔2026〕12号", urgency="特急",
         cc=[C], deadline="2026-11-23T17:00:00+08:00", printed_by="临沂市人民政府办公室", printed_on="2026-11-20"),
    base(kind="请示", signers=["张三"], to=[B.lower()]),
    base(kind="令", id="019cade2-11c0-7640-8aa8-958c96f2b6f2", urgency=None, classification="非密", note="此件公开发布"),
    base(signers=None, cc=None, deadline="2026-11-23T09:00:00Z", attachments_note="附件：检查表"),
]
INVALID = [
    ("unknown key", base(extra=1)),
    ("missing title", base(title="<drop>")),
    ("null to", base(to=None)),
    ("no 主送", base(to=[])),
    ("bad kind", base(kind="电报")),
    ("legacy kind", base(kind="会议纪要")),
    ("blank title", base(title="   ")),
    ("control character", base(title="关于\u0007检查")),
    ("title too long", base(title="通" * 201)),
    ("unit code shape", base(to=["bogus"])),
    ("unit code in 发文机关", base(issuers=["91350100M000100Y4"])),
    ("issuer twice", base(issuers=[A, A])),
    ("date format", base(written_on="2026-1-2")),
    ("deadline without offset", base(deadline="2026-11-23T17:00:00")),
    ("legacy urgency", base(urgency="特提")),
    ("请示 without 签发人", base(kind="请示")),
    ("classification", base(classification="内部")),
    ("份号 format", base(copy_number="12345")),
    ("path as id", base(id="../../etc/passwd")),
    ("dots as id", base(id="..")),
    ("query as id", base(id="a?b=1#c")),
    ("markup as id", base(id="<script>")),
    ("empty id", base(id="")),
    ("number as id", base(id=12)),
    ("signers not a list", base(signers="张三")),
]


@pytest.mark.parametrize("obj", VALID)
def test_valid_metadata_is_accepted_by_both(obj):
    assert VALIDATOR.is_valid(obj), list(VALIDATOR.iter_errors(obj))
    parse_meta(obj)


@pytest.mark.parametrize(("why", "obj"), INVALID, ids=[w for w, _ in INVALID])
def test_invalid_metadata_is_refused_by_both(why, obj):
    assert not VALIDATOR.is_valid(obj), why
    with pytest.raises(ProtocolError):
        parse_meta(obj)


def test_a_classified_document_needs_its_copy_number_in_both():
    obj = base(classification="机密★1年")
    assert not VALIDATOR.is_valid(obj)
    with pytest.raises(ProtocolError):
        parse_meta(obj, allow_classified=True)
    obj["copy_number"] = "000001"
    assert VALIDATOR.is_valid(obj)
    parse_meta(obj, allow_classified=True)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(metadata())
def test_everything_the_node_writes_is_valid_against_the_schema(meta):
    # metadata.json inside packages and `metadata` in API answers: every key, nulls included.
    obj = json.loads(json.dumps(meta_to_dict(meta)))
    assert VALIDATOR.is_valid(obj), list(VALIDATOR.iter_errors(obj))


def test_the_deploy_example_loads_and_validates_with_both():
    obj = json.loads(EXAMPLE.read_text("utf-8"))
    assert VALIDATOR.is_valid(obj), list(VALIDATOR.iter_errors(obj))
    parsed = parse_meta(EXAMPLE.read_bytes())
    assert parsed.metadata.kind.value == "通知" and parsed.metadata.to
    assert parsed.warnings == ()
