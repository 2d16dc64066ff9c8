"""OA push on two real nodes on loopback: how long from a document's arrival at the receiving node
to the OA's SOAP server having it (issue 9 §2's figure, until ``bench/adapters.py`` takes it in).

The city node sends N documents (one page, sealed) to 兰山区 on county-a, a few in flight at once;
county-a has an ``[[oa_push]]`` entry for 兰山区 pointing at the legacy OA of the tests
(``tests/adapters/oa_push/legacy_oa.py``: spyne on loopback in this process, its own WSDL, the
example mapping). For each document: arrival = ``received_at`` of county-a's inbox row (the
moment the receiver committed it), pushed = the moment the OA recorded the ReceiveGongwen call;
the figure is pushed − arrival, so the network hop between the nodes is not in it, and the
receiver's verification of the package (PAdES) is. Beside it, from the ``inbox.add`` audit event
(the document filed, what the adapters' journal follows) to the push: the adapter's own part.
Both clocks are this machine's. ``--quick``: 20 documents (else 200). The last line is one JSON object with
``oa_push_p50_s`` and ``oa_push_p99_s``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

# Run as a script, bench/ is sys.path[0] and this file would shadow the node package: replace it.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from node.config import CONFIG_NAME, load_config  # noqa: E402
from node.localnet import send_document, wait_for  # noqa: E402
from tests.adapters.oa_push.legacy_oa import LegacyOa  # noqa: E402  (spyne: in requirements.lock)
from tests.node.network.network_support import (  # noqa: E402
    A1,
    CITY,
    FAST_RETRY,
    connect_and_start,
    db_rows,
    new_network,
    notice_meta,
    units,
)

MAPPING = Path(__file__).resolve().parent.parent / "deploy" / "examples" / "oa-mapping.toml"


def configure(directory: Path, oa: LegacyOa) -> None:
    shutil.copy(MAPPING, directory / "oa-mapping.toml")
    with open(directory / CONFIG_NAME, "a", encoding="utf-8") as file:
        file.write(f'\n[[oa_push]]\nunit = "{A1}"\nwsdl = "{oa.wsdl_url}"\nreceived_operation = "ReceiveGongwen"\n'
                   'status_operation = "UpdateZhuangtai"\nmapping = "oa-mapping.toml"\n')
    load_config(directory)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace, base: Path) -> dict:
    fig: dict = {"bench": "adapters_oapush", "documents": args.documents, "inflight": args.inflight,
                 "cores": os.cpu_count(), "quick": args.quick}
    with LegacyOa() as oa:
        net = new_network(base)
        net.add_node("city", units(CITY), retry=FAST_RETRY)
        county = net.add_node("county-a", units(A1), retry=FAST_RETRY)
        configure(county.directory, oa)
        connect_and_start(net)
        try:
            started = time.monotonic()
            with ThreadPoolExecutor(args.inflight) as pool:
                ids = list(pool.map(lambda _: send_document(net.nodes["city"], CITY, notice_meta(CITY, [A1]),
                                                            net.body)["doc_id"], range(args.documents)))
            wait_for(lambda: all(d in oa.state.documents for d in ids), 120 + args.documents, 0.2,
                     what="every document at the OA")
            fig["total_s"] = time.monotonic() - started
            clerk = county.clerk(A1)
            inbox = {}
            after = None
            while True:
                page = clerk.get("/api/v1/inbox?limit=200" + (f"&after={after}" if after else ""))
                if not page:
                    break
                inbox.update({item["doc_id"]: item for item in page})
                after = page[-1]["id"]
            latencies = [oa.state.documents[d]["received"] - _epoch(inbox[d]["received_at"]) for d in ids]
            # The part after the node had verified and filed the document: from the inbox.add audit
            # event (its seq is in the event id the OA got) to the OA recording the push.
            seqs = {d: int(oa.state.documents[d]["sjbs"].rsplit("-", 1)[1]) for d in ids}
            audit_at = dict(db_rows(county, f"SELECT seq, at FROM audit WHERE seq IN ({','.join('?' * len(ids))})",
                                    list(seqs.values())))
            after_commit = [oa.state.documents[d]["received"] - _epoch(audit_at[seqs[d]]) for d in ids]
        finally:
            net.stop_all()
    fig["oa_calls"] = len(oa.state.calls)
    fig["oa_push_p50_s"] = statistics.median(latencies)
    fig["oa_push_p99_s"] = quantile(latencies, 0.99)
    fig["oa_push_max_s"] = max(latencies)
    fig["oa_push_after_commit_p50_s"] = statistics.median(after_commit)
    fig["oa_push_after_commit_p99_s"] = quantile(after_commit, 0.99)
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 documents")
    parser.add_argument("--documents", type=int, help="documents to send (200; quick 20)")
    parser.add_argument("--inflight", type=int, default=4, help="submissions in flight at once")
    args = parser.parse_args()
    args.documents = args.documents or (20 if args.quick else 200)
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="gwx-bench-oapush-", dir=os.environ.get("GWX_BENCH_DIR")) as tmp:
        fig = run(args, Path(tmp))
    rows = [("documents sent city → 兰山区", f"{fig['documents']}", f"{fig['inflight']} in flight"),
            ("SOAP calls the OA got", f"{fig['oa_calls']}", "one per document when nothing failed"),
            ("arrival → OA push, p50", f"{fig['oa_push_p50_s']:.3f} s", "receiver's inbox row → OA recorded it"),
            ("arrival → OA push, p99", f"{fig['oa_push_p99_s']:.3f} s", ""),
            ("arrival → OA push, max", f"{fig['oa_push_max_s']:.3f} s", ""),
            ("filed (inbox.add) → OA push, p50", f"{fig['oa_push_after_commit_p50_s']:.3f} s",
             "after verification: journal, outbox, SOAP"),
            ("filed (inbox.add) → OA push, p99", f"{fig['oa_push_after_commit_p99_s']:.3f} s", ""),
            ("all documents at the OA after", f"{fig['total_s']:.1f} s", "from the first submission")]
    print(f"\n{'figure':36} {'value':>12}  note")
    for label, value, note in rows:
        print(f"{label:36} {value:>12}  {note}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
