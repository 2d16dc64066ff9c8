"""The nine operations: each turns a validated request into calls on the document service's
contract (:class:`node.documents.contract.DocumentServiceApi`) and its answer into the schema's
elements. Nothing here reads the store or decides who may do what: the service does, as for the
local API. Binary content arrives as files (an MTOM part already on disk, or inline base64 written
to a temp file here) and leaves inline or as MTOM parts read from the sealed package.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import tempfile
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.soapserver import messages as m
from adapters.soapserver.errors import SoapError, SoapTooLarge, out_of_disk
from adapters.soapserver.mtom import include
from exchange_protocol.canonical import load_json
from exchange_protocol.kinds import parse_kind
from exchange_protocol.manifest import ATTACHMENTS_DIR, BODY_NAME, OFD_BODY_NAME, attachment_member, name_key
from exchange_protocol.model import check_doc_id
from exchange_protocol.states import ReceiverStatus
from node.api.auth import Principal
from node.documents.contract import DocumentServiceApi
from node.errors import BadJson, NotFound
from pki.unit_code import validate_unit_code

INLINE_ANSWER_MAX = 4 * 1024 * 1024  # binary content a FetchDocument answers inline at most (base64: 5.3 MiB)
# An inline answer holds its content about this many times over at its peak (the bytes and their base64
# while the tree is built; then the tree's text and the serialised answer until it is sent): what it
# counts against the endpoint's memory budget.
INLINE_ANSWER_COPIES = 6


@dataclass
class Call:
    """One request, authenticated and validated, on its way to the service."""

    who: Principal
    version: str
    element: etree._Element
    service: DocumentServiceApi
    upload_dir: Path
    meta_cap: int
    hold: Callable[[int, str], None]  # count n bytes against the endpoint's memory budget, or refuse (why)
    mtom_files: dict[Any, Path] = field(default_factory=dict)  # element → its MTOM part on disk
    mtom_answer: bool = False  # the asker reads MTOM (asked in MTOM or Accept: multipart/related)
    body_cap: int = 0  # the body PDF at most, inline or MTOM (Limits.max_body_pdf_bytes)
    attachment_cap: int = 0  # one attachment at most (Limits.max_envelope_bytes)
    temp: list[Path] = field(default_factory=list)

    async def file_of(self, element: etree._Element, cap: int, what: str) -> Path:
        """The content of a base64Binary element as a file: its MTOM part (read under ``cap`` as it
        arrived), or its text decoded — in a thread, under the same ``cap`` as an MTOM part."""
        if element in self.mtom_files:
            return self.mtom_files[element]
        text, element.text = element.text or "", None  # the decoded copy is what we keep
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=self.upload_dir)
        self.temp.append(Path(name))
        await asyncio.to_thread(_decode_to, fd, text, cap, what)
        return Path(name)


def _decode_to(fd: int, text: str, cap: int, what: str) -> None:
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                data = base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                raise SoapError("base64 content that does not decode", code="SOAP_INVALID_MESSAGE") from None
            if len(data) > cap:
                raise SoapTooLarge(f"{what} is more than {cap} bytes", size=len(data), limit=cap)
            out.write(data)
    except OSError as exc:
        if (full := out_of_disk(exc)) is not None:
            raise full from None
        raise


@dataclass
class MtomAnswer:
    envelope: etree._Element
    parts: list[tuple[str, str, Callable[[], Any]]]


Answer = etree._Element | MtomAnswer


def _doc_id(call: Call) -> str:
    return check_doc_id(m.text(call.element, "docId") or "", "docId")


async def submit(call: Call) -> Answer:
    meta = load_json((m.text(call.element, "metaJson") or "").encode(), max_bytes=call.meta_cap,
                     what="metaJson (META.json)", error=BadJson)
    if not isinstance(meta, dict):
        raise BadJson("metaJson must be a JSON object (META.json)")
    body = await call.file_of(call.element.find(m.q("body")), call.body_cap, "the body")
    attachments: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for element in call.element.findall(m.q("attachment")):
        name = m.text(element, "name") or ""
        attachment_member(name)  # one safe file name, or the package's own refusal
        if name_key(name) in seen:
            raise SoapError(f"two attachments are called {name!r}", code="SOAP_INVALID_MESSAGE")
        seen.add(name_key(name))
        attachments.append((name, await call.file_of(element.find(m.q("content")), call.attachment_cap,
                                                     "an attachment")))
    result = await call.service.submit(call.who, meta, body, attachments)
    envelope, out = m.answer(call.version, "SubmitDocument")
    m.add(out, "docId", result["doc_id"])
    m.add(out, "warning", list(result.get("warnings", [])))
    m.add(out, "recipient", result["recipients"], m.RECIPIENT)
    return envelope


async def list_inbox(call: Call) -> Answer:
    e = call.element
    filters: dict[str, Any] = {"limit": int(m.text(e, "limit") or 50)}
    status = m.text(e, "status")
    if status is not None:
        statuses = [s.value for s in ReceiverStatus]
        if status not in statuses:
            raise SoapError(f"status must be one of {', '.join(statuses)}", code="SOAP_INVALID_MESSAGE")
        filters["status"] = status
    if (kind := m.text(e, "kind")) is not None:
        filters["kind"] = parse_kind(kind).value
    if (overdue := m.flag(e, "overdue")) is not None:
        filters["overdue"] = overdue
    if (unit := m.text(e, "fromUnit")) is not None:
        filters["unit"] = validate_unit_code(unit)
    if (after := m.text(e, "after")) is not None:
        filters["after"] = after.strip()
    items = await call.service.inbox(call.who, **filters)
    envelope, out = m.answer(call.version, "ListInbox")
    m.add(out, "item", items, m.INBOX_ITEM)
    return envelope


async def fetch(call: Call) -> Answer:
    doc_id = _doc_id(call)
    shown = await call.service.show(call.who, doc_id)
    if "verification" not in shown:
        raise NotFound(f"your unit has not received {doc_id}; FetchDocument is for received documents "
                       "(TrackDocument follows the ones it sent)", doc_id=doc_id)
    envelope, out = m.answer(call.version, "FetchDocument")
    m.add(out, "item", shown, m.INBOX_ITEM)
    m.add(out, "metaJson", json.dumps(shown["metadata"], ensure_ascii=False))
    m.add(out, "verificationJson", json.dumps(shown["verification"], ensure_ascii=False))
    if m.flag(call.element, "withContent") is False:
        return envelope
    package = await call.service.package_path(call.who, doc_id)
    body_name = await asyncio.to_thread(_body_member, package)
    body_type = "application/ofd" if body_name == OFD_BODY_NAME else "application/pdf"
    m.add(out, "bodyType", body_type)
    members = [(body_name, None)] + [(ATTACHMENTS_DIR + a["name"], a["name"]) for a in shown["attachments"]]
    size = await asyncio.to_thread(_content_size, package, [member for member, _ in members])
    inline: dict[str, bytes] = {}
    if not call.mtom_answer and size <= INLINE_ANSWER_MAX:
        call.hold(size * INLINE_ANSWER_COPIES, "too many FetchDocument answers carry their content inline at "
                  "once; ask again shortly (or ask for MTOM: Accept: multipart/related)")
        inline = await asyncio.to_thread(_read_members, package, [member for member, _ in members])
    parts = []
    for n, (member, name) in enumerate(members):
        if name is None:
            content = etree.SubElement(out, m.q("body"))
        else:
            attachment = etree.SubElement(out, m.q("attachment"))
            m.add(attachment, "name", name)
            content = etree.SubElement(attachment, m.q("content"))
        if member in inline:
            content.text = base64.b64encode(inline.pop(member))  # ASCII bytes: no str copy
        else:
            cid = f"part{n}@gwx"
            include(content, cid)
            parts.append((cid, body_type if name is None else "application/octet-stream",
                          _member_opener(package, member)))
    return MtomAnswer(envelope, parts) if parts else envelope


def _body_member(package: Path) -> str:
    """body.pdf or body.ofd: the package (verified when it arrived) has exactly one."""
    with zipfile.ZipFile(package) as z:
        return OFD_BODY_NAME if OFD_BODY_NAME in z.namelist() else BODY_NAME


def _content_size(package: Path, members: list[str]) -> int:
    with zipfile.ZipFile(package) as z:
        return sum(z.getinfo(member).file_size for member in members)


def _read_members(package: Path, members: list[str]) -> dict[str, bytes]:
    with zipfile.ZipFile(package) as z:
        return {member: z.read(member) for member in members}


def _member_opener(package: Path, member: str) -> Callable[[], Any]:
    def open_member():
        archive = zipfile.ZipFile(package)
        source = archive.open(member)
        close = source.close

        def close_both() -> None:
            close()
            archive.close()
        source.close = close_both
        return source
    return open_member


async def _inbox_act(call: Call, operation: str, act: Callable[..., Awaitable[dict]], *args: Any) -> Answer:
    item = await act(call.who, _doc_id(call), *args)
    envelope, out = m.answer(call.version, operation)
    m.add(out, "item", item, m.INBOX_ITEM)
    return envelope


async def sign_for(call: Call) -> Answer:
    return await _inbox_act(call, "SignFor", call.service.sign_for)


async def return_document(call: Call) -> Answer:
    return await _inbox_act(call, "ReturnDocument", call.service.return_document, m.text(call.element, "reason"))


async def register(call: Call) -> Answer:
    return await _inbox_act(call, "RegisterDocument", call.service.register)


def _tracking(call: Call, operation: str, tracking: dict[str, Any]) -> Answer:
    envelope, out = m.answer(call.version, operation)
    for child, key, shape in m.TRACKING:
        m.add(out, child, tracking.get(key), shape)
    return envelope


async def _recipients_act(call: Call, operation: str, act: Callable[..., Awaitable[dict]]) -> Answer:
    units = [validate_unit_code(u) for u in m.texts(call.element, "unit")] or None
    return _tracking(call, operation, await act(call.who, _doc_id(call), units))


async def recall(call: Call) -> Answer:
    return await _recipients_act(call, "RecallDocument", call.service.recall)


async def urge(call: Call) -> Answer:
    return await _recipients_act(call, "UrgeDocument", call.service.urge)


async def track(call: Call) -> Answer:
    return _tracking(call, "TrackDocument", await call.service.track(call.who, _doc_id(call)))


HANDLERS: dict[str, Callable[[Call], Awaitable[Answer]]] = {
    "SubmitDocument": submit, "ListInbox": list_inbox, "FetchDocument": fetch, "SignFor": sign_for,
    "ReturnDocument": return_document, "RegisterDocument": register, "RecallDocument": recall,
    "UrgeDocument": urge, "TrackDocument": track,
}
# The elements whose content may be an MTOM part, and the cap each is read under.
BINARY_ELEMENTS = (m.q("body"), m.q("content"))
