"""One OA's field mapping file (TOML): which of the OA's parameters gets which of our values, and
how each value is coded. Pure: in go a received document or a status change, out come the keyword
arguments of the OA's SOAP operation; nothing here knows SOAP, the network or the store.

The file (``deploy/examples/oa-mapping.toml`` is a commented example a test loads)::

    kind_other = "99"            # optional: the OA's code for a kind it has no name for
    list_separator = ","         # optional: how lists (issuers, signers) are joined
    [kinds]    # the OA's 文种 codes by its own names; pre-2012 names are resolved (codes.KindCodes)
    [urgency]  # 紧急程度: 特急, 加急 and an ordinary grade (平件/普通), old names welcome
    [secrecy]  # 密级: 非密, 秘密, 机密, 绝密
    [status]   # signed_for, returned, failed: the OA's status codes (needed with [status_change])
    [dates]    # date = "%Y%m%d", datetime = "%Y-%m-%d %H:%M:%S", timezone = "+08:00"
    [unit_codes]  # format = "gb32100" | "organization_code" | "organization_code_dashed"; [unit_codes.names]
    [received]       # the OA's parameter = one of RECEIVED_SOURCES, or { const = "…" },
                     # or { attachments = { its field = "name" | "content" }, item = "…" } for the attachments
    [status_change]  # the OA's parameter = one of STATUS_SOURCES or { const = "…" } (optional section)
    [answer]   # optional, for an OA that answers a result code instead of faulting:
               # accepted = ["1"], busy = ["2"], field = "jg" (the answer's part holding it)

[received] must pass ``doc_id`` (the 公文标识: how the OA knows a repeated push) and
[status_change] ``doc_id`` and ``event_id`` (one document has several status changes).

Everything is checked when the file is loaded (:func:`load_mapping`, called while node.toml is
parsed), so a bad file stops ``gwx node run`` with :class:`OaMappingInvalid` naming the key, not the
first push.
"""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .codes import (
    STATUS_NAMES,
    AnswerCodes,
    DateFormats,
    KindCodes,
    SecrecyCodes,
    StatusCodes,
    UnitCodes,
    UrgencyCodes,
)
from .errors import OaMappingInvalid

# Values for a document received by the unit (the OA's parameter may take any of these).
RECEIVED_SOURCES = (
    "doc_id", "event_id", "title", "kind", "urgency", "secrecy", "secrecy_period", "doc_number", "from_unit",
    "from_unit_name", "to_unit", "issuers", "signers", "written_on", "deadline", "received_at", "printed_by",
    "printed_on", "note", "attachments_note", "copy_number", "body", "body_base64", "attachment_names",
)
# Values for a status change of a document the unit sent.
STATUS_SOURCES = (
    "doc_id", "event_id", "unit", "status", "status_name", "recipient_unit", "recipient_unit_name", "who",
    "when", "reason",
)
ATTACHMENT_SOURCES = ("name", "content", "content_base64")
_TOP_KEYS = {"kind_other", "list_separator", "kinds", "urgency", "secrecy", "status", "dates", "unit_codes",
             "received", "status_change", "answer"}


@dataclass(frozen=True)
class ReceivedDocument:
    """A document a unit received, as the adapter hands it to the mapping."""

    doc_id: str
    event_id: str
    unit: str  # the receiving unit, hosted on this node
    from_unit: str
    received_at: str | datetime
    meta: Mapping[str, Any]  # metadata.json (exchange_protocol.meta_json's keys)
    body: bytes
    attachments: tuple[tuple[str, bytes], ...] = ()
    from_unit_name: str | None = None


@dataclass(frozen=True)
class StatusChange:
    """签收, 退回 or a failed delivery of a document one of our units sent."""

    doc_id: str
    event_id: str
    unit: str  # the sending unit, hosted on this node
    status: str  # a key of codes.STATUS_NAMES
    recipient_unit: str
    when: str | datetime
    who: str | None = None
    reason: str | None = None
    recipient_unit_name: str | None = None


@dataclass(frozen=True)
class Argument:
    """One parameter of the OA's operation: where its value comes from."""

    param: str
    source: str | None = None  # one of the *_SOURCES
    const: str | None = None
    attachment_fields: tuple[tuple[str, str], ...] | None = None  # (the OA's field, an ATTACHMENT_SOURCE)
    attachment_item: str | None = None  # the element each attachment is wrapped in (an array type's item)


