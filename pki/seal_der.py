"""A small, bounded DER/BER TLV reader for tolerant seal parsing.

Seals from other products differ in string and time types, in optional tagging and even in
shape (v1 vs v4 vs v5), so :mod:`pki.seal` walks the raw TLVs and decides field by field what
it accepts. Every element keeps its exact bytes (``raw``), which is what a signature covers.

Only definite lengths are accepted (DER and the BER that real encoders emit for seals);
lengths are checked against the remaining input before anything is sliced, and the reader
never recurses on its own, so hostile input cannot exhaust memory or the stack. Every failure
is :class:`~pki.errors.SealMalformed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from .errors import SealMalformed

UNIVERSAL, APPLICATION, CONTEXT, PRIVATE = 0, 1, 2, 3

TAG_BOOLEAN = 1
TAG_INTEGER = 2
TAG_BIT_STRING = 3
TAG_OCTET_STRING = 4
TAG_OID = 6
TAG_UTF8_STRING = 12
TAG_SEQUENCE = 16
TAG_PRINTABLE_STRING = 19
TAG_T61_STRING = 20
TAG_IA5_STRING = 22
TAG_UTC_TIME = 23
TAG_GENERALIZED_TIME = 24
TAG_VISIBLE_STRING = 26
TAG_BMP_STRING = 30

_STRING_TAGS = {TAG_UTF8_STRING, TAG_PRINTABLE_STRING, TAG_T61_STRING, TAG_IA5_STRING,
                TAG_VISIBLE_STRING, TAG_BMP_STRING}


@dataclass(frozen=True)
class Tlv:
    cls: int
    constructed: bool
    tag: int
    raw: bytes  # header + content, exactly as received
    header_len: int

    @property
    def content(self) -> bytes:
        return self.raw[self.header_len:]

    def is_universal(self, tag: int) -> bool:
        return self.cls == UNIVERSAL and self.tag == tag

    def children(self, what: str = "value") -> list[Tlv]:
        if not self.constructed:
            raise SealMalformed(f"{what} should be constructed", field=what)
        return read_all(self.content, what)


def read_tlv(data: bytes, offset: int, what: str = "value") -> tuple[Tlv, int]:
    """Read one TLV at ``offset``; return it and the offset just past it."""
    end = len(data)
    pos = offset
    if pos >= end:
        raise SealMalformed(f"truncated: {what} missing", field=what)
    first = data[pos]
    pos += 1
    cls, constructed, tag = first >> 6, bool(first & 0x20), first & 0x1F
    if tag == 0x1F:  # high tag number form
        tag = 0
        for _ in range(4):
            if pos >= end:
                raise SealMalformed(f"truncated tag in {what}", field=what)
            b = data[pos]
            pos += 1
            tag = (tag << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        else:
            raise SealMalformed(f"tag number too large in {what}", field=what)
    if pos >= end:
        raise SealMalformed(f"truncated length in {what}", field=what)
    first_len = data[pos]
    pos += 1
    if first_len < 0x80:
        length = first_len
    elif first_len == 0x80:
        raise SealMalformed(f"indefinite length in {what} (not DER)", field=what)
    else:
        n = first_len & 0x7F
        if n > 4 or pos + n > end:
            raise SealMalformed(f"bad or truncated length in {what}", field=what)
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > end:
        raise SealMalformed(f"truncated: {what} declares {length} bytes, {end - pos} left", field=what)
    return Tlv(cls, constructed, tag, bytes(data[offset:pos + length]), pos - offset), pos + length


def read_all(data: bytes, what: str = "value") -> list[Tlv]:
    out = []
    pos = 0
    while pos < len(data):
        tlv, pos = read_tlv(data, pos, what)
        out.append(tlv)
    return out


def read_single(data: bytes, what: str = "value") -> Tlv:
    tlv, end = read_tlv(data, 0, what)
    if end != len(data):
        raise SealMalformed(f"{len(data) - end} trailing bytes after {what}", field=what)
    return tlv


# --- typed accessors, tolerant where public encoders disagree --------------------------------


def expect(tlv: Tlv, tag: int, what: str) -> Tlv:
    if not tlv.is_universal(tag):
        raise SealMalformed(f"{what}: unexpected tag class {tlv.cls} number {tlv.tag}", field=what)
    return tlv


def as_sequence(tlv: Tlv, what: str) -> list[Tlv]:
    return expect(tlv, TAG_SEQUENCE, what).children(what)


def as_int(tlv: Tlv, what: str, lo: int = -(2**31), hi: int = 2**31) -> int:
    content = expect(tlv, TAG_INTEGER, what).content
    if not content or len(content) > 8:
        raise SealMalformed(f"{what}: bad INTEGER length", field=what)
    value = int.from_bytes(content, "big", signed=True)
    if not lo <= value <= hi:
        raise SealMalformed(f"{what}: {value} out of range", field=what)
    return value


def as_octets(tlv: Tlv, what: str) -> bytes:
    if tlv.constructed:
        raise SealMalformed(f"{what}: constructed OCTET STRING not accepted", field=what)
    return expect(tlv, TAG_OCTET_STRING, what).content


def as_bits(tlv: Tlv, what: str) -> bytes:
    content = expect(tlv, TAG_BIT_STRING, what).content
    if tlv.constructed or not content or content[0] != 0:
        raise SealMalformed(f"{what}: BIT STRING must be whole bytes", field=what)
    return content[1:]


def as_string(tlv: Tlv, what: str) -> str:
    """Any of the character string types seen in the wild for the same field."""
    if tlv.cls != UNIVERSAL or tlv.tag not in _STRING_TAGS or tlv.constructed:
        raise SealMalformed(f"{what}: not a character string (tag {tlv.tag})", field=what)
    try:
        if tlv.tag == TAG_BMP_STRING:
            return tlv.content.decode("utf-16-be")
        if tlv.tag == TAG_UTF8_STRING:
            return tlv.content.decode("utf-8")
        if tlv.tag == TAG_T61_STRING:
            return tlv.content.decode("latin-1")
        # PrintableString / IA5String / VisibleString are ASCII by definition; some encoders
        # stuff UTF-8 into them anyway (a Chinese name in a PrintableString): accept that.
        return tlv.content.decode("utf-8")
    except UnicodeDecodeError:
        raise SealMalformed(f"{what}: undecodable characters", field=what) from None


def as_oid(tlv: Tlv, what: str) -> str:
    content = expect(tlv, TAG_OID, what).content
    if not content or content[-1] & 0x80 or len(content) > 64:
        raise SealMalformed(f"{what}: bad OBJECT IDENTIFIER", field=what)
    arcs: list[int] = []
    value = 0
    for b in content:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def as_bool(tlv: Tlv, what: str) -> bool:
    content = expect(tlv, TAG_BOOLEAN, what).content
    if len(content) != 1:
        raise SealMalformed(f"{what}: bad BOOLEAN", field=what)
    return content[0] != 0


def as_time(tlv: Tlv, what: str) -> datetime:
    """GeneralizedTime or UTCTime (v1 seals, and some v4 encoders), returned in UTC."""
    if tlv.cls != UNIVERSAL or tlv.tag not in (TAG_GENERALIZED_TIME, TAG_UTC_TIME) or tlv.constructed:
        raise SealMalformed(f"{what}: not a time (tag {tlv.tag})", field=what)
    try:
        text = tlv.content.decode("ascii")
    except UnicodeDecodeError:
        raise SealMalformed(f"{what}: non-ASCII time", field=what) from None
    try:
        return _parse_time(text, tlv.tag == TAG_UTC_TIME)
    except (ValueError, IndexError):
        raise SealMalformed(f"{what}: unreadable time {text!r}", field=what) from None


def _parse_time(text: str, utc_time: bool) -> datetime:
    if utc_time:
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    tz = UTC
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 5 and text[-5] in "+-":
        sign = 1 if text[-5] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(text[-4:-2]), minutes=int(text[-2:])))
        text = text[:-5]
    frac = ""
    if "." in text or "," in text:
        text, frac = text.replace(",", ".").split(".", 1)
    if len(text) == 12:  # seconds omitted (allowed in BER)
        text += "00"
    if len(text) != 14 or not text.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(text)
    micro = int((frac + "000000")[:6]) if frac else 0
    return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                    int(text[12:14]), micro, tzinfo=tz).astimezone(UTC)


def unwrap_context(tlv: Tlv, what: str) -> Tlv:
    """``[n] EXPLICIT X`` → X; anything else is returned unchanged."""
    if tlv.cls == CONTEXT and tlv.constructed:
        inner = tlv.children(what)
        if len(inner) == 1:
            return inner[0]
    return tlv
