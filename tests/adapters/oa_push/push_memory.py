"""A push of a large document to an OA on a real node process, and what it cost the node in memory.

One node hosts the city office and 兰山区 (local delivery); 兰山区's OA is the legacy OA reading
pushes as a stream (``streamed``: it keeps the SHA-256 of what it received, not the bytes). The
city sends a 通知 with one attachment of ``size`` random bytes while the OA is down, so the push
waits in the outbox; the node is then restarted (its VmHWM is the new process's alone) with the OA
still down, its peak RSS read from /proc/PID/status, then the OA comes up and the push goes; the
peak RSS is read again once the OA has the document.

Used by ``test_push_memory.py`` and by ``bench/adapters.py`` (``oa_push_<N>mib_peak_rss_mb``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from node.config import CONFIG_NAME, load_config
from node.localnet import send_document, wait_for
from tests.adapters.oa_push.legacy_oa import LegacyOa
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    connect_and_start,
    new_network,
    notice_meta,
    units,
)

MiB = 1024 * 1024
MAPPING = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "oa-mapping.toml"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def configure_oa_push(directory: Path, oa: LegacyOa) -> None:
    mapping = MAPPING.read_text("utf-8")
    mapping = mapping[:mapping.index("[status]")] + mapping[mapping.index("# strftime"):]
    (directory / "oa-mapping.toml").write_text(mapping[:mapping.index("# The OA's parameters of the status")],
                                               "utf-8")
    with open(directory / CONFIG_NAME, "a", encoding="utf-8") as file:
        file.write(f'\n[[oa_push]]\nunit = "{A1}"\nwsdl = "{oa.wsdl_url}"\nreceived_operation = "ReceiveGongwen"\n'
                   'mapping = "oa-mapping.toml"\ntimeout_seconds = 30.0\nwindow_seconds = 600.0\n')
    load_config(directory)


def push_large_attachment(base: Path, size: int) -> dict:
    """Figures (MiB, seconds) and what the OA recorded, with the attachment's digest to compare."""
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    attachment = base / "现场检查录像.mp4"
    digest = hashlib.sha256()
    with open(attachment, "wb") as file:
        for _ in range(0, size, MiB):
            chunk = os.urandom(min(MiB, size - file.tell()))
            digest.update(chunk)
            file.write(chunk)
    with LegacyOa() as oa:
        oa.state.streamed = True
        net = new_network(base / "net")
        node = net.add_node("city", units(CITY, A1), retry=FAST_RETRY)
        configure_oa_push(node.directory, oa)
        connect_and_start(net)
        try:
            oa.down()
            doc_id = send_document(node, CITY, notice_meta(CITY, [A1]), net.body, [attachment])["doc_id"]
            wait_for(lambda: node.clerk(A1).get(f"/api/v1/inbox/{doc_id}"), 120, what="the document in 兰山区's inbox")
            net.stop(node)  # a fresh process: its VmHWM is the push's
            net.start(node)  # the OA still down: nothing is pushed before the baseline is read
            start_rss = peak_rss_mib(node.process.pid)
            oa.up()
            started = time.monotonic()
            got = wait_for(lambda: oa.state.documents.get(doc_id), 300, 0.2, what="the push at the OA")
            seconds = time.monotonic() - started
            peak_rss = peak_rss_mib(node.process.pid)
        finally:
            net.stop_all()
            shutil.rmtree(base / "net", ignore_errors=True)
            attachment.unlink()
    return {"doc_id": doc_id, "received": got, "sha256": digest.hexdigest(), "size": size,
            "start_rss_mb": start_rss, "peak_rss_mb": peak_rss, "push_s": seconds}
