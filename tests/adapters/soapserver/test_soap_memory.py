"""Memory stays bounded on a real node process (``gwx node run``), measured by its peak RSS
(``VmHWM``): a large MTOM attachment is streamed in and out, never held whole, and a volley of
hostile envelopes at once costs a few envelopes' worth, after which the node still serves, and so
does a volley of FetchDocument answers carrying their content inline to askers that read slowly."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path

import aiohttp
import pytest

from adapters.soapserver.endpoint import ENVELOPE_MAX
from adapters.soapserver.operations import INLINE_ANSWER_MAX
from bench.adapters import (
    BUREAU,
    OFFICE,
    Bench,
    mtom_submit,
    peak_rss_mib,
    soap_envelope,
    soap_headers,
    start,
)
from tests.adapters.soapserver.test_xml_attacks import laughs, with_doctype

pytestmark = pytest.mark.slow
MiB = 1024 * 1024
BIG = 128 * MiB


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    base = tmp_path_factory.mktemp("soap-memory")
    net, node = start(base / "net")
    bench = Bench(net, node, base, quick=True, inflight=1, documents=0)
    # The node loads its SOAP request handling (lxml, the schema) with the first SOAP request: one
    # small call first, so each test's growth is what its requests hold, not the code's loading.
    assert asyncio.run(list_inbox(bench)) == 200
    yield bench
    net.stop_all()


async def list_inbox(bench: Bench) -> int:
    data = soap_envelope(bench.token(OFFICE), "ListInbox", "")
    async with aiohttp.ClientSession(bench.url) as http, \
            http.post("/soap/v1/documents", data=data, headers=soap_headers("ListInbox")) as r:
        return r.status


async def fetch_to_hash(bench: Bench, doc_id: str) -> tuple[str, int]:
    """FetchDocument as MTOM, the answer read in slices; the sha256 and size of the whole answer's
    largest part (the attachment), hashed as it arrives."""
    data = soap_envelope(bench.token(BUREAU), "FetchDocument", f"<gwx:docId>{doc_id}</gwx:docId>")
    async with aiohttp.ClientSession(bench.url, timeout=aiohttp.ClientTimeout(total=600)) as http, \
            http.post("/soap/v1/documents", data=data,
                      headers={**soap_headers("FetchDocument"), "Accept": "multipart/related"}) as r:
        assert r.status == 200 and r.content_type == "multipart/related"
        reader = aiohttp.MultipartReader.from_response(r)
        largest = ("", 0)
        while (part := await reader.next()) is not None:
            digest, size = hashlib.sha256(), 0
            while chunk := await part.read_chunk(MiB):
                digest.update(chunk)
                size += len(chunk)
            largest = max(largest, (digest.hexdigest(), size), key=lambda x: x[1])
        return largest


def test_a_large_mtom_attachment_is_streamed_in_and_out(bench):
    attachment = bench.work / "录像.mp4"
    digest = hashlib.sha256()
    with open(attachment, "wb") as f:
        for _ in range(BIG // MiB):
            block = os.urandom(MiB)
            digest.update(block)
            f.write(block)
    before = peak_rss_mib(bench.node.process.pid)
    doc_id = asyncio.run(mtom_submit(bench, attachment))
    assert asyncio.run(fetch_to_hash(bench, doc_id)) == (digest.hexdigest(), BIG)
    growth = peak_rss_mib(bench.node.process.pid) - before
    print(f"peak RSS growth for {BIG // MiB} MiB in and out: {growth:.0f} MiB")
    assert growth < BIG / MiB / 4, f"peak RSS grew by {growth:.0f} MiB for a {BIG // MiB} MiB attachment"


async def volley(bench: Bench) -> list[bytes]:
    huge = soap_envelope(bench.token(BUREAU), "SignFor", "<gwx:docId>" + "x" * ENVELOPE_MAX + "</gwx:docId>")
    near_cap = soap_envelope(bench.token(BUREAU), "SignFor", "<gwx:docId>" + "x" * (ENVELOPE_MAX - 4096) + "</gwx:docId>")
    deep = soap_envelope(bench.token(BUREAU), "ListInbox", "<a>" * 200_000 + "</a>" * 200_000)
    bombs = [with_doctype(laughs(12)), huge, near_cap, deep] * 6
    async with aiohttp.ClientSession(bench.url, timeout=aiohttp.ClientTimeout(total=300)) as http:
        async def one(data: bytes) -> bytes:
            try:
                async with http.post("/soap/v1/documents", data=data, headers=soap_headers("SignFor")) as r:
                    return r.headers.get("X-Gwx-Error", "").encode()
            except aiohttp.ClientError:  # refused before the whole body was sent: the node hung up
                return b"closed"
        return await asyncio.gather(*(one(d) for d in bombs))


def test_a_volley_of_hostile_envelopes_keeps_memory_bounded_and_the_node_serving(bench):
    before = peak_rss_mib(bench.node.process.pid)
    codes = asyncio.run(volley(bench))
    assert set(codes) <= {b"SOAP_DTD_FORBIDDEN", b"SOAP_TOO_LARGE", b"SOAP_TOO_DEEP", b"SOAP_INVALID_MESSAGE",
                          b"NODE_UNAVAILABLE", b"closed"}, codes
    assert b"SOAP_DTD_FORBIDDEN" in codes and b"SOAP_TOO_DEEP" in codes
    growth = peak_rss_mib(bench.node.process.pid) - before
    print(f"peak RSS growth under the volley: {growth:.0f} MiB")
    # 24 requests of up to 8 MiB each at once (192 MiB): what is held is bounded by the endpoint's
    # budget for envelopes in memory (48 MiB) and the trees of those parsed at once.
    assert growth < 128, f"peak RSS grew by {growth:.0f} MiB"
    assert asyncio.run(list_inbox(bench)) == 200  # still serving
    assert bench.node.running


def reset_peak_rss(pid: int) -> None:
    """Start the process's peak RSS (VmHWM) afresh from its RSS now (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def inline_volley(bench: Bench, doc_id: str, askers: int) -> list[tuple[int, str, bytes]]:
    """``askers`` FetchDocuments at once, answered inline (no Accept: multipart/related), each asker
    reading its answer only some seconds after it started (an OA system busy elsewhere)."""
    data = soap_envelope(bench.token(BUREAU), "FetchDocument", f"<gwx:docId>{doc_id}</gwx:docId>")

    async def one(http: aiohttp.ClientSession) -> tuple[int, str, bytes]:
        async with http.post("/soap/v1/documents", data=data, headers=soap_headers("FetchDocument")) as r:
            await asyncio.sleep(4)
            return r.status, r.headers.get("X-Gwx-Error", ""), await r.read()
    connector = aiohttp.TCPConnector(limit=askers)
    async with aiohttp.ClientSession(bench.url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=300)) as http:
        return await asyncio.gather(*(one(http) for _ in range(askers)))


