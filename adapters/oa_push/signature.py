"""The mapping against the OA's operation signature: does each of our values fit the type the OA's
WSDL gives its parameter? Checked when the WSDL is loaded — at node start, by ``gwx node check``
and before the first push — so a mapping that sends a title into an ``xs:int`` or the body into an
``xs:string`` is refused with :class:`~.errors.OaParameterTypeMismatch` naming the field, instead of
every push failing.

What fits what (our values are text, except the body's and attachments' content):

- ``body`` and an attachment's ``content`` are bytes sent as base64: ``xs:base64Binary`` only (the
  push streams their base64 into the message, :mod:`.streaming`).
- ``body_base64`` and an attachment's ``content_base64`` (the same bytes as base64 text): a string type
  or ``xs:base64Binary`` (zeep writes a text given to a base64Binary as it is, so the OA gets the
  same base64 as with ``body``).
- free text (a title, a 公文标识, a name …): a string type (``xs:string`` and what derives from it,
  ``xs:anySimpleType``, ``xs:anyType``).
- a code from a table (文种, 紧急程度, 密级, status) or a constant: every code the table may send
  must parse as the parameter's type (``"1"`` fits ``xs:int``, ``"QS"`` does not).
- a date or time: the mapping's pattern applied to a sample must parse as the type (``%Y%m%d``
  does not fit ``xs:date``; ``%Y-%m-%d`` does).
- the attachments: a repeated element (or, with ``item``, an element holding a repeated ``item``)
  of a complex type that has every field named, each field checked as above.

Pure apart from zeep's type objects; nothing here touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from zeep.xsd import AnyType
from zeep.xsd.types import builtins as xs
from zeep.xsd.types.complex import ComplexType
from zeep.xsd.types.simple import AnySimpleType

from .errors import OaParameterTypeMismatch
from .mapping import Argument, OaMapping

BINARY_SOURCES = {"body", "content"}
BASE64_TEXT_SOURCES = {"body_base64", "content_base64"}
DATE_SOURCES = {"written_on", "printed_on"}
DATETIME_SOURCES = {"deadline", "received_at", "when"}
# XSD's lexical forms (zeep's isodate also reads ISO 8601's basic forms, which an OA's XSD parser refuses).
_LEXICAL = {xs.Date: re.compile(r"-?\d{4,}-\d\d-\d\d(Z|[+-]\d\d:\d\d)?"),
            xs.DateTime: re.compile(r"-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")}
_SAMPLE_DATE = date(2026, 11, 20)
_SAMPLE_TIME = datetime(2026, 11, 20, 9, 30, 15, tzinfo=UTC)


def _type_name(xsd_type: Any) -> str:
    qname = getattr(xsd_type, "qname", None)
    return getattr(qname, "localname", None) or getattr(xsd_type, "name", None) or type(xsd_type).__name__


def _is_text(xsd_type: Any) -> bool:
    return isinstance(xsd_type, xs.String) or type(xsd_type) in (AnySimpleType, AnyType)


def _parses(xsd_type: Any, value: str) -> bool:
    if _is_text(xsd_type):
        return True
    if isinstance(xsd_type, xs.Boolean):  # zeep reads any text as a boolean
        return value in ("true", "false", "1", "0")
    if isinstance(xsd_type, (xs.Base64Binary, xs.HexBinary, ComplexType)):
        return False
    for kind, lexical in _LEXICAL.items():
        if isinstance(xsd_type, kind) and not lexical.fullmatch(value):
            return False
    try:
        xsd_type.pythonvalue(value)
    except Exception:  # zeep raises ValueError, decimal or isodate errors, TypeError …
        return False
    return True


class _Checker:
    def __init__(self, operation: str, section: str, mapping: OaMapping, unit: str) -> None:
        self.operation, self.section, self.mapping, self.unit = operation, section, mapping, unit

    def refuse(self, field: str, spec: str, xsd_type: Any, needs: str) -> OaParameterTypeMismatch:
        return OaParameterTypeMismatch(
            f"the OA's {self.operation} types {field} as {_type_name(xsd_type)}, but the mapping's "
            f"[{self.section}] sends it {spec}, which needs {needs}", unit=self.unit, operation=self.operation,
            field=field, key=f"{self.section}.{field.split('.', 1)[0]}", wsdl_type=_type_name(xsd_type))

    def value(self, field: str, source: str, xsd_type: Any) -> None:
        """One of our values (a *_SOURCES name or an attachment's field) into a simple parameter."""
        spec = f"{source!r}"
        if source in BINARY_SOURCES:
            if not isinstance(xsd_type, xs.Base64Binary):
                raise self.refuse(field, spec + " (bytes)", xsd_type, "xs:base64Binary")
            return
        if source in BASE64_TEXT_SOURCES:
            if not (isinstance(xsd_type, xs.Base64Binary) or _is_text(xsd_type)):
                raise self.refuse(field, spec + " (base64 text)", xsd_type, "xs:base64Binary or a string type")
            return
        samples = self._samples(source)
        if samples is None:  # free text
            if not _is_text(xsd_type):
                raise self.refuse(field, spec + " (free text)", xsd_type, "a string type")
            return
        bad = [s for s in samples if not _parses(xsd_type, s)]
        if bad:
            raise self.refuse(field, f"{spec} (such as {bad[0]!r})", xsd_type,
                              f"values that parse as {_type_name(xsd_type)}")

    def _samples(self, source: str) -> list[str] | None:
        m = self.mapping
        tables: dict[str, Callable[[], list[str]]] = {
            "kind": lambda: sorted({*m.kinds.codes.values(), *([m.kinds.other] if m.kinds.other else [])}),
            "urgency": lambda: sorted(set(m.urgency.codes.values())),
            "secrecy": lambda: sorted(set(m.secrecy.codes.values())),
            "status": lambda: sorted(set(m.status.codes.values())) if m.status else [],
        }
        if source in tables:
            return tables[source]()
        if source in DATE_SOURCES:
            return [m.dates.format_date(_SAMPLE_DATE)]
        if source in DATETIME_SOURCES:
            return [m.dates.format_datetime(_SAMPLE_TIME)]
        return None

    def argument(self, arg: Argument, element: Any) -> None:
        xsd_type = element.type
        if arg.const is not None:
            if not _parses(xsd_type, arg.const):
                raise self.refuse(arg.param, f"the constant {arg.const!r}", xsd_type,
                                  f"a value that parses as {_type_name(xsd_type)}")
        elif arg.attachment_fields is not None:
            self._attachments(arg, element)
        else:
            self.value(arg.param, arg.source or "", xsd_type)

    def _attachments(self, arg: Argument, element: Any) -> None:
        item = element
        where = arg.param
        if arg.attachment_item is not None:
            inner = dict(getattr(element.type, "elements", ()) or ())
            if not isinstance(element.type, ComplexType) or arg.attachment_item not in inner:
                raise self.refuse(where, f"attachments wrapped in {arg.attachment_item!r}", element.type,
                                  f"a complex type with an element {arg.attachment_item}")
            item, where = inner[arg.attachment_item], f"{arg.param}.{arg.attachment_item}"
        if not item.accepts_multiple or not isinstance(item.type, ComplexType):
            raise self.refuse(where, "the attachments (a list)", item.type,
                              "a repeated element of a complex type" + ("" if arg.attachment_item else
                                                                         " (or item = its array's element)"))
        fields = dict(item.type.elements)
        for name, source in arg.attachment_fields or ():
            if name not in fields:
                raise self.refuse(f"{where}.{name}", f"an attachment's {source!r}", item.type,
                                  f"a field {name} (it has {', '.join(fields) or 'none'})")
            self.value(f"{where}.{name}", source, fields[name].type)


def check_parameters(operation: str, section: str, arguments: tuple[Argument, ...], elements: dict[str, Any],
                     mapping: OaMapping, unit: str) -> None:
    """Raise :class:`OaParameterTypeMismatch` for the first argument whose value does not fit the
    type of the OA's parameter of that name (``elements``: the operation's input elements)."""
    checker = _Checker(operation, section, mapping, unit)
    for arg in arguments:
        if arg.param in elements:
            checker.argument(arg, elements[arg.param])