@dataclass(frozen=True)
class OaMapping:
    kinds: KindCodes
    urgency: UrgencyCodes
    secrecy: SecrecyCodes
    dates: DateFormats
    unit_codes: UnitCodes
    received: tuple[Argument, ...]
    status_change: tuple[Argument, ...] | None  # None: status changes are not pushed to this OA
    status: StatusCodes | None
    list_separator: str = ","
    answer: AnswerCodes | None = None  # None: any answer is done, only a fault is not

    @property
    def notes(self) -> tuple[str, ...]:
        """Lossy legacy choices the operator should know of (指示 standing for 意见 …)."""
        return self.kinds.notes

    def received_arguments(self, doc: ReceivedDocument) -> dict[str, Any]:
        meta, sep, units = doc.meta, self.list_separator, self.unit_codes
        values: dict[str, Callable[[], Any]] = {
            "doc_id": lambda: doc.doc_id, "event_id": lambda: doc.event_id, "title": lambda: meta["title"],
            "kind": lambda: self.kinds.code(meta["kind"]), "urgency": lambda: self.urgency.code(meta.get("urgency")),
            "secrecy": lambda: self.secrecy.code(meta.get("classification")),
            "secrecy_period": lambda: (meta.get("classification") or "").partition("★")[2],
            "doc_number": lambda: meta.get("doc_number") or "", "from_unit": lambda: units.code(doc.from_unit),
            "from_unit_name": lambda: doc.from_unit_name or "", "to_unit": lambda: units.code(doc.unit),
            "issuers": lambda: sep.join(units.code(u) for u in meta.get("issuers") or ()),
            "signers": lambda: sep.join(meta.get("signers") or ()),
            "written_on": lambda: self.dates.format_date(meta.get("written_on")),
            "deadline": lambda: self.dates.format_datetime(meta.get("deadline")),
            "received_at": lambda: self.dates.format_datetime(doc.received_at),
            "printed_by": lambda: meta.get("printed_by") or "",
            "printed_on": lambda: self.dates.format_date(meta.get("printed_on")),
            "note": lambda: meta.get("note") or "", "attachments_note": lambda: meta.get("attachments_note") or "",
            "copy_number": lambda: meta.get("copy_number") or "", "body": lambda: doc.body,
            "body_base64": lambda: base64.b64encode(doc.body).decode("ascii"),
            "attachment_names": lambda: sep.join(name for name, _ in doc.attachments),
        }
        return _build(self.received, values, doc.attachments)

    def status_arguments(self, change: StatusChange) -> dict[str, Any]:
        if self.status_change is None or self.status is None:
            return {}
        status = self.status
        values: dict[str, Callable[[], Any]] = {
            "doc_id": lambda: change.doc_id, "event_id": lambda: change.event_id,
            "unit": lambda: self.unit_codes.code(change.unit), "status": lambda: status.code(change.status),
            "status_name": lambda: STATUS_NAMES.get(change.status, change.status),
            "recipient_unit": lambda: self.unit_codes.code(change.recipient_unit),
            "recipient_unit_name": lambda: change.recipient_unit_name or "", "who": lambda: change.who or "",
            "when": lambda: self.dates.format_datetime(change.when), "reason": lambda: change.reason or "",
        }
        return _build(self.status_change, values, ())


