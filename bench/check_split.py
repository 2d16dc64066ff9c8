"""What a pool of check processes could take off the embedded node's one core (issue 12 §2).

The receiver's CPU-heavy checks of a small document need no private key: the package check before
the receipt (``verify_package(..., validate_pdf=False)``, the acceptor's ``check_package``) and the
processor's lean PDF judgement of an accepted package (``judge_pdf_later``). This bench prices them
and the hand-off to another process, so that the Amdahl bound of moving them can be written down
before anything is built:

1. N small packages (the one-page 通知 sealed by a 20-dpi seal of the sending unit, as
   ``bench/node.py --small`` sends them; a real CA and CRL of ``node.localnet``) are built, then
   judged one after the other in this process: CPU per package (``time.process_time``) of the check
   before the receipt, of ``judge_pdf_later`` on its report, and of the whole lean check
   (``verify_package(lean_pdf=True)``: what a process that did not hold the acceptor's verdict runs).
2. The hand-off of one package's bytes (16 KB) to a spawned process and a small answer back, CPU in
   *this* process per package: ``concurrent.futures.ProcessPoolExecutor`` one job per package and
   32 per job, and a bare ``multiprocessing`` pipe (``send_bytes``/``recv_bytes``).
3. The pool as built (``node.federation.check_pool``, one child): the same packages checked through
   it — the acceptor's check, then the processor's judgement of the verdict the child holds — CPU
   per package in this process (``pool_accept_node_us``, ``pool_judge_node_us``: what the node
   still spends) and in the child (``pool_accept_child_ms``, ``pool_judge_child_ms``, ``/proc``).
4. The bound: with the receiver's CPU per document given (``--accept-ms``, ``--inbox-ms``: a
   ``bench/node.py --small`` run's ``cpu_ms_per_doc`` and ``cpu_ms_per_doc_with_inbox``), the share
   that would leave the node's process minus the hand-offs it adds, and 1 / (1 - share): the best
   factor on accepted/s and inbox/s while that process is the bound (one core: its GIL).

``--quick``: 100 packages, 512 hand-offs. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ is sys.path[0]: the repository's root instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.node_pair import RECEIVER, RECEIVER_UNITS, SENDER, SENDER_UNIT, SENDER_UNIT_NAME  # noqa: E402
from bench.node_small import cpu_seconds, small_seal  # noqa: E402
from exchange_protocol.meta_json import parse_meta  # noqa: E402
from exchange_protocol.package import build_package  # noqa: E402
from exchange_protocol.package_verify import judge_pdf_later, verify_package  # noqa: E402
from node.federation.check_pool import CheckPool  # noqa: E402
from node.localnet import PASSPHRASE, LocalNetwork, notice_pdf  # noqa: E402
from pki.certificates import load_certificate  # noqa: E402
from pki.crl import load_crl  # noqa: E402
from pki.revocation import CrlChecker  # noqa: E402
from pki.seal_store import load_seal_credential  # noqa: E402
from pki.trust import TrustStore  # noqa: E402

BATCH = 32  # packages per job in the batched hand-off (the processor's run of documents)


def _answer(package: bytes) -> tuple:
    """What a child would send back for one package: a verdict's few fields, not the report."""
    return ("ok", len(package), None, "doc-id-00000000000000000000", (RECEIVER_UNITS[0],))


def _answer_all(packages: list[bytes]) -> list[tuple]:
    return [_answer(p) for p in packages]


def _echo(conn) -> None:
    while message := conn.recv_bytes():
        conn.send_bytes(message[:64])


