"""A real gwx network on loopback: a CA, nodes as separate processes, clerks' API clients.

Used by ``make demo``, the integration tests and ``bench/node.py``, so all three exercise exactly
what an operator runs: ``gwx node init`` (through :func:`node.provision.init_node`), the static
peer list, ``gwx node run`` as a child process with mutual TLS between nodes, and the local API
with real tokens. Nothing is mocked; ports are picked free on 127.0.0.1. A network larger than the
machine has cores (``bench/network.py``: a whole city) runs groups of nodes in one process each
(:meth:`LocalNetwork.start_cohosted`, :mod:`node.cohost`).

A network has one root CA, of the network profile given (``profile="sm"``: a 国密 network, SM2
everywhere but node TLS, which is P-256 under the CA's transport root — docs/architecture.md); intermediate CAs (one per level, say) may issue some nodes instead
(:meth:`LocalNetwork.add_intermediate`, ``add_node(..., ca=...)``). :meth:`LocalNetwork.publish_crls`
writes every CA's current CRL, concatenated, into each node's ``crl.pem`` — what an operator does
after a revocation, and what a node under an intermediate needs from the start.

:func:`notice_pdf` is the sample 公文 body all three send (and every test that needs a PDF): one
maker, so a change to what a document looks like is made once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.cli.api_client import ApiClient, MultipartStream
from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.provision import add_peer, init_node
from node.runner import ready_path
from node.stopping import EXIT_STOP_OVERDUE
from pki.algorithms import algorithm_for_profile
from pki.ca import CertificateAuthority
from pki.crl import crl_pem, publish_crl
from pki.keystore import write_public_file

PASSPHRASE = b"gwx local network"


_PORTS = random.Random()  # its own generator: a test that seeds ``random`` must not make two workers pick alike
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free now, for a node to listen on later. Taken below the kernel's ephemeral
    range: a port ``bind(0)`` returns is one the kernel hands to outgoing connections too, and under
    load one of them held it by the time the node bound it (CI: ``address already in use`` starting a
    test network). At random, and never twice in one process. ``GWX_PORT_SLICE=i/k`` keeps this
    process (and the processes it starts) to the ports ``p % k == i``: the test workers each get
    their own slice, since a port one of them found free could be found free by another in the second
    before its node binds it (CI with three workers: ``address already in use`` again)."""
    low = _ephemeral_low()
    index, count = _port_slice()
    if low > 10000 + 1000 * count:
        for _ in range(200):
            port = _PORTS.randrange(10000, low)
            port -= (port - index) % count
            if port >= 10000 and port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as s:  # no room below the range (or all of it taken): the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_slice() -> tuple[int, int]:
    """``GWX_PORT_SLICE`` as (index, count); (0, 1), all ports, when unset or not ``i/k`` with 0 ≤ i < k."""
    try:
        index, count = (int(part) for part in os.environ.get("GWX_PORT_SLICE", "").split("/"))
    except ValueError:
        return 0, 1
    return (index, count) if 0 <= index < count else (0, 1)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; other systems differ, and then a taken port is only likelier


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class StopOverdue(RuntimeError):
    """A node was ended by its stop deadline: something in it did not stop when asked."""


