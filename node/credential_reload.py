"""Picking up renewed credentials in a running node, and ending a renewal's overlap on time.

The runner starts one :class:`CredentialReloader`. It loads ``credentials/`` again (in a worker
thread) when asked — SIGHUP, which ``gwx node renew`` sends after installing a new set
(:mod:`node.renewal`) — and when the overlap of a previous set ends. What follows a load:

* the TLS contexts of both listeners' sides get the current certificate (tried on a scratch context
  first): later handshakes, as server and as client, present it; the client's pooled connections
  are retired so that its next requests open new ones;
* the :class:`~node.context.NodeContext` adopts the keys: new envelopes, receipts and notices are
  signed with the current signing key, ``GET /peer/v1/node`` answers with the current certificates,
  and envelopes open with the current encryption key or a previous one still in its overlap;
* a previous set whose overlap ended is deleted from disk (:func:`node.renewal.previous_sets`) and
  its key leaves memory with the adoption.

Chosen over watching the files: a renewal writes six files and a signal after the last one says
the set is whole; a node that was not running loads the same files at its start. A load that fails
(a key the passphrase does not open, a file missing) is logged and changes nothing: the node goes
on with the credentials it has.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from node.context import NodeContext, NodeCredentials
from node.federation.tls import reload_certificate
from node.federation.transport import PeerClient
from pki.errors import GwxError

log = logging.getLogger("gwx.node")
MAX_SLEEP = 3600.0  # look again at least hourly (a clock that jumped, an overlap written by hand)


class CredentialReloader:
    def __init__(self, ctx: NodeContext, tls_contexts: list[ssl.SSLContext], client: PeerClient,
                 wake: asyncio.Event | None = None) -> None:
        self.ctx = ctx
        self.tls_contexts = tls_contexts
        self.client = client
        self._wake = wake or asyncio.Event()  # set by the SIGHUP handler
        self._tls_certificate = self._read_tls_certificate()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._seconds_to_next_overlap_end())
            except TimeoutError:
                pass
            self._wake.clear()
            await self.reload()

    def _seconds_to_next_overlap_end(self) -> float:
        if not self.ctx.previous:
            return MAX_SLEEP
        until = min(p.until for p in self.ctx.previous)
        return min(MAX_SLEEP, max(0.0, (until - self.ctx.clock()).total_seconds()) + 0.05)

    async def reload(self) -> bool:
        """Load ``credentials/`` and use it; False (and a logged error) when it cannot be loaded."""
        ctx, config = self.ctx, self.ctx.config
        try:
            creds = await asyncio.to_thread(NodeCredentials.load, config, ctx.passphrase, ctx.clock())
            tls_certificate = self._read_tls_certificate()
            # Always (a millisecond): the contexts may have been made from older files than we last read.
            reload_certificate(self.tls_contexts, config.credentials_dir / "tls.crt",
                               config.credentials_dir / "tls.key", ctx.passphrase)
        except (GwxError, OSError, ssl.SSLError) as exc:
            log.error("cannot load the node's credentials, going on with those in use: %s", exc,
                      extra={"code": getattr(exc, "code", "IO_ERROR")})
            return False
        renewed = creds.signer.certificate != ctx.signer.certificate
        dropped = len(ctx.previous_keys) - len(creds.previous_keys)
        ctx.adopt(creds)
        if tls_certificate != self._tls_certificate:
            self._tls_certificate = tls_certificate
            self.client.renew_connections()
        if renewed:
            log.info("node %s uses its renewed credentials (signing serial %x, encryption serial %x); "
                     "%d previous encryption key(s) kept", ctx.node_id, creds.signer.certificate.serial_number,
                     creds.decryption_key.certificate.serial_number, len(creds.previous_keys))
        elif dropped > 0:
            log.info("node %s dropped %d previous encryption key(s): overlap ended", ctx.node_id, dropped)
        return True

    def _read_tls_certificate(self) -> bytes:
        return (self.ctx.config.credentials_dir / "tls.crt").read_bytes()

