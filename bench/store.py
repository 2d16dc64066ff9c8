"""Durable acceptance throughput of the node store on this machine.

"Accept an envelope durably" = stream its bytes into the blob store (fsync file + directory), then
commit its ``received`` row (+ audit event, + a forwarding ``queue`` row for relays) with
``synchronous=FULL``, then return. Measured with C concurrent producers (as C request handlers):

- ``group``: through ``Store.accept_inbound`` (the group-commit writer: one transaction per batch);
- ``group+forward``: the same, also queueing the envelope onward in the same transaction (relay);
- ``rows only``: group commit with the blob already stored (the database's share of the cost);
- ``single``: each acceptance in its own transaction (``messages.accept_inbound``), for contrast;
- ``pair``: as the acceptor before migration 20 — two blobs an envelope (the envelope and its
  decrypted payload, both of ``--size``), each fsynced with its directory, then the group commit;
- ``inline``: as the acceptor now for envelopes up to ``[store] inline_max_bytes`` — no file, ever:
  the two blobs' bytes committed with the row and kept in the database
  (:mod:`node.store.sqlite.inline_blobs`); nothing is written behind.

``cpu_ms`` is the process's CPU (user + system) per acceptance.

Latency is per acceptance, from the start of the blob write to the return of the commit.
``--quick`` uses fewer envelopes. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ is sys.path[0]; put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from node.store import BlobRef, InboundEnvelope, OutboundItem  # noqa: E402
from node.store.sqlite import Store  # noqa: E402


async def _run(mode: str, n: int, concurrency: int, size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("GWX_BENCH_DIR")) as tmp:
        store = await Store.open(Path(tmp), blob_threads=int(os.environ.get("GWX_BLOB_THREADS", "32")))
        try:
            payloads = [os.urandom(size) for _ in range(64)]
            prestored = []
            if mode == "rows":
                for i in range(n):
                    ref = await store.blobs.put(b"%d" % i + payloads[i % 64])
                    prestored.append(ref)
            latencies: list[float] = []
            counter = iter(range(n))
            batches0, commits0 = store.committer.batches, store.db.commits
            cpu0 = time.process_time()

            async def producer() -> None:
                for i in counter:
                    t0 = time.perf_counter()
                    message_id = f"bench-{i:08d}"
                    if mode in ("pair", "inline"):
                        data, plain = message_id.encode() + payloads[i % 64], b"p" + message_id.encode() + payloads[i % 64]
                        if mode == "pair":
                            ref, plain_ref = await asyncio.gather(store.blobs.put(data), store.blobs.put(plain))
                            inline: tuple[tuple[str, bytes], ...] = ()
                        else:  # no file, ever
                            ref = BlobRef(hashlib.sha256(data).hexdigest(), len(data))
                            plain_ref = BlobRef(hashlib.sha256(plain).hexdigest(), len(plain))
                            inline = ((ref.digest, data), (plain_ref.digest, plain))
                        await store.accept_inbound(InboundEnvelope(
                            message_id, ref.digest, ref.digest, "node-a", b"receipt " + message_id.encode(),
                            "document", ref.size, plain_ref.digest, inline=inline))
                        latencies.append(time.perf_counter() - t0)
                        continue
                    ref = prestored[i] if prestored else await store.blobs.put(
                        message_id.encode() + payloads[i % 64])
                    env = InboundEnvelope(message_id, ref.digest, ref.digest, "node-a",
                                          b"receipt " + message_id.encode(), "document", ref.size)
                    if mode == "single":
                        await store.messages.accept_inbound(env)
                    else:
                        forward = (OutboundItem(message_id, "node-c", ref.digest, ref.size, "document")
                                   if mode == "forward" else None)
                        await store.accept_inbound(env, forward=forward)
                    latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            await asyncio.gather(*(producer() for _ in range(concurrency)))
            batches = store.committer.batches - batches0
            commits = store.db.commits - commits0
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu0
        finally:
            await store.close()
    latencies.sort()
    return {
        "per_s": n / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "avg_batch": (n / batches) if batches else 1.0,
        "commits": commits,
        "cpu_ms": 1000 * cpu / n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer envelopes")
    parser.add_argument("--size", type=int, default=4096, help="envelope size in bytes (default 4 KiB)")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    n = 2000 if args.quick else 10000
    modes = [("group", "group"), ("forward", "group+forward"), ("rows", "rows only"), ("single", "single"),
             ("pair", "pair fsynced"), ("inline", "pair inline")]
    results = {}
    print(f"store acceptance, {n} envelopes of {args.size} B, {args.concurrency} concurrent producers, "
          f"{os.cpu_count()} cores")
    print(f"{'mode':<15}{'accepts/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'avg batch':>11}{'commits':>9}{'cpu ms':>8}")
    for key, label in modes:
        count = n // 4 if key == "single" else n
        r = asyncio.run(_run(key, count, args.concurrency, args.size))
        results[key] = {k: round(v, 2) for k, v in r.items()}
        print(f"{label:<15}{r['per_s']:>11.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['avg_batch']:>11.1f}"
              f"{r['commits']:>9}{r['cpu_ms']:>8.2f}")
    print(json.dumps({"bench": "store", "envelopes": n, "size": args.size, "concurrency": args.concurrency,
                      "load_average": round(os.getloadavg()[0], 2),
                      **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
