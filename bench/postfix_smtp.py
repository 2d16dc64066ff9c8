"""Postfix on loopback, configured by the bench itself, as the yardstick for durable acceptance.

``bench/node.py --vs-postfix`` sends the same envelopes it gave the node to a Postfix instance of its
own: a configuration and queue in a temporary directory (``postfix -c DIR``), an ``smtpd`` on a free
loopback port, mail for the bench's domain accepted from 127.0.0.0/8 and handed to the ``discard``
transport once queued. Postfix answers ``250`` to the end of DATA only after its cleanup daemon has
written the queue file and fsynced it (it has no switch to turn that off), the same promise a gwx
receipt makes. Each envelope travels as one message: MIME headers and the envelope's bytes in
base64 (SMTP carries lines of text), so Postfix receives a third more bytes than the node.

With a :class:`PostfixTls` (``--vs-postfix`` measures both) the comparison is like for like with
gwx's mutual TLS: the bench's client says ``STARTTLS`` and shows a client certificate from the
network's CA (the sending node's TLS credentials, as its POSTs to the node do), and ``smtpd``
requires it (``smtpd_tls_security_level = encrypt``, ``smtpd_tls_req_ccert = yes``, the CA as
``smtpd_tls_CAfile``), presenting the receiving node's own TLS certificate and key; TLS 1.2 at least,
as gwx's peer API. One TLS session per SMTP connection, as per keep-alive connection to the node.

Postfix runs its daemons as the ``postfix`` user, and its master as root: this needs root (or
sudo) and the Debian package ``postfix`` (``deploy/install-system-deps.sh``; the Makefile lists it).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from node.localnet import free_port

DOMAIN = "county.gwx.test"
SENDER_ADDRESS = "office@city.gwx.test"
RECIPIENT_ADDRESS = f"inbox@{DOMAIN}"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class PostfixUnavailable(RuntimeError):
    """Postfix is not installed here, or could not be started (the message says which)."""


def as_mail(envelope: bytes, number: int) -> bytes:
    """One envelope as an RFC 5322 message with CRLF lines, its bytes in base64, dot-stuffing-free."""
    body = base64.encodebytes(envelope).replace(b"\n", b"\r\n")
    return (f"From: <{SENDER_ADDRESS}>\r\nTo: <{RECIPIENT_ADDRESS}>\r\nSubject: envelope {number}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: application/vnd.gwx.envelope\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + body


@dataclass(frozen=True)
class PostfixTls:
    """STARTTLS with client certificates: what smtpd presents and requires, and the bench's client side."""

    server_chain_pem: bytes  # smtpd's private key (unencrypted: Postfix reads it as root at start) and chain
    client_ca_pem: bytes     # the CA whose certificates smtpd requires of clients
    client: ssl.SSLContext   # the bench's: its client certificate, and the server verified
    server_hostname: str     # what the server's certificate names (checked by ``client``)


