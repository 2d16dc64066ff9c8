"""One SOAP request to the endpoint (:mod:`adapters.soapserver.endpoint` routes it here): read under
the caps and the memory budget, parsed, the action and the caller checked, validated, the operation
called, and its answer or fault written — steps 1–6 of the endpoint's docstring. Loaded with the
first SOAP request a node serves, not at its start (lxml, the schema and the operations are most
of the endpoint's import time, and most nodes' OA systems never call them)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable

from aiohttp import web
from aiohttp.helpers import parse_mimetype
from lxml import etree

from adapters.soapserver import messages as m
from adapters.soapserver import operations
from adapters.soapserver.endpoint import (
    BUDGET,
    CONFIG,
    HELD,
    MULTIPART_OVERHEAD,
    PARSING,
    SERVICE,
    SETTINGS,
    TOKENS,
    Held,
    HeldAnswer,
)
from adapters.soapserver.envelope import WSSE_NS, Envelope, parse_xml, read_envelope
from adapters.soapserver.errors import SoapError, SoapTooLarge, out_of_disk
from adapters.soapserver.mtom import MtomRequest, take_includes, write_mtom
from node.api.auth import AuthError, Principal, TokenStore
from node.api.local_api import PRINCIPAL
from node.error_kinds import soap_fault_for
from node.errors import NodeError
from pki.errors import GwxError

LOG = logging.getLogger("gwx.soap")

_MEDIA_VERSION = {"text/xml": "1.1", "application/soap+xml": "1.2"}
_PASSWORD_TEXT = "#PasswordText"


async def post(request: web.Request) -> web.StreamResponse:
    media = request.content_type
    version = _MEDIA_VERSION.get(media, "1.1")
    if media == "multipart/related":
        start_info = parse_mimetype(request.headers.get("Content-Type", "")).parameters.get("start-info", "")
        version = _MEDIA_VERSION.get(start_info.lower(), "1.1")
    mtom = MtomRequest(request, request.app[SETTINGS]["upload_dir"]) if media == "multipart/related" else None
    call: operations.Call | None = None
    request[HELD] = Held()
    try:
        envelope, actions, version = await _receive(request, media, mtom, version)
        call = await _prepare(request, envelope, actions, mtom)
        answer = await operations.HANDLERS[m.operation_name(call.element)](call)
        if isinstance(answer, operations.MtomAnswer):
            return await write_mtom(request, m.serialise(answer.envelope), version, answer.parts)
        response = _xml(m.serialise(answer), version, 200, HeldAnswer)
        response.hold_until_sent(request.app[BUDGET], request[HELD])  # an inline FetchDocument's content
        request[HELD] = Held()  # handed over to the answer: not given back below
        return response
    except GwxError as exc:
        version = getattr(exc, "answer_version", version)  # a VersionMismatch may answer in the other version
        return _fault(request, exc, version, unread=not request.content.at_eof())
    except Exception:
        LOG.exception("unexpected error in the SOAP endpoint")
        error = NodeError("internal error; the node's log has the details", code="INTERNAL")
        return _fault(request, error, version, unread=not request.content.at_eof())
    finally:
        request.app[BUDGET].give_back(request[HELD])
        if mtom is not None:
            mtom.cleanup()
        for path in call.temp if call is not None else ():
            path.unlink(missing_ok=True)


async def _receive(request: web.Request, media: str, mtom: MtomRequest | None,
                   version: str) -> tuple[Envelope, list[str | None], str]:
    settings = request.app[SETTINGS]
    limits = request.app[CONFIG].limits
    cap = settings["envelope_max"]
    declared = request.content_length
    if mtom is None and media not in _MEDIA_VERSION:
        raise SoapError(f"a SOAP request is text/xml (SOAP 1.1), application/soap+xml (SOAP 1.2) or "
                        f"multipart/related (MTOM), not {media or 'untyped'}", code="SOAP_BAD_CONTENT_TYPE")
    most = cap if mtom is None else cap + limits.max_envelope_bytes + MULTIPART_OVERHEAD
    if declared is not None and declared > most:
        raise SoapTooLarge(f"the request says it is {declared} bytes, more than the {most} this endpoint takes",
                           size=declared, limit=most)
    if mtom is not None:
        settings["upload_dir"].mkdir(parents=True, exist_ok=True, mode=0o700)
    if declared is not None and mtom is not None:
        free = shutil.disk_usage(settings["upload_dir"]).free
        if declared > free:
            raise out_of_disk()
    authorization = request.headers.get("Authorization")
    if authorization:  # an unknown bearer is refused before it may hold any of the memory budget
        request.app[TOKENS].authenticate(authorization)
    budget, held = request.app[BUDGET], request[HELD]
    if mtom is None:
        data = await _read_capped(request, cap, lambda n: budget.take(held, n))
        content_version: str | None = _MEDIA_VERSION[media]
        actions = [parse_mimetype(request.headers.get("Content-Type", "")).parameters.get("action")]
    else:
        data, content_version, actions = await mtom.root(cap, lambda n: budget.take(held, n))
    async with request.app[PARSING]:
        root = await asyncio.to_thread(parse_xml, data)
    del data
    envelope = read_envelope(root, content_version)
    # Every action the request states is checked against the Body, whatever its SOAP version
    # (SOAP 1.1: the SOAPAction header; SOAP 1.2: the action parameter): none may name another operation.
    return envelope, [*actions, request.headers.get("SOAPAction")], envelope.version


async def _read_capped(request: web.Request, cap: int, take: Callable[[int], None]) -> bytearray:
    data = bytearray()
    while chunk := await request.content.read(256 * 1024):
        take(len(chunk))
        data += chunk
        if len(data) > cap:
            raise SoapTooLarge(f"the SOAP envelope is more than {cap} bytes; send large files as MTOM parts",
                               limit=cap)
    return data  # not copied: the parser reads it slice by slice


async def _prepare(request: web.Request, envelope: Envelope, actions: list[str | None],
                   mtom: MtomRequest | None) -> operations.Call:
    name = m.operation_name(envelope.operation)
    for action in actions:
        action = (action or "").strip().strip('"')
        if action and action != m.ACTION_PREFIX + name:
            raise SoapError(f"the SOAP action {action[:100]!r} does not name the operation in the Body ({name})",
                            code="SOAP_ACTION_MISMATCH")
    who = _authenticate(request.app[TOKENS], envelope.header, request.headers.get("Authorization"))
    request[PRINCIPAL] = who  # for the access log
    who.require_role("clerk")
    includes = take_includes(envelope.operation) if mtom is not None else {}
    if any(element.tag not in operations.BINARY_ELEMENTS for element in includes.values()):
        raise SoapError("only body and attachment content may be MTOM parts", code="SOAP_BAD_MTOM")
    await asyncio.to_thread(m.validate, envelope.operation)
    settings, limits = request.app[SETTINGS], request.app[CONFIG].limits
    budget, held = request.app[BUDGET], request[HELD]
    call = operations.Call(who, envelope.version, envelope.operation, request.app[SERVICE], settings["upload_dir"],
                           meta_cap=limits.max_request_bytes, body_cap=limits.max_body_pdf_bytes,
                           attachment_cap=limits.max_envelope_bytes,
                           hold=lambda n, why: budget.take(held, n, why),
                           mtom_answer=mtom is not None or "multipart/related" in request.headers.get("Accept", ""))
    settings["upload_dir"].mkdir(parents=True, exist_ok=True, mode=0o700)  # inline files are written there too
    if includes:
        caps = {cid: ((limits.max_body_pdf_bytes, "the body") if element.tag == m.q("body")
                      else (limits.max_envelope_bytes, "an attachment")) for cid, element in includes.items()}
        files = await mtom.receive_parts(caps, limits.max_envelope_bytes)
        call.mtom_files = {includes[cid]: path for cid, path in files.items()}
    elif mtom is not None:
        await mtom.receive_parts({}, 0)  # no part may follow an envelope that refers to none
    return call


def _authenticate(tokens: TokenStore, header: etree._Element | None, authorization: str | None) -> Principal:
    token = _username_token(header) if header is not None else None
    by_token = tokens.authenticate(f"Bearer {token}") if token is not None else None
    by_header = tokens.authenticate(authorization) if authorization else None
    if by_token is None and by_header is None:
        raise AuthError("missing credentials: a WS-Security UsernameToken whose password is your token, "
                        "or Authorization: Bearer <token>")
    if by_token is not None and by_header is not None and by_token != by_header:
        raise AuthError("the UsernameToken and the Authorization header carry two different tokens")
    return by_token or by_header


def _username_token(header: etree._Element) -> str | None:
    security = header.find(f"{{{WSSE_NS}}}Security")
    if security is None:
        return None
    password = security.find(f"{{{WSSE_NS}}}UsernameToken/{{{WSSE_NS}}}Password")
    if password is None:
        raise SoapError("the WS-Security header holds no UsernameToken with a Password",
                        code="SOAP_BAD_SECURITY_HEADER")
    kind = password.get("Type", _PASSWORD_TEXT)
    if not kind.endswith(_PASSWORD_TEXT):
        raise SoapError("only PasswordText is accepted: the node keeps a hash of each token, not the token, so "
                        "a PasswordDigest cannot be checked", code="SOAP_BAD_SECURITY_HEADER")
    return (password.text or "").strip()


def _xml(body: bytes, version: str, status: int, kind: type[web.Response] = web.Response) -> web.Response:
    media = "text/xml" if version == "1.1" else "application/soap+xml"
    return kind(body=body, status=status, content_type=media, charset="utf-8")


def _fault(request: web.Request, error: GwxError, version: str, unread: bool) -> web.Response:
    # SOAP 1.1 over HTTP: every fault is a 500; SOAP 1.2 (part 2, the HTTP binding): a Sender fault is a 400,
    # every other (Receiver, VersionMismatch, MustUnderstand) a 500.
    status = 400 if version == "1.2" and soap_fault_for(error, "1.2") == "Sender" else 500
    response = _xml(m.fault(error, version), version, status)
    response.headers["X-Gwx-Error"] = error.code
    if unread:
        response.force_close()  # the rest of the request is not read; do not reuse the connection
    return response
