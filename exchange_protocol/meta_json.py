"""META.json (from adapters and clerks) and metadata.json (inside packages): one contract, both ways.

The JSON object has exactly these keys (unknown keys are refused, so a typo cannot silently drop a
field); values are strings, lists of strings or null::

    {"kind": "通知", "title": "关于…的通知", "doc_number": "临政发〔2026〕12号",
     "issuers": ["<unit code>"], "signers": ["…"], "to": ["<unit code>", …], "cc": [],
     "written_on": "2026-11-20", "urgency": "特急" | "加急" | null, "classification": "非密",
     "deadline": "2026-11-23T17:00:00+08:00" | null, "copy_number": null, "printed_by": "…",
     "printed_on": "2026-11-20", "note": null, "attachments_note": null, "id": null}

On input ``kind``, ``title``, ``issuers``, ``to`` and ``written_on`` are required; the others may be
left out (null, or [] for lists; ``classification`` defaults to 非密). On output every key is written,
through :func:`exchange_protocol.canonical.canonical_json` — those bytes are a package's
``metadata.json``. Every error names the offending field (``details["field"]``, e.g. ``to[2]``).

GB/T 33480 short names. The text of GB/T 33480 was not at hand; what we know (standards.md) is that
its element short names are the pinyin initials of the Chinese element names (GWBS 公文标识,
MJHBMQX 密级和保密期限, JJCD 紧急程度). :data:`SHORT_NAMES` applies that convention to every field, for
adapters that speak 33480-style names. 发文机关 is mapped to FWJGBZ (发文机关标志), the element that
names the issuing organs in 33480's list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .canonical import canonical_json, load_json
from .doc_number import parse_doc_number
from .errors import (
    ClassifiedRefused,
    InvalidMetadataValue,
    MalformedMetadata,
    MetadataWrongType,
    MissingMetadataField,
    UnknownMetadataField,
)
from .ids import IdGenerator
from .kinds import is_legacy_urgency, map_legacy_kind, parse_kind, parse_urgency
from .model import (
    MAX_ISSUERS,
    MAX_RECIPIENTS,
    MAX_SIGNERS,
    Classification,
    DocumentMetadata,
    MetadataWarning,
    assign_id,
    check_metadata,
    check_unit_code,
)

MAX_META_BYTES = 1 << 20  # 10 000 recipients × ~21 bytes each fit with room to spare

SHORT_NAMES: dict[str, str] = {
    "id": "GWBS", "kind": "WZ", "copy_number": "FH", "classification": "MJHBMQX", "urgency": "JJCD",
    "issuers": "FWJGBZ", "doc_number": "FWZH", "signers": "QFR", "title": "BT", "to": "ZSJG",
    "attachments_note": "FJSM", "written_on": "CWRQ", "note": "FZ", "cc": "CSJG", "printed_by": "YFJG",
    "printed_on": "YFRQ", "deadline": "BLSX",
}
_FROM_SHORT = {v: k for k, v in SHORT_NAMES.items()}
REQUIRED = frozenset({"kind", "title", "issuers", "to", "written_on"})

LEGACY_KIND_MAPPED = "DOC_LEGACY_KIND_MAPPED"
LEGACY_URGENCY_MAPPED = "DOC_LEGACY_URGENCY_MAPPED"
DOC_NUMBER_NORMALISED = "DOC_NUMBER_NORMALISED"

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATETIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})$")
_DATE_RE = re.compile(DATE_PATTERN)
_DATETIME_RE = re.compile(DATETIME_PATTERN)


@dataclass(frozen=True)
class ParsedMeta:
    metadata: DocumentMetadata
    warnings: tuple[MetadataWarning, ...]


def parse_meta(data: bytes | Mapping[str, Any], *, allow_classified: bool = False, legacy: bool = False,
               now: datetime | None = None, ids: IdGenerator | None = None) -> ParsedMeta:
    """Parse META.json bytes (or an already-decoded dict) into metadata and warnings.

    ``legacy`` lets pre-2012 kinds and telegram urgency grades through the mapping tables (with a
    warning each). ``now`` means the document is being sent at that moment: a missing ``id`` is
    assigned (from ``ids`` or the process generator) and a 办理时限 already past is refused.
    """
    obj = data if isinstance(data, Mapping) else load_json(data, max_bytes=MAX_META_BYTES, what="META.json",
                                                           error=MalformedMetadata)
    if not isinstance(obj, Mapping):
        raise MalformedMetadata("META.json must be a JSON object", type=type(obj).__name__)
    unknown = sorted(k for k in obj if k not in SHORT_NAMES)
    if unknown:
        raise UnknownMetadataField(f"unknown field {unknown[0]!r} in META.json", field=str(unknown[0]),
                                   unknown=[str(k) for k in unknown])
    missing = sorted(k for k in REQUIRED if obj.get(k) is None)
    if missing:
        raise MissingMetadataField(f"required field {missing[0]!r} is missing or null", field=missing[0])

    warnings: list[MetadataWarning] = []
    raw_kind = _string(obj, "kind")
    if legacy:
        mapped = map_legacy_kind(raw_kind)
        kind = mapped.kind
        if mapped.note:
            warnings.append(MetadataWarning(LEGACY_KIND_MAPPED, "kind", f"{mapped.source} → {kind.value}: "
                                            f"{mapped.note}"))
    else:
        kind = parse_kind(raw_kind)

    raw_urgency = _optional_string(obj, "urgency")
    urgency = parse_urgency(raw_urgency, legacy=legacy)
    if legacy and is_legacy_urgency(raw_urgency):
        shown = urgency.value if urgency else "none"
        warnings.append(MetadataWarning(LEGACY_URGENCY_MAPPED, "urgency", f"{raw_urgency} → {shown}"))

    doc_number = None
    raw_number = _optional_string(obj, "doc_number")
    if raw_number is not None:
        parsed = parse_doc_number(raw_number)
        doc_number = parsed.number
        if parsed.normalised:
            warnings.append(MetadataWarning(DOC_NUMBER_NORMALISED, "doc_number",
                                            f"{raw_number!r} written as {doc_number.format()}"))

    classification = (Classification.parse(_string(obj, "classification"))
                      if obj.get("classification") is not None else Classification())
    if classification.classified and not allow_classified:
        # Refuse first: the policy is the answer, not the 份号 a classified document would also need.
        raise ClassifiedRefused(f"classification {classification.format()}: this node exchanges 非密 "
                                "documents only", field="classification", value=classification.format())

    fields_: dict[str, Any] = dict(
        kind=kind,
        title=_text(obj, "title"),
        issuers=_units(obj, "issuers", MAX_ISSUERS),
        to=_units(obj, "to", MAX_RECIPIENTS),
        cc=_units(obj, "cc", MAX_RECIPIENTS),
        signers=tuple(s.strip() for s in _string_list(obj, "signers", MAX_SIGNERS)),
        written_on=_date(obj, "written_on"),
        printed_on=_date(obj, "printed_on") if obj.get("printed_on") is not None else None,
        deadline=_datetime(obj, "deadline"),
        urgency=urgency,
        classification=classification,
        doc_number=doc_number,
        copy_number=_optional_string(obj, "copy_number"),
        printed_by=_optional_text(obj, "printed_by"),
        note=_optional_text(obj, "note"),
        attachments_note=_optional_text(obj, "attachments_note"),
        id=_optional_string(obj, "id"),  # exact: an id is a key, never tidied
    )
    meta = DocumentMetadata(**fields_)
    warnings.extend(check_metadata(meta, allow_classified=allow_classified, sending_at=now))
    if now is not None:
        meta = assign_id(meta, now, ids)
    return ParsedMeta(meta, tuple(warnings))


def meta_to_dict(meta: DocumentMetadata) -> dict[str, Any]:
    """The META.json object for ``meta``: every key, JSON types only."""
    return {
        "kind": meta.kind.value,
        "title": meta.title,
        "doc_number": meta.doc_number.format() if meta.doc_number else None,
        "issuers": list(meta.issuers),
        "signers": list(meta.signers),
        "to": list(meta.to),
        "cc": list(meta.cc),
        "written_on": meta.written_on.isoformat(),
        "urgency": meta.urgency.value if meta.urgency else None,
        "classification": meta.classification.format(),
        "deadline": meta.deadline.isoformat() if meta.deadline else None,
        "copy_number": meta.copy_number,
        "printed_by": meta.printed_by,
        "printed_on": meta.printed_on.isoformat() if meta.printed_on else None,
        "note": meta.note,
        "attachments_note": meta.attachments_note,
        "id": meta.id,
    }


def meta_to_json(meta: DocumentMetadata) -> bytes:
    """Canonical metadata.json bytes (sorted keys, UTF-8, no escapes) — what packages carry and sign."""
    return canonical_json(meta_to_dict(meta))


def to_short_names(meta: DocumentMetadata) -> dict[str, Any]:
    """The META.json object keyed by GB/T 33480-style short names (GWBS, WZ, …)."""
    return {SHORT_NAMES[k]: v for k, v in meta_to_dict(meta).items()}


def from_short_names(obj: Mapping[str, Any], **options: Any) -> ParsedMeta:
    """Parse an object keyed by short names; unknown short names are refused. Options as parse_meta."""
    if not isinstance(obj, Mapping):
        raise MalformedMetadata("metadata must be an object", type=type(obj).__name__)
    unknown = sorted(str(k) for k in obj if k not in _FROM_SHORT)
    if unknown:
        raise UnknownMetadataField(f"unknown short name {unknown[0]!r}", field=unknown[0], unknown=unknown)
    return parse_meta({_FROM_SHORT[k]: v for k, v in obj.items()}, **options)


# --- field readers: each names its field in every error -------------------------------------------
def _string(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        raise MissingMetadataField(f"{name} must not be null", field=name)
    if not isinstance(value, str):
        raise MetadataWrongType(f"{name} must be a string, not {_json_type(value)}", field=name,
                                type=_json_type(value))
    return value


def _optional_string(obj: Mapping[str, Any], name: str) -> str | None:
    return None if obj.get(name) is None else _string(obj, name)


def _text(obj: Mapping[str, Any], name: str) -> str:
    text = _string(obj, name).strip()
    if not text:
        raise InvalidMetadataValue(f"{name} must not be empty", field=name)
    return text


def _optional_text(obj: Mapping[str, Any], name: str) -> str | None:
    return None if obj.get(name) is None else _text(obj, name)


def _string_list(obj: Mapping[str, Any], name: str, limit: int) -> list[str]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MetadataWrongType(f"{name} must be a list of strings, not {_json_type(value)}", field=name,
                                type=_json_type(value))
    if len(value) > limit:
        raise InvalidMetadataValue(f"{name} has {len(value)} entries, at most {limit} allowed", field=name)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise MetadataWrongType(f"{name}[{i}] must be a string, not {_json_type(item)}",
                                    field=f"{name}[{i}]", type=_json_type(item))
    return value


def _units(obj: Mapping[str, Any], name: str, limit: int) -> tuple[str, ...]:
    return tuple(check_unit_code(code, f"{name}[{i}]")
                 for i, code in enumerate(_string_list(obj, name, limit)))


def _date(obj: Mapping[str, Any], name: str) -> date:
    text = _string(obj, name).strip()
    try:
        if not _DATE_RE.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidMetadataValue(f"{name}: {text!r} is not a date YYYY-MM-DD", field=name,
                                   value=text[:40]) from None


def _datetime(obj: Mapping[str, Any], name: str) -> datetime | None:
    if obj.get(name) is None:
        return None
    text = _string(obj, name).strip()
    try:
        if not _DATETIME_RE.match(text):
            raise ValueError
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidMetadataValue(f"{name}: {text!r} is not a date-time with UTC offset, e.g. "
                                   "2026-11-23T17:00:00+08:00", field=name, value=text[:40]) from None


def _json_type(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)
