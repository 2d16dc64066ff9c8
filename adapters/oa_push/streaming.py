"""Sending a push whose body and attachments never sit whole in memory, and reading the OA's answer
with a bound.

zeep builds the whole SOAP envelope in memory (an lxml tree, then its serialisation), so a 200 MiB
attachment passed to it as bytes would be held several times over (the bytes, their base64, the
tree's text, the serialised message). Instead the consumer gives the mapping a short random token in
place of each file's content (:class:`PackagePart`); zeep writes the token's base64 where the
content's base64 belongs. :class:`StreamingTransport` (zeep's ``AsyncTransport`` with its
``post_xml`` replaced) serialises that small envelope — after zeep applied WS-Addressing,
WS-Security and its plugins — cuts it at each token, and sends the pieces with the file's base64 in
place of each token, encoded in slices as it is read from the sealed package
(:class:`~exchange_protocol.package_reader.PackageReader`, which checks the member's size and
digest as it goes). The message on the wire is byte for byte the one zeep would have sent with the
content inline, so every OA that took the old push takes this one; its Content-Length is computed
ahead (base64's length is known from the manifest's size), since old OA web servers do not read
chunked requests. A package that fails its check mid-way aborts the request: the OA never gets a
whole message with the wrong content.

Why inline base64 and not MTOM/XOP: MTOM is agreed at deployment (a WCF binding, an Axis2 flag),
not written in the WSDL — an OA's WSDL types the content as ``xs:base64Binary`` either way — and
the OAs this push is for (Axis 1, ASMX, early Java stacks) mostly cannot read multipart/related.
Inline base64 costs a third more bytes on the wire and nothing in memory here.

The answer is read up to :data:`MAX_ANSWER_BYTES`. One that is not SOAP (an HTML error page from
the OA's web server or a proxy, a 413 without a body) becomes :class:`HttpAnswerNotSoap`, carrying
the status and a bounded plain-text excerpt of the page, which the caller turns into a typed error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import re
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from requests import Response
from zeep.transports import AsyncTransport
from zeep.wsdl.utils import etree_to_string

from exchange_protocol.package_reader import PackageReader

READ_SLICE = 3 * 256 * 1024  # bytes read from the package per worker-thread hop (a multiple of 3)
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # an OA's answer to a push is a result code, not a document
EXCERPT_CHARS = 300  # of an HTML error page, kept in the error (and so in gwx oa dead / node status)
_SOAP_STATUSES = (200, 201, 202, 400, 500)  # where a SOAP answer or fault may come (SOAP 1.1/1.2)


@dataclass(frozen=True)
class PackagePart:
    """One file of a sealed package travelling inline as base64: the mapping gets ``token`` instead
    of its content, and the transport puts the content's base64 where the token's stands."""

    package: Path
    member: str  # its path inside the package (body.pdf, attachments/…)
    size: int  # as the manifest lists it
    token: bytes = field(default_factory=lambda: b"gwx-part:" + secrets.token_bytes(24))

    @property
    def placeholder(self) -> bytes:
        """What zeep writes for the token (``body``) and what ``body_base64`` is given."""
        return base64.b64encode(self.token)

    @property
    def encoded_size(self) -> int:
        return 4 * ((self.size + 2) // 3)


_parts: ContextVar[tuple[PackagePart, ...]] = ContextVar("gwx_oa_push_parts", default=())


@contextlib.contextmanager
def sending(parts: Sequence[PackagePart]) -> Iterator[None]:
    """Within this block, the transport streams ``parts`` into the envelope of the call made."""
    reset = _parts.set(tuple(parts))
    try:
        yield
    finally:
        _parts.reset(reset)


class HttpAnswerNotSoap(Exception):
    """The OA (or a proxy before it) answered with something that is not SOAP."""

    def __init__(self, status: int, media_type: str, excerpt: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.media_type, self.excerpt = status, media_type, excerpt


def split_envelope(message: bytes, parts: Sequence[PackagePart]) -> list[bytes | PackagePart]:
    """The serialised envelope as its own bytes and the parts in the places of their tokens."""
    if not parts:
        return [message]
    by_placeholder = {p.placeholder: p for p in parts}
    pattern = re.compile(b"|".join(re.escape(p) for p in by_placeholder))
    pieces: list[bytes | PackagePart] = []
    at = 0
    for match in pattern.finditer(message):
        pieces += [message[at:match.start()], by_placeholder[match.group()]]
        at = match.end()
    pieces.append(message[at:])
    return pieces


def _read_slice(chunks: Iterator[bytes]) -> bytes:
    """In a worker thread: at least READ_SLICE bytes of the member (less at its end)."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) >= READ_SLICE:
            break
    return bytes(out)


