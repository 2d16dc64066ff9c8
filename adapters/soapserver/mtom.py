"""MTOM/XOP (multipart/related) both ways, streamed: a 200 MiB attachment never sits in memory.

Incoming (:class:`MtomRequest`): the root part — the SOAP envelope, ``application/xop+xml`` — must
come first (as ``start`` names it, when it does) and is read into memory under the envelope cap;
the endpoint parses it, authenticates the caller and validates the message, and only then are the
binary parts read, each written in slices to its own temp file (0600, in the node's upload
directory) with its cap checked as bytes arrive. Each part must be one the envelope refers to by
``xop:Include href="cid:…"``, at most once; transfer encodings other than binary/8bit are refused.
Every failure is ``SOAP_BAD_MTOM`` or ``SOAP_TOO_LARGE`` (or, the disk full, the transient
``NODE_UNAVAILABLE`` of :func:`~adapters.soapserver.errors.out_of_disk`), and every temp file is removed.

Outgoing (:func:`write_mtom`): an answer whose binary elements carry ``xop:Include``; the root part
and then each file, read from its source in slices in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError
from lxml import etree

from adapters.soapserver.errors import SoapError, SoapTooLarge, out_of_disk

LOG = logging.getLogger("gwx.soap")
XOP_NS = "http://www.w3.org/2004/08/xop/include"
XOP_INCLUDE = f"{{{XOP_NS}}}Include"
CHUNK = 256 * 1024
WRITE_BATCH = 1024 * 1024
MAX_PARTS = 1001  # a body and the package's 1000 attachments at most
_VERSION_OF_TYPE = {"text/xml": "1.1", "application/soap+xml": "1.2"}


def _bad(message: str) -> SoapError:
    return SoapError(message, code="SOAP_BAD_MTOM")


class MtomRequest:
    """A multipart/related SOAP request being read: :meth:`root`, then :meth:`receive_parts`."""

    def __init__(self, request: web.Request, upload_dir: Path) -> None:
        self.request = request
        self.upload_dir = upload_dir
        self.files: list[Path] = []
        self._reader: MultipartReader | None = None

    async def root(self, cap: int, take: Callable[[int], None]) -> tuple[bytearray, str | None, list[str | None]]:
        """The envelope's bytes, the SOAP version its type names (None: it names none; the envelope's
        namespace decides) and the actions the root part's and the request's types name (SOAP 1.2),
        each of which the endpoint checks. ``take(n)`` is told of every n bytes held (and may refuse them)."""
        outer = parse_mimetype(self.request.headers.get("Content-Type", ""))
        if outer.parameters.get("type", "").lower() != "application/xop+xml":
            raise _bad('an MTOM request is multipart/related; type="application/xop+xml"')
        try:
            self._reader = MultipartReader(self.request.headers, self.request.content)
            part = await self._reader.next()
        except (ValueError, AssertionError, KeyError, HttpProcessingError) as exc:
            raise _bad(f"malformed multipart/related request: {_one_line(exc)}") from None
        if not isinstance(part, BodyPartReader):
            raise _bad("the MTOM request holds no root part")
        start = outer.parameters.get("start")
        if start and _content_id(part) != _strip_angles(start):
            raise _bad("the root part (the SOAP envelope) must come first, as start names it")
        inner = parse_mimetype(part.headers.get("Content-Type", ""))
        media = f"{inner.type}/{inner.subtype}" + (f"+{inner.suffix}" if inner.suffix else "")  # xop + xml
        if media.lower() != "application/xop+xml":
            raise _bad("the root part must be application/xop+xml")
        soap_type = (inner.parameters.get("type") or outer.parameters.get("start-info") or "").lower()
        actions = [inner.parameters.get("action"), outer.parameters.get("action")]
        data = bytearray()
        while chunk := await _chunk(part):
            take(len(chunk))
            data += chunk
            if len(data) > cap:
                raise SoapTooLarge(f"the SOAP envelope is more than {cap} bytes; send large files as MTOM parts",
                                   limit=cap)
        return data, _VERSION_OF_TYPE.get(soap_type), actions

    async def receive_parts(self, caps: dict[str, tuple[int, str]], total_cap: int) -> dict[str, Path]:
        """Read the remaining parts: content id → temp file. ``caps``: content id → (cap, what)."""
        assert self._reader is not None
        files: dict[str, Path] = {}
        total = 0
        while True:
            try:
                part = await self._reader.next()
            except (ValueError, AssertionError, KeyError, HttpProcessingError) as exc:
                raise _bad(f"malformed multipart/related request: {_one_line(exc)}") from None
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise _bad("nested multipart parts are not accepted")
            cid = _content_id(part)
            if cid not in caps:
                raise _bad(f"part <{cid}> is not referred to by the envelope (xop:Include href=\"cid:…\")")
            if cid in files:
                raise _bad(f"two parts have the content id <{cid}>")
            encoding = part.headers.get("Content-Transfer-Encoding", "binary").strip().lower()
            if encoding not in ("binary", "8bit"):
                raise _bad(f"part <{cid}> is {encoding}; MTOM parts are sent binary")
            cap, what = caps[cid]
            files[cid], size = await self._to_file(part, cap, what, total_cap - total)
            total += size
        missing = sorted(set(caps) - set(files))
        if missing:
            raise _bad(f"the envelope refers to part <{missing[0]}>, which the request does not hold")
        return files

    async def _to_file(self, part: BodyPartReader, cap: int, what: str, room: int) -> tuple[Path, int]:
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=self.upload_dir)
        path = Path(name)
        self.files.append(path)
        size = 0
        pending: list[bytes] = []
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := await _chunk(part):
                    size += len(chunk)
                    if size > cap:
                        raise SoapTooLarge(f"{what} is more than {cap} bytes", limit=cap)
                    if size > room:
                        raise SoapTooLarge("the request's files together are more than the node takes", limit=room)
                    pending.append(chunk)
                    if sum(map(len, pending)) >= WRITE_BATCH:
                        await asyncio.to_thread(out.write, b"".join(pending))  # a slow disk stalls no other request
                        pending = []
                if pending:
                    await asyncio.to_thread(out.write, b"".join(pending))
        except OSError as exc:  # a chunked request (no Content-Length) could not be checked for space first
            if (full := out_of_disk(exc)) is not None:
                raise full from None
            raise
        return path, size

    def cleanup(self) -> None:
        for path in self.files:
            path.unlink(missing_ok=True)


def take_includes(operation: etree._Element) -> dict[str, etree._Element]:
    """Content id → the element whose content it is; each xop:Include is removed (the element is left
    empty, which the schema admits for base64Binary) so the message can be validated as sent."""
    found: dict[str, etree._Element] = {}
    for include in list(operation.iter(XOP_INCLUDE)):
        parent = include.getparent()
        href = include.get("href", "")
        if not href.startswith("cid:") or len(parent) != 1 or (parent.text or "").strip():
            raise _bad("an xop:Include must be the only content of its element and refer to cid:…")
        cid = urllib.parse.unquote(href[4:])
        if cid in found:
            raise _bad(f"two elements refer to part <{cid}>")
        parent.remove(include)
        found[cid] = parent
    if len(found) > MAX_PARTS:
        raise _bad(f"more than {MAX_PARTS} MTOM parts")
    return found


def _content_id(part: BodyPartReader) -> str:
    return _strip_angles(part.headers.get("Content-ID", ""))


def _strip_angles(value: str) -> str:
    value = value.strip()
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


async def _chunk(part: BodyPartReader) -> bytes:
    try:
        return await part.read_chunk(CHUNK)
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        raise _bad(f"malformed multipart part: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


# --- answers ------------------------------------------------------------------------------------
def include(element: etree._Element, cid: str) -> None:
    """Make ``element``'s content the MTOM part ``cid``."""
    etree.SubElement(element, XOP_INCLUDE, nsmap={"xop": XOP_NS}).set("href", "cid:" + urllib.parse.quote(cid))


