"""A whole city on one machine: 常德's network, and one sealed 1 MiB 通知 from the city to every unit.

The network (``--quick``: 1 city, 2 counties, 4 townships, 60 units; ``--medium``: 3 counties, 51
townships, 1,200 units, the 54 nodes below the city in one process):

* 1 city node, 9 county nodes (武陵区 … 津市市), 153 township nodes — 163 nodes, parent links
  forming the tree; 3,600 units: the city government office and city bureaus on the city node,
  each county's office and bureaus on its county node, each township government and its villages
  (村民委员会, hosted by their township) on the township's node.
* Real certificates: the root CA (常德市) issues the city node and its units' seals; each county
  has an intermediate CA of its own that issues its county node, its townships' nodes and all
  their units' seals (one CA per county keeps the CA's record small enough to issue ~400
  certificates quickly). Provisioning runs in a process pool, one county at a time per worker.
  Every seal shares one picture (drawing 3,600 seal pictures takes ten minutes); keys,
  certificates and seals are each unit's own.
* The signed network directory, built by ``gwx net build`` from a source file as a root operator
  does, installed on every node. ``--routing tree`` lists only the tree: the city reaches a
  township through its county, which relays without reading (and the township's 签收 comes back
  the same way). ``--routing direct`` (the default) also lists a direct link from the city to
  every node below its counties, so every envelope goes straight to its destination node: the
  baseline the relays are measured against.
* Real TLS between real node stores: the nodes run in ``--processes`` OS processes
  (:mod:`node.cohost`), the city alone in the first, each node with its own keys, SQLite store,
  peer listener and local API.

The exchange: the city government office sends one 通知 (a sealed PDF body and a 1 MiB
attachment of random bytes) to every other unit through its local API. A clerk script then, for
every node, waits until the document is in one of its units' inboxes and signs for (签收) it for
every unit of that node, each with that unit's own token, through the node's local API (48
requests in flight over the whole city; ``--clerks-per-node N``: N at each node, every node at
once). Measured:
``delivered_s`` (submission start → the last inbox's ``received_at``), ``signed_back_s`` (→ the
sender's tracking shows every recipient 已签收; its counts are polled every 0.25 s),
``origin_bytes`` (the city's ``gwx_peer_bytes_sent_total``) and ``origin_peers`` (how many nodes
it sent to) beside ``package_bytes`` × the city's ``child_links`` (its children in the tree: along
the tree one fan-out bundle goes to each, issue 8's aim is at most 1.2 × that), peak RSS and
CPU of every process (from its start, and ``exchange_cpu_s`` during the exchange alone; of it
``exchange_gc_s`` in the cyclic garbage collector, from a node's ``gwx_gc_seconds_total``; and
``driver_exchange_cpu_s``, this script's own: its clerks and polls share the cores), what
the notices coming back cost in envelopes: ``city_envelopes_in`` (what the city accepted, by
type) and ``relayed_envelopes`` (headers the counties took in custody), ``hops`` (per level of the
sending node: envelopes its next hops acknowledged, the requests that carried them, and the
counties' custody up and down), and the clerks' side:
``clerks_signed_s`` (→ the last 签收 taken by its own node), ``sign_for_p50_s`` (one 签收 as the
clerk waits for it) and ``sign_for_served_mean_s`` (as the nodes served it, their histogram).
``--sign-after-delivery`` holds every clerk until the document has reached every node (and splits each process's CPU there: ``delivery_cpu_s``, ``signing_cpu_s``)
(``first_signed_s`` then comes after ``delivered_s``): delivery alone, not sharing the cores with the
签收 of the nodes reached first; each process's ``signing_main_cpu_s`` is the event loop's thread's part of
its ``signing_cpu_s``, ``signing_sys_cpu_s`` the kernel's. ``--py-spy DIR`` records every node process
with py-spy during the exchange, each stack under its thread (``GWX_SPY_GIL=1``: only the thread
holding the GIL; ``--py-spy-signing`` with ``--sign-after-delivery``: the 签收 phase alone, ended
before this script reads any /metrics). ``--keep DIR`` keeps the
provisioned network in DIR and reuses it in the next run of the same size (new ports, fresh CRLs,
empty stores: :mod:`bench.network_city`), so that comparing two changes costs the exchange, not
minutes of key stretching; without it every run provisions anew.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository, not bench/, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import aiohttp

from bench.network_city import FULL, MEDIUM, OFFICE, QUICK, City, Shape, build_network, plan  # noqa: F401 (Shape, plan: tests)
from node.localnet import LocalNode, notice_pdf, send_document

MiB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The nodes' event loops lag under a city's load: a local API answer may take a minute, not forever.
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=300)
CLERKS_AT_ONCE = 48  # requests in flight to the local APIs, all nodes together


# ---- the exchange: one 通知 to every unit, signed for through each node's local API --------------
def notice_meta(to: list[str]) -> dict:
    return {"kind": "通知", "title": "关于做好冬季森林防火工作的通知", "doc_number": "常政办发〔2026〕17号",
            "issuers": [OFFICE], "signers": [], "to": to, "cc": [], "written_on": "2026-11-20", "urgency": None,
            "classification": "非密", "deadline": None, "copy_number": None, "printed_by": "常德市人民政府办公室",
            "printed_on": "2026-11-20", "note": None, "attachments_note": None, "id": None}


async def _clerks(city: City, doc_id: str, poll: float, deadline: float, seen: dict[str, str],
                  signed: list[float], signed_latency: list[float], per_node: int | None,
                  after_delivery: bool = False, on_everywhere=None) -> None:
    """For every node: wait until the document reaches one of its units, then 签收 for each unit
    (``signed``: when each 签收 was answered, monotonic; ``signed_latency``: how long each took).
    With ``after_delivery`` no clerk signs before the document has reached every node (delivery
    alone, not sharing the cores with the 签收 of the nodes it reached first); ``on_everywhere`` is then
    called once, when the last node has it (before any 签收).

    Requests in flight: CLERKS_AT_ONCE over the whole city, or with ``per_node`` that many at each
    node (its clerks), every node at once."""
    every = asyncio.Semaphore(CLERKS_AT_ONCE)
    limits = {n.node_id: asyncio.Semaphore(per_node) if per_node else every for n in city.nodes}
    latencies = signed_latency
    hosted = {n.node_id: [u["code"] for u in n.units if u["code"] != OFFICE] for n in city.nodes}
    connector = aiohttp.TCPConnector(limit=0 if per_node else 100)
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT, connector=connector) as session:
        async def call(node: LocalNode, unit: str, method: str, path: str) -> tuple[int, dict]:
            async with limits[node.node_id]:
                began = time.monotonic()
                async with session.request(method, node.ready["local_url"] + path,
                                           headers={"Authorization": f"Bearer {node.tokens['clerk-' + unit]}"},
                                           **({"json": {}} if method == "POST" else {})) as resp:
                    body = await resp.json(content_type=None)
                if method == "POST":
                    latencies.append(time.monotonic() - began)
                if resp.status not in (200, 404):
                    raise RuntimeError(f"{node.node_id} {method} {path} for {unit}: {resp.status} {body}")
                return resp.status, body

        everywhere = asyncio.Barrier(sum(1 for n in city.nodes if hosted[n.node_id])) if after_delivery else None

        async def clerk(node: LocalNode, units: list[str]) -> None:
            while (await call(node, units[0], "GET", f"/api/v1/inbox/{doc_id}"))[0] != 200:
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(poll)
            if everywhere is not None:
                try:
                    await asyncio.wait_for(everywhere.wait(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:  # some node never got it: the figures say so
                    return
                if on_everywhere is not None:
                    on_everywhere()
            async def sign_for(unit: str) -> None:  # every unit's clerk at once, as in a real city
                while time.monotonic() < deadline:
                    status, item = await call(node, unit, "POST", f"/api/v1/inbox/{doc_id}/sign-for")
                    if status == 200:
                        seen[unit] = item["received_at"]
                        signed.append(time.monotonic())
                        return
                    await asyncio.sleep(poll)  # not applied to this unit's inbox yet
            await asyncio.gather(*(sign_for(unit) for unit in units))

        await asyncio.gather(*(clerk(city.net.nodes[node_id], units) for node_id, units in hosted.items() if units))


async def _sender(city: City, doc_id: str, recipients: int, start: float, deadline: float, fig: dict) -> None:
    """Poll the sender's tracking until every recipient shows 已签收 (or one failed, or time is up).
    Its counts alone (``?recipients=false``: counted by the store, a few ms for 3,600; the whole
    list with each recipient's whereabouts was half the city's CPU), every 0.25 s."""
    node = city.net.nodes["city"]
    interval = 0.25
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        while time.monotonic() < deadline:
            async with session.get(f"{node.ready['local_url']}/api/v1/outbox/{doc_id}?recipients=false",
                                   headers={"Authorization": f"Bearer {node.tokens['clerk-' + OFFICE]}"}) as resp:
                counts = (await resp.json())["doc"]["counts"]
            fig["sender_counts"] = counts
            now = time.monotonic() - start
            if counts.get("delivered", 0) + counts.get("signed_for", 0) == recipients:
                fig.setdefault("delivered_ack_s", now)
            if counts.get("signed_for", 0) == recipients:
                fig["signed_back_s"] = now
                return
            if counts.get("failed"):
                raise RuntimeError(f"the sender shows failed recipients: {counts}")
            await asyncio.sleep(interval)


def exchange(city: City, work: Path, *, timeout: float, poll: float = 0.5, package_mib: float = 1.0,
             clerks_per_node: int | None = None, after_delivery: bool = False, on_signing=None,
             on_end=None) -> dict:
    """Send the 通知 to every unit but the sender, let the clerks sign for it; the figures.
    ``on_signing`` (with ``after_delivery``) is called once, when every node has it, before any 签收;
    ``on_end`` when every 签收 is back, before this script reads any node's /metrics."""
    fig: dict = {}
    node = city.net.nodes["city"]
    recipients = [u["code"] for n in city.nodes for u in n.units if u["code"] != OFFICE]
    body, attachment = work / "正文.pdf", work / "附件-森林防火责任区划图.bin"
    body.write_bytes(notice_pdf("关于做好冬季森林防火工作的通知", issuer="常德市人民政府办公室",
                                greeting="各区县（市）人民政府，市直各单位："))
    # The package (sealed body, attachment, metadata) about ``package_mib``: the attachment makes up the rest.
    attachment.write_bytes(os.urandom(max(0, int(package_mib * MiB) - body.stat().st_size - 104 * 1024)))
    bytes_before = _series(node, "gwx_peer_bytes_sent_total")
    started_at, start = dt.datetime.now(dt.UTC), time.monotonic()
    doc_id = send_document(node, OFFICE, notice_meta(recipients), body, [attachment], timeout=600)["doc_id"]
    fig["submit_s"] = time.monotonic() - start
    deadline = start + timeout
    seen: dict[str, str] = {}
    signed: list[float] = []
    latency: list[float] = []

    def every_node_has_it() -> None:  # the processes' CPU between delivery alone and the 签收 alone
        if "cpu_s_at_every_node" in fig:
            return
        at = process_figures(city.processes)
        fig["cpu_s_at_every_node"] = [p["cpu_s"] for p in at]
        fig["main_cpu_s_at_every_node"] = [p["main_cpu_s"] for p in at]
        fig["sys_cpu_s_at_every_node"] = [p["sys_cpu_s"] for p in at]
        if on_signing is not None:
            on_signing()

    async def both() -> None:
        await asyncio.gather(_clerks(city, doc_id, poll, deadline, seen, signed, latency, clerks_per_node,
                                     after_delivery, every_node_has_it),
                             _sender(city, doc_id, len(recipients), start, deadline, fig))
    asyncio.run(both())
    # Before any /metrics read below: each node's seal-expiry gauges parse its seals (4 % of the 54-node
    # process's 签收 phase in its GIL samples) — the bench's cost, not the exchange's.
    at_end = process_figures(city.processes)
    fig["cpu_s_at_end"], fig["main_cpu_s_at_end"] = [p["cpu_s"] for p in at_end], [p["main_cpu_s"] for p in at_end]
    fig["sys_cpu_s_at_end"] = [p["sys_cpu_s"] for p in at_end]
    if on_end is not None:
        on_end()
    fig.update(recipients=len(recipients), received=len(seen), signed_back=fig.get("sender_counts", {})
               .get("signed_for", 0))
    if signed:  # the clerks' side: when their 签收 was taken by their own node
        fig.update(first_signed_s=min(signed) - start, clerks_signed_s=max(signed) - start, clerks_signed_p50_s=sorted(signed)[len(signed) // 2] - start,
                   sign_for_p50_s=sorted(latency)[len(latency) // 2], sign_for_max_s=max(latency))
        served = [_histogram(city.net.nodes[n.node_id], "gwx_local_api_request_seconds", SIGN_FOR_ROUTE)
                  for n in city.nodes if n.level != "city"]
        fig["sign_for_served_mean_s"] = sum(s for s, _ in served) / max(1, sum(c for _, c in served))
    if seen:
        arrivals = sorted((dt.datetime.fromisoformat(t) - started_at).total_seconds() for t in seen.values())
        fig.update(first_delivered_s=arrivals[0], delivered_s=arrivals[-1],
                   delivered_p50_s=arrivals[len(arrivals) // 2])
    sent = {peer: n - bytes_before.get(peer, 0.0) for peer, n in _series(node, "gwx_peer_bytes_sent_total").items()}
    fig["origin_bytes"] = sum(sent.values())
    fig["origin_peer_ids"] = sorted(peer for peer, n in sent.items() if n > 0)
    fig["origin_peers"] = len(fig["origin_peer_ids"])
    one = next(n for n in city.nodes if n.node_id != "city")
    package = io.BytesIO()
    unit = one.units[0]["code"]
    fig["package_bytes"] = city.net.nodes[one.node_id].clerk(unit).download(f"/api/v1/inbox/{doc_id}/package",
                                                                            package)
    fig["doc_id"] = doc_id
    return fig


def _series(node: LocalNode, name: str, label: str = "peer") -> dict[str, float]:
    """A counter's series on the node's /metrics, by their ``label`` label."""
    text = node.client("operator").get("/metrics")
    text = text.decode() if isinstance(text, bytes) else text
    return {line.split(f'{label}="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(name + "{") and f'{label}="' in line}


SIGN_FOR_ROUTE = "/api/v1/inbox/{doc_id}/sign-for"


def _histogram(node: LocalNode, name: str, route: str) -> tuple[float, int]:
    """A histogram's sum and count for one route on the node's /metrics."""
    text = node.client("operator").get("/metrics")
    text = text.decode() if isinstance(text, bytes) else text
    label = f'{{route="{route}"}} '
    found = {line.split("{", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if label in line}
    return found.get(name + "_sum", 0.0), int(found.get(name + "_count", 0))


def envelope_counts(city: City) -> dict:
    """How many envelopes the notices coming back cost: what the city accepted, by type, and what
    the counties took in custody for others (each relayed header is one envelope of one hop)."""
    received = _series(city.net.nodes["city"], "gwx_envelopes_received_total", "type")
    relayed = sum(sum(_series(city.net.nodes[n.node_id], "gwx_envelopes_relayed_total", "hop").values())
                  for n in city.nodes if n.level == "county")
    return {"city_envelopes_in": {k: int(v) for k, v in sorted(received.items())}, "relayed_envelopes": int(relayed)}


def hop_counts(city: City) -> dict:
    """Per level of the sending node (township, county, city), over the whole exchange: the envelopes
    its next hops acknowledged, the requests (batches) that took them, and the counties' custody split
    into up (for the city) and down. Counts, not times: the same on a loaded machine."""
    hops: dict = {}
    for n in city.nodes:
        text = city.net.nodes[n.node_id].client("operator").get("/metrics")
        text = text.decode() if isinstance(text, bytes) else text
        values = [(line.split(" ", 1)[0], float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                  if line.startswith(("gwx_envelopes_sent_total{", "gwx_send_batch_seconds_count",
                                      "gwx_envelopes_relayed_total{"))]
        level = hops.setdefault(n.level, {"nodes": 0, "envelopes_sent": 0, "requests": 0})
        level["nodes"] += 1
        for name, value in values:
            if name.startswith("gwx_envelopes_sent_total"):
                level["envelopes_sent"] += int(value)
            elif name.startswith("gwx_send_batch_seconds_count"):
                level["requests"] += int(value)
            else:
                way = "relayed_up" if f'hop="{n.parent}"' in name else "relayed_down"
                level[way] = level.get(way, 0) + int(value)
    return hops


def process_figures(processes: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in processes:
        status = Path(f"/proc/{p.pid}/status").read_text().splitlines()
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        stat = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        main = Path(f"/proc/{p.pid}/task/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()  # the loop's thread
        out.append({"pid": p.pid, "peak_rss_mib": round(hwm / 1024, 1),
                    "cpu_s": round((int(stat[11]) + int(stat[12])) / CLK_TCK, 2),
                    "sys_cpu_s": round(int(stat[12]) / CLK_TCK, 2),  # of it in the kernel (fsync, sockets, epoll)
                    "main_cpu_s": round((int(main[11]) + int(main[12])) / CLK_TCK, 2)})
    return out


def gc_seconds(city: City) -> list[float]:
    """CPU seconds each process has spent in cyclic garbage collections (one node's /metrics per
    process: the figure is the process's)."""
    return [sum(_series(next(n for n in city.net.nodes.values() if n.process is p), "gwx_gc_seconds_total",
                        "generation").values()) for p in city.processes]


def profilers(out: str | None, processes: list[subprocess.Popen], *, rate: int = 100,
              wait: bool = True) -> list[subprocess.Popen]:
    """``py-spy record`` of every node process (collapsed stacks in ``out``/cohost-N.txt, each
    stack under its thread: ``--threads``); with ``GWX_SPY_GIL=1`` only the thread holding the GIL
    (what uses the process's one core for Python). ``wait``: a second for them to attach."""
    if not out:
        return []
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spies = [subprocess.Popen([spy, "record", "-p", str(p.pid), "-o", str(Path(out) / f"cohost-{i}.txt"),
                               "--format", "raw", "-r", str(rate), "--nonblocking", "--threads",
                               *(["--gil"] if os.environ.get("GWX_SPY_GIL") else [])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for i, p in enumerate(processes)]
    if wait:
        time.sleep(1.0)  # attached before the submit
    return spies


def stop_profilers(spies: list[subprocess.Popen]) -> None:
    """Each profiler told to write its file, waited for (at the end of the exchange, before any
    /metrics read: those are the bench's, not the exchange's)."""
    for spy in spies:
        spy.send_signal(signal.SIGINT)  #: py-spy writes its file and exits
    for spy in spies:
        spy.wait(timeout=60)


# ---- report ---------------------------------------------------------------------------------------
def _pacing(fig: dict) -> str:
    per_node = fig.get("clerks_per_node")
    pacing = f"{per_node} requests in flight per node" if per_node else f"{CLERKS_AT_ONCE} requests in flight in all"
    return pacing + ("; after every node had it" if fig.get("sign_after_delivery") else "")


def table(fig: dict) -> None:
    per = fig["processes"]
    rows = [
        ("nodes / units / recipients", f"{fig['nodes']} / {fig['units']:,} / {fig['recipients']:,}",
         f"{fig['counties']} counties, {fig['townships']} townships; routing {fig['routing']}"),
        ("provision (certificates, seals, tokens)", f"{fig['provision_s']:.1f} s",
         "copied from the kept network (--keep)" if fig["reused"] else f"{fig['workers']} workers, {fig['cas']} CAs"),
        ("directory (gwx net build)", f"{fig['directory_s']:.1f} s", f"{fig['directory_bytes'] / 1024:.0f} KiB"),
        ("start every node", f"{fig['start_s']:.1f} s", f"{len(per)} processes"),
        ("submit (seal, package, queue)", f"{fig['submit_s']:.1f} s", "city's local API"),
        ("first unit has it", f"{fig.get('first_delivered_s', float('nan')):.1f} s", "inbox received_at"),
        ("every unit has it (delivered_s)", f"{fig.get('delivered_s', float('nan')):.1f} s",
         f"{fig['received']:,} of {fig['recipients']:,} received; median {fig.get('delivered_p50_s', 0):.1f} s"),
        ("every clerk has signed (local API)", f"{fig.get('clerks_signed_s', float('nan')):.1f} s",
         f"median {fig.get('clerks_signed_p50_s', float('nan')):.1f} s"),
        ("one 签收 at the local API, p50 / max", f"{fig.get('sign_for_p50_s', float('nan')):.2f} s",
         f"max {fig.get('sign_for_max_s', float('nan')):.1f} s; served in {fig.get('sign_for_served_mean_s', 0):.3f} s"
         f" on average ({_pacing(fig)})"),
        ("every 签收 back (signed_back_s)", f"{fig.get('signed_back_s', float('nan')):.1f} s",
         f"{fig['signed_back']:,} of {fig['recipients']:,} 已签收 at the sender"),
        ("bytes sent by the origin", f"{fig['origin_bytes'] / MiB:.1f} MiB",
         f"{fig['origin_bytes'] / fig['package_bytes']:.1f} × the package, to {fig['origin_peers']} nodes"),
        ("package × child links", f"{fig['package_bytes'] * fig['child_links'] / MiB:.1f} MiB",
         f"{fig['package_bytes'] / MiB:.2f} MiB × {fig['child_links']} (aim: origin ≤ 1.2 ×)"),
        ("peak RSS per process", " / ".join(f"{p['peak_rss_mib']:.0f}" for p in per) + " MiB",
         "the city's first"),
        ("CPU per process", " / ".join(f"{p['cpu_s']:.0f}" for p in per) + " s", "from its start"),
        ("CPU per process during the exchange", " / ".join(f"{p['exchange_cpu_s']:.0f}" for p in per) + " s",
         f"{sum(p['exchange_cpu_s'] for p in per):.0f} s in all, from the submit to the end"),
        *([("  until every node had it / then the 签收", " / ".join(f"{p['delivery_cpu_s']:.0f}+{p['signing_cpu_s']:.0f}"
                                                                     for p in per) + " s",
            f"{sum(p['delivery_cpu_s'] for p in per):.0f} + {sum(p['signing_cpu_s'] for p in per):.0f} s in all "
            f"(--sign-after-delivery)")] if "delivery_cpu_s" in per[0] else []),
        ("CPU of this script's clerks and polls", f"{fig['driver_exchange_cpu_s']:.1f} s",
         "during the exchange, on the same cores"),
        ("of it in the garbage collector", " / ".join(f"{p['exchange_gc_s']:.2f}" for p in per) + " s",
         "cyclic collections (gwx_gc_seconds_total)"),
        ("envelopes the city accepted", f"{sum(fig['city_envelopes_in'].values()):,}",
         ", ".join(f"{k} {v:,}" for k, v in fig["city_envelopes_in"].items())),
        ("envelopes relayed by the counties", f"{fig['relayed_envelopes']:,}", "both ways, one per header and hop"),
        *((f"  sent by the {level} nodes / requests", f"{h['envelopes_sent']:,} / {h['requests']:,}",
           f"{h['nodes']} nodes; relayed up {h.get('relayed_up', 0):,}, down {h.get('relayed_down', 0):,}"
           if "relayed_up" in h or "relayed_down" in h else f"{h['nodes']} nodes")
          for level, h in fig["hops"].items()),
    ]
    print()
    print(f"{'figure':40} {'value':>20}  note")
    for label, value, note in rows:
        print(f"{label:40} {value:>20}  {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 city, 2 counties, 4 townships, 60 units")
    parser.add_argument("--medium", action="store_true",
                        help="1 city, 3 counties, 51 townships, 1,200 units; the 54 nodes below the city in one "
                             "process (as each of the full run's three)")
    parser.add_argument("--routing", choices=["direct", "tree"], default="direct",
                        help="tree: parent/child links only, counties relay; direct (default): the city also "
                             "links to every township")
    parser.add_argument("--processes", type=int, help="OS processes hosting the nodes (the city alone in one; "
                                                      "default 4, quick 3, medium 2)")
    parser.add_argument("--timeout", type=float, help="seconds to wait for every 签收 (default 420, quick 120)")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between a clerk's looks at an inbox")
    parser.add_argument("--sign-after-delivery", action="store_true",
                        help="no clerk signs before every node has the document (delivery alone); splits each "
                             "process's CPU there (delivery_cpu_s, signing_cpu_s)")
    parser.add_argument("--py-spy", metavar="DIR",
                        help="record every node process with py-spy during the exchange (DIR/cohost-N.txt)")
    parser.add_argument("--py-spy-signing", action="store_true",
                        help="with --sign-after-delivery: record the 签收 phase alone (from when every node has it)")
    parser.add_argument("--py-spy-rate", type=int, default=100, metavar="HZ", help="py-spy's samples a second")
    parser.add_argument("--keep", metavar="DIR", type=Path,
                        help="keep the provisioned network (keys, certificates, seals, tokens) in DIR and, when DIR "
                             "already holds one of this size, reuse it instead of provisioning: new ports, fresh "
                             "CRLs and empty stores every run")
    parser.add_argument("--clerks-per-node", type=int, metavar="N",
                        help=f"the clerks' requests in flight at each node, every node at once (default: "
                             f"{CLERKS_AT_ONCE} over the whole city)")
    args = parser.parse_args()
    shape = QUICK if args.quick else MEDIUM if args.medium else FULL
    processes = args.processes or (3 if args.quick else 2 if args.medium else 4)
    fig: dict = {"bench": "network", "quick": args.quick, "medium": args.medium, "routing": args.routing,
                 "cores": os.cpu_count(),
                 "nodes": 1 + shape.counties + shape.townships, "units": shape.units, "counties": shape.counties,
                 "townships": shape.townships, "child_links": shape.counties, "cas": 1 + shape.counties,
                 "workers": 2, "clerks_per_node": args.clerks_per_node,
                 "sign_after_delivery": args.sign_after_delivery}
    with tempfile.TemporaryDirectory(prefix="gwx-bench-network-", dir=os.environ.get("GWX_BENCH_DIR")) as tmp:
        base = Path(tmp)
        city = build_network(base / "net", shape, routing=args.routing, processes=processes, keep=args.keep)
        try:
            fig.update(city.figures)
            print(f"{fig['nodes']} nodes up in {len(city.processes)} processes: "
                  f"{'reused' if fig['reused'] else 'provision'} {fig['provision_s']:.0f} s, "
                  f"directory {fig['directory_s']:.0f} s, start {fig['start_s']:.0f} s", flush=True)
            signing_only = args.py_spy_signing and args.sign_after_delivery
            spies = [] if signing_only else profilers(args.py_spy, city.processes, rate=args.py_spy_rate)

            def on_signing() -> None:  # --py-spy-signing: the 签收 phase alone
                if signing_only:
                    spies.extend(profilers(args.py_spy, city.processes, rate=args.py_spy_rate, wait=False))
            started, gc_before = process_figures(city.processes), gc_seconds(city)
            driver_before = time.process_time()
            fig.update(exchange(city, base, timeout=args.timeout or (120 if args.quick else 420), poll=args.poll,
                                clerks_per_node=args.clerks_per_node, after_delivery=args.sign_after_delivery,
                                on_signing=on_signing, on_end=lambda: stop_profilers(spies)))
            # This script's clerks and tracking polls share the two cores with the nodes: their CPU too.
            fig["driver_exchange_cpu_s"] = round(time.process_time() - driver_before, 1)
            fig.update(envelope_counts(city))
            fig["hops"] = hop_counts(city)
            fig["processes"] = process_figures(city.processes)
            ended, main_ended, sys_ended = (fig.pop("cpu_s_at_end"), fig.pop("main_cpu_s_at_end"),
                                            fig.pop("sys_cpu_s_at_end"))
            for before, after, end, gc_was, gc_now in zip(started, fig["processes"], ended, gc_before,
                                                          gc_seconds(city), strict=True):
                after["exchange_cpu_s"] = round(end - before["cpu_s"], 1)
                after["exchange_gc_s"] = round(gc_now - gc_was, 2)
            for before, after, at, end in zip(started, fig["processes"], fig.pop("cpu_s_at_every_node", ()), ended,
                                              strict=False):
                after["delivery_cpu_s"] = round(at - before["cpu_s"], 1)  # --sign-after-delivery only
                after["signing_cpu_s"] = round(end - at, 1)
            for after, at, end, sys_at, sys_end in zip(fig["processes"], fig.pop("main_cpu_s_at_every_node", ()),
                                                       main_ended, fig.pop("sys_cpu_s_at_every_node", ()), sys_ended,
                                                       strict=False):
                after["signing_main_cpu_s"] = round(end - at, 2)  # of it the event loop's thread
                after["signing_sys_cpu_s"] = round(sys_end - sys_at, 2)  # of it in the kernel, all threads
        except Exception:
            for i, p in enumerate(city.processes):
                log = base / "net" / f"cohost-{i}.log"
                tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                print(f"--- process {i} (pid {p.pid}) log\n" + "\n".join(tail), file=sys.stderr)
            raise
        finally:
            city.net.stop_all()
    # The aim (issue 8): origin_bytes ≤ 1.2 × package_bytes × child_links (one copy per next hop).
    fig["origin_over_package_links"] = fig["origin_bytes"] / (fig["package_bytes"] * fig["child_links"])
    fig["origin_over_package"] = fig["origin_bytes"] / fig["package_bytes"]
    table(fig)
    complete = fig["received"] == fig["recipients"] and fig["signed_back"] == fig["recipients"]
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()
                      if k not in ("sender_counts", "origin_peer_ids")}, ensure_ascii=False))
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
