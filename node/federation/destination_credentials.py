"""The destination's credentials a builder seals for: which encryption certificate, verified and cached.

Sealing a draft needs the destination node's encryption certificate — from the network directory for
a node beyond the next hop, else fetched from the node itself (``GET /peer/v1/node`` over mutual TLS)
and cached in the store — verified against our root and the node id, and re-judged every
:data:`REVERIFY_SECONDS` so a revocation or an expiry is noticed. A neighbour's certificates are
fetched again every :data:`REFETCH_SECONDS`, and at once when its receipt comes signed by another
certificate than the one cached (:meth:`DestinationCredentials.notice_signer`) or when it cannot open
what we sealed for it (:meth:`DestinationCredentials.forget`) — so a neighbour's renewed encryption
certificate is used well within its overlap (``gwx node renew``). One per next hop, owned by its
:class:`~node.federation.envelope_builder.EnvelopeBuilder`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING

from cryptography import x509

from node.error_kinds import Disposition, disposition
from node.federation.transport import PeerCredentials, judge_credentials, verify_peer_credentials
from node.store import StoredPeerCredentials
from pki.certificates import pem
from pki.errors import GwxError

if TYPE_CHECKING:
    from node.federation.outbound import Outbound

log = logging.getLogger("gwx.outbound")

REVERIFY_SECONDS = 300  # cached peer certificates are judged again (expiry, revocation) this often
REFETCH_SECONDS = 3600  # and asked of the peer again this often: a peer's renewal is seen within the hour


class DestinationCredentials:
    """The verified credentials of the destinations whose route starts with ``hop``: the hop itself (its
    credentials from ``GET /peer/v1/node``, as for any static peer) or a node beyond it (from the network
    directory — a relay on the way can then carry what it cannot read)."""

    def __init__(self, outbound: Outbound, hop: str) -> None:
        self.outbound = outbound
        self.hop = hop
        self._credentials: dict[str, tuple[PeerCredentials, dt.datetime]] = {}
        self._refetch = False  # ask the hop for its certificates, not the stored copy
        self._seen_signer: x509.Certificate | None = None  # what the hop's last receipt was signed with

    def forget(self) -> None:
        """The peer answered as another node, or could not open what we sealed for it: fetch its
        certificates afresh next time (not from the stored copy)."""
        self._credentials.clear()
        self._refetch = True

    def notice_signer(self, certificate: x509.Certificate) -> None:
        """The hop signed (a receipt) with ``certificate``: if it is not the signing certificate we
        hold for it, it renewed — fetch its certificates before sealing the next drafts, well within
        the overlap during which it still opens what we sealed for the old ones."""
        self._seen_signer = certificate
        cached = self._credentials.get(self.hop)
        if cached is not None and certificate != cached[0].signing_certificate:
            self._renewed(certificate)
            self.forget()

    def _renewed(self, certificate: x509.Certificate) -> None:
        log.info("%s signs with a new certificate (serial %x): fetching its certificates again",
                 self.hop, certificate.serial_number, extra={"destination": self.hop})

    async def get(self, destination: str) -> PeerCredentials:
        """``destination``'s verified credentials (its encryption certificate is what we seal for)."""
        ctx = self.outbound.ctx
        cached = self._credentials.get(destination)
        if cached is not None and (ctx.clock() - cached[1]).total_seconds() < REVERIFY_SECONDS:
            return cached[0]
        # Re-judged from here on: a revocation or an expiry since is noticed.
        entry = ctx.router.node_entry(destination) if destination != self.hop else None
        if entry is not None:
            creds = judge_credentials(destination, entry.signing, entry.encryption, entry.chain, ctx.trust,
                                      ctx.clock(), ctx.revocation)
        else:
            creds = await self._fetched(destination)
        self._credentials[destination] = (creds, ctx.clock())
        return creds

    async def _fetched(self, destination: str) -> PeerCredentials:
        """A neighbour's certificates: the copy cached in the store while fresh, else asked of the
        neighbour itself (and the copy, if still valid, when it cannot be reached)."""
        ctx, store = self.outbound.ctx, self.outbound.store
        stored = await store.peer_credentials.get(destination)
        now = ctx.clock()
        hop = destination == self.hop
        refetch = hop and self._refetch
        fresh = stored is not None and (now - stored.fetched_at).total_seconds() < REFETCH_SECONDS
        if stored is not None and fresh and not refetch:
            with contextlib.suppress(GwxError):  # expired or revoked since: fetched afresh below
                creds = self._use_stored(stored, now)
                if not hop or self._seen_signer in (None, creds.signing_certificate):
                    return creds
                self._renewed(self._seen_signer)  # its receipts are signed by another certificate
        try:
            creds = await self.outbound.client.fetch_credentials(self.outbound.peer(destination), ctx.trust, now,
                                                                 ctx.revocation)
        except GwxError as exc:
            if stored is None or refetch or disposition(exc) is not Disposition.RETRY:
                raise
            return self._use_stored(stored, now)  # the neighbour cannot be asked just now
        await store.peer_credentials.save(StoredPeerCredentials(
            destination, pem(creds.signing_certificate).decode(), pem(creds.encryption_certificate).decode(),
            b"".join(pem(c) for c in creds.chain).decode(), now))
        if hop:
            self._refetch = False
        return creds

    def _use_stored(self, stored: StoredPeerCredentials, now: dt.datetime) -> PeerCredentials:
        ctx = self.outbound.ctx
        try:
            return verify_peer_credentials(stored.node_id, stored.signing_cert, stored.encryption_cert,
                                           [stored.chain] if stored.chain else [], ctx.trust, now, ctx.revocation)
        except GwxError as exc:
            log.warning("cached credentials of %s no longer valid: %s", stored.node_id, exc,
                        extra={"destination": stored.node_id})
            raise
