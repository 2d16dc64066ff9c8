"""The value tables of one OA's field mapping: 文种, 紧急程度, 密级 and status codes, date formats and
unit code formats — each parsed from its TOML table and checked whole, so a mapping that loads can
code every value a document or event may carry.

文种 and 紧急程度 are keyed by the OA's OWN names, which for an OA from before 2012 are the old ones
(会议纪要, 指示, 条例, 规定; 特提, 急件, 平件): each name is resolved to a 2012 value through the legacy
tables in :mod:`exchange_protocol.kinds`, and a document we push is coded by the OA name that
resolves to its kind. When several OA names resolve to one kind the closest wins — the kind's own
name, then a rename (会议纪要 for 纪要), then a lossy legacy kind (指示 for 意见) — and two names
equally close are refused as ambiguous. The lossy choices are kept as ``notes`` for the operator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from exchange_protocol.errors import InvalidMetadataValue, UnknownKind
from exchange_protocol.kinds import Kind, SecrecyLevel, Urgency, map_legacy_kind, parse_urgency
from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

from .errors import OaMappingInvalid, OaValueUnmapped

# The status changes of a sent document an OA may be told of (event type after "document."/"delivery.").
STATUS_NAMES: dict[str, str] = {"signed_for": "签收", "returned": "退回", "failed": "发送失败"}
UNIT_CODE_FORMATS = ("gb32100", "organization_code", "organization_code_dashed")
_DIRECTIVES = set("YmdHMS%")
_OFFSET_RE = re.compile(r"^([+-])([01][0-9]|2[0-3]):([0-5][0-9])$")


def _codes(raw: Any, table: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise OaMappingInvalid(f"[{table}] must be a table of the OA's names and its codes", key=table)
    for name, code in raw.items():
        if not isinstance(code, str):
            raise OaMappingInvalid(f"[{table}] {name}: the OA's code must be a string, got {code!r}",
                                   key=f"{table}.{name}")
    return dict(raw)


@dataclass(frozen=True)
class KindCodes:
    """文种: our 15 kinds → the OA's codes."""

    codes: Mapping[Kind, str]
    other: str | None
    notes: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Any, other: Any) -> KindCodes:
        table = _codes(raw, "kinds")
        candidates: dict[Kind, list[tuple[int, str, str]]] = {}  # kind → [(closeness, OA name, code)]
        for name, code in table.items():
            try:
                mapped = map_legacy_kind(name, field=f"kinds.{name}")
            except UnknownKind:
                raise OaMappingInvalid(f"[kinds] {name!r} is neither one of the 15 kinds nor a pre-2012 kind "
                                       "(指示, 条例, 规定, 会议纪要)", key=f"kinds.{name}") from None
            closeness = 0 if mapped.note is None else 2 if mapped.lossy else 1
            candidates.setdefault(mapped.kind, []).append((closeness, name, code))
        chosen: dict[Kind, tuple[int, str, str]] = {}
        for kind, names in candidates.items():
            names.sort()
            if len(names) > 1 and names[0][0] == names[1][0]:
                raise OaMappingInvalid(f"[kinds] {names[0][1]} and {names[1][1]} both stand for {kind.value}; "
                                       "keep one", key=f"kinds.{names[1][1]}")
            chosen[kind] = names[0]
        if other is not None and not isinstance(other, str):
            raise OaMappingInvalid(f"kind_other must be a string (the OA's code), got {other!r}", key="kind_other")
        missing = [k.value for k in Kind if k not in chosen]
        if missing and other is None:
            raise OaMappingInvalid(f"[kinds] has no code for {'、'.join(missing)}; add them or set kind_other",
                                   key="kinds", missing=missing)
        notes = tuple(f"{name} stands for {kind.value}: {map_legacy_kind(name).note}"
                      for kind, (closeness, name, _) in chosen.items() if closeness == 2)
        return cls({k: code for k, (_, _, code) in chosen.items()}, other, notes)

    def code(self, kind_text: str) -> str:
        kind = map_legacy_kind(kind_text).kind
        code = self.codes.get(kind, self.other)
        if code is None:  # parse() refuses a table that leaves a kind out with no kind_other
            raise OaValueUnmapped(f"the OA has no code for the kind {kind.value}", value=kind.value)
        return code