def packages(n: int, base: Path) -> tuple[list[bytes], list, CrlChecker, dt.datetime]:
    """``n`` small packages of the sending unit, and the receiver's roots and CRL checker."""
    net = LocalNetwork(base / "net")
    net.add_node(SENDER, [{"code": SENDER_UNIT, "name": SENDER_UNIT_NAME}])
    receiver = net.add_node(RECEIVER, [{"code": u, "name": f"兰山区第{i + 1}局"} for i, u in enumerate(RECEIVER_UNITS)])
    net.connect_all()
    seal = load_seal_credential(small_seal(net, SENDER_UNIT, SENDER_UNIT_NAME, base / "small-seal"), PASSPHRASE)
    pdf, now, out = notice_pdf(), dt.datetime.now(dt.UTC), []
    for i in range(n):
        meta = parse_meta({"kind": "通知", "title": f"关于做好冬季安全生产工作的通知（第{i}号）",
                           "issuers": [SENDER_UNIT], "to": [RECEIVER_UNITS[0]], "written_on": "2026-11-20"},
                          now=now).metadata
        package = io.BytesIO()
        build_package(package, metadata=meta, body=pdf, seal_key=seal, at=now)
        out.append(package.getvalue())
    roots = [load_certificate((receiver.directory / "credentials" / "root.crt").read_bytes())]
    return out, roots, CrlChecker([load_crl((receiver.directory / "crl.pem").read_bytes())]), now


def per_package_ms(fn, items) -> tuple[float, list]:
    started = time.process_time()
    results = [fn(item) for item in items]
    return (time.process_time() - started) / len(items) * 1000, results


def checks(fig: dict, n: int, base: Path) -> None:
    data, roots, crl, now = packages(n, base)
    fig["package_bytes"] = len(data[0])
    for package in data[:5]:  # the seal and the CA path remembered, as in a running node
        verify_package(io.BytesIO(package), roots, now, revocation=crl, validate_pdf=False)
    fig["check_before_receipt_ms"], reports = per_package_ms(
        lambda p: verify_package(io.BytesIO(p), roots, now, revocation=crl, validate_pdf=False), data)
    if any(r.failures for r in reports):
        raise SystemExit(f"a package does not verify: {reports[0].failures}")
    fig["judge_pdf_later_ms"], judged = per_package_ms(lambda r: judge_pdf_later(r, now, revocation=crl), reports)
    fig["full_lean_check_ms"], full = per_package_ms(
        lambda p: verify_package(io.BytesIO(p), roots, now, revocation=crl, lean_pdf=True), data)
    if not all(r.ok for r in (*judged, *full)):
        raise SystemExit("a package fails its PDF judgement")
    through_pool(fig, data, roots, crl, now)


def through_pool(fig: dict, data: list[bytes], roots: list, crl: CrlChecker, now: dt.datetime) -> None:
    """The packages through a real one-child :class:`CheckPool`, as the acceptor and processor call it."""
    pool = CheckPool(1)
    try:
        generation = pool.generation(TrustStore.of(roots), crl.verdict_token())
        digests = [hashlib.sha256(p).hexdigest() for p in data]
        for digest, package in zip(digests[:5], data[:5], strict=True):  # started, its caches warm
            pool.accept(generation, digest, package, now)
        [child] = pool.pids()
        node0, child0 = time.process_time(), cpu_seconds(child)
        held = [pool.accept(generation, d, p, now) for d, p in zip(digests, data, strict=True)]
        node1, child1 = time.process_time(), cpu_seconds(child)
        judged = [pool.judge(generation, d, now, a.held, lambda: None) for d, a in zip(digests, held, strict=True)]
        node2, child2 = time.process_time(), cpu_seconds(child)
    finally:
        pool.close()
    if any(a.first_failure or a.held is None for a in held) or not all(j is not None and j.ok for j in judged):
        raise SystemExit("a package fails through the pool")
    n = len(data)
    fig.update(pool_accept_node_us=(node1 - node0) / n * 1e6, pool_accept_child_ms=(child1 - child0) / n * 1000,
               pool_judge_node_us=(node2 - node1) / n * 1e6, pool_judge_child_ms=(child2 - child1) / n * 1000)


def handoffs(fig: dict, n: int) -> None:
    spawn = multiprocessing.get_context("spawn")
    data = [os.urandom(fig["package_bytes"]) for _ in range(n)]

    def cpu_us(run) -> float:  # every thread of this process (the pool's feeder threads too)
        before = time.process_time()
        run()
        return (time.process_time() - before) / n * 1e6

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        pool.submit(_answer, b"").result()  # started before it is timed
        fig["handoff_futures_us"] = cpu_us(lambda: [pool.submit(_answer, p).result() for p in data])
        fig["handoff_futures_batched_us"] = cpu_us(
            lambda: [pool.submit(_answer_all, data[i:i + BATCH]).result() for i in range(0, n, BATCH)])
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=_echo, args=(theirs,))
    child.start()
    try:
        ours.send_bytes(b"x")
        ours.recv_bytes()

        def pipe() -> None:
            for package in data:
                ours.send_bytes(package)
                ours.recv_bytes()
        fig["handoff_pipe_us"] = cpu_us(pipe)
    finally:
        ours.send_bytes(b"")
        child.join(30)


