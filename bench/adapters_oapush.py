"""OA push latency: from a document's arrival at the node to the unit's OA having it over SOAP.

Two real nodes on loopback (``node.localnet``): the city sends N sealed 通知 (``--quick``: 20;
default 200), one every ``--interval`` seconds (0.25), to 兰山区 on county-a; county-a has an
``[[oa_push]]`` entry for 兰山区 pointing at the legacy OA of the tests
(``tests/adapters/oa_push/legacy_oa.py``: spyne on loopback in this process, its own WSDL, the
example mapping), which notes when it recorded each ReceiveGongwen call.

Measured per document, from county-a's own records (read-only from its database), with the same
definitions as ``bench/adapters_webhook.py``:

* ``oa_push_p50_s`` / ``oa_push_p99_s`` — the envelope's acceptance at county-a (its ``received``
  row: the document has arrived at the node) → the OA recorded the push. It includes
  county-a's processing of the document (PAdES validation, the inbox row) and the adapter's
  fan-out, the document's read through the service contract and the SOAP call.
* ``oa_push_after_inbox_p50_s`` / ``_p99_s`` — the ``inbox.add`` audit event (its seq is in the
  event id the OA got) → the OA: the adapter's own share.

Written as a function (:func:`measure_oa_push`) so ``bench/adapters.py`` can run it beside its SOAP
figures; run alone it prints its table and, last, one JSON line.
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
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository, not bench/, goes first on sys.path
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from node.config import CONFIG_NAME, load_config
from node.localnet import send_document, wait_for
from tests.adapters.oa_push.legacy_oa import LegacyOa  # spyne: in requirements.lock
from tests.node.network.network_support import (
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


def _configure(directory: Path, oa: LegacyOa) -> None:
    """The [[oa_push]] entry an operator writes for 兰山区, and the example mapping beside it."""
    shutil.copy(MAPPING, directory / "oa-mapping.toml")
    with open(directory / CONFIG_NAME, "a", encoding="utf-8") as file:
        file.write(f'\n[[oa_push]]\nunit = "{A1}"\nwsdl = "{oa.wsdl_url}"\nreceived_operation = "ReceiveGongwen"\n'
                   'status_operation = "UpdateZhuangtai"\nmapping = "oa-mapping.toml"\n')
    load_config(directory)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_oa_push(base: Path, documents: int, interval: float = 0.25) -> dict[str, float]:
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    with LegacyOa() as oa:
        net = new_network(base)
        net.add_node("city", units(CITY), retry=FAST_RETRY)
        county = net.add_node("county-a", units(A1), retry=FAST_RETRY)
        _configure(county.directory, oa)
        connect_and_start(net)
        try:
            ids = []
            for _ in range(documents):
                started = time.monotonic()
                ids.append(send_document(net.nodes["city"], CITY, notice_meta(CITY, [A1]), net.body)["doc_id"])
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
            wait_for(lambda: all(d in oa.state.documents for d in ids), 120 + documents, 0.2,
                     what="every document at the OA")
            marks = "?" + ",?" * (len(ids) - 1)
            arrived = dict(db_rows(county, "SELECT i.doc_id, r.received_at FROM inbox i JOIN received r ON "
                                           f"r.message_id = i.message_id WHERE i.doc_id IN ({marks})", ids))
            seqs = {d: int(oa.state.documents[d]["sjbs"].rsplit("-", 1)[1]) for d in ids}
            filed = dict(db_rows(county, f"SELECT seq, at FROM audit WHERE seq IN ({marks})", list(seqs.values())))
        finally:
            net.stop_all()
    pushed = {d: oa.state.documents[d]["received"] for d in ids}
    from_arrival = [pushed[d] - _epoch(arrived[d]) for d in ids]
    after_inbox = [pushed[d] - _epoch(filed[seqs[d]]) for d in ids]
    return {"oa_push_documents": documents, "oa_push_interval_s": interval, "oa_push_calls": len(oa.state.calls),
            "oa_push_p50_s": statistics.median(from_arrival), "oa_push_p99_s": _quantile(from_arrival, 0.99),
            "oa_push_after_inbox_p50_s": statistics.median(after_inbox),
            "oa_push_after_inbox_p99_s": _quantile(after_inbox, 0.99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 documents instead of 200")
    parser.add_argument("--documents", type=int, help="how many documents (overrides --quick)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between submissions (default 0.25)")
    args = parser.parse_args()
    documents = args.documents or (20 if args.quick else 200)
    with tempfile.TemporaryDirectory(prefix="gwx-bench-oapush-", dir=os.environ.get("GWX_BENCH_DIR")) as tmp:
        fig = {"bench": "adapters_oapush", "cores": os.cpu_count(), "quick": args.quick,
               **measure_oa_push(Path(tmp), documents, args.interval)}
    rows = [("documents city → 兰山区", f"{fig['oa_push_documents']}", f"one every {fig['oa_push_interval_s']:g} s"),
            ("SOAP calls the OA got", f"{fig['oa_push_calls']}", "one per document when nothing failed"),
            ("arrival → OA push, p50", f"{fig['oa_push_p50_s']:.3f} s", "envelope accepted → OA recorded it"),
            ("arrival → OA push, p99", f"{fig['oa_push_p99_s']:.3f} s", ""),
            ("inbox row → OA push, p50", f"{fig['oa_push_after_inbox_p50_s']:.3f} s", "the adapter's share"),
            ("inbox row → OA push, p99", f"{fig['oa_push_after_inbox_p99_s']:.3f} s", "")]
    print(f"\n{'figure':30} {'value':>10}  note")
    for label, value, note in rows:
        print(f"{label:30} {value:>10}  {note}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
