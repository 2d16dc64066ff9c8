"""Reading a SOAP envelope that may attack: hardened parsing, then the envelope's shape.

The XML a SOAP request carries is parsed by lxml with everything that makes XML dangerous off:
no entity substitution, no DTD loading, no network, no huge-tree mode (libxml2's own limits on
text nodes and names stay on). The bytes are fed to a pull parser in slices, and parsing stops at
the first thing a SOAP message may not have (SOAP 1.1 §3, SOAP 1.2 part 1 §5: no DTD):

* a document type declaration of any kind — which is where XXE (external entities, external DTDs),
  billion laughs and the quadratic blow-up all live — is ``SOAP_DTD_FORBIDDEN`` as soon as the
  root element starts, before any entity could be used;
* nesting deeper than :data:`MAX_DEPTH` is ``SOAP_TOO_DEEP`` at the element that crosses it (our
  messages are seven deep);
* anything not well-formed is ``SOAP_MALFORMED_XML``.

Text nodes cannot be larger than the envelope, which the endpoint caps while the bytes arrive.
Then :func:`read_envelope` checks the shape: an Envelope in the SOAP 1.1 or 1.2 namespace, the
version matching the HTTP content type (else a VersionMismatch fault, with an Upgrade header naming
both envelopes), at most one Header, exactly one Body with exactly one
element in it; header blocks aimed at this node (no actor/role, next, ultimateReceiver) that say
mustUnderstand are refused, since the node understands none but WS-Security.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from adapters.soapserver.errors import SoapError, SoapMustUnderstand, SoapVersionMismatch

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
VERSION_OF_NS = {SOAP11_NS: "1.1", SOAP12_NS: "1.2"}
NS_OF_VERSION = {v: k for k, v in VERSION_OF_NS.items()}
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
MAX_DEPTH = 32
FEED = 64 * 1024


@dataclass
class Envelope:
    version: str  # "1.1" | "1.2"
    header: etree._Element | None
    operation: etree._Element  # the one element in the Body


def parse_xml(data: bytes | bytearray) -> etree._Element:
    """The root element of ``data``, parsed with every XML danger off, or a typed refusal. The
    parser gets it in slices, so no second copy of a large envelope is made."""
    parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, load_dtd=False,
                                 no_network=True, dtd_validation=False, huge_tree=False, remove_pis=True,
                                 collect_ids=False)
    depth = 0
    root = None
    view = memoryview(data)
    try:
        for offset in range(0, max(len(data), 1), FEED):
            parser.feed(bytes(view[offset:offset + FEED]))
            for event, element in parser.read_events():
                if event == "end":
                    depth -= 1
                    continue
                depth += 1
                if root is None:
                    root = element
                    if root.getroottree().docinfo.doctype:
                        raise SoapError("a SOAP message may not contain a document type declaration (DTD); "
                                        "entities and external references are refused", code="SOAP_DTD_FORBIDDEN")
                if depth > MAX_DEPTH:
                    raise SoapError(f"the XML is nested more than {MAX_DEPTH} elements deep", code="SOAP_TOO_DEEP")
        parser.close()
    except etree.XMLSyntaxError as exc:
        if "excessive depth" in str(exc).lower():  # libxml2's own limit, met inside one slice
            raise SoapError(f"the XML is nested more than {MAX_DEPTH} elements deep", code="SOAP_TOO_DEEP") from None
        if "doctype" in str(exc).lower() or "entity" in str(exc).lower():
            raise SoapError("a SOAP message may not contain a document type declaration (DTD) or entities",
                            code="SOAP_DTD_FORBIDDEN") from None
        raise SoapError(f"the request is not well-formed XML: {_one_line(exc)}", code="SOAP_MALFORMED_XML") from None
    if root is None:
        raise SoapError("the request holds no XML element", code="SOAP_MALFORMED_XML")
    return root


def read_envelope(root: etree._Element, content_version: str | None) -> Envelope:
    """The envelope's version, header and single operation element (content_version: what the HTTP
    content type says, None when it does not say)."""
    qname = etree.QName(root)
    version = VERSION_OF_NS.get(qname.namespace or "")
    # A mismatch is answered in SOAP 1.1 when the envelope is SOAP 1.1 (SOAP 1.2 part 1, appendix A),
    # else in the version of the binding it came by (SOAP 1.1 §4.1.2: a SOAP 1.1 binding answers 1.1).
    answer = "1.1" if version == "1.1" else content_version or "1.1"
    if qname.localname != "Envelope" or version is None:
        raise SoapVersionMismatch(f"the root element is {{{qname.namespace or ''}}}{qname.localname}, not a SOAP "
                                  f"1.1 ({SOAP11_NS}) or 1.2 ({SOAP12_NS}) Envelope", answer_version=answer)
    if content_version is not None and content_version != version:
        media = "text/xml" if version == "1.1" else "application/soap+xml"
        raise SoapVersionMismatch(f"this is a SOAP {version} envelope sent as SOAP {content_version}; SOAP "
                                  f"{version} is sent as {media}", answer_version=answer)
    ns = NS_OF_VERSION[version]
    children = [c for c in root if isinstance(c.tag, str)]
    header = children[0] if children and children[0].tag == f"{{{ns}}}Header" else None
    rest = children[1:] if header is not None else children
    if len(rest) != 1 or rest[0].tag != f"{{{ns}}}Body":
        raise SoapError("a SOAP envelope holds an optional Header and then exactly one Body",
                        code="SOAP_INVALID_MESSAGE")
    operations = [c for c in rest[0] if isinstance(c.tag, str)]
    if len(operations) != 1:
        raise SoapError(f"the Body must hold exactly one request element, not {len(operations)}",
                        code="SOAP_INVALID_MESSAGE")
    if header is not None:
        _check_must_understand(header, ns)
    return Envelope(version, header, operations[0])


# The actors/roles that name this node (SOAP 1.1 §4.2.2, SOAP 1.2 part 1 §5.2.2): absent is the
# ultimate receiver, which the endpoint is; a block for any other role (1.2's "none" included) is not
# this node's to understand, mustUnderstand or not (SOAP 1.1 §4.2.3, SOAP 1.2 part 1 §5.2.3).
OUR_ROLES = {SOAP11_NS: {"", "http://schemas.xmlsoap.org/soap/actor/next"},
             SOAP12_NS: {"", f"{SOAP12_NS}/role/next", f"{SOAP12_NS}/role/ultimateReceiver"}}
TARGET_ATTRIBUTE = {SOAP11_NS: "actor", SOAP12_NS: "role"}


def _check_must_understand(header: etree._Element, ns: str) -> None:
    not_understood = []
    for block in header:
        if not isinstance(block.tag, str) or block.tag == f"{{{WSSE_NS}}}Security":
            continue
        if block.get(f"{{{ns}}}{TARGET_ATTRIBUTE[ns]}", "").strip() not in OUR_ROLES[ns]:
            continue
        if block.get(f"{{{ns}}}mustUnderstand", "").strip() in ("1", "true"):
            not_understood.append(block.tag)
    if not_understood:
        raise SoapMustUnderstand(f"the header block(s) {', '.join(not_understood)} say mustUnderstand and this node "
                                 "does not understand them", not_understood=tuple(not_understood))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