class LoopbackPostfix:
    """A Postfix instance of the bench's own, from :meth:`start` to :meth:`stop` (or ``with``)."""

    def __init__(self, tls: PostfixTls | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.base: Path | None = None
        self.postfix = shutil.which("postfix") or "/usr/sbin/postfix"

    def __enter__(self) -> LoopbackPostfix:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if not Path(self.postfix).exists() or not Path("/etc/postfix/master.cf").exists():
            raise PostfixUnavailable("postfix is not installed (apt-get install postfix, or make system-deps)")
        if os.geteuid() != 0:
            raise PostfixUnavailable("postfix's master runs as root: run the bench as root for --vs-postfix")
        # Its own directory, readable by the postfix user (a bench's temporary directory is 0700).
        self.base = Path(tempfile.mkdtemp(prefix="gwx-bench-postfix-", dir=os.environ.get("GWX_BENCH_DIR")))
        self.base.chmod(0o755)
        etc, spool, data = self.base / "etc", self.base / "spool", self.base / "data"
        for d in (etc, spool, data):
            d.mkdir()
        shutil.chown(data, "postfix")
        master = Path("/etc/postfix/master.cf").read_text().splitlines()
        # The stock smtpd on port 25 becomes one on our loopback port, not chrooted (the queue is ours).
        master = [f"127.0.0.1:{self.port} inet n - n - - smtpd" if line.startswith("smtp ") and " inet " in line
                  else line for line in master]
        (etc / "master.cf").write_text("\n".join(master) + "\n")
        shutil.copy("/etc/postfix/dynamicmaps.cf", etc / "dynamicmaps.cf")
        (etc / "main.cf").write_text("\n".join([
            "compatibility_level = 3.6", f"queue_directory = {spool}", f"data_directory = {data}",
            "mail_owner = postfix", "setgid_group = postdrop", "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4", "myhostname = bench.gwx.test", "mydestination =",
            f"relay_domains = {DOMAIN}", "mynetworks = 127.0.0.0/8",
            "default_transport = discard:", "relay_transport = discard:",
            "smtpd_recipient_restrictions = permit_mynetworks, reject",
            f"maillog_file_prefixes = {self.base}", f"maillog_file = {self.base / 'maillog'}",
            "smtputf8_enable = no", "alias_maps =", "alias_database =", *self._tls_settings(etc), ""]))
        self._postfix("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise PostfixUnavailable(f"postfix did not listen on port {self.port}: {self.log_tail()}")

    def _tls_settings(self, etc: Path) -> list[str]:
        if self.tls is None:
            return []
        chain, ca = etc / "smtpd-chain.pem", etc / "client-ca.pem"
        chain.write_bytes(self.tls.server_chain_pem)
        chain.chmod(0o600)  # root's: smtpd opens it before dropping privileges
        ca.write_bytes(self.tls.client_ca_pem)
        return [f"smtpd_tls_chain_files = {chain}", f"smtpd_tls_CAfile = {ca}",
                "smtpd_tls_security_level = encrypt", "smtpd_tls_ask_ccert = yes", "smtpd_tls_req_ccert = yes",
                "smtpd_tls_mandatory_protocols = >=TLSv1.2", "smtpd_tls_protocols = >=TLSv1.2",
                "smtpd_tls_loglevel = 1"]

    def _postfix(self, command: str) -> None:
        result = subprocess.run([self.postfix, "-c", str(self.base / "etc"), command], capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            raise PostfixUnavailable(f"postfix {command} failed: {result.stderr.strip()} {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        path = self.base / "maillog" if self.base else None
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path and path.exists() else ""

    def cpu_seconds(self) -> float:
        """CPU of the whole instance so far: its master, the children it reaped (cutime, cstime) and
        those still running (smtpd, cleanup, qmgr, discard…: every process whose parent it is)."""
        master = int((self.base / "spool" / "pid" / "master.pid").read_text().split()[0])
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile: its time is in the master's cutime once reaped
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == master:
                total += sum(int(f) for f in fields[11:15])
            elif ppid == master:
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def stop(self) -> None:
        if self.base is None:
            return
        try:
            self._postfix("stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def submit(self, messages: Sequence[bytes], connections: int) -> tuple[float, int]:
        """Send every message over ``connections`` SMTP sessions at once (PIPELINING of the envelope
        commands); returns the wall seconds and how many Postfix accepted (250 after DATA)."""
        return asyncio.run(_submit(self.port, messages, connections, self.tls))


    def probe(self, client: ssl.SSLContext | None) -> str:
        """What smtpd answers to ``MAIL FROM`` of a session without STARTTLS (``client`` None) or with
        STARTTLS under ``client`` (a context without a certificate, say): the reply, or how it ended."""
        return asyncio.run(_probe(self.port, client, self.tls.server_hostname if self.tls else ""))


async def _probe(port: int, client: ssl.SSLContext | None, server_hostname: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async def reply() -> bytes:
            while (line := await reader.readline())[3:4] == b"-":
                pass
            return line

        await reply()
        writer.write(b"EHLO probe.gwx.test\r\n")
        await reply()
        if client is not None:
            writer.write(b"STARTTLS\r\n")
            await reply()
            await writer.start_tls(client, server_hostname=server_hostname)
            writer.write(b"EHLO probe.gwx.test\r\n")
            await reply()
        writer.write(f"MAIL FROM:<{SENDER_ADDRESS}>\r\n".encode())
        answer = await reply()
        return answer.decode(errors="replace").strip() or "closed"
    except (OSError, ssl.SSLError, ConnectionError) as exc:
        return f"closed: {type(exc).__name__}"
    finally:
        writer.close()


async def _submit(port: int, messages: Sequence[bytes], connections: int,
                  tls: PostfixTls | None) -> tuple[float, int]:
    todo = iter(enumerate(messages))
    accepted = 0

    async def session() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def reply() -> bytes:
            while True:  # a multi-line reply ends with "NNN " (space after the code)
                line = await reader.readline()
                if not line:
                    raise ConnectionError("postfix closed the connection")
                if line[3:4] != b"-":
                    return line

        await reply()  # greeting
        writer.write(b"EHLO bench.gwx.test\r\n")
        await reply()
        if tls is not None:
            writer.write(b"STARTTLS\r\n")
            if not (answer := await reply()).startswith(b"220"):
                raise RuntimeError(f"postfix refused STARTTLS: {answer!r}")
            await writer.start_tls(tls.client, server_hostname=tls.server_hostname)
            writer.write(b"EHLO bench.gwx.test\r\n")  # again, inside TLS (RFC 3207)
            await reply()
        for _number, message in todo:
            # MAIL, RCPT and DATA in one write (PIPELINING), then the message once DATA is answered.
            writer.write(f"MAIL FROM:<{SENDER_ADDRESS}>\r\nRCPT TO:<{RECIPIENT_ADDRESS}>\r\nDATA\r\n".encode())
            answers = [await reply() for _ in range(3)]
            if not answers[2].startswith(b"354"):
                raise RuntimeError(f"postfix refused the message: {b' | '.join(answers)!r}")
            writer.write(message + b"\r\n.\r\n")
            done = await reply()
            if not done.startswith(b"250"):
                raise RuntimeError(f"postfix did not accept the message: {done!r}")
            accepted += 1
        writer.write(b"QUIT\r\n")
        await reply()
        writer.close()
        await writer.wait_closed()

    start = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(connections)))
    return time.perf_counter() - start, accepted
