"""The closed vocabularies of a 公文: 文种 (kind), 紧急程度 (urgency), 密级 (secrecy level).

Values are the Chinese terms themselves (that is what travels in metadata.json and what clerks read);
member names are English for kinds and pinyin for secrecy levels (their English renderings vary
between sources, so pinyin avoids a mistranslation becoming an API name).

Legacy mapping. Before 2012 the Party's organs used 14 kinds (1996: including 指示, 条例, 规定,
会议纪要) and government organs 13 (2000: including 命令(令), 会议纪要). The 2012 regulations
(党政机关公文处理工作条例, art. 8) merged them into the 15 below. OA systems from before 2012 still
send the old names, so adapters opt in to :func:`map_legacy_kind`; the strict :func:`parse_kind`
accepts only the 15 (and 令, which the 2012 text itself writes as 命令(令)). Our choices:

- 会议纪要 → 纪要: renamed in 2012, same document. Not lossy.
- 指示 → 意见: 指示 told lower organs how to carry out work and what principles to follow; since
  2012 that guidance is issued as a downward 意见 ("对重要问题提出见解和处理办法"). Some 指示 were
  really 通知, so the mapping is flagged lossy and the caller gets a warning to check.
- 条例, 规定 → 通知: since 2012 a 条例 or 规定 is not itself a 公文 kind; it is promulgated as the
  attachment of a 印发通知 ("关于印发《…条例》的通知"), so the document that travels is a 通知.
  Flagged lossy: the title usually still names the regulation.

Urgency: the 2012 regulations know 特急 and 加急; telegrams use 特提 / 特急 / 加急 / 平急 and older
OA systems 急件. Legacy mapping: 特提 → 特急 (the telegraph's highest level), 急件 → 加急, 平急 → 加急
(平急 is still an urgent grade, the lowest one), 平件/普通 → no urgency.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import InvalidMetadataValue, UnknownKind


class Kind(Enum):
    """文种: the 15 kinds of 党政机关公文 (2012)."""

    RESOLUTION = "决议"
    DECISION = "决定"
    ORDER = "命令"
    COMMUNIQUE = "公报"
    ANNOUNCEMENT = "公告"
    PUBLIC_NOTICE = "通告"
    OPINION = "意见"
    NOTICE = "通知"
    BULLETIN = "通报"
    REPORT = "报告"
    REQUEST = "请示"
    REPLY = "批复"
    MOTION = "议案"
    LETTER = "函"
    MINUTES = "纪要"

    @property
    def requires_signer(self) -> bool:
        """Upward documents (上行文) must name their 签发人 (GB/T 9704 §7.2.4)."""
        return self in UPWARD_KINDS


UPWARD_KINDS = frozenset({Kind.REPORT, Kind.REQUEST})

# Alternative spellings of current kinds (not legacy kinds): the regulation writes 命令(令).
_ALIASES = {"令": Kind.ORDER, "命令(令)": Kind.ORDER, "命令（令）": Kind.ORDER}


@dataclass(frozen=True)
class LegacyKind:
    """The result of mapping a (possibly pre-2012) kind name: ``lossy`` means a person should check."""

    source: str
    kind: Kind
    lossy: bool
    note: str | None


_LEGACY: dict[str, LegacyKind] = {
    "会议纪要": LegacyKind("会议纪要", Kind.MINUTES, False, "会议纪要 is called 纪要 since 2012"),
    "指示": LegacyKind("指示", Kind.OPINION, True,
                       "指示 is no longer a kind (2012); mapped to 意见 — check whether 通知 fits better"),
    "条例": LegacyKind("条例", Kind.NOTICE, True,
                       "条例 is no longer a kind (2012); it travels as the attachment of a 印发通知"),
    "规定": LegacyKind("规定", Kind.NOTICE, True,
                       "规定 is no longer a kind (2012); it travels as the attachment of a 印发通知"),
}

LEGACY_KIND_NAMES = frozenset(_LEGACY)


def parse_kind(text: str, *, field: str = "kind") -> Kind:
    """One of the 15 kinds (or 令), else :class:`UnknownKind` naming ``field``."""
    if isinstance(text, str):
        name = text.strip()
        if name in _ALIASES:
            return _ALIASES[name]
        for kind in Kind:
            if kind.value == name:
                return kind
        if name in _LEGACY:
            raise UnknownKind(f"{field}: {name} is a pre-2012 kind; map it with the legacy table "
                              f"(it would become {_LEGACY[name].kind.value})", field=field, value=name)
    raise UnknownKind(f"{field}: {text!r} is not one of the 15 kinds of 公文", field=field, value=repr(text))


def map_legacy_kind(text: str, *, field: str = "kind") -> LegacyKind:
    """Map a kind name from a legacy OA system; current kinds map to themselves, unknown ones raise."""
    if isinstance(text, str) and text.strip() in _LEGACY:
        return _LEGACY[text.strip()]
    kind = parse_kind(text, field=field)
    return LegacyKind(text.strip(), kind, False, None)


class Urgency(Enum):
    """紧急程度. ``None`` (not a member) means an ordinary document."""

    EXTRA_URGENT = "特急"
    URGENT = "加急"


_LEGACY_URGENCY: dict[str, Urgency | None] = {
    "特提": Urgency.EXTRA_URGENT, "急件": Urgency.URGENT, "平急": Urgency.URGENT, "平件": None, "普通": None,
}


def parse_urgency(text: str | None, *, legacy: bool = False, field: str = "urgency") -> Urgency | None:
    """特急 / 加急 / None; with ``legacy`` also the telegram and old-OA grades (see module docstring)."""
    if text is None:
        return None
    if isinstance(text, str):
        for member in Urgency:
            if member.value == text:
                return member
        if legacy and text in _LEGACY_URGENCY:
            return _LEGACY_URGENCY[text]
    hint = "" if legacy or not is_legacy_urgency(text) else " (a legacy grade: map it with legacy=True)"
    raise InvalidMetadataValue(f"{field}: {text!r} is not 特急, 加急 or null{hint}", field=field,
                               value=repr(text))


def is_legacy_urgency(text: object) -> bool:
    return isinstance(text, str) and text in _LEGACY_URGENCY


class SecrecyLevel(Enum):
    """密级. Only FEIMI (非密) travels unless a node is configured for a classified network."""

    FEIMI = "非密"
    MIMI = "秘密"
    JIMI = "机密"
    JUEMI = "绝密"


class Role(Enum):
    """A recipient's role on a document: 主送 (to) or 抄送 (cc)."""

    MAIN = "主送"
    COPY = "抄送"