async def _base64_of(reader: PackageReader, member: str) -> AsyncIterator[bytes]:
    chunks = reader.iter_member(member)  # checks size and digest as it goes: raises at the end if wrong
    carry = b""
    while data := await asyncio.to_thread(_read_slice, chunks):
        data = carry + data
        cut = len(data) - len(data) % 3
        carry = data[cut:]
        yield base64.b64encode(data[:cut])
    if carry:
        yield base64.b64encode(carry)


async def _body(pieces: list[bytes | PackagePart]) -> AsyncIterator[bytes]:
    readers: dict[Path, PackageReader] = {}
    with contextlib.ExitStack() as opened:
        for piece in pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            if piece.package not in readers:
                file = opened.enter_context(await asyncio.to_thread(open, piece.package, "rb"))
                readers[piece.package] = opened.enter_context(await asyncio.to_thread(PackageReader, file))
            async for encoded in _base64_of(readers[piece.package], piece.member):
                yield encoded


def excerpt_of(content: bytes, media_type: str, charset: str | None) -> str:
    """A page's text in one line, at most EXCERPT_CHARS: tags, scripts and styles gone, entities read."""
    head = content[:64 * 1024]
    if charset is None:  # a Chinese OA's page often says its charset only in a meta tag (GBK)
        meta = re.search(rb"charset=[\"']?([A-Za-z0-9_-]+)", head[:2048])
        charset = meta.group(1).decode("ascii") if meta else "utf-8"
    try:
        text = head.decode(charset, "replace")
    except LookupError:
        text = head.decode("utf-8", "replace")
    if "html" in media_type or re.search(r"<\s*html", text[:2048], re.I):
        text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = html.unescape(re.sub(r"<[^>]*>", " ", text))
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…"


def first_element(head: bytes) -> str | None:
    """The local name of the first element of an XML text (read from its head only: a declaration,
    comments or a doctype may come before it), or None when the head is not XML up to there (an HTML
    page that breaks XML's rules before its first tag, an empty answer). Read by lxml without a DTD,
    entities or the network."""
    from lxml import etree

    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, no_network=True, load_dtd=False,
                                 huge_tree=False)
    try:
        parser.feed(head)
        for _, element in parser.read_events():
            return etree.QName(element).localname
    except etree.XMLSyntaxError:
        return None
    return None


def _looks_like_soap(content: bytes) -> bool:
    """An answer whose first element (after a declaration, comments or a doctype) is a SOAP Envelope,
    read by an XML parser: an error page that quotes an Envelope further in is not SOAP."""
    return first_element(content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")) == "Envelope"


class WsdlNotAWsdl(Exception):
    """The OA's web server answered its WSDL's URL with something that is not a WSDL (a maintenance
    page, a login form): the OA is not there now, its WSDL was not found wrong."""

    def __init__(self, url: str, excerpt: str) -> None:
        super().__init__(f"{url} is not a WSDL")
        self.url, self.excerpt = url, excerpt


class StreamingTransport(AsyncTransport):
    """zeep's async transport, sending the envelope as pieces with each part streamed in (see the
    module docstring), and refusing answers that are too large or are not SOAP; the WSDL's own URL
    answered with a page that is not a WSDL raises :class:`WsdlNotAWsdl` before zeep reads it."""

    def load(self, url):
        content = super().load(url)
        if (not self._wsdl_checked and url.startswith(("http://", "https://"))  # zeep loads the WSDL first
                and first_element(content[:64 * 1024]) not in ("definitions", "description")):
            raise WsdlNotAWsdl(url, excerpt_of(content, "", None))
        self._wsdl_checked = True
        return content

    _wsdl_checked = False

    async def post_xml(self, address, envelope, headers):
        pieces = split_envelope(etree_to_string(envelope), _parts.get())
        length = sum(len(p) if isinstance(p, bytes) else p.encoded_size for p in pieces)
        body = _body(pieces)
        request = self.client.build_request("POST", address, content=body,
                                            headers={**headers, "Content-Length": str(length)})
        try:
            response = await self.client.send(request, stream=True)
            try:
                content = bytearray()
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > MAX_ANSWER_BYTES:
                        break
            finally:
                await response.aclose()
        finally:
            await body.aclose()  # the package closed now, however the request ended
        media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        # By what it holds, not what it is labelled: old OAs label SOAP text/html, and proxies label
        # their error pages text/xml.
        soap = media_type == "multipart/related" or _looks_like_soap(bytes(content[:4096]))
        if len(content) > MAX_ANSWER_BYTES:
            raise HttpAnswerNotSoap(response.status_code, media_type,
                                    f"an answer over {MAX_ANSWER_BYTES // (1024 * 1024)} MiB, not read")
        if response.status_code in (201, 202) and not content:
            soap = True
        if response.status_code not in _SOAP_STATUSES or not soap:
            raise HttpAnswerNotSoap(response.status_code, media_type,
                                    excerpt_of(bytes(content), media_type, response.charset_encoding))
        answer = Response()
        answer._content = bytes(content)
        answer.status_code = response.status_code
        answer.headers = response.headers
        answer.encoding = response.encoding
        return answer