async def write_mtom(request: web.Request, envelope: bytes, soap_version: str,
                     parts: list[tuple[str, str, Callable[[], BinaryIO]]], status: int = 200) -> web.StreamResponse:
    """Answer with the envelope and ``parts`` (content id, media type, opener of the source), streamed."""
    boundary = "gwx-mtom-" + secrets.token_hex(12)
    soap_type = "text/xml" if soap_version == "1.1" else "application/soap+xml"
    response = web.StreamResponse(status=status, headers={
        "Content-Type": f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
                        f'start="<root@gwx>"; start-info="{soap_type}"'})
    await response.prepare(request)
    # From here on the status line is sent and no fault can follow: whatever goes wrong, the
    # answer is broken off by hanging up, so the asker sees a broken answer, never a complete one.
    cid = "root@gwx"
    try:
        await response.write(f'--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type="{soap_type}"\r\n'
                             f"Content-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n".encode() + envelope)
        for cid, media_type, opener in parts:
            await response.write(f"\r\n--{boundary}\r\nContent-Type: {media_type}\r\n"
                                 f"Content-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n".encode())
            source = await asyncio.to_thread(opener)
            try:
                while chunk := await asyncio.to_thread(source.read, CHUNK):
                    await response.write(chunk)
            finally:
                source.close()
        await response.write(f"\r\n--{boundary}--\r\n".encode())
        await response.write_eof()
    except ConnectionResetError:  # the asker hung up
        pass
    except Exception:  # a package that breaks while read (bad CRC, a member it lacks, …), a bug
        LOG.exception("an MTOM answer was broken off while streaming %s", cid)
        if request.transport is not None:
            request.transport.close()
    return response
