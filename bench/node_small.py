"""bench/node.py's small-document mode (issue 12 §2): the small seal, waiting for the inbox, and the
same envelopes sent to Postfix (``--vs-postfix``, :mod:`bench.postfix_smtp`)."""

from __future__ import annotations

import os
import ssl
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization

from node.federation.tls import client_context
from node.localnet import PASSPHRASE, LocalNetwork, LocalNode
from pki.keystore import read_private_key
from pki.seal_picture import render_round_seal
from pki.seal_store import issue_seal

if TYPE_CHECKING:
    from bench.postfix_smtp import PostfixTls

CLK_TCK = os.sysconf("SC_CLK_TCK")
SMALL_SEAL_DPI = 20  # a 33-pixel seal picture: the envelope of a one-page 通知 is then about 19 KB


def cpu_seconds(pid: int, kernel_only: bool = False) -> float:
    """utime + stime (or stime alone) of a process, all its threads, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[12]) + (0 if kernel_only else int(fields[11]))) / CLK_TCK


def children_cpu_seconds(pid: int) -> float:
    """The CPU of ``pid``'s children (its check processes, node.federation.check_pool): those running
    (from /proc) and those it has reaped (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK
    running = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                child = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(child[1]) == pid:
                running += (int(child[11]) + int(child[12])) / CLK_TCK
    return reaped + running


def tree_cpu_seconds(pid: int) -> float:
    """A node's CPU: its own and its check processes'."""
    return cpu_seconds(pid) + children_cpu_seconds(pid)


def small_seal(net: LocalNetwork, unit: str, name: str, directory: Path) -> Path:
    """A second seal of the sending unit from the network's CA, its picture drawn at 20 dpi (2 KB)."""
    picture = render_round_seal(name, dpi=SMALL_SEAL_DPI)
    issue_seal(net.ca, unit, name, directory, PASSPHRASE, image_png=picture, replace=True)
    return directory


def applied(node: LocalNode) -> dict[str, float]:
    """``gwx_messages_applied_total`` by outcome (done, deferred, failed), every type together."""
    text = node.client("operator").get("/metrics").decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("gwx_messages_applied_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = out.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def wait_for_inbox(workers: list[LocalNode], accepted: int, started: float, cpu0: float, fig: dict) -> None:
    """Until the processors of the receiver's ``workers`` have applied every accepted document (PAdES,
    inbox rows, transport-acks): ``inbox_per_s`` counts from the first POST, as a backlog that keeps up
    ends with the last receipt. ``cpu0``: the workers' CPU seconds then, together,
    their check processes' included."""
    deadline = time.perf_counter() + 60 + accepted / 5

    def applied_together() -> dict[str, float]:
        together: dict[str, float] = {}
        for worker in workers:
            for outcome, n in applied(worker).items():
                together[outcome] = together.get(outcome, 0.0) + n
        return together

    while (outcomes := applied_together()).get("done", 0) + outcomes.get("failed", 0) < accepted:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the receiver applied {outcomes} of {accepted} documents")
        time.sleep(0.2)
    wall = time.perf_counter() - started
    cpu = sum(tree_cpu_seconds(w.process.pid) for w in workers) - cpu0
    checks = sum(children_cpu_seconds(w.process.pid) for w in workers)  # (none before the first package)
    fig.update(inbox_per_s=accepted / wall, inbox_wall_s=wall, inbox_failed=outcomes.get("failed", 0),
               cpu_ms_per_doc_with_inbox=1000 * cpu / accepted, cpu_cores_with_inbox=cpu / wall,
               check_processes_cpu_ms_per_doc_with_inbox=1000 * checks / accepted)


def phase_postfix(batches: list, connections: int, fig: dict, tls: PostfixTls | None = None) -> None:
    """The same envelopes, one mail each, to a Postfix of the bench's own (fsync before its 250): in
    plain SMTP (``postfix_*``), then, given ``tls``, over STARTTLS with client certificates required
    (``postfix_tls_*``, like for like with gwx's mutual TLS)."""
    from bench.postfix_smtp import LoopbackPostfix, as_mail

    mails = []
    for batch in batches:
        data, offset = batch.path.read_bytes(), 0
        for _, _, size in batch.frames:
            mails.append(as_mail(data[offset:offset + size], len(mails)))
            offset += size
    fig.update(postfix_connections=connections, postfix_mail_bytes=statistics.mean(len(m) for m in mails))
    for prefix, mode in (("postfix", None), ("postfix_tls", tls)) if tls is not None else (("postfix", None),):
        with LoopbackPostfix(mode) as postfix:
            if mode is not None:  # it really requires TLS and a client certificate: refused without either
                without_cert = ssl.create_default_context(cafile=None, cadata=mode.client_ca_pem.decode())
                refusals = {"plain": postfix.probe(None), "no_client_certificate": postfix.probe(without_cert)}
                if any(answer.startswith("250") for answer in refusals.values()):
                    raise RuntimeError(f"postfix's smtpd accepted a sender without TLS or certificate: {refusals}")
                fig["postfix_tls_refusals"] = refusals
            cpu0 = postfix.cpu_seconds()
            wall, accepted = postfix.submit(mails, connections)
            cpu = postfix.cpu_seconds() - cpu0
        if accepted != len(mails):
            raise RuntimeError(f"postfix accepted {accepted} of {len(mails)} mails")
        ratio = "ratio_vs_postfix" + prefix.removeprefix("postfix")
        fig.update({f"{prefix}_per_s": accepted / wall, f"{prefix}_wall_s": wall,
                    f"{prefix}_cpu_ms_per_msg": 1000 * cpu / accepted, ratio: fig["accept_per_s"] / (accepted / wall)})


def postfix_tls(sender: LocalNode, receiver: LocalNode) -> PostfixTls:
    """The Postfix side of the like-for-like run: smtpd shows the receiving node's TLS certificate and
    key and requires a client certificate of the network's CA; the client is the sending node's TLS
    context, as its POSTs to the node use."""
    from bench.postfix_smtp import PostfixTls

    creds = receiver.directory / "credentials"
    key = read_private_key(creds / "tls.key", PASSPHRASE).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    sent = sender.directory / "credentials"
    client = client_context(sent / "tls.crt", sent / "tls.key", sent / "root.crt", PASSPHRASE)
    return PostfixTls(key + (creds / "tls.crt").read_bytes(), (creds / "root.crt").read_bytes(), client,
                      urlsplit(receiver.ready["peer_url"]).hostname or "127.0.0.1")
