"""Shared set-up for the SOAP endpoint's tests: the local API's test node (a real document service
over SQLite, three units on one node, a frozen clock; ``tests/node/api/local_api_support.py``) with
the SOAP endpoint mounted as ``node.runner`` mounts it, served in-process or on a loopback port.

Also: envelopes written by hand (so hostile ones can be exactly what an attacker sends), the
checks every fault must pass (:func:`expect_fault`), and schema validation of what travelled with
``xmlschema`` — a validator that is not the one the node uses.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import xmlschema
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

import adapters.soapserver
from adapters.soapserver.endpoint import mount_soap
from tests.node.api.local_api_support import PDF, Env, ThreadedServer, meta

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
GWX = "urn:gwx:oa:v1"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
ENDPOINT = "/soap/v1/documents"
PACKAGE_DIR = Path(adapters.soapserver.__file__).parent
XSD = PACKAGE_DIR / "gwx-oa.xsd"


class SoapEnv:
    """``env``'s app with the SOAP endpoint mounted (what :class:`ThreadedServer` serves)."""

    def __init__(self, env: Env, **settings: int) -> None:
        self.env = env
        self.settings = settings

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[web.Application]:
        async with self.env.serve() as app:
            mount_soap(app, self.env.service, self.env.tokens, self.env.config, **self.settings)
            yield app


def soap_server(env: Env) -> ThreadedServer:
    return ThreadedServer(SoapEnv(env))


def envelope(operation: str, children: str = "", *, token: str | None = None, version: str = "1.1",
             header: str | None = None) -> bytes:
    soap = SOAP11 if version == "1.1" else SOAP12
    if header is None and token is not None:
        header = (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken><wsse:Username>clerk</wsse:Username>'
                  f'<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-'
                  f'profile-1.0#PasswordText">{token}</wsse:Password></wsse:UsernameToken></wsse:Security>')
    head = f"<soap:Header>{header}</soap:Header>" if header else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{soap}" xmlns:gwx="{GWX}">{head}'
            f"<soap:Body><gwx:{operation}>{children}</gwx:{operation}></soap:Body></soap:Envelope>").encode()


def headers(operation: str | None, version: str = "1.1", action: str | None = None) -> dict[str, str]:
    action = action if action is not None else (f"{GWX}#{operation}" if operation else "")
    if version == "1.1":
        return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    return {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}


def submit_children(doc_meta: dict[str, Any] | None = None, body: bytes = PDF,
                    attachments: tuple[tuple[str, bytes], ...] = ()) -> str:
    text = json.dumps(doc_meta or meta(), ensure_ascii=False).replace("&", "&amp;").replace("<", "&lt;")
    out = f"<gwx:metaJson>{text}</gwx:metaJson><gwx:body>{base64.b64encode(body).decode()}</gwx:body>"
    for name, data in attachments:
        out += (f"<gwx:attachment><gwx:name>{name}</gwx:name><gwx:content>{base64.b64encode(data).decode()}"
                f"</gwx:content></gwx:attachment>")
    return out


def fault_of(body: bytes) -> dict[str, str]:
    """The fault in an answer: its SOAP code, reason and the detail's gwx code and message."""
    root = etree.fromstring(body)
    soap = etree.QName(root).namespace
    fault = root.find(f"{{{soap}}}Body/{{{soap}}}Fault")
    assert fault is not None, body[:500]
    if soap == SOAP11:
        code, reason, detail = fault.findtext("faultcode"), fault.findtext("faultstring"), fault.find("detail")
    else:
        code = fault.findtext(f"{{{soap}}}Code/{{{soap}}}Value")
        reason = fault.findtext(f"{{{soap}}}Reason/{{{soap}}}Text")
        detail = fault.find(f"{{{soap}}}Detail")
    if detail is None and soap == SOAP11:  # a header's fault: its code in a header entry (SOAP 1.1 §4.4)
        detail = root.find(f"{{{soap}}}Header")
    gwx = detail.find(f"{{{GWX}}}GwxFault")
    schema().validate(etree.tostring(gwx).decode())
    return {"soap": soap, "code": code, "reason": reason, "gwx_code": gwx.findtext(f"{{{GWX}}}code"),
            "message": gwx.findtext(f"{{{GWX}}}message")}


async def expect_fault(response, gwx_code: str, *, version: str = "1.1", soap_code: str = "Client") -> dict:
    """``response`` is a SOAP fault in ``version`` with ``gwx_code`` in its detail; returns the fault."""
    body = await response.read()
    assert response.status == (400 if version == "1.2" and soap_code == "Sender" else 500), body[:300]
    assert response.content_type == ("text/xml" if version == "1.1" else "application/soap+xml")
    fault = fault_of(body)
    assert fault["soap"] == (SOAP11 if version == "1.1" else SOAP12)
    assert fault["code"] == f"soap:{soap_code}", fault
    assert fault["gwx_code"] == gwx_code, fault
    assert fault["message"] and fault["reason"] == fault["message"]
    assert response.headers["X-Gwx-Error"] == gwx_code
    return fault


_schema: xmlschema.XMLSchema | None = None


def schema() -> xmlschema.XMLSchema:
    global _schema
    if _schema is None:
        _schema = xmlschema.XMLSchema(str(XSD))
    return _schema


def validate_body(envelope_xml: bytes | etree._Element) -> str:
    """The Body's element of a SOAP envelope validated against gwx-oa.xsd by xmlschema; its name."""
    root = envelope_xml if isinstance(envelope_xml, etree._Element) else etree.fromstring(envelope_xml)
    soap = etree.QName(root).namespace
    element = next(c for c in root.find(f"{{{soap}}}Body") if isinstance(c.tag, str))
    schema().validate(etree.tostring(element).decode())
    return etree.QName(element).localname


def run_soap(env: Env, scenario, **settings: int) -> None:
    """``scenario(client)`` against the app with the SOAP endpoint, in-process (aiohttp's test server);
    ``settings``: the endpoint's caps, when a test needs them small."""
    async def main() -> None:
        async with SoapEnv(env, **settings).serve() as app, TestClient(TestServer(app)) as client:
            await scenario(client)
    asyncio.run(main())


async def call(client, operation: str, children: str = "", *, token: str | None, version: str = "1.1",
               **extra_headers: str):
    """POST one hand-written envelope; returns the response."""
    return await client.post(ENDPOINT, data=envelope(operation, children, token=token, version=version),
                             headers={**headers(operation, version), **extra_headers})


async def ok(response) -> etree._Element:
    """A successful answer: 200, valid per the schema (xmlschema); its operation's answer element."""
    body = await response.read()
    assert response.status == 200, body[:800]
    validate_body(body)
    root = etree.fromstring(body)
    soap = etree.QName(root).namespace
    return next(e for e in root.find(f"{{{soap}}}Body") if isinstance(e.tag, str))


def nothing_stored(env: Env) -> None:
    """No temp file left in the upload directory (what a refusal may have written is gone)."""
    leftovers = list(env.upload_dir.glob("*")) if env.upload_dir.exists() else []
    assert leftovers == [], leftovers
