"""The 公文 document model: the GB/T 9704 / GB/T 33480 elements as one frozen value.

:class:`DocumentMetadata` checks its own *structure* when constructed — types, formats, unit codes,
at least one 主送机关, 签发人 on 请示 and 报告, 份号 on classified documents — so a value that exists
is well formed. *Policy* is separate and belongs to the caller: :func:`check_metadata` refuses
classified documents unless the node runs on a classified network (``allow_classified``) and returns
the *warnings* (typed, with stable codes) for things a clerk should look at but that do not make a
document invalid, such as a 特急 document without a 办理时限.

Field notes:
- Unit codes (发文机关, 主送机关, 抄送机关) are 统一社会信用代码 in normalised form; a unit may appear
  once across 主送 and 抄送 (each recipient gets one row with one role).
- 发文字号 is optional: 纪要 and 命令(令) carry none (a 令 has a 令号 "第N号" instead).
- 印发机关 is a name (the office that printed the document, e.g. 某某市人民政府办公室), not a code.
- 公文标识 (``id``) is an opaque string; ``None`` until :func:`assign_id` gives it a time-ordered id.
  A package must not be built from metadata without an id. What an id may be is decided here once
  (:data:`DOC_ID_PATTERN`, :func:`check_doc_id`) and used wherever an id enters: META.json, a
  received package's metadata.json, notices from peers, the local API's routes and its OpenAPI
  description. An id must be usable as one URL path segment and as a file name, so ``/``, ``\\``,
  ``?``, ``#``, ``%``, ``<``, spaces and ``..`` can never be part of one.
- Sequences are tuples; lists given to the constructor are turned into tuples.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta, timezone

from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

from . import ids as _ids
from .doc_number import DocNumber
from .errors import (
    ClassifiedRefused,
    CopyNumberRequired,
    DatesOutOfOrder,
    DeadlinePassed,
    DuplicateRecipient,
    InvalidDocumentId,
    InvalidMetadataValue,
    InvalidRecipientCode,
    MetadataWrongType,
    NoMainRecipient,
    SignerRequired,
)
from .kinds import Kind, Role, SecrecyLevel, Urgency

MAX_TITLE = 200
MAX_NAME = 100
MAX_NOTE = 2000
MAX_ID = 128
MAX_SIGNERS = 50
MAX_ISSUERS = 50
MAX_RECIPIENTS = 10_000
# 公文标识: any Unicode letter or digit and the marks legacy systems put in ids (〔〕 and 【】 in
# 发文字号-like ids, [2024], 、 · ＿), in dot-separated runs — so never ``.`` or ``..`` as the id,
# no leading, trailing or doubled dot, and never a path separator, whitespace, a control character
# or anything URLs or markup give a meaning to (/ \ ? # % < > & " '). The rule is this set and
# "letter or digit" (Unicode general categories L and N); the published JSON Schema / OpenAPI
# ``pattern`` spells it with ``\p{L}\p{N}`` (ECMA-262 with the u flag), and :func:`check_doc_id`
# applies it with :mod:`unicodedata` (Python's ``re`` has no ``\p``).
DOC_ID_PUNCTUATION = "_~:-〔〕()（）[]【】、·＿"
_DOC_ID_CHARS = r"\p{L}\p{N}" + "".join("\\" + c if c in "-()[]" else c for c in DOC_ID_PUNCTUATION)
DOC_ID_PATTERN = rf"^[{_DOC_ID_CHARS}]+(?:\.[{_DOC_ID_CHARS}]+)*$"
# The ids gwx makes (UUIDv7) and most legacy ones are ASCII: letters and digits (categories L and N,
# all of them ASCII-alphanumeric) and the ASCII marks of DOC_ID_PUNCTUATION. This subset of the rule
# is one C-level match; anything it does not match is judged character by character. A 签收 checks
# its id 3 times at the receiving node and twice at the issuer, ~5 µs each by characters.
_ASCII_DOC_ID = re.compile(r"[A-Za-z0-9_~:()\[\]-]+(?:\.[A-Za-z0-9_~:()\[\]-]+)*")
_PERIOD_RE = re.compile(r"^(?:[1-9][0-9]{0,2}(?:年|个月)|长期)$")
_COPY_RE = re.compile(r"^[0-9]{6}$")


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in text)


def check_text(value: object, name: str, max_len: int, *, optional: bool = False) -> None:
    """Refuse non-strings, blank or over-long text, control characters and surrounding spaces."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise MetadataWrongType(f"{name} must be a string", field=name, type=type(value).__name__)
    if not value.strip():
        raise InvalidMetadataValue(f"{name} must not be empty", field=name)
    if len(value) > max_len:
        raise InvalidMetadataValue(f"{name} has {len(value)} characters, at most {max_len} allowed",
                                   field=name, length=len(value))
    if value != value.strip():
        raise InvalidMetadataValue(f"{name} has leading or trailing whitespace", field=name)
    if _has_control(value):
        raise InvalidMetadataValue(f"{name} contains control characters", field=name)


