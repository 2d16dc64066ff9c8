"""The messages of ``gwx-oa.xsd``: requests checked against the schema, answers built in its order.

A request's operation element is validated by the same XSD the WSDL publishes (lxml's XML Schema
validator), so every shape rule — required elements, order, types, lengths — is the schema's, stated
once; what fails is ``SOAP_INVALID_MESSAGE`` with the validator's first complaint. Answers are the
contract's dicts (``node.documents.contract``) written element by element in the order of the
schema's sequences (:data:`RECIPIENT`, :data:`OUTBOX_ITEM`, :data:`INBOX_ITEM`); a null is an
absent optional element. Faults carry ``gwx:GwxFault`` (code, message) as their detail, with the
SOAP 1.1 faultcode or SOAP 1.2 Code from :func:`node.error_kinds.soap_fault_for`.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from lxml import etree

from adapters.soapserver.envelope import NS_OF_VERSION, SOAP11_NS, SOAP12_NS
from adapters.soapserver.errors import SoapError
from node.error_kinds import soap_fault_for
from pki.errors import GwxError

NS = "urn:gwx:oa:v1"
ACTION_PREFIX = NS + "#"
OPERATIONS = ("SubmitDocument", "ListInbox", "FetchDocument", "SignFor", "ReturnDocument", "RegisterDocument",
              "RecallDocument", "UrgeDocument", "TrackDocument")

Shape = tuple[tuple[str, str, "Shape | None"], ...]
RECIPIENT: Shape = (("unit", "unit", None), ("unitName", "unit_name", None), ("role", "role", None),
                    ("node", "node", None), ("status", "status", None), ("statusLabel", "status_label", None),
                    ("who", "who", None), ("when", "when", None), ("reason", "reason", None),
                    ("urgeCount", "urge_count", None), ("lastUrgedAt", "last_urged_at", None),
                    ("overdue", "overdue", None))
STATUS_COUNT: Shape = (("status", "status", None), ("number", "number", None))
OUTBOX_ITEM: Shape = (("id", "id", None), ("docId", "doc_id", None), ("fromUnit", "from_unit", None),
                      ("title", "title", None), ("kind", "kind", None), ("docNumber", "doc_number", None),
                      ("deadline", "deadline", None), ("createdAt", "created_at", None),
                      ("count", "counts", STATUS_COUNT), ("overdue", "overdue", None))
REFUSAL: Shape = (("unit", "unit", None), ("code", "code", None), ("message", "message", None))
TRACKING: Shape = (("document", "doc", OUTBOX_ITEM), ("recipient", "recipients", RECIPIENT),
                   ("refused", "refused", REFUSAL))
INBOX_ITEM: Shape = (("id", "id", None), ("docId", "doc_id", None), ("unit", "unit", None), ("role", "role", None),
                     ("fromUnit", "from_unit", None), ("title", "title", None), ("kind", "kind", None),
                     ("urgency", "urgency", None), ("deadline", "deadline", None), ("status", "status", None),
                     ("statusLabel", "status_label", None), ("signedBy", "signed_by", None),
                     ("signedAt", "signed_at", None), ("returnReason", "return_reason", None),
                     ("urgeCount", "urge_count", None), ("receivedAt", "received_at", None),
                     ("overdue", "overdue", None), ("verified", "verified", None))


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


@functools.cache
def schema() -> etree.XMLSchema:
    with resources.as_file(resources.files(__package__) / "gwx-oa.xsd") as path:
        return etree.XMLSchema(etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)))


def operation_name(element: etree._Element) -> str:
    qname = etree.QName(element)
    if qname.namespace != NS or qname.localname not in OPERATIONS:
        raise SoapError(f"unknown operation {{{qname.namespace or ''}}}{qname.localname}; this endpoint has "
                        f"{', '.join(OPERATIONS)} in {NS}", code="SOAP_UNKNOWN_OPERATION")
    return qname.localname


def validate(operation: etree._Element) -> None:
    checker = schema()
    if not checker.validate(operation):
        error = checker.error_log.last_error
        raise SoapError(f"the {etree.QName(operation).localname} message does not match gwx-oa.xsd: "
                        f"{error.message if error else 'invalid'}", code="SOAP_INVALID_MESSAGE")


# --- reading a validated request ----------------------------------------------------------------
def text(operation: etree._Element, name: str) -> str | None:
    found = operation.find(q(name))
    return None if found is None else (found.text or "")


def texts(operation: etree._Element, name: str) -> list[str]:
    return [(e.text or "") for e in operation.findall(q(name))]


def flag(operation: etree._Element, name: str) -> bool | None:
    value = text(operation, name)
    return None if value is None else value.strip() in ("true", "1")


# --- writing answers ----------------------------------------------------------------------------
def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def add(parent: etree._Element, name: str, value: Any, shape: Shape | None = None) -> None:
    """``value`` as element(s) ``name`` under ``parent``: lists repeat, None is left out."""
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            add(parent, name, item, shape)
        return
    element = etree.SubElement(parent, q(name))
    if shape is None:
        element.text = _text_of(value)
        return
    for child, key, child_shape in shape:
        value_of = value.get(key)
        if child_shape is STATUS_COUNT and isinstance(value_of, dict):  # counts {status: n} → entries
            value_of = [{"status": s, "number": n} for s, n in sorted(value_of.items())]
        add(element, child, value_of, child_shape)


def answer(version: str, operation: str) -> tuple[etree._Element, etree._Element]:
    """A new envelope and its ``{operation}Response`` element to fill."""
    soap = NS_OF_VERSION[version]
    envelope = etree.Element(f"{{{soap}}}Envelope", nsmap={"soap": soap, "gwx": NS})
    body = etree.SubElement(envelope, f"{{{soap}}}Body")
    return envelope, etree.SubElement(body, q(operation + "Response"))


def serialise(envelope: etree._Element) -> bytes:
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def fault(error: GwxError, version: str) -> bytes:
    soap = NS_OF_VERSION[version]
    envelope = etree.Element(f"{{{soap}}}Envelope", nsmap={"soap": soap, "gwx": NS})
    code = "soap:" + soap_fault_for(error, version)
    header = etree.SubElement(envelope, f"{{{soap}}}Header")
    if code == "soap:VersionMismatch":
        _upgrade(header)
    if version == "1.2":
        for name in getattr(error, "not_understood", ()):  # SOAP 1.2 part 1 §5.4.8
            qname = etree.QName(name)
            etree.SubElement(header, f"{{{soap}}}NotUnderstood", nsmap={"nu": qname.namespace}).set(
                "qname", f"nu:{qname.localname}")
    body = etree.SubElement(envelope, f"{{{soap}}}Body")
    element = etree.SubElement(body, f"{{{soap}}}Fault")
    if version == "1.1":
        etree.SubElement(element, "faultcode").text = code
        etree.SubElement(element, "faultstring").text = error.message
        # SOAP 1.1 §4.4: detail carries errors of the Body only; a header's error goes in a header entry.
        detail = header if getattr(error, "header_fault", False) else etree.SubElement(element, "detail")
    else:
        etree.SubElement(etree.SubElement(element, f"{{{soap}}}Code"), f"{{{soap}}}Value").text = code
        reason = etree.SubElement(etree.SubElement(element, f"{{{soap}}}Reason"), f"{{{soap}}}Text")
        reason.set("{http://www.w3.org/XML/1998/namespace}lang", "zh")
        reason.text = error.message
        detail = etree.SubElement(element, f"{{{soap}}}Detail")
    gwx = etree.SubElement(detail, q("GwxFault"))
    add(gwx, "code", error.code)
    add(gwx, "message", error.message)
    if not len(header):
        envelope.remove(header)
    return serialise(envelope)


def _upgrade(header: etree._Element) -> None:
    """The SOAP 1.2 Upgrade header block (part 1 §5.4.7, and appendix A in a SOAP 1.1 fault): the
    envelopes this endpoint takes, SOAP 1.2 first."""
    upgrade = etree.SubElement(header, f"{{{SOAP12_NS}}}Upgrade", nsmap={"upg": SOAP12_NS})
    for prefix, namespace in (("v12", SOAP12_NS), ("v11", SOAP11_NS)):
        supported = etree.SubElement(upgrade, f"{{{SOAP12_NS}}}SupportedEnvelope", nsmap={prefix: namespace})
        supported.set("qname", f"{prefix}:Envelope")
