"""bench/node.py's two nodes and what it reads of them, and the phases run on a second, fresh pair:
the PDF seal validation (phase 3) and one big attachment end to end (phase 4).

- :func:`make_network`: the sending and receiving nodes on loopback (``node.localnet``), on SQLite or
  each in a database of the bench's PostgreSQL server, the receiver as one or several workers on one
  peer port; :func:`receivers` lists a node's workers.
- :func:`metric` (a node's ``/metrics``, summed over its workers) and :func:`peak_rss_mib` (``VmHWM``).
- :func:`phase_pdf`: the full and the lean PAdES check of one package, repeated, and one document
  fanned out to 20 units validated once (``gwx_pdf_validations_total`` grows by one).
- :func:`phase_big`: a 1 GiB attachment (256 MiB with ``--quick``) through the sender's local API
  until it is in the receiver's inbox, with both processes' peak RSS.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import time
from pathlib import Path

from exchange_protocol.meta_json import parse_meta
from exchange_protocol.package import build_package
from exchange_protocol.package_verify import verify_package
from node.localnet import PASSPHRASE, LocalNetwork, LocalNode, free_port, send_document, wait_for
from pki.certificates import load_certificate
from pki.crl import load_crl
from pki.revocation import CrlChecker
from pki.seal_store import load_seal_credential
from pki.unit_code import make_unit_code
from tests.postgres_server import PostgresServer

SENDER, RECEIVER = "city", "county"
SENDER_UNIT = make_unit_code("11371300MB0000001")
SENDER_UNIT_NAME = "临沂市人民政府办公室"
RECEIVER_UNITS = [make_unit_code(f"11371302MB{i:07d}") for i in range(1, 21)]
MiB = 1024 * 1024


def make_network(base: Path, postgres: PostgresServer | None = None, workers: int = 1,
                 check_processes: int | None = None) -> tuple[LocalNetwork, LocalNode, LocalNode]:
    """The two nodes; with ``postgres``, each node's rows in a fresh database of that server (the node
    migrates it at its first start, as a new deployment's would be). ``workers`` > 1 (PostgreSQL):
    the receiver is that many processes on one peer port (``[peer_api] reuse_port``), the first the
    node returned, the others in ``net.workers`` (:func:`receivers`). ``check_processes``: the receiver's
    ``[processing] check_processes`` (None: the node's default for this machine)."""
    net = LocalNetwork(base)

    def store(**more) -> dict:
        return {} if postgres is None else {"store": {"backend": "postgresql",
                                                      "dsn": postgres.new_database(migrated=False), **more}}
    sender = net.add_node(SENDER, [{"code": SENDER_UNIT, "name": SENDER_UNIT_NAME}], **store())
    shared: dict = {}
    if workers > 1:
        port = free_port()
        shared = {"peer_api": {"port": port, "public_url": f"https://127.0.0.1:{port}", "reuse_port": True}}
    receiver = net.add_node(RECEIVER, [{"code": u, "name": f"兰山区第{i + 1}局"}
                                       for i, u in enumerate(RECEIVER_UNITS)],
                            **store(**({"worker": "w1"} if workers > 1 else {})), **shared,
                            **({} if check_processes is None else
                               {"processing": {"check_processes": check_processes}}))
    net.connect_all()
    for i in range(2, workers + 1):
        net.add_worker(receiver, f"w{i}", share_port=True)
    net.start_all()
    for worker in net.workers:
        net.start(worker)
    return net, sender, receiver


def receivers(net: LocalNetwork, receiver: LocalNode) -> list[LocalNode]:
    """The receiving node's processes: ``receiver`` and its other workers on the same port."""
    return [receiver, *(w for w in net.workers if w.node_id == receiver.node_id)]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def metric(node: LocalNode | list[LocalNode], name: str) -> float:
    """Sum of every series of ``name`` on the node's /metrics (operator token); of a node's workers, the
    sum over them."""
    if isinstance(node, list):
        return sum(metric(one, name) for one in node)
    text = node.client("operator").get("/metrics").decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "))


def rate(fn, seconds: float) -> float:
    """Calls of ``fn`` per second over ``seconds`` (after one call to warm it)."""
    fn()
    n, start = 0, time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        fn()
        n += 1
    return n / (now - start)


# ---- phase 3: PDF validation, once per package ------------------------------------------------
def phase_pdf(args, sender: LocalNode, receiver: LocalNode, pdf: bytes, fig: dict) -> None:
    seal = load_seal_credential(sender.directory / "units" / SENDER_UNIT, PASSPHRASE)
    now = dt.datetime.now(dt.UTC)
    meta = parse_meta({"kind": "通知", "title": "关于印发《安全生产检查方案》的通知", "issuers": [SENDER_UNIT],
                       "to": [RECEIVER_UNITS[0]], "written_on": "2026-11-20"}, now=now).metadata
    package = io.BytesIO()
    build_package(package, metadata=meta, body=pdf, seal_key=seal, at=now)
    creds = receiver.directory / "credentials"
    roots = [load_certificate((creds / "root.crt").read_bytes())]
    revocation = CrlChecker([load_crl((receiver.directory / "crl.pem").read_bytes())])
    data = package.getvalue()

    def validate() -> None:
        report = verify_package(io.BytesIO(data), roots, now, revocation=revocation, validate_pdf=True)
        if not report.ok:
            raise RuntimeError(f"package does not verify: {report.failures}")
    fig["pdf_validations_per_s"] = rate(validate, 2.0 if args.quick else 5.0)

    def validate_lean() -> None:  # what the receiver's processor runs (exchange_protocol.pades_lean)
        report = verify_package(io.BytesIO(data), roots, now, revocation=revocation, lean_pdf=True)
        if not report.ok:
            raise RuntimeError(f"package does not verify: {report.failures}")
    fig["pdf_lean_validations_per_s"] = rate(validate_lean, 2.0 if args.quick else 5.0)

    before = metric(receiver, "gwx_pdf_validations_total")
    doc = document_meta("关于开展安全生产大检查的通知", RECEIVER_UNITS[:10], RECEIVER_UNITS[10:])
    pdf_path = receiver.directory.parent / "fanout.pdf"
    pdf_path.write_bytes(pdf)
    doc_id = send_document(sender, SENDER_UNIT, doc, pdf_path)["doc_id"]
    for unit in RECEIVER_UNITS:
        wait_for(lambda u=unit: any(i["doc_id"] == doc_id for i in receiver.clerk(u).get("/api/v1/inbox")), 300,
                 what=f"fan-out document in {unit}'s inbox")
    fig["fanout_units"] = len(RECEIVER_UNITS)
    fig["fanout_pdf_validations"] = metric(receiver, "gwx_pdf_validations_total") - before


def document_meta(title: str, to: list[str], cc: list[str] = ()) -> dict:
    return {"kind": "通知", "title": title, "doc_number": None, "issuers": [SENDER_UNIT], "signers": [],
            "to": list(to), "cc": list(cc), "written_on": "2026-11-20", "urgency": None, "classification": "非密",
            "deadline": None, "copy_number": None, "printed_by": "临沂市人民政府办公室", "printed_on": "2026-11-20",
            "note": None, "attachments_note": None, "id": None}


# ---- phase 4: one big attachment end to end ---------------------------------------------------
def phase_big(args, sender: LocalNode, receiver: LocalNode, pdf: bytes, fig: dict) -> None:
    size = (256 if args.quick else 1024) * MiB
    directory = receiver.directory.parent / "upload"
    directory.mkdir(exist_ok=True)
    attachment = directory / "现场检查录像.mp4"
    with open(attachment, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    pdf_path = directory / "正文.pdf"
    pdf_path.write_bytes(pdf)
    fig["big_attachment_mib"] = size / MiB
    t0 = time.perf_counter()
    doc_id = send_document(sender, SENDER_UNIT, document_meta("关于报送安全生产检查录像的函", [RECEIVER_UNITS[0]]),
                           pdf_path, [attachment], timeout=1800)["doc_id"]
    fig["big_submit_s"] = time.perf_counter() - t0
    clerk = receiver.clerk(RECEIVER_UNITS[0])
    wait_for(lambda: any(i["doc_id"] == doc_id for i in clerk.get("/api/v1/inbox")), 1800, interval=0.5,
             what="big document in the receiver's inbox")
    fig["big_end_to_end_s"] = time.perf_counter() - t0
    fig["big_mib_per_s"] = size / MiB / fig["big_end_to_end_s"]
    fig["peak_rss_sender_mib"] = peak_rss_mib(sender.process.pid)
    fig["peak_rss_receiver_mib"] = peak_rss_mib(receiver.process.pid)
    attachment.unlink()