def check_doc_id(value: object, name: str = "id") -> str:
    """``value`` if it is a 公文标识 every route can address; :class:`InvalidDocumentId` otherwise."""
    if not isinstance(value, str):
        raise MetadataWrongType(f"{name} (公文标识) must be a string", field=name, type=type(value).__name__)
    if len(value) <= MAX_ID and _ASCII_DOC_ID.fullmatch(value):
        return value
    runs = value.split(".")
    if not 1 <= len(value) <= MAX_ID or not all(run and all(map(_doc_id_char, run)) for run in runs):
        raise InvalidDocumentId(
            f"{name} (公文标识) {value[:40]!r} is not an id: 1–{MAX_ID} letters, digits (Chinese characters "
            "included) or _ ~ : - 〔〕 () （） [] 【】 、 · ＿, in runs joined by single dots",
            field=name, value=value[:80])
    return value


def _doc_id_char(c: str) -> bool:
    return c in DOC_ID_PUNCTUATION or unicodedata.category(c)[0] in "LN"


def check_unit_code(value: object, name: str) -> str:
    try:
        norm = validate_unit_code(value)  # type: ignore[arg-type]
    except InvalidUnitCode as exc:
        raise InvalidRecipientCode(f"{name}: {exc.message}", field=name, value=repr(value)[:40]) from None
    return norm


@dataclass(frozen=True)
class Classification:
    """密级和保密期限, written 机密★1年 (GB/T 9704 §7.2.2). 非密 has no period."""

    level: SecrecyLevel = SecrecyLevel.FEIMI
    period: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.level, SecrecyLevel):
            raise MetadataWrongType("classification level must be a SecrecyLevel", field="classification")
        if self.period is not None:
            if self.level is SecrecyLevel.FEIMI:
                raise InvalidMetadataValue("classification: 非密 has no 保密期限", field="classification")
            if not isinstance(self.period, str) or not _PERIOD_RE.match(self.period):
                raise InvalidMetadataValue(f"classification: 保密期限 {self.period!r} must be N年, N个月 or 长期",
                                           field="classification", value=repr(self.period))

    @property
    def classified(self) -> bool:
        return self.level is not SecrecyLevel.FEIMI

    def format(self) -> str:
        return self.level.value if self.period is None else f"{self.level.value}★{self.period}"

    @classmethod
    def parse(cls, text: str, *, field: str = "classification") -> Classification:
        if not isinstance(text, str):
            raise MetadataWrongType(f"{field} must be a string", field=field)
        level_text, star, period = text.strip().partition("★")
        for level in SecrecyLevel:
            if level.value == level_text.strip():
                try:
                    return cls(level, period.strip() if star else None)
                except InvalidMetadataValue as exc:
                    raise InvalidMetadataValue(exc.message, field=field, value=text) from None
        raise InvalidMetadataValue(f"{field}: {text!r} is not 非密, 秘密, 机密 or 绝密 (with an optional ★期限)",
                                   field=field, value=text)


UNCLASSIFIED = Classification()