@dataclass
class LocalNode:
    node_id: str
    directory: Path
    units: list[dict]
    tokens: dict[str, str]
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # e.g. an enrolled node's own GWX_PASSPHRASE

    def client(self, token_name: str, timeout: float = 120.0) -> ApiClient:
        return ApiClient(self.ready["local_url"], self.tokens[token_name], timeout=timeout)

    def clerk(self, unit_code: str) -> ApiClient:
        return self.client(f"clerk-{unit_code}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalNetwork:
    def __init__(self, base: Path, ca_name: str = "临沂市电子政务CA", *, env: dict[str, str] | None = None,
                 profile: str = "international") -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.ca = CertificateAuthority.init_root(self.base / "ca", ca_name, PASSPHRASE,
                                                 algorithm_for_profile(profile))
        self.cas: list[CertificateAuthority] = [self.ca]  # the root, then intermediates as created
        self.nodes: dict[str, LocalNode] = {}
        self.workers: list[LocalNode] = []  # more workers of nodes in ``nodes`` (add_worker)
        self.env = env or {}

    @classmethod
    def reopen(cls, base: Path, ca_directories: Sequence[str], *, env: dict[str, str] | None = None,
               profile: str = "international") -> LocalNetwork:
        """A network whose CAs were made earlier, in ``base``'s ``ca_directories`` (the root's first,
        then the intermediates' in the order they were created) — a copy of a network kept between
        bench runs, say. It has no nodes yet: take their directories in with :meth:`adopt`."""
        net = cls.__new__(cls)
        net.base, net.profile, net.env, net.nodes, net.workers = Path(base), profile, env or {}, {}, []
        net.cas = [CertificateAuthority.open(net.base / name, PASSPHRASE) for name in ca_directories]
        net.ca = net.cas[0]
        return net

    def add_intermediate(self, directory_name: str, name: str, parent: CertificateAuthority | None = None,
                         levels_below: int = 0) -> CertificateAuthority:
        """An intermediate CA under ``parent`` (the root by default), e.g. one per administrative level."""
        ca = (parent or self.ca).create_intermediate(self.base / directory_name, name, PASSPHRASE,
                                                     levels_below=levels_below)
        self.cas.append(ca)
        return ca

    def add_node(self, node_id: str, units: list[dict], *, ca: CertificateAuthority | None = None,
                 **overrides: Any) -> LocalNode:
        """Provision a node whose credentials and seals ``ca`` issues (the root CA by default)."""
        directory = self.base / node_id
        _, tokens = init_node(directory, node_id, ca or self.ca, units, PASSPHRASE, peer_port=free_port(),
                              local_port=free_port())
        if overrides:
            _override(directory, overrides)
        node = LocalNode(node_id, directory, units, tokens)
        self.nodes[node_id] = node
        return node

    def adopt(self, node_id: str, directory: Path, units: list[dict], *, env: dict[str, str] | None = None,
              **overrides: Any) -> LocalNode:
        """Take into the network a node directory made otherwise — enrolled, say (gwx node request,
        install-certs, init without --ca) — with its tokens as init wrote them."""
        if overrides:
            _override(directory, overrides)
        tokens = {p.stem: p.read_text("utf-8").strip() for p in (directory / "tokens").glob("*.token")}
        node = LocalNode(node_id, directory, units, tokens, env=env or {})
        self.nodes[node_id] = node
        return node

    def add_worker(self, first: LocalNode, worker: str, *, share_port: bool = False) -> LocalNode:
        """Another worker of ``first``'s node (PostgreSQL, issue 12): its directory copied (credentials,
        seals, tokens, config), its data directory the first's, its own ``[store] worker`` name, listening
        on ports of its own — or, with ``share_port``, on the first's peer port, which ``[peer_api]
        reuse_port`` lets both bind. Started with :meth:`start`; :meth:`stop_all` stops it too."""
        directory = self.base / f"{first.node_id}-{worker}"
        shutil.copytree(first.directory, directory, ignore=shutil.ignore_patterns("data", "run", "*.log"))
        (directory / "data").symlink_to(load_config(first.directory).data_dir, target_is_directory=True)
        peer_port = load_config(first.directory).peer_api.port if share_port else free_port()

        def edit(document) -> None:
            set_section_values(document, "peer_api", {"port": peer_port,
                                                      "public_url": f"https://127.0.0.1:{peer_port}"})
            set_section_values(document, "local_api", {"port": free_port()})
            set_section_values(document, "store", {"worker": worker})

        edit_config(directory, edit)
        node = LocalNode(first.node_id, directory, first.units, first.tokens)
        self.workers.append(node)
        return node

    def publish_crls(self) -> None:
        """Every CA of the network signs a fresh CRL; each node's ``crl.pem`` gets all of them."""
        bundle = self.crl_bundle()
        for node in self.nodes.values():
            write_public_file(node.directory / "crl.pem", bundle)

    def crl_bundle(self, now: dt.datetime | None = None, next_update_in: dt.timedelta | None = None) -> bytes:
        """A fresh CRL of every CA of the network — on a 国密 network each one's transport CA's too,
        which node TLS certificates are judged by — concatenated as a node's ``crl.pem`` holds them."""
        now = now or dt.datetime.now(dt.UTC)
        extra = {"next_update_in": next_update_in} if next_update_in is not None else {}
        return b"".join(crl_pem(publish_crl(c, now, **extra)) for ca in self.cas
                        for c in (ca, ca.separate_transport()) if c is not None)

    def connect_all(self) -> None:
        """Every node learns every other node (static peer lists with their units) and, when the
        network has intermediate CAs, every CA's CRL (a node's own CA's alone would not do)."""
        if len(self.cas) > 1:
            self.publish_crls()
        for node in self.nodes.values():
            for other in self.nodes.values():
                if other is not node:
                    url = load_config(other.directory).peer_api.public_url
                    add_peer(node.directory, other.node_id, url, [u["code"] for u in other.units],
                             {u["code"]: u["name"] for u in other.units})

    def start(self, node: LocalNode, timeout: float = 60.0) -> LocalNode:
        node.log_path = node.directory / "node.log"
        log = open(node.log_path, "ab")  # noqa: SIM115 — owned by the child for its lifetime
        env = {**os.environ, "GWX_PASSPHRASE": PASSPHRASE.decode(), **self.env, **node.env}
        ready_path(load_config(node.directory)).unlink(missing_ok=True)
        node.process = subprocess.Popen([sys.executable, "-m", "node.cli.main", "node", "run", "--dir",
                                         str(node.directory)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                        cwd=Path(__file__).resolve().parent.parent)
        log.close()
        path = ready_path(load_config(node.directory))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(f"node {node.node_id} exited with {node.process.returncode}:\n{self.log_tail(node)}")
            if path.exists():
                info = json.loads(path.read_text())
                if info.get("pid") == node.process.pid:
                    node.ready = info
                    return node
            time.sleep(0.05)
        raise TimeoutError(f"node {node.node_id} not ready after {timeout}s:\n{self.log_tail(node)}")

    def start_all(self) -> None:
        for node in self.nodes.values():
            self.start(node)

    def start_cohosted(self, groups: Sequence[Sequence[LocalNode]], timeout: float = 120.0) -> list[subprocess.Popen]:
        """Start each group of nodes in one process (:mod:`node.cohost`): one event loop, each node
        with its own keys, store and listeners. A node's ``process`` is its group's, so stopping or
        killing one node of a group stops them all; ``log_path`` is the group's log."""
        env = {**os.environ, "GWX_PASSPHRASE": PASSPHRASE.decode(), **self.env}
        processes = []
        for index, group in enumerate(groups):
            log_path = self.base / f"cohost-{index}.log"
            for node in group:
                ready_path(load_config(node.directory)).unlink(missing_ok=True)
            with open(log_path, "ab") as log:
                process = subprocess.Popen([sys.executable, "-m", "node.cohost", *(str(n.directory) for n in group)],
                                           stdout=log, stderr=subprocess.STDOUT, env=env,
                                           cwd=Path(__file__).resolve().parent.parent)
            for node in group:
                node.process, node.log_path = process, log_path
            processes.append(process)
        waiting = {node.node_id: (node, ready_path(load_config(node.directory))) for group in groups for node in group}
        deadline = time.monotonic() + timeout
        while waiting:
            for node_id, (node, path) in list(waiting.items()):
                if node.process.poll() is not None:
                    self.stop_all()
                    raise RuntimeError(f"the process hosting {node_id} exited with {node.process.returncode}:\n"
                                       f"{self.log_tail(node)}")
                if path.exists():
                    info = json.loads(path.read_text())
                    if info.get("pid") == node.process.pid:
                        node.ready = info
                        del waiting[node_id]
            if time.monotonic() > deadline:
                self.stop_all()
                raise TimeoutError(f"{len(waiting)} cohosted nodes not ready after {timeout}s "
                                   f"({', '.join(sorted(waiting)[:5])}…)")
            time.sleep(0.1)
        return processes

    def stop(self, node: LocalNode, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the node drains and exits cleanly (returns its exit code).

        A node that did not stop by itself and was ended by its :class:`node.stopping.StopDeadline`
        (exit status 70) raises :class:`StopOverdue`: the deadline keeps an operator's stop bounded,
        but in a test or the demo a stop that hangs is a defect to see, not 10 quiet seconds."""
        if node.process is None or node.process.poll() is not None:
            return node.process.returncode if node.process else None
        node.process.send_signal(signal.SIGTERM)
        try:
            code = node.process.wait(timeout)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
            raise
        if code == EXIT_STOP_OVERDUE:
            raise StopOverdue(f"node {node.node_id} did not stop by itself: its stop deadline ended it "
                              f"(exit status {code}); its log ends:\n{self.log_tail(node, 15)}")
        return code

    def kill(self, node: LocalNode) -> None:
        """kill -9: no chance to clean up (what crash-safety tests are about)."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()

    def stop_all(self) -> None:
        """Stop every node (killing one that does not exit); then raise :class:`StopOverdue` naming
        each node its stop deadline had to end."""
        overdue = []
        for node in (*self.workers, *self.nodes.values()):
            try:
                self.stop(node)
            except StopOverdue as exc:
                overdue.append(str(exc))
            except Exception:
                self.kill(node)
        if overdue:
            raise StopOverdue("\n\n".join(overdue))

    def log_tail(self, node: LocalNode, lines: int = 40) -> str:
        if node.log_path is None or not node.log_path.exists():
            return ""
        return "\n".join(node.log_path.read_text(errors="replace").splitlines()[-lines:])


def send_document(node: LocalNode, unit_code: str, meta: dict, body_pdf: Path,
                  attachments: list[Path] = (), timeout: float = 300.0) -> dict:
    stream = MultipartStream([("meta", json.dumps(meta, ensure_ascii=False).encode(), "application/json")],
                             [("body", body_pdf, body_pdf.name,
                               "application/ofd" if body_pdf.suffix == ".ofd" else "application/pdf"),
                              *[("attachment", a, a.name, "application/octet-stream") for a in attachments]])
    return node.client(f"clerk-{unit_code}", timeout).post_multipart("/api/v1/documents", stream)


def notice_pdf(title: str = "关于做好冬季安全生产工作的通知", *, issuer: str = "某某市人民政府",
               greeting: str = "各县（市、区）人民政府，市直各单位：",
               body: Sequence[str] = ("现将有关事项通知如下。",), date_line: str | None = "2026年11月20日",
               pages: int = 1) -> bytes:
    """A 通知 laid out in the GB/T 9704 manner, Chinese text in reportlab's STSong-Light CID font.

    Every page has the title, the greeting and the ``body`` lines (marked 第N页 when there are
    several pages); the last page ends with the issuing organ at (380, 300) and the date line at
    (372, 272), where a seal is placed. ``date_line=None`` leaves the date out.
    """
    # reportlab is a test and demo dependency, not the node's: imported only when a sample is made.
    import io

    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf)  # A4, reportlab's default page size
    for page in range(pages):
        c.setFont("STSong-Light", 22)
        c.drawCentredString(297, 720, title)
        c.setFont("STSong-Light", 16)
        c.drawString(90, 660, greeting)
        for i, line in enumerate(body):
            mark = f"（第{page + 1}页）" if pages > 1 and i == len(body) - 1 else ""
            c.drawString(122, 630 - 26 * i, line + mark)
        if page == pages - 1:
            c.drawString(380, 300, issuer)
            if date_line:
                c.drawString(372, 272, date_line)
        c.showPage()
    c.save()
    return buf.getvalue()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s (last: {last!r})")


def _override(directory: Path, overrides: dict[str, dict[str, Any]]) -> None:
    """Adjust sections of a fresh node.toml (tests shorten retry windows, limits…), validated like any edit."""
    def edit(document) -> None:
        for section, values in overrides.items():
            set_section_values(document, section, values)

    edit_config(directory, edit)
