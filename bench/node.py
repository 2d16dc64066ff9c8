"""The running gateway on this machine: two real nodes on loopback (``node.localnet``), measured.

1. Acceptance over the peer API. N small documents (one page, the unit's seal) are packaged and
   sealed *beforehand* by the sending unit's seal credential, in a process pool (sealing is what
   ``bench/protocol.py`` measures), and put into envelopes for the receiving node (signed with the
   sender node's key, encrypted for the receiver's certificate), written as batch files of frames
   back to back. A client in this process then POSTs the batches to the receiver's
   ``/peer/v1/envelopes`` over mutual TLS with the sender node's TLS credentials, several batches
   in flight as several senders would. Measured: envelopes accepted durably per second (TLS,
   header signature and certificates, decryption, package checks, two fsynced blobs, group commit,
   signed receipt), submit → receipt latency per envelope, and the receiver's CPU per document
   (``/proc/PID/stat``); every receipt is then verified. The receiver's processor (full PAdES
   validation, inbox rows, transport-acks) runs meanwhile, as in production, and shares the CPU.
2. Beside it, the primitive floor measured in the same run: what one acceptance must at least cost
   = 2 ECDSA verifications (header, manifest; certificate links are cached) + 1 ECDSA signature
   (receipt) + 1 ECDH + AES-256-GCM twice (TLS record, payload) + SHA-256 three times (envelope,
   payload digest, package members) over the envelope's size.
3. PDF seal validation: full ``verify_package(validate_pdf=True)`` of one package, repeated, then
   the same with the lean PAdES check the receiver's processor runs (``lean_pdf=True``); and
   one document fanned out to 20 units of the receiver, counting ``gwx_pdf_validations_total``
   on the receiver's ``/metrics`` (it must grow by one).
4. One big attachment (1 GiB, ``--quick`` 256 MiB, random bytes named ``.mp4`` so it is stored,
   not deflated) written to disk in chunks, submitted through the sender's local API (streamed
   multipart), until it is in the receiver's inbox; peak RSS (``VmHWM``) of both node processes.

``--py-spy OUT`` records the receiver with ``py-spy record`` (collapsed stacks; py-spy is pinned in
requirements.lock, so the venv has it) during phase 1 (``GWX_SPY_GIL=1``: only the thread holding
the GIL; with ``--small --py-spy-inbox`` until the inbox holds every document, so the processor's
work is in the profile); ``--skip accept,pdf,big`` leaves phases out.

Phases 3–4 run on a second, fresh pair of nodes: the first receiver still has a processing
backlog and its peak RSS would include phase 1. The nodes and phases 3–4 are :mod:`bench.node_pair`'s;
the small-document mode's waiting and Postfix are :mod:`bench.node_small`'s; the table
:mod:`bench.node_report`'s. ``--quick``: 2,000 documents, 256 MiB.

``--small``: the small-document mode (issue 12 §2), phase 1 alone with envelopes of about 16 KiB
(the same one-page 通知, sealed by a seal of the sending unit whose picture is drawn at 20 dpi
rather than 300, so its picture — carried twice — is 2 KB rather than 53 KB), 5,000 documents
(``--quick`` 1,000); it also waits until the receiver's processor has put every document into its
inbox (full PAdES validation) and reports ``inbox_per_s`` from the first POST to the last
``gwx_messages_applied_total``. ``--vs-postfix`` then sends the same envelopes, one mail each, to a
Postfix of the bench's own on loopback (:mod:`bench.postfix_smtp`, fsync on) and reports
``postfix_per_s`` and ``ratio_vs_postfix`` (gwx's acceptance over Postfix's, > 1 = gwx faster) over
plain SMTP, then ``postfix_tls_per_s`` and ``ratio_vs_postfix_tls`` over STARTTLS with client
certificates of the network's CA required (like for like with gwx's mutual TLS).
``--backend postgresql``: both nodes keep their rows in PostgreSQL (each its own database of a
server the bench starts with ``initdb``, as the tests do: tests/postgres_server.py, a unix socket,
fsync on); blobs stay files. The server's CPU (postmaster and children, ``/proc``) is reported apart
(``postgres_cpu_ms_per_doc``; ``receiver_and_postgres_cpu_ms_per_doc`` adds the receiver's).
``--workers N`` (PostgreSQL): the receiver is N processes of one node on one peer port (``[peer_api]
reuse_port``, SO_REUSEPORT: the kernel hands each new connection to one of them), each POST on a
connection of its own (``--new-connections``, implied) so the connections are spread; the receiver's
CPU is the sum over its workers, and ``accepted_by_worker`` says how the envelopes were shared.
``--check-processes N``: the receiver's ``[processing] check_processes`` (node.federation.check_pool;
unset: its default, 1 on two cores or more). The receiver's CPU always includes its check
processes' (its children, ``/proc``); ``check_processes_cpu_ms_per_doc`` is their part.
The last line printed is one JSON object with every figure; in small mode it carries at least
``envelope_bytes``, ``accepted_per_s``, ``inbox_per_s``, ``cpu_ms_per_doc``, ``floor_ms_per_doc``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a script, bench/ is sys.path[0] and this file would shadow the node package: replace it.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import aiohttp  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from bench.node_pair import (  # noqa: E402
    RECEIVER,
    RECEIVER_UNITS,
    SENDER,
    SENDER_UNIT,
    SENDER_UNIT_NAME,
    make_network,
    metric,
    phase_big,
    phase_pdf,
    rate,
    receivers,
)
from bench.node_report import progress, table  # noqa: E402
from bench.node_small import (  # noqa: E402
    children_cpu_seconds,
    cpu_seconds,
    phase_postfix,
    postfix_tls,
    small_seal,
    tree_cpu_seconds,
    wait_for_inbox,
)
from exchange_protocol.envelope_crypto import Recipient  # noqa: E402
from exchange_protocol.envelope_seal import HeaderDraft, Sender, seal_envelope  # noqa: E402
from exchange_protocol.meta_json import parse_meta  # noqa: E402
from exchange_protocol.package import build_package  # noqa: E402
from exchange_protocol.transport_receipt import verify_receipt  # noqa: E402
from node.federation.tls import client_context  # noqa: E402
from node.federation.transport import ENVELOPE_MEDIA_TYPE  # noqa: E402
from node.localnet import (  # noqa: E402
    PASSPHRASE,
    LocalNode,
    notice_pdf,
)
from pki.certificates import load_certificate, load_certificates  # noqa: E402
from pki.crl import load_crl  # noqa: E402
from pki.keystore import read_private_key  # noqa: E402
from pki.revocation import CrlChecker  # noqa: E402
from pki.seal_store import load_seal_credential  # noqa: E402
from pki.signer import SoftwareSigner  # noqa: E402
from pki.trust import TrustStore  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

# ---- preparing the envelopes (process pool) --------------------------------------------------
_W: dict = {}


def _worker_init(sender_dir: str, receiver_dir: str, pdf: bytes, seal_dir: str | None = None) -> None:
    s, r = Path(sender_dir), Path(receiver_dir)
    chain = load_certificates((s / "credentials" / "sign.crt").read_bytes())
    signer = SoftwareSigner(read_private_key(s / "credentials" / "sign.key", PASSPHRASE), chain[0])
    seal = Path(seal_dir) if seal_dir else s / "units" / SENDER_UNIT
    _W.update(seal=load_seal_credential(seal, PASSPHRASE), pdf=pdf,
              sender=Sender(SENDER, signer, tuple(chain[1:])),
              recipient=Recipient(load_certificates((r / "credentials" / "enc.crt").read_bytes())[0]))


def _build_batch(path: str, first: int, count: int) -> list[tuple[str, str, int]]:
    """Package, seal and envelope documents first..first+count-1 into one file of frames."""
    now = dt.datetime.now(dt.UTC)
    out = []
    with open(path, "wb") as f:
        for i in range(first, first + count):
            meta = parse_meta({"kind": "通知", "title": f"关于做好冬季安全生产工作的通知（第{i}号）",
                               "issuers": [SENDER_UNIT], "to": [RECEIVER_UNITS[0]],
                               "written_on": "2026-11-20"}, now=now).metadata
            package = io.BytesIO()
            build_package(package, metadata=meta, body=_W["pdf"], seal_key=_W["seal"], at=now)
            draft = HeaderDraft.new("document", SENDER, RECEIVER, SENDER_UNIT, [RECEIVER_UNITS[0]], now,
                                    dt.timedelta(days=1))
            envelope = seal_envelope(draft, package.getvalue(), _W["sender"], _W["recipient"]).data
            f.write(envelope)
            out.append((draft.message_id, hashlib.sha256(envelope).hexdigest(), len(envelope)))
    return out


@dataclass(frozen=True)
class Batch:
    path: Path
    frames: list[tuple[str, str, int]]  # message id, envelope SHA-256, size


def prepare(sender: LocalNode, receiver: LocalNode, n: int, batch_size: int, work: Path, pdf: bytes,
            workers: int, seal_dir: Path | None = None) -> list[Batch]:
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(str(work / f"batch-{k:05d}.frames"), first, min(batch_size, n - first))
            for k, first in enumerate(range(0, n, batch_size))]
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                                initializer=_worker_init,
                                                initargs=(str(sender.directory), str(receiver.directory),
                                                          pdf, seal_dir and str(seal_dir))) as pool:
        futures = [pool.submit(_build_batch, *job) for job in jobs]
        return [Batch(Path(job[0]), fut.result()) for job, fut in zip(jobs, futures, strict=True)]


# ---- phase 1: acceptance over the peer API ----------------------------------------------------
async def submit_all(sender: LocalNode, receiver: LocalNode, batches: list[Batch], inflight: int,
                     new_connections: bool = False):
    creds = sender.directory / "credentials"
    ssl_ctx = client_context(creds / "tls.crt", creds / "tls.key", creds / "root.crt", PASSPHRASE)
    url = receiver.ready["peer_url"] + "/peer/v1/envelopes"
    latencies: list[float] = []
    receipts: list[tuple[str, str, bytes]] = []
    errors: dict[str, int] = {}
    todo = iter(batches)
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    # new_connections: each POST on a connection of its own (TLS handshake included), so the kernel
    # spreads them over the receiver's workers on one port as they come, not once per kept connection
    connector = aiohttp.TCPConnector(ssl=ssl_ctx, limit=inflight, force_close=new_connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def client() -> None:
            for batch in todo:
                body = await loop.run_in_executor(None, batch.path.read_bytes)
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": ENVELOPE_MEDIA_TYPE}) as resp:
                    answer = await resp.read()
                elapsed = time.perf_counter() - t0
                if resp.status != 200:
                    raise RuntimeError(f"receiver answered {resp.status}: {answer[:300]!r}")
                for (message_id, sha, _), r in zip(batch.frames, json.loads(answer)["results"], strict=True):
                    if "receipt" in r:
                        receipts.append((message_id, sha, r["receipt"]))
                        latencies.append(elapsed)
                    else:
                        errors[r["error"]["code"]] = errors.get(r["error"]["code"], 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(inflight)))
        wall = time.perf_counter() - start
    return wall, latencies, receipts, errors


def verify_receipts(sender: LocalNode, receipts: list[tuple[str, str, str]]) -> int:
    import base64
    creds = sender.directory / "credentials"
    trust = TrustStore.of([load_certificate((creds / "root.crt").read_bytes())])
    revocation = CrlChecker([load_crl((sender.directory / "crl.pem").read_bytes())])
    now = dt.datetime.now(dt.UTC)
    for message_id, sha, receipt in receipts:
        verify_receipt(base64.b64decode(receipt), trust=trust, now=now, message_id=message_id,
                       envelope_digest=sha, receiver_node=RECEIVER, revocation=revocation)
    return len(receipts)


def phase_accept(args, base: Path, pdf: bytes, fig: dict) -> None:
    net, sender, receiver = make_network(base / "net1", args.postgres, args.workers, args.check_processes)
    workers = receivers(net, receiver)
    try:
        t0 = time.perf_counter()
        seal_dir = small_seal(net, SENDER_UNIT, SENDER_UNIT_NAME, base / "small-seal") if args.small else None
        batches = prepare(sender, receiver, args.documents, args.batch, base / "frames", pdf, os.cpu_count() or 2,
                          seal_dir)
        fig["prepare_s"] = time.perf_counter() - t0
        fig["envelope_bytes"] = statistics.mean(size for b in batches for _, _, size in b.frames)
        print(f"prepared {args.documents} documents in {fig['prepare_s']:.0f} s "
              f"({fig['envelope_bytes'] / 1024:.0f} KiB per envelope)", flush=True)
        floor(fig, int(fig["envelope_bytes"]), args.quick)

        pids = {"receiver": [w.process.pid for w in workers], "sender_node": [sender.process.pid]}
        cpu0 = {k: sum(map(tree_cpu_seconds, p)) for k, p in pids.items()}  # check processes included
        db0 = server_cpu_seconds(args.postgres)
        sys0 = sum(cpu_seconds(p, kernel_only=True) for p in pids["receiver"])
        bench0 = os.times()
        applied0 = metric(workers, "gwx_pdf_validations_total")
        spy = profiler(args.py_spy, receiver.process.pid)
        started = time.perf_counter()
        try:
            wall, latencies, receipts, errors = asyncio.run(submit_all(sender, receiver, batches, args.inflight,
                                                                       args.new_connections))
        finally:
            if spy is not None and not (args.small and args.py_spy_inbox):
                stop_profiler(spy)
        cpu = {k: sum(map(tree_cpu_seconds, p)) - cpu0[k] for k, p in pids.items()}
        checks_cpu = sum(map(children_cpu_seconds, pids["receiver"]))  # none before the first package
        db_cpu = server_cpu_seconds(args.postgres) - db0
        kernel = sum(cpu_seconds(p, kernel_only=True) for p in pids["receiver"]) - sys0
        bench1 = os.times()
        validated = metric(workers, "gwx_pdf_validations_total") - applied0
        fig["accepted_by_worker"] = [metric(w, "gwx_envelopes_received_total") for w in workers]
        accepted = len(receipts)
        latencies.sort()
        fig.update(accepted=accepted, refused=sum(errors.values()), refused_codes=errors,
                   accept_per_s=accepted / wall, accept_wall_s=wall,
                   latency_p50_ms=1000 * statistics.median(latencies),
                   latency_p99_ms=1000 * latencies[int(0.99 * (len(latencies) - 1))],
                   receiver_cpu_ms_per_doc=1000 * cpu["receiver"] / accepted,
                   receiver_cpu_cores=cpu["receiver"] / wall,
                   check_processes_cpu_ms_per_doc=1000 * checks_cpu / accepted,
                   receiver_cpu_kernel_share=kernel / cpu["receiver"],
                   sender_node_cpu_cores=cpu["sender_node"] / wall,
                   client_cpu_cores=(bench1.user + bench1.system - bench0.user - bench0.system) / wall,
                   pdf_validated_meanwhile=validated)
        if args.postgres is not None:  # the server's processes work for both nodes: all of it counted here
            fig.update(postgres_cpu_ms_per_doc=1000 * db_cpu / accepted, postgres_cpu_cores=db_cpu / wall,
                       receiver_and_postgres_cpu_ms_per_doc=1000 * (cpu["receiver"] + db_cpu) / accepted)
        t0 = time.perf_counter()
        fig["receipts_verified"] = verify_receipts(sender, receipts)
        fig["receipt_verify_ms"] = 1000 * (time.perf_counter() - t0) / max(1, accepted)
        if args.small:
            try:
                wait_for_inbox(workers, accepted, started, cpu0["receiver"], fig)
            finally:
                if spy is not None and args.py_spy_inbox:
                    stop_profiler(spy)
            if args.postgres is not None:
                fig["postgres_cpu_ms_per_doc_with_inbox"] = 1000 * (server_cpu_seconds(args.postgres) - db0) / accepted
        if args.vs_postfix:
            phase_postfix(batches, args.postfix_connections, fig, postfix_tls(sender, receiver))
    finally:
        net.stop_all()
        # Gigabytes of blobs and frames: gone, and the disk's write-back finished, before phases 3–4.
        shutil.rmtree(base / "frames", ignore_errors=True)
        shutil.rmtree(base / "net1", ignore_errors=True)
        os.sync()


def server_cpu_seconds(server: PostgresServer | None) -> float:
    """utime + stime of the PostgreSQL server's processes (the postmaster and its children: a backend
    per connection, the WAL writer, the checkpointer …); 0 without one. A backend that exits in
    between takes its time with it: the nodes' connections last the whole phase."""
    if server is None:
        return 0.0
    master = int((server.data / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == master or int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def profiler(out: str | None, pid: int) -> subprocess.Popen | None:
    """``py-spy record`` of the receiver while the envelopes arrive (collapsed stacks in ``out``)."""
    if not out:
        return None
    spy = Path(sys.executable).parent / "py-spy"  # pinned in requirements.lock
    spy = str(spy) if spy.exists() else (shutil.which("py-spy") or "py-spy")
    proc = subprocess.Popen([spy, "record", "-p", str(pid), "-o", out, "--format", "raw", "-r", "200",
                             "--nonblocking", *(["--gil"] if os.environ.get("GWX_SPY_GIL") else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first batch
    return proc


def stop_profiler(spy: subprocess.Popen) -> None:
    spy.send_signal(signal.SIGINT)
    spy.wait(60)


# ---- the primitive floor --------------------------------------------------------------------
def floor(fig: dict, size: int, quick: bool) -> None:
    seconds = 0.3 if quick else 1.0
    key = ec.generate_private_key(ec.SECP256R1())
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    digest_input = b"h" * 400
    sig = key.sign(digest_input, ec.ECDSA(hashes.SHA256()))
    pub = key.public_key()
    payload = os.urandom(size)
    gcm, nonce = AESGCM(AESGCM.generate_key(256)), os.urandom(12)
    us = {"ecdsa_verify": 1e6 / rate(lambda: pub.verify(sig, digest_input, ec.ECDSA(hashes.SHA256())), seconds),
          "ecdsa_sign": 1e6 / rate(lambda: key.sign(digest_input, ec.ECDSA(hashes.SHA256())), seconds),
          "ecdh": 1e6 / rate(lambda: key.exchange(ec.ECDH(), peer), seconds),
          "aes_gcm": 1e6 / rate(lambda: gcm.encrypt(nonce, payload, None), seconds),
          "sha256": 1e6 / rate(lambda: hashlib.sha256(payload).digest(), seconds)}
    total = 2 * us["ecdsa_verify"] + us["ecdsa_sign"] + us["ecdh"] + 2 * us["aes_gcm"] + 3 * us["sha256"]
    fig.update({f"floor_{k}_us": v for k, v in us.items()})
    fig["floor_us_per_doc"] = total
    fig["floor_per_s_one_core"] = 1e6 / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 documents, 256 MiB attachment")
    parser.add_argument("--documents", type=int, help="documents for the acceptance run (20,000; quick 2,000)")
    parser.add_argument("--batch", type=int, default=64, help="envelopes per POST (the node's batch_size)")
    parser.add_argument("--inflight", type=int, default=4, help="POSTs in flight at once")
    parser.add_argument("--py-spy", metavar="OUT", help="record the receiver with py-spy during phase 1")
    parser.add_argument("--py-spy-inbox", action="store_true",
                        help="with --small: keep recording until the inbox holds every document")
    parser.add_argument("--skip", default="", help="comma-separated phases to leave out: accept,pdf,big")
    parser.add_argument("--small", action="store_true",
                        help="small-document mode: ~16 KiB envelopes, acceptance and inbox delivery only "
                             "(5,000 documents; quick 1,000)")
    parser.add_argument("--vs-postfix", action="store_true",
                        help="then the same envelopes to a Postfix on loopback (needs root and postfix)")
    parser.add_argument("--postfix-connections", type=int, default=8, help="SMTP sessions at once (8)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the nodes' store: SQLite (default) or a PostgreSQL server the bench starts")
    parser.add_argument("--workers", type=int, default=1,
                        help="receiver processes on one peer port in phase 1 (PostgreSQL only; default 1)")
    parser.add_argument("--check-processes", type=int, metavar="N",
                        help="the receiver's [processing] check_processes (default: the node's for this machine)")
    parser.add_argument("--new-connections", action="store_true",
                        help="each POST on a new connection (implied by --workers > 1: the kernel spreads "
                             "connections, not requests)")
    args = parser.parse_args()
    if args.workers < 1 or (args.workers > 1 and args.backend != "postgresql"):
        parser.error("--workers N > 1 needs --backend postgresql (one process serves a SQLite node)")
    args.new_connections = args.new_connections or args.workers > 1
    if args.small:
        args.documents = args.documents or (1000 if args.quick else 5000)
        args.skip = ",".join(filter(None, [args.skip, "pdf", "big"]))
    args.documents = args.documents or (2000 if args.quick else 20000)
    skip = set(filter(None, args.skip.split(",")))
    if args.vs_postfix and "accept" in skip:
        parser.error("--vs-postfix sends phase 1's envelopes: do not skip accept")
    fig: dict = {"bench": "node", "documents": args.documents, "batch": args.batch, "inflight": args.inflight,
                 "cores": os.cpu_count(), "quick": args.quick, "small": args.small, "backend": args.backend,
                 "workers": args.workers, "new_connections": args.new_connections,
                 "check_processes": args.check_processes,
                 "load_average_start": os.getloadavg()[0]}
    pdf = notice_pdf()
    args.postgres = PostgresServer().start() if args.backend == "postgresql" else None
    try:
        run_phases(args, skip, pdf, fig)
    finally:
        if args.postgres is not None:
            args.postgres.stop()
    fig["load_average_end"] = os.getloadavg()[0]
    if "accept" not in skip:  # the small-document mode's names (issue 12 §2)
        fig.update(accepted_per_s=fig["accept_per_s"], cpu_ms_per_doc=fig["receiver_cpu_ms_per_doc"],
                   floor_ms_per_doc=fig["floor_us_per_doc"] / 1000)
    table(fig, args)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()}, ensure_ascii=False))
    return 0


def run_phases(args, skip: set[str], pdf: bytes, fig: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="gwx-bench-node-", dir=os.environ.get("GWX_BENCH_DIR")) as tmp:
        base = Path(tmp)
        if "accept" not in skip:
            phase_accept(args, base, pdf, fig)
            progress("accept", fig)
        if not {"pdf", "big"} <= skip:
            net, sender, receiver = make_network(base / "net2", args.postgres)
            try:
                if "pdf" not in skip:
                    phase_pdf(args, sender, receiver, pdf, fig)
                    progress("pdf", fig)
                if "big" not in skip:
                    phase_big(args, sender, receiver, pdf, fig)
                    progress("big", fig)
            except Exception:
                for node in (sender, receiver):
                    print(f"--- {node.node_id} log\n{net.log_tail(node, 30)}", file=sys.stderr)
                raise
            finally:
                net.stop_all()


if __name__ == "__main__":
    raise SystemExit(main())