@dataclass(frozen=True, kw_only=True)
class DocumentMetadata:
    """One 公文's metadata (see the module docstring). Field names are the META.json keys."""

    kind: Kind
    title: str
    issuers: tuple[str, ...]
    to: tuple[str, ...]
    written_on: date
    doc_number: DocNumber | None = None
    signers: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    urgency: Urgency | None = None
    classification: Classification = field(default=UNCLASSIFIED)
    deadline: datetime | None = None
    copy_number: str | None = None
    printed_by: str | None = None
    printed_on: date | None = None
    note: str | None = None
    attachments_note: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        for name in ("issuers", "to", "cc", "signers"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
            elif not isinstance(value, tuple):
                raise MetadataWrongType(f"{name} must be a list of strings", field=name)
        if not isinstance(self.kind, Kind):
            raise MetadataWrongType("kind must be a Kind", field="kind")
        check_text(self.title, "title", MAX_TITLE)
        self._check_units()
        self._check_signers()
        self._check_dates()
        if self.doc_number is not None and not isinstance(self.doc_number, DocNumber):
            raise MetadataWrongType("doc_number must be a DocNumber", field="doc_number")
        if self.urgency is not None and not isinstance(self.urgency, Urgency):
            raise MetadataWrongType("urgency must be an Urgency or None", field="urgency")
        if not isinstance(self.classification, Classification):
            raise MetadataWrongType("classification must be a Classification", field="classification")
        if self.copy_number is not None and (not isinstance(self.copy_number, str)
                                             or not _COPY_RE.match(self.copy_number)):
            raise InvalidMetadataValue(f"copy_number {self.copy_number!r} must be six digits (份号, e.g. 000001)",
                                       field="copy_number", value=repr(self.copy_number))
        if self.classification.classified and self.copy_number is None:
            raise CopyNumberRequired(f"copy_number (份号) is required on a {self.classification.level.value} "
                                     "document", field="copy_number")
        check_text(self.printed_by, "printed_by", MAX_NAME, optional=True)
        check_text(self.note, "note", MAX_NOTE, optional=True)
        check_text(self.attachments_note, "attachments_note", MAX_NOTE, optional=True)
        if self.id is not None:
            check_doc_id(self.id)

    def _check_units(self) -> None:
        if not self.issuers:
            raise InvalidMetadataValue("issuers (发文机关) needs at least one unit", field="issuers")
        if len(self.issuers) > MAX_ISSUERS:
            raise InvalidMetadataValue(f"issuers has more than {MAX_ISSUERS} units", field="issuers")
        if not self.to:
            raise NoMainRecipient("to (主送机关) needs at least one unit", field="to")
        if len(self.to) + len(self.cc) > MAX_RECIPIENTS:
            raise InvalidMetadataValue(f"more than {MAX_RECIPIENTS} recipients", field="to")
        seen: dict[str, str] = {}
        for name in ("issuers", "to", "cc"):
            if name == "to":
                seen = {}  # an issuer may also be a recipient (a copy to itself); recipients are unique
            for i, code in enumerate(getattr(self, name)):
                where = f"{name}[{i}]"
                if check_unit_code(code, where) != code:
                    raise InvalidRecipientCode(f"{where}: {code!r} is not in normalised form", field=where)
                if code in seen:
                    raise DuplicateRecipient(f"{where}: {code} already appears as {seen[code]}",
                                             field=where, value=code)
                seen[code] = where

    def _check_signers(self) -> None:
        if len(self.signers) > MAX_SIGNERS:
            raise InvalidMetadataValue(f"signers has more than {MAX_SIGNERS} names", field="signers")
        for i, name in enumerate(self.signers):
            check_text(name, f"signers[{i}]", MAX_NAME)
        if self.kind.requires_signer and not self.signers:
            raise SignerRequired(f"signers (签发人) is required on a {self.kind.value}", field="signers",
                                 kind=self.kind.value)

    def _check_dates(self) -> None:
        for name in ("written_on", "printed_on"):
            value = getattr(self, name)
            if value is None and name == "printed_on":
                continue
            if not isinstance(value, date) or isinstance(value, datetime):
                raise MetadataWrongType(f"{name} must be a date", field=name)
        if self.deadline is not None:
            if not isinstance(self.deadline, datetime):
                raise MetadataWrongType("deadline must be a datetime", field="deadline")
            offset = self.deadline.utcoffset()
            if offset is None:
                raise InvalidMetadataValue("deadline (办理时限) must carry a timezone", field="deadline")
            if offset % timedelta(minutes=1):
                raise InvalidMetadataValue("deadline's UTC offset must be whole minutes", field="deadline")

    def recipients(self) -> tuple[tuple[str, Role], ...]:
        """Every recipient unit with its role, 主送 first, in the order given."""
        return tuple((u, Role.MAIN) for u in self.to) + tuple((u, Role.COPY) for u in self.cc)


@dataclass(frozen=True)
class MetadataWarning:
    """Something a clerk should see that does not make the document invalid. ``code`` is stable."""

    code: str
    field: str
    message: str


BEIJING = timezone(timedelta(hours=8), "CST")  # the zone of a 公文's dates
URGENT_WITHOUT_DEADLINE = "DOC_URGENT_NO_DEADLINE"
PRINTED_BEFORE_WRITTEN = "DOC_PRINTED_BEFORE_WRITTEN"
DEADLINE_BEFORE_WRITTEN = "DOC_DEADLINE_BEFORE_WRITTEN"


def check_metadata(meta: DocumentMetadata, *, allow_classified: bool = False,
                   sending_at: datetime | None = None) -> tuple[MetadataWarning, ...]:
    """Apply the node's policy (raises :class:`ClassifiedRefused`) and return the warnings.

    ``sending_at``: the document is being sealed and sent now, so a 办理时限 already past is
    refused (:class:`DeadlinePassed`), and so are a 成文日期 after today (Beijing time, the date a
    公文 carries) and a 印发日期 before the 成文日期 (:class:`DatesOutOfOrder`): a clerk dates a
    document the day it is signed and prints it after. A received document is judged without it:
    its deadline may pass while it travels, and that makes it overdue, not invalid; its dates only
    warn.
    """
    if meta.classification.classified and not allow_classified:
        raise ClassifiedRefused(
            f"classification {meta.classification.format()}: this node exchanges 非密 documents only",
            field="classification", value=meta.classification.format())
    if sending_at is not None and meta.deadline is not None and meta.deadline <= sending_at:
        raise DeadlinePassed(f"办理时限 {meta.deadline.isoformat()} has already passed (now "
                             f"{sending_at.astimezone(meta.deadline.tzinfo).isoformat(timespec='minutes')})",
                             field="deadline", value=meta.deadline.isoformat())
    if sending_at is not None:
        today = sending_at.astimezone(BEIJING).date()
        if meta.written_on > today:
            raise DatesOutOfOrder(f"成文日期 {meta.written_on} is after today ({today}, Beijing time): a "
                                  "document is dated the day it is signed", field="written_on",
                                  value=meta.written_on.isoformat())
        if meta.printed_on is not None and meta.printed_on < meta.written_on:
            raise DatesOutOfOrder(f"印发日期 {meta.printed_on} is before 成文日期 {meta.written_on}: a document "
                                  "is printed after it is signed", field="printed_on",
                                  value=meta.printed_on.isoformat())
    out: list[MetadataWarning] = []
    if meta.urgency is Urgency.EXTRA_URGENT and meta.deadline is None:
        out.append(MetadataWarning(URGENT_WITHOUT_DEADLINE, "deadline",
                                   "特急 document without a 办理时限: recipients cannot be urged on time"))
    if meta.printed_on is not None and meta.printed_on < meta.written_on:
        out.append(MetadataWarning(PRINTED_BEFORE_WRITTEN, "printed_on",
                                   f"印发日期 {meta.printed_on} is before 成文日期 {meta.written_on}"))
    if meta.deadline is not None and meta.deadline.date() < meta.written_on:
        out.append(MetadataWarning(DEADLINE_BEFORE_WRITTEN, "deadline",
                                   f"办理时限 {meta.deadline.isoformat()} is before 成文日期 {meta.written_on}"))
    return tuple(out)


def assign_id(meta: DocumentMetadata, now: datetime, generator: _ids.IdGenerator | None = None
              ) -> DocumentMetadata:
    """``meta`` with a new time-ordered 公文标识 if it has none; unchanged otherwise."""
    if meta.id is not None:
        return meta
    new = generator.new(now) if generator is not None else _ids.new_id(now)
    return replace(meta, id=new)


FIELD_NAMES = tuple(f.name for f in fields(DocumentMetadata))