def _build(arguments: tuple[Argument, ...], values: Mapping[str, Callable[[], Any]],
           attachments: tuple[tuple[str, bytes], ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arg in arguments:
        if arg.const is not None:
            out[arg.param] = arg.const
        elif arg.attachment_fields is not None:
            items = [{field: _attachment_value(source, name, content) for field, source in arg.attachment_fields}
                     for name, content in attachments]
            out[arg.param] = items if arg.attachment_item is None else {arg.attachment_item: items}
        else:
            out[arg.param] = values[arg.source]()  # type: ignore[index]
    return out


def _attachment_value(source: str, name: str, content: bytes) -> Any:
    if source == "name":
        return name
    return content if source == "content" else base64.b64encode(content).decode("ascii")


def _arguments(raw: Any, section: str, sources: tuple[str, ...]) -> tuple[Argument, ...]:
    if not isinstance(raw, dict) or not raw:
        raise OaMappingInvalid(f"[{section}] must be a table: the OA's parameter = one of our values",
                               key=section)
    out = []
    for param, spec in raw.items():
        key = f"{section}.{param}"
        if isinstance(spec, str):
            if spec not in sources:
                raise OaMappingInvalid(f"[{section}] {param} = {spec!r}: not one of {', '.join(sources)}", key=key)
            out.append(Argument(param, source=spec))
        elif isinstance(spec, dict) and set(spec) == {"const"} and isinstance(spec["const"], str):
            out.append(Argument(param, const=spec["const"]))
        elif isinstance(spec, dict) and "attachments" in spec and set(spec) <= {"attachments", "item"} \
                and section == "received":
            fields, item = spec["attachments"], spec.get("item")
            if not isinstance(fields, dict) or not fields or any(v not in ATTACHMENT_SOURCES for v in fields.values()) \
                    or not (item is None or (isinstance(item, str) and item)):
                raise OaMappingInvalid(f"[{section}] {param}: attachments = {{ the OA's field = "
                                       f"{' | '.join(ATTACHMENT_SOURCES)} }}, item = \"its array's element\"", key=key)
            out.append(Argument(param, attachment_fields=tuple(fields.items()), attachment_item=item))
        else:
            raise OaMappingInvalid(f"[{section}] {param} must be one of our values, {{ const = \"…\" }}"
                                   + (" or { attachments = {…} }" if section == "received" else ""), key=key)
    return tuple(out)


def parse_mapping(raw: Mapping[str, Any]) -> OaMapping:
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise OaMappingInvalid(f"unknown keys in the mapping: {', '.join(unknown)}", key=unknown[0], keys=unknown)
    separator = raw.get("list_separator", ",")
    if not isinstance(separator, str) or not separator:
        raise OaMappingInvalid("list_separator must be a non-empty string", key="list_separator")
    status_change = raw.get("status_change")
    if status_change is None and "status" in raw:
        raise OaMappingInvalid("[status] codes without a [status_change] section: say which parameters "
                               "the OA's status operation takes", key="status")
    received = _arguments(raw.get("received"), "received", RECEIVED_SOURCES)
    status_arguments = None if status_change is None else _arguments(status_change, "status_change", STATUS_SOURCES)
    # The idempotency keys: a document is the OA's once by its 公文标识; a status change by its event id.
    for section, arguments, keys in (("received", received, ("doc_id",)),
                                     ("status_change", status_arguments or (), ("doc_id", "event_id"))):
        lacking = [key for key in keys if section in raw and not any(a.source == key for a in arguments)]
        if lacking:
            raise OaMappingInvalid(f"[{section}] must give the OA {' and '.join(lacking)} (its key for a repeated "
                                   f"push): name the parameter that takes it, e.g. gwbs = \"doc_id\"",
                                   key=section)
    return OaMapping(
        kinds=KindCodes.parse(raw.get("kinds"), raw.get("kind_other")),
        urgency=UrgencyCodes.parse(raw.get("urgency")),
        secrecy=SecrecyCodes.parse(raw.get("secrecy")),
        dates=DateFormats.parse(raw.get("dates")),
        unit_codes=UnitCodes.parse(raw.get("unit_codes")),
        received=received,
        status_change=status_arguments,
        status=None if status_change is None else StatusCodes.parse(raw.get("status")),
        list_separator=separator,
        answer=AnswerCodes.parse(raw.get("answer")),
    )


def load_mapping(path: Path) -> OaMapping:
    """Read and check a mapping file; every problem is :class:`OaMappingInvalid` naming the file."""
    try:
        raw = tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise OaMappingInvalid(f"OA mapping file {path} does not exist", key="mapping", file=str(path)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OaMappingInvalid(f"OA mapping file {path} cannot be read as TOML: {exc}", key="mapping",
                               file=str(path)) from None
    try:
        return parse_mapping(raw)
    except OaMappingInvalid as exc:
        raise OaMappingInvalid(f"{path}: {exc.message}", **{**exc.details, "file": str(path)}) from None
