"""zeep as an OA system would use it, plus a record of what went over the wire.

:class:`WireTransport` is zeep's own transport with two additions an OA's integrator makes:
``mtom=True`` sends every body and attachment content as an MTOM/XOP part (zeep has no MTOM
sending of its own; this is the usual transport override), ``accept_mtom=True`` says so in
``Accept``. Every request and answer is kept as bytes with its content type, and
:func:`wire_envelope` turns one back into the envelope it carries (XOP parts put back in place
as base64), for validation against the published schema.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import secrets
import urllib.parse
from dataclasses import dataclass

import zeep
from lxml import etree
from zeep.wsdl.utils import etree_to_string

GWX = "urn:gwx:oa:v1"
XOP = "http://www.w3.org/2004/08/xop/include"


@dataclass
class Exchange:
    request_type: str
    request: bytes
    answer_type: str
    answer: bytes
    status: int


class WireTransport(zeep.Transport):
    def __init__(self, *, mtom: bool = False, accept_mtom: bool = False, bearer: str | None = None) -> None:
        super().__init__(timeout=120, operation_timeout=300)
        self.mtom, self.accept_mtom, self.bearer = mtom, accept_mtom, bearer
        self.wire: list[Exchange] = []

    def post_xml(self, address, envelope, headers):
        headers = dict(headers)
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        if self.accept_mtom or self.mtom:
            headers["Accept"] = "multipart/related, text/xml, application/soap+xml"
        if self.mtom:
            message, headers["Content-Type"] = to_mtom(envelope, headers["Content-Type"])
        else:
            message = etree_to_string(envelope)
        response = self.post(address, message, headers)
        self.wire.append(Exchange(headers["Content-Type"], message, response.headers.get("Content-Type", ""),
                                  response.content, response.status_code))
        return response


def to_mtom(envelope: etree._Element, soap_content_type: str) -> tuple[bytes, str]:
    """The envelope as multipart/related with each body/content element's bytes in a part of its own."""
    envelope = etree.fromstring(etree_to_string(envelope))
    parts = []
    for n, element in enumerate(envelope.iter(f"{{{GWX}}}body", f"{{{GWX}}}content")):
        data = base64.b64decode(element.text or "")
        element.text = None
        cid = f"part{n}@oa.example"
        etree.SubElement(element, f"{{{XOP}}}Include", nsmap={"xop": XOP}).set("href", "cid:" + urllib.parse.quote(cid))
        parts.append((cid, data))
    media, _, params = soap_content_type.partition(";")
    boundary = "MIMEBoundary_" + secrets.token_hex(8)
    action = next((p.strip() for p in params.split(";") if p.strip().startswith("action=")), "")
    root_type = f'application/xop+xml; charset=UTF-8; type="{media.strip()}"' + (f"; {action}" if action else "")
    out = [f"--{boundary}\r\nContent-Type: {root_type}\r\nContent-Transfer-Encoding: binary\r\n"
           f"Content-ID: <root.message@oa.example>\r\n\r\n".encode() + etree_to_string(envelope)]
    for cid, data in parts:
        out.append(f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
                   f"Content-ID: <{cid}>\r\n\r\n".encode() + data)
    out.append(f"\r\n--{boundary}--\r\n".encode())
    content_type = (f'multipart/related; type="application/xop+xml"; start="<root.message@oa.example>"; '
                    f'start-info="{media.strip()}"; boundary="{boundary}"')
    return b"".join(out), content_type


def wire_envelope(content_type: str, data: bytes) -> etree._Element:
    """The SOAP envelope a request or answer carried, XOP parts put back as base64 text."""
    if not content_type.lower().startswith("multipart/related"):
        return etree.fromstring(data)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
    parts = list(message.iter_parts())
    root = etree.fromstring(parts[0].get_payload(decode=True))
    by_cid = {p["Content-ID"].strip("<>"): p.get_payload(decode=True) for p in parts[1:]}
    for include in list(root.iter(f"{{{XOP}}}Include")):
        parent = include.getparent()
        parent.remove(include)
        parent.text = base64.b64encode(by_cid.pop(urllib.parse.unquote(include.get("href")[4:]))).decode()
    assert not by_cid, f"parts no element refers to: {sorted(by_cid)}"
    return root


def mtom_parts(exchange_type: str) -> bool:
    return exchange_type.lower().startswith("multipart/related")
