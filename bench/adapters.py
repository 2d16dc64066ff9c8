"""The adapters on a running node (``node.localnet``): what an OA system calling or called by gwx gets.

One real node process hosts two units (a city office that sends, a bureau that receives: local
delivery, so a submission includes its delivery into the bureau's inbox). Each figure is one
function in :data:`MEASUREMENTS`, taking the :class:`Bench` and filling the figures; adding a figure
is adding a function. Measured here:

1. ``rates`` — small documents (one sealed page, a 1 KiB attachment) submitted through the SOAP
   endpoint (SOAP 1.1, inline base64, WS-Security UsernameToken) and, in the same run, through the
   local API (multipart), a few requests in flight each, in five rounds taking turns; then SOAP
   FetchDocument of what arrived
   (body and attachment inline, verification report). Clients are plain aiohttp with envelopes
   written once, so the figures are the node's, not a SOAP library's.
2. ``mtom`` — one 200 MiB attachment (random bytes) submitted over SOAP as MTOM, streamed from disk
   by the client, after a restart of the node so its peak RSS (``VmHWM``) is this submission's:
   seconds until the answer, and the peak against the RSS the node started with.
3. ``webhooks`` — arrival of a document at a second node → a verifying webhook receiver has its
   event, p50/p99 (:mod:`bench.adapters_webhook`, two nodes of their own).
4. ``oa_push`` — arrival of a document at a second node → the unit's OA (the tests' legacy OA, a
   spyne SOAP server) has the push, p50/p99 (:mod:`bench.adapters_oapush`, two nodes of their own).
5. ``oa_push_memory`` — one 200 MiB attachment pushed to an OA (the legacy OA reading it as a
   stream), by a node restarted just before so its peak RSS is the push's
   (``oa_push_200mib_peak_rss_mb``, :mod:`tests.adapters.oa_push.push_memory`, a node of its own).

``--quick``: 100 documents per rate instead of 1,000 (the MTOM attachment stays 200 MiB), 20
webhook and OA push documents instead of 200, and a 64 MiB push (``oa_push_64mib_peak_rss_mb``).
The table is for people; the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, bench/ is sys.path[0] and this file would shadow the node package: replace it.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import aiohttp  # noqa: E402

from node.localnet import LocalNetwork, LocalNode, notice_pdf  # noqa: E402
from pki.unit_code import make_unit_code  # noqa: E402

OFFICE = make_unit_code("11371300MB0000001")
BUREAU = make_unit_code("11371300MB0000002")
UNITS = [{"code": OFFICE, "name": "临沂市人民政府办公室"}, {"code": BUREAU, "name": "临沂市财政局"}]
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
GWX = "urn:gwx:oa:v1"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
ENDPOINT = "/soap/v1/documents"
MiB = 1024 * 1024
CHUNK = MiB
ROUNDS = 5  # submission rounds, SOAP and local API taking turns


@dataclass
class Bench:
    net: LocalNetwork
    node: LocalNode
    work: Path
    quick: bool
    inflight: int
    documents: int
    mtom_mib: int = 200
    oa_push_mib: int = 200
    pdf: bytes = field(default_factory=notice_pdf)
    received: list[str] = field(default_factory=list)  # doc ids in the bureau's inbox

    @property
    def url(self) -> str:
        return self.node.ready["local_url"]

    def token(self, unit: str) -> str:
        return self.node.tokens[f"clerk-{unit}"]


_serial = iter(range(1, 10**9))


def document_meta(title: str) -> dict:
    n = next(_serial)
    return {"kind": "通知", "title": f"{title}（第{n}号）", "doc_number": f"临政办发〔2026〕{n}号", "issuers": [OFFICE],
            "signers": [], "to": [BUREAU], "cc": [], "written_on": "2026-11-20", "urgency": None,
            "classification": "非密", "deadline": None, "copy_number": None, "printed_by": "临沂市人民政府办公室",
            "printed_on": "2026-11-20", "note": None, "attachments_note": None, "id": None}


def soap_envelope(token: str, operation: str, children: str) -> bytes:
    security = (f'<wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken><wsse:Username>bench</wsse:Username>'
                f"<wsse:Password>{token}</wsse:Password></wsse:UsernameToken></wsse:Security>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP11}" xmlns:gwx="{GWX}">'
            f"<soap:Header>{security}</soap:Header><soap:Body><gwx:{operation}>{children}</gwx:{operation}>"
            "</soap:Body></soap:Envelope>").encode()


def soap_headers(operation: str) -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{GWX}#{operation}"'}


def submit_children(meta: dict, body: bytes, attachment: bytes | None) -> str:
    text = json.dumps(meta, ensure_ascii=False).replace("&", "&amp;").replace("<", "&lt;")
    out = f"<gwx:metaJson>{text}</gwx:metaJson><gwx:body>{base64.b64encode(body).decode()}</gwx:body>"
    if attachment is not None:
        out += (f"<gwx:attachment><gwx:name>说明.txt</gwx:name><gwx:content>{base64.b64encode(attachment).decode()}"
                "</gwx:content></gwx:attachment>")
    return out


def doc_id_of(answer: bytes) -> str:
    start = answer.index(b"<gwx:docId>") + len(b"<gwx:docId>")
    return answer[start:answer.index(b"</gwx:docId>", start)].decode()


async def at_rate(n: int, inflight: int, one: Callable[[int], object]) -> float:
    """Run ``one(i)`` for i < n, ``inflight`` at a time; requests per second."""
    limit = asyncio.Semaphore(inflight)

    async def guarded(i: int):
        async with limit:
            return await one(i)
    started = time.perf_counter()
    await asyncio.gather(*(guarded(i) for i in range(n)))
    return n / (time.perf_counter() - started)


# ---- measurement 1: SOAP and local API rates --------------------------------------------------
async def _rates(bench: Bench, fig: dict) -> None:
    note = os.urandom(1024)
    office, bureau = bench.token(OFFICE), bench.token(BUREAU)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(bench.url, timeout=timeout) as http:
        async def soap_submit(i: int) -> None:
            data = soap_envelope(office, "SubmitDocument", submit_children(document_meta("关于报送统计数据的通知"),
                                                                           bench.pdf, note))
            async with http.post(ENDPOINT, data=data, headers=soap_headers("SubmitDocument")) as r:
                answer = await r.read()
                assert r.status == 200, answer[:500]
                bench.received.append(doc_id_of(answer))

        async def api_submit(i: int) -> None:
            form = aiohttp.FormData()
            form.add_field("meta", json.dumps(document_meta("关于报送统计数据的通知"), ensure_ascii=False),
                           content_type="application/json")
            form.add_field("body", bench.pdf, filename="body.pdf", content_type="application/pdf")
            form.add_field("attachment", note, filename="说明.txt", content_type="application/octet-stream")
            async with http.post("/api/v1/documents", data=form, headers={"Authorization": f"Bearer {office}"}) as r:
                assert r.status == 201, await r.text()
                bench.received.append((await r.json())["doc_id"])

        async def soap_fetch(i: int) -> None:
            doc_id = bench.received[i % len(bench.received)]
            data = soap_envelope(bureau, "FetchDocument", f"<gwx:docId>{doc_id}</gwx:docId>")
            async with http.post(ENDPOINT, data=data, headers=soap_headers("FetchDocument")) as r:
                answer = await r.read()
                assert r.status == 200 and b"<gwx:body>" in answer, answer[:500]

        await soap_submit(-1)  # warm: first seal, first connection
        # In alternating rounds, so a busy moment of the machine (or a store growing) weighs on both.
        seconds = {"soap": 0.0, "api": 0.0}
        per_round = max(1, bench.documents // ROUNDS)
        for _ in range(ROUNDS):
            for name, one in (("soap", soap_submit), ("api", api_submit)):
                seconds[name] += per_round / await at_rate(per_round, bench.inflight, one)
        fig["soap_submit_per_s"] = per_round * ROUNDS / seconds["soap"]
        fig["api_submit_per_s"] = per_round * ROUNDS / seconds["api"]
        fig["soap_fetch_per_s"] = await at_rate(bench.documents, bench.inflight, soap_fetch)
    fig["rate_documents"] = max(1, bench.documents // ROUNDS) * ROUNDS
    fig["rate_inflight"] = bench.inflight


def rates(bench: Bench, fig: dict) -> list[tuple[str, str, str]]:
    asyncio.run(_rates(bench, fig))
    load = f"{fig['rate_documents']:,} documents, {fig['rate_inflight']} in flight"
    return [("SOAP SubmitDocument (inline, UsernameToken)", f"{fig['soap_submit_per_s']:.1f} /s", load),
            ("local API POST /api/v1/documents", f"{fig['api_submit_per_s']:.1f} /s", "same run, same documents"),
            ("SOAP FetchDocument (body + attachment inline)", f"{fig['soap_fetch_per_s']:.1f} /s", load)]


# ---- measurement 2: 200 MiB over MTOM --------------------------------------------------------
def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


async def mtom_submit(bench: Bench, attachment: Path) -> str:
    boundary = "gwx-bench-" + os.urandom(8).hex()
    xml = soap_envelope(bench.token(OFFICE), "SubmitDocument", submit_children(
        document_meta("关于报送安全生产检查录像的函"), bench.pdf, None).replace(
        "</gwx:body>", "</gwx:body><gwx:attachment><gwx:name>现场检查录像.mp4</gwx:name><gwx:content>"
        '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:video@bench"/>'
        "</gwx:content></gwx:attachment>"))

    async def body():
        yield (f'--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type="text/xml"\r\n'
               f"Content-ID: <root@bench>\r\n\r\n").encode() + xml
        yield (f"\r\n--{boundary}\r\nContent-Type: video/mp4\r\nContent-Transfer-Encoding: binary\r\n"
               "Content-ID: <video@bench>\r\n\r\n").encode()
        with open(attachment, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f'multipart/related; type="application/xop+xml"; start="<root@bench>"; '
                               f'start-info="text/xml"; boundary="{boundary}"',
               "SOAPAction": f'"{GWX}#SubmitDocument"'}
    async with aiohttp.ClientSession(bench.url, timeout=aiohttp.ClientTimeout(total=3600)) as http, \
            http.post(ENDPOINT, data=body(), headers=headers) as r:
        answer = await r.read()
        assert r.status == 200, answer[:500]
        return doc_id_of(answer)


async def check_received(bench: Bench, doc_id: str, size: int) -> None:
    """The bureau has the document, verified, with the attachment of ``size`` bytes."""
    data = soap_envelope(bench.token(BUREAU), "FetchDocument",
                         f"<gwx:docId>{doc_id}</gwx:docId><gwx:withContent>false</gwx:withContent>")
    async with aiohttp.ClientSession(bench.url) as http, \
            http.post(ENDPOINT, data=data, headers=soap_headers("FetchDocument")) as r:
        answer = await r.read()
    assert r.status == 200 and b"<gwx:verified>true</gwx:verified>" in answer, answer[:500]
    report = answer.split(b"<gwx:verificationJson>")[1].split(b"</gwx:verificationJson>")[0]
    assert f'"size": {size}'.encode() in report, report[:500]


def mtom(bench: Bench, fig: dict) -> list[tuple[str, str, str]]:
    attachment = bench.work / "现场检查录像.mp4"
    with open(attachment, "wb") as f:
        for _ in range(bench.mtom_mib):
            f.write(os.urandom(MiB))
    bench.net.stop(bench.node)  # a fresh process: its VmHWM is this submission's alone
    bench.net.start(bench.node)
    fig["mtom_start_rss_mb"] = peak_rss_mib(bench.node.process.pid)
    started = time.perf_counter()
    bench.received.append(asyncio.run(mtom_submit(bench, attachment)))
    fig["mtom_submit_s"] = time.perf_counter() - started
    asyncio.run(check_received(bench, bench.received[-1], bench.mtom_mib * MiB))
    fig[f"mtom_{bench.mtom_mib}mib_peak_rss_mb"] = peak_rss_mib(bench.node.process.pid)
    fig["mtom_mib"] = bench.mtom_mib
    attachment.unlink()
    return [(f"SOAP MTOM submit, {bench.mtom_mib} MiB attachment", f"{fig['mtom_submit_s']:.1f} s",
             f"{bench.mtom_mib / fig['mtom_submit_s']:.0f} MiB/s, sealed and in the inbox"),
            ("  node peak RSS (VmHWM)", f"{fig[f'mtom_{bench.mtom_mib}mib_peak_rss_mb']:.0f} MiB",
             f"{fig['mtom_start_rss_mb']:.0f} MiB at start")]


def _latency(bench: Bench, fig: dict, key: str, what: str, measure) -> list[tuple[str, str, str]]:
    """A latency measured on nodes of its own (``measure(base, documents)`` → figures named
    ``{key}_p50_s``, ``{key}_p99_s`` and ``{key}_after_inbox_…``): its figures and two table rows."""
    documents = min(bench.documents, 20) if bench.quick else 200
    fig.update(measure(bench.work / key, documents))
    return [(f"{what}, arrival → delivered ({documents} docs)", f"{fig[f'{key}_p50_s']:.3f} s",
             f"p50; p99 {fig[f'{key}_p99_s']:.3f} s"),
            ("  of which the adapter's own (inbox row → delivered)", f"{fig[f'{key}_after_inbox_p50_s']:.3f} s",
             f"p50; p99 {fig[f'{key}_after_inbox_p99_s']:.3f} s")]


def webhooks(bench: Bench, fig: dict) -> list[tuple[str, str, str]]:
    from bench.adapters_webhook import measure_webhooks

    return _latency(bench, fig, "webhook", "webhook to a verifying receiver", measure_webhooks)


def oa_push(bench: Bench, fig: dict) -> list[tuple[str, str, str]]:
    from bench.adapters_oapush import measure_oa_push

    return _latency(bench, fig, "oa_push", "OA push, the OA has it", measure_oa_push)


def oa_push_memory(bench: Bench, fig: dict) -> list[tuple[str, str, str]]:
    from tests.adapters.oa_push.push_memory import push_large_attachment

    mib = bench.oa_push_mib
    (bench.work / "oa_push_memory").mkdir()
    run = push_large_attachment(bench.work / "oa_push_memory", mib * MiB)
    assert run["received"]["fj"][0][1:] == (run["sha256"], mib * MiB), "the OA did not get the attachment whole"
    fig[f"oa_push_{mib}mib_peak_rss_mb"] = run["peak_rss_mb"]
    fig["oa_push_memory_start_rss_mb"], fig["oa_push_memory_s"] = run["start_rss_mb"], run["push_s"]
    return [(f"OA push, {mib} MiB attachment (streamed)", f"{run['push_s']:.1f} s", "restart → the OA has it whole"),
            ("  node peak RSS (VmHWM)", f"{run['peak_rss_mb']:.0f} MiB", f"{run['start_rss_mb']:.0f} MiB at start")]


# Each takes the bench and the figures, adds its figures, returns table rows (label, value, note).
MEASUREMENTS: dict[str, Callable[[Bench, dict], list[tuple[str, str, str]]]] = {
    "rates": rates, "mtom": mtom, "webhooks": webhooks, "oa_push": oa_push, "oa_push_memory": oa_push_memory}


def start(base: Path) -> tuple[LocalNetwork, LocalNode]:
    net = LocalNetwork(base)
    node = net.add_node("city", UNITS)
    net.connect_all()
    net.start(node)
    return net, node


def run(base: Path, args: argparse.Namespace, only: list[str]) -> tuple[dict, list[tuple[str, str, str]]]:
    net, node = start(base / "net")
    bench = Bench(net, node, base, args.quick, args.inflight, args.documents, args.mtom_mib, args.oa_push_mib)
    fig: dict = {"bench": "adapters", "quick": args.quick, "cores": os.cpu_count()}
    rows: list[tuple[str, str, str]] = []
    try:
        for name in only:
            rows += MEASUREMENTS[name](bench, fig)
            print(f"after {name}: " + json.dumps(rounded(fig), ensure_ascii=False), flush=True)
    except Exception:
        print(f"--- node log\n{net.log_tail(node, 30)}", file=sys.stderr)
        raise
    finally:
        net.stop_all()
    return fig, rows


def rounded(fig: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 documents per rate instead of 1,000")
    parser.add_argument("--documents", type=int, help="documents per rate (1,000; quick 100)")
    parser.add_argument("--inflight", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--mtom-mib", type=int, default=200, help="size of the MTOM attachment (MiB)")
    parser.add_argument("--oa-push-mib", type=int, help="size of the attachment pushed to an OA (MiB; 200, quick 64)")
    parser.add_argument("--only", default=",".join(MEASUREMENTS),
                        help=f"comma-separated measurements to run: {', '.join(MEASUREMENTS)}")
    args = parser.parse_args()
    args.documents = args.documents or (100 if args.quick else 1000)
    args.oa_push_mib = args.oa_push_mib or (64 if args.quick else 200)
    only = [name for name in args.only.split(",") if name]
    unknown = [name for name in only if name not in MEASUREMENTS]
    if unknown:
        parser.error(f"unknown measurement {unknown[0]}; known: {', '.join(MEASUREMENTS)}")
    with tempfile.TemporaryDirectory(prefix="gwx-bench-adapters-", dir=os.environ.get("GWX_BENCH_DIR")) as tmp:
        fig, rows = run(Path(tmp), args, only)
    print()
    print(f"{'figure':48} {'value':>12}  note")
    for label, value, note in rows:
        print(f"{label:48} {value:>12}  {note}")
    print(json.dumps(rounded(fig), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