@dataclass(frozen=True)
class UrgencyCodes:
    """紧急程度: 特急, 加急 and none (an ordinary document) → the OA's codes."""

    codes: Mapping[Urgency | None, str]

    @classmethod
    def parse(cls, raw: Any) -> UrgencyCodes:
        table = _codes(raw, "urgency")
        codes: dict[Urgency | None, str] = {}
        named: dict[Urgency | None, str] = {}
        for name, code in table.items():
            try:
                grade = parse_urgency(name, legacy=True, field=f"urgency.{name}")
            except InvalidMetadataValue:
                raise OaMappingInvalid(f"[urgency] {name!r} is none of 特急, 加急 or the legacy grades 特提, 急件, "
                                       "平急, 平件, 普通", key=f"urgency.{name}") from None
            if grade in named:
                raise OaMappingInvalid(f"[urgency] {named[grade]} and {name} are the same grade; keep one",
                                       key=f"urgency.{name}")
            named[grade], codes[grade] = name, code
        missing = [u.value if u else "平件 (no urgency)" for u in (*Urgency, None) if u not in codes]
        if missing:
            raise OaMappingInvalid(f"[urgency] has no code for {'、'.join(missing)}", key="urgency", missing=missing)
        return cls(codes)

    def code(self, urgency_text: str | None) -> str:
        return self.codes[parse_urgency(urgency_text, legacy=True)]


@dataclass(frozen=True)
class SecrecyCodes:
    """密级: 非密, 秘密, 机密, 绝密 → the OA's codes (all four: a classified node may push any)."""

    codes: Mapping[SecrecyLevel, str]

    @classmethod
    def parse(cls, raw: Any) -> SecrecyCodes:
        table = _codes(raw, "secrecy")
        by_name = {level.value: level for level in SecrecyLevel}
        unknown = [name for name in table if name not in by_name]
        if unknown:
            raise OaMappingInvalid(f"[secrecy] {unknown[0]!r} is not 非密, 秘密, 机密 or 绝密", key=f"secrecy.{unknown[0]}")
        missing = [name for name in by_name if name not in table]
        if missing:
            raise OaMappingInvalid(f"[secrecy] has no code for {'、'.join(missing)}", key="secrecy", missing=missing)
        return cls({by_name[name]: code for name, code in table.items()})

    def code(self, classification: str | None) -> str:
        level = (classification or SecrecyLevel.FEIMI.value).partition("★")[0].strip()
        for member, code in self.codes.items():
            if member.value == level:
                return code
        raise OaValueUnmapped(f"the OA has no code for the secrecy level {classification!r}", value=classification)


@dataclass(frozen=True)
class StatusCodes:
    """What the OA calls each status change it is told of (签收, 退回, 发送失败)."""

    codes: Mapping[str, str]

    @classmethod
    def parse(cls, raw: Any) -> StatusCodes:
        table = _codes(raw, "status")
        unknown = sorted(set(table) - set(STATUS_NAMES))
        if unknown:
            raise OaMappingInvalid(f"[status] {unknown[0]!r} is none of {', '.join(STATUS_NAMES)}",
                                   key=f"status.{unknown[0]}")
        missing = [name for name in STATUS_NAMES if name not in table]
        if missing:
            raise OaMappingInvalid(f"[status] has no code for {', '.join(missing)}", key="status", missing=missing)
        return cls(table)

    def code(self, status: str) -> str:
        if status not in self.codes:
            raise OaValueUnmapped(f"the OA has no code for the status {status!r}", value=status)
        return self.codes[status]


def _check_pattern(pattern: Any, key: str, needs: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise OaMappingInvalid(f"[dates] {key} must be a strftime pattern such as %Y%m%d", key=f"dates.{key}")
    used = re.findall(r"%(.)", pattern)
    bad = [d for d in used if d not in _DIRECTIVES]
    if bad:
        raise OaMappingInvalid(f"[dates] {key} {pattern!r}: %{bad[0]} is not one of %Y %m %d %H %M %S",
                               key=f"dates.{key}")
    lacking = [d for d in needs if d not in used]
    if lacking:
        raise OaMappingInvalid(f"[dates] {key} {pattern!r} lacks %{lacking[0]}", key=f"dates.{key}")
    return pattern


@dataclass(frozen=True)
class DateFormats:
    """How the OA writes dates and times, and in which UTC offset it reads times (default +08:00)."""

    date: str = "%Y-%m-%d"
    datetime: str = "%Y-%m-%d %H:%M:%S"
    offset: timezone = timezone(timedelta(hours=8))

    @classmethod
    def parse(cls, raw: Any) -> DateFormats:
        raw = dict(raw) if isinstance(raw, dict) else raw
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise OaMappingInvalid("[dates] must be a table (date, datetime, timezone)", key="dates")
        unknown = sorted(set(raw) - {"date", "datetime", "timezone"})
        if unknown:
            raise OaMappingInvalid(f"unknown keys in [dates]: {', '.join(unknown)}", key="dates")
        formats = cls()
        date_pattern = _check_pattern(raw.get("date", formats.date), "date", "Ymd")
        time_pattern = _check_pattern(raw.get("datetime", formats.datetime), "datetime", "YmdHM")
        offset_text = raw.get("timezone", "+08:00")
        match = _OFFSET_RE.match(offset_text) if isinstance(offset_text, str) else None
        if match is None:
            raise OaMappingInvalid(f"[dates] timezone must be an offset such as +08:00, got {offset_text!r}",
                                   key="dates.timezone")
        sign = -1 if match[1] == "-" else 1
        offset = timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))
        return cls(date_pattern, time_pattern, offset)

    def format_date(self, value: str | date | None) -> str:
        if value is None or value == "":
            return ""
        day = value if isinstance(value, date) else date.fromisoformat(value)
        return day.strftime(self.date)

    def format_datetime(self, value: str | datetime | None) -> str:
        if value is None or value == "":
            return ""
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        if moment.tzinfo is None:  # the node writes UTC times
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.offset).strftime(self.datetime)


