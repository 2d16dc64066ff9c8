"""The JSON Schema (draft 2020-12) of META.json, for OA integrators and their tools.

Built from the same constants the parser uses (:mod:`exchange_protocol.model`,
:mod:`exchange_protocol.meta_json`, :mod:`exchange_protocol.kinds`), so the published schema and
:func:`exchange_protocol.meta_json.parse_meta` cannot drift apart on what they both can say: the
keys, which are required, types, kinds, urgencies, lengths, dates, the 公文标识 rule, 签发人 on
请示/报告 and 份号 on classified documents. What a schema cannot say stays with the parser, and the
schema's ``description`` names it: the unit code's check character, 发文字号's grammar, and the
node's policy (a node on an unclassified network refuses 秘密 and above).

Output (a package's metadata.json, ``GET /api/v1/inbox/{id}``) has every key, null where empty;
input may leave the optional keys out. Both are valid against this schema.
"""

from __future__ import annotations

from typing import Any

from pki.unit_code import UNIT_CODE_FORMAT, UNIT_CODE_PATTERN

from .kinds import UPWARD_KINDS, Kind, SecrecyLevel, Urgency
from .meta_json import DATE_PATTERN, DATETIME_PATTERN, MAX_META_BYTES, REQUIRED
from .model import (
    DOC_ID_PATTERN,
    MAX_ID,
    MAX_ISSUERS,
    MAX_NAME,
    MAX_NOTE,
    MAX_RECIPIENTS,
    MAX_SIGNERS,
    MAX_TITLE,
)

SCHEMA_ID = "https://gwx.invalid/schema/meta.json"
Json = dict[str, Any]

# Text as the model takes it: something besides spaces, no control characters.
_TEXT_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\s\u0000-\u001f\u007f-\u009f\u2028\u2029][^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
_LEVELS = "|".join(level.value for level in SecrecyLevel if level is not SecrecyLevel.FEIMI)
_CLASSIFIED = rf"^\s*({_LEVELS})"
_CLASSIFICATION_PATTERN = rf"^\s*({SecrecyLevel.FEIMI.value}|({_LEVELS})(\s*★\s*([1-9][0-9]{{0,2}}(年|个月)|长期))?)\s*$"


def _text(max_len: int, description: str) -> Json:
    return {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": _TEXT_PATTERN,
            "description": description}


def _or_null(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def _units(description: str, *, max_items: int, min_items: int = 0) -> Json:
    return {"type": "array", "minItems": min_items, "maxItems": max_items, "uniqueItems": True,
            "items": {"type": "string", "pattern": UNIT_CODE_PATTERN, "format": UNIT_CODE_FORMAT,
                      "description": "统一社会信用代码 (GB 32100, 18 characters; the check character is checked "
                                     "by the node)"},
            "description": description}


def meta_schema() -> Json:
    """The schema as a fresh dict (callers may embed it, e.g. in the OpenAPI components)."""
    properties: Json = {
        "id": _or_null({"type": "string", "minLength": 1, "maxLength": MAX_ID, "pattern": DOC_ID_PATTERN,
                        "description": "公文标识; left out or null: the node assigns one"}),
        "kind": {"enum": [k.value for k in Kind] + ["令", "命令(令)", "命令（令）"], "description": "文种"},
        "title": _text(MAX_TITLE, "标题"),
        "doc_number": _or_null({"type": "string", "minLength": 1,
                                "description": "发文字号, e.g. 临政发〔2026〕12号 (its grammar is checked by the node)"}),
        "issuers": _units("发文机关; the first one seals and must be the clerk's unit", max_items=MAX_ISSUERS,
                          min_items=1),
        "signers": _or_null({"type": "array", "maxItems": MAX_SIGNERS, "items": _text(MAX_NAME, "签发人")}),
        "to": _units("主送机关", max_items=MAX_RECIPIENTS, min_items=1),
        "cc": _or_null(_units("抄送机关", max_items=MAX_RECIPIENTS)),
        "written_on": {"type": "string", "pattern": DATE_PATTERN, "format": "date", "description": "成文日期"},
        "urgency": {"enum": [u.value for u in Urgency] + [None], "description": "紧急程度; null: ordinary"},
        "classification": _or_null({"type": "string", "pattern": _CLASSIFICATION_PATTERN,
                                    "description": "密级和保密期限, e.g. 非密 or 机密★1年; null: 非密. A node on an "
                                                   "unclassified network refuses everything but 非密"}),
        "deadline": _or_null({"type": "string", "pattern": DATETIME_PATTERN, "format": "date-time",
                              "description": "办理时限, with a UTC offset"}),
        "copy_number": _or_null({"type": "string", "pattern": "^[0-9]{6}$", "description": "份号"}),
        "printed_by": _or_null(_text(MAX_NAME, "印发机关 (a name)")),
        "printed_on": _or_null({"type": "string", "pattern": DATE_PATTERN, "format": "date",
                                "description": "印发日期"}),
        "note": _or_null(_text(MAX_NOTE, "附注")),
        "attachments_note": _or_null(_text(MAX_NOTE, "附件说明")),
    }
    not_null = {"not": {"type": "null"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "gwx META.json (one 公文's metadata)",
        "description": "Keys as in exchange_protocol.meta_json; unknown keys are refused. Checked by the node "
                       "but not expressible here: unit codes' check characters, 发文字号's grammar, a unit "
                       f"appearing twice across 主送 and 抄送, and the node's 密级 policy. At most {MAX_META_BYTES} "
                       "bytes.",
        "type": "object",
        "additionalProperties": False,
        "required": sorted(REQUIRED),
        "properties": properties,
        "allOf": [
            {"properties": {name: not_null for name in sorted(REQUIRED)}},
            {"if": {"required": ["kind"], "properties": {"kind": {"enum": [k.value for k in UPWARD_KINDS]}}},
             "then": {"required": ["signers"], "properties": {"signers": {"type": "array", "minItems": 1}}},
             "description": "请示 and 报告 name their 签发人"},
            {"if": {"required": ["classification"],
                    "properties": {"classification": {"type": "string", "pattern": _CLASSIFIED}}},
             "then": {"required": ["copy_number"], "properties": {"copy_number": {"type": "string"}}},
             "description": "a classified document carries its 份号"},
        ],
    }
