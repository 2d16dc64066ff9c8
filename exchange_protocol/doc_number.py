"""发文字号: 机关代字〔年份〕序号号, e.g. 临政发〔2012〕10号 (GB/T 9704-2012 §7.2.3).

The rules, and where we are lenient:
- 年份 is the full four-digit year inside 六角括号 〔〕. Legacy systems type the brackets they have
  at hand — [] 【】 () （） — so :func:`parse_doc_number` accepts any of those *matching* pairs and
  reports that it normalised them; :meth:`DocNumber.format` always writes 〔〕.
- 序号 has no leading zeros ("10号", not "010号") and no 第 ("第10号" is the 令号 of a 命令, a different
  thing). Both are refused rather than silently repaired: they usually mean the field was filled
  with something other than a 发文字号, and a wrong number on a 公文 is worse than a refused one.
- 机关代字 is a short run of letters (Chinese characters, occasionally Latin), without spaces,
  digits or brackets. Whitespace around the parts is tolerated on parse and removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidDocNumber

MAX_AGENCY_LENGTH = 20
MAX_SERIAL = 999_999
_PAIRS = {"〔": "〕", "[": "]", "【": "】", "(": ")", "（": "）"}
_OPEN = "".join(re.escape(c) for c in _PAIRS)
_CLOSE = "".join(re.escape(c) for c in _PAIRS.values())
_RE = re.compile(
    rf"^\s*(?P<agency>[^\s{_OPEN}{_CLOSE}]+?)\s*(?P<open>[{_OPEN}])\s*(?P<year>[0-9]+)\s*"
    rf"(?P<close>[{_CLOSE}])\s*(?P<di>第?)\s*(?P<serial>[0-9]+)\s*号\s*$"
)


@dataclass(frozen=True)
class DocNumber:
    """A parsed 发文字号. Construct directly (validated) or with :func:`parse_doc_number`."""

    agency: str
    year: int
    serial: int

    def __post_init__(self) -> None:
        a = self.agency
        if not isinstance(a, str) or not a or len(a) > MAX_AGENCY_LENGTH or not all(c.isalpha() for c in a):
            raise InvalidDocNumber(f"机关代字 {a!r} must be 1–{MAX_AGENCY_LENGTH} letters "
                                   "(no digits, spaces or brackets)", field="doc_number", value=repr(a))
        if type(self.year) is not int or not 1000 <= self.year <= 9999:
            raise InvalidDocNumber(f"年份 {self.year!r} must be a four-digit year", field="doc_number",
                                   value=repr(self.year))
        if type(self.serial) is not int or not 1 <= self.serial <= MAX_SERIAL:
            raise InvalidDocNumber(f"序号 {self.serial!r} must be between 1 and {MAX_SERIAL}",
                                   field="doc_number", value=repr(self.serial))

    def format(self) -> str:
        return f"{self.agency}〔{self.year}〕{self.serial}号"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True)
class ParsedDocNumber:
    """:func:`parse_doc_number`'s result: the value and whether the input was already canonical."""

    number: DocNumber
    normalised: bool


def parse_doc_number(text: str, *, field: str = "doc_number") -> ParsedDocNumber:
    """Parse a 发文字号, tolerating legacy brackets; errors are :class:`InvalidDocNumber` naming ``field``."""
    if not isinstance(text, str):
        raise InvalidDocNumber(f"{field} must be a string", field=field, value=repr(text)[:80])
    if len(text) > 64:
        raise InvalidDocNumber(f"{field} is too long ({len(text)} characters)", field=field)
    m = _RE.match(text)
    if not m:
        raise InvalidDocNumber(f"{field}: {text!r} is not of the form 机关代字〔年份〕序号号", field=field,
                               value=text)
    if _PAIRS[m["open"]] != m["close"]:
        raise InvalidDocNumber(f"{field}: {text!r} has mismatched brackets {m['open']}…{m['close']}",
                               field=field, value=text)
    if m["di"]:
        raise InvalidDocNumber(f"{field}: {text!r} has 第 before the 序号 (a 发文字号 has none)",
                               field=field, value=text)
    year, serial = m["year"], m["serial"]
    if len(year) != 4:
        raise InvalidDocNumber(f"{field}: {text!r}: the year must have four digits", field=field, value=text)
    if serial.startswith("0"):
        raise InvalidDocNumber(f"{field}: {text!r}: the 序号 must not have leading zeros", field=field,
                               value=text)
    try:
        number = DocNumber(m["agency"], int(year), int(serial))
    except InvalidDocNumber as exc:
        raise InvalidDocNumber(f"{field}: {exc.message}", field=field, value=text) from None
    return ParsedDocNumber(number, number.format() != text)