@dataclass(frozen=True)
class UnitCodes:
    """How the OA writes a unit code: the 18-character 统一社会信用代码 as is, its 9-character
    组织机构代码 (characters 9–17, optionally as XXXXXXXX-X), or the OA's own id per unit (``names``)."""

    format: str = "gb32100"
    names: Mapping[str, str] | None = None

    @classmethod
    def parse(cls, raw: Any) -> UnitCodes:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise OaMappingInvalid("[unit_codes] must be a table (format, names)", key="unit_codes")
        unknown = sorted(set(raw) - {"format", "names"})
        if unknown:
            raise OaMappingInvalid(f"unknown keys in [unit_codes]: {', '.join(unknown)}", key="unit_codes")
        fmt = raw.get("format", "gb32100")
        if fmt not in UNIT_CODE_FORMATS:
            raise OaMappingInvalid(f"[unit_codes] format {fmt!r} is none of {', '.join(UNIT_CODE_FORMATS)}",
                                   key="unit_codes.format")
        names: dict[str, str] = {}
        for code, name in (raw.get("names") or {}).items():
            try:
                norm = validate_unit_code(code)
            except InvalidUnitCode as exc:
                raise OaMappingInvalid(f"[unit_codes.names] {exc.message}", key="unit_codes.names") from None
            if not isinstance(name, str) or not name:
                raise OaMappingInvalid(f"[unit_codes.names] {code}: the OA's id must be a non-empty string",
                                       key="unit_codes.names")
            names[norm] = name
        return cls(fmt, names)

    def code(self, unit: str | None) -> str:
        if not unit:
            return ""
        if self.names and unit in self.names:
            return self.names[unit]
        if self.format == "organization_code":
            return unit[8:17]
        if self.format == "organization_code_dashed":
            return f"{unit[8:16]}-{unit[16]}"
        return unit


@dataclass(frozen=True)
class AnswerCodes:
    """An OA that answers a result instead of faulting: which answers mean done (``accepted``), which
    mean "busy, try later" (``busy``); any other answer is a refusal carrying the answer's text.
    ``field`` names the part of a structured answer that holds the result."""

    accepted: tuple[str, ...]
    busy: tuple[str, ...] = ()
    field: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> AnswerCodes | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise OaMappingInvalid("[answer] must be a table (accepted, busy, field)", key="answer")
        unknown = sorted(set(raw) - {"accepted", "busy", "field"})
        if unknown:
            raise OaMappingInvalid(f"unknown keys in [answer]: {', '.join(unknown)}", key="answer")
        lists = {}
        for key in ("accepted", "busy"):
            value = raw.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise OaMappingInvalid(f"[answer] {key} must be a list of the OA's answers (strings)",
                                       key=f"answer.{key}")
            lists[key] = tuple(value)
        if not lists["accepted"]:
            raise OaMappingInvalid("[answer] accepted must name at least one answer that means done",
                                   key="answer.accepted")
        both = set(lists["accepted"]) & set(lists["busy"])
        if both:
            raise OaMappingInvalid(f"[answer] {sorted(both)[0]!r} is both accepted and busy", key="answer.busy")
        field = raw.get("field")
        if field is not None and (not isinstance(field, str) or not field):
            raise OaMappingInvalid("[answer] field must name a part of the OA's answer", key="answer.field")
        return cls(lists["accepted"], lists["busy"], field)

    def text_of(self, answer: Any) -> str:
        if self.field is not None:
            try:
                answer = answer[self.field]
            except (KeyError, TypeError, IndexError, AttributeError):
                answer = getattr(answer, self.field, answer)
        return "" if answer is None else str(answer).strip()