def test_a_volley_of_inline_fetches_keeps_memory_bounded(bench):
    """Each inline answer is its content about four times over (bytes, base64, tree, serialised);
    the endpoint counts that against its budget for envelopes in memory and holds it until the answer
    is sent, so however many ask at once, what is held stays bounded: those past the budget are told
    to ask again shortly (or to ask for MTOM)."""
    content = os.urandom(INLINE_ANSWER_MAX - 256 * 1024)  # with the body PDF, just under the inline cap
    attachment = bench.work / "inline.bin"
    attachment.write_bytes(content)
    doc_id = asyncio.run(mtom_submit(bench, attachment))
    pid = bench.node.process.pid
    reset_peak_rss(pid)
    before = peak_rss_mib(pid)
    answers = asyncio.run(inline_volley(bench, doc_id, 32))
    growth = peak_rss_mib(pid) - before
    print(f"peak RSS growth under 32 inline fetches of {len(content) // MiB} MiB: {growth:.0f} MiB")
    served = [body for status, _, body in answers if status == 200]
    print(f"{len(served)} of {len(answers)} answered at once, the others told to ask again")
    assert {code for status, code, _ in answers if status != 200} <= {"NODE_UNAVAILABLE"}, answers[0][:2]
    assert served, "no fetch was answered"
    for body in served:
        inline = body.split(b"<gwx:content>")[1].split(b"</gwx:content>")[0]
        assert base64.b64decode(inline) == content
    # 32 answers of ~5 MiB each at once would be 160 MiB; the budget (48 MiB) bounds what is held.
    assert growth < 80, f"peak RSS grew by {growth:.0f} MiB"


async def fetch_inline_and_stay(bench: Bench, doc_id: str, sessions: list[aiohttp.ClientSession]) -> bytes:
    """One inline FetchDocument read whole on a connection of its own, which is then left open and idle
    (an OA system's HTTP client keeps its connections alive for the next call)."""
    data = soap_envelope(bench.token(BUREAU), "FetchDocument", f"<gwx:docId>{doc_id}</gwx:docId>")
    http = aiohttp.ClientSession(bench.url, timeout=aiohttp.ClientTimeout(total=120))
    sessions.append(http)
    async with http.post("/soap/v1/documents", data=data, headers=soap_headers("FetchDocument")) as r:
        assert r.status == 200, r.headers.get("X-Gwx-Error")
        return await r.read()


def test_an_inline_answer_sent_is_not_kept_by_its_idle_connection(bench):
    """aiohttp's server keeps the last response of a keep-alive connection until the next request on
    it (or the keep-alive timeout, 75 s): an answer whose bytes stayed in it would hold ~5 MiB per idle
    OA connection, outside the endpoint's budget (released once the answer is sent). Twelve inline
    fetches one after the other, each leaving its connection open: what is held is one answer's worth."""
    content = os.urandom(INLINE_ANSWER_MAX - 256 * 1024)
    attachment = bench.work / "idle.bin"
    attachment.write_bytes(content)
    doc_id = asyncio.run(mtom_submit(bench, attachment))
    pid = bench.node.process.pid

    async def twelve() -> None:
        sessions: list[aiohttp.ClientSession] = []
        try:
            for _ in range(12):
                assert len(await fetch_inline_and_stay(bench, doc_id, sessions)) > len(content)
            growth = peak_rss_mib(pid) - before
            print(f"peak RSS growth after 12 inline fetches on 12 idle connections: {growth:.0f} MiB")
            assert growth < 40, f"peak RSS grew by {growth:.0f} MiB: the answers stay with their connections"
        finally:
            for http in sessions:
                await http.close()
    reset_peak_rss(pid)
    before = peak_rss_mib(pid)
    asyncio.run(twelve())