def bound(fig: dict, accept_ms: float, inbox_ms: float) -> None:
    """1 / (1 - share moved): accepting moves the check before the receipt (one hand-off), the
    inbox also ``judge_pdf_later`` (a second hand-off), each hand-off the pipe's or the pool's."""
    fig["accept_ms"], fig["inbox_ms"] = accept_ms, inbox_ms
    for via, cost in (("pipe", fig["handoff_pipe_us"]), ("futures", fig["handoff_futures_us"])):
        moved_accept = fig["check_before_receipt_ms"] - cost / 1000
        moved_inbox = fig["check_before_receipt_ms"] + fig["judge_pdf_later_ms"] - 2 * cost / 1000
        fig[f"bound_accepted_{via}"] = round(1 / (1 - moved_accept / accept_ms), 2)
        fig[f"bound_inbox_{via}"] = round(1 / (1 - moved_inbox / inbox_ms), 2)


def table(fig: dict) -> str:
    rows = [
        ("package", f"{fig['package_bytes'] / 1024:.1f} KiB", f"{fig['packages']} judged one after another"),
        ("check before the receipt", f"{fig['check_before_receipt_ms']:.3f} ms", "verify_package, validate_pdf=False"),
        ("judge_pdf_later", f"{fig['judge_pdf_later_ms']:.3f} ms", "the processor, the acceptor's verdict held"),
        ("whole lean check", f"{fig['full_lean_check_ms']:.3f} ms", "verify_package(lean_pdf=True)"),
        ("the pool: acceptor's check, node / child", f"{fig['pool_accept_node_us']:.0f} µs / "
         f"{fig['pool_accept_child_ms']:.3f} ms", "node.federation.check_pool, one child"),
        ("the pool: PDF seal judged, node / child", f"{fig['pool_judge_node_us']:.0f} µs / "
         f"{fig['pool_judge_child_ms']:.3f} ms", "the verdict held in the child"),
        ("hand-off, ProcessPoolExecutor", f"{fig['handoff_futures_us']:.0f} µs", "this process's CPU, one job each"),
        (f"  {BATCH} packages a job", f"{fig['handoff_futures_batched_us']:.0f} µs", "per package"),
        ("hand-off, bare pipe", f"{fig['handoff_pipe_us']:.0f} µs", "send_bytes / recv_bytes"),
        ("bound on accepted/s (pipe / pool)", f"{fig['bound_accepted_pipe']:.2f}× / {fig['bound_accepted_futures']:.2f}×",
         f"of {fig['accept_ms']} ms a document"),
        ("bound on inbox/s (pipe / pool)", f"{fig['bound_inbox_pipe']:.2f}× / {fig['bound_inbox_futures']:.2f}×",
         f"of {fig['inbox_ms']} ms a document"),
    ]
    lines = [f"{'figure':<42}{'value':>20}  note"]
    lines += [f"{name:<42}{value:>20}  {note}" for name, value, note in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 packages, 512 hand-offs")
    parser.add_argument("--packages", type=int, help="packages judged (default 400, --quick 100)")
    parser.add_argument("--accept-ms", type=float, default=3.87,
                        help="the receiver's CPU a document while accepting (default: session 24's quiet run)")
    parser.add_argument("--inbox-ms", type=float, default=6.78,
                        help="the receiver's CPU a document, inbox too (default: session 24's quiet run)")
    args = parser.parse_args()
    n = args.packages or (100 if args.quick else 400)
    fig: dict = {"bench": "check_split", "quick": args.quick, "packages": n, "cores": os.cpu_count(),
                 "load_average_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="gwx-check-split-") as tmp:
        checks(fig, n, Path(tmp))
    handoffs(fig, 512 if args.quick else 2048)
    bound(fig, args.accept_ms, args.inbox_ms)
    fig["load_average_end"] = round(os.getloadavg()[0], 2)
    print(table(fig))
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in fig.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
