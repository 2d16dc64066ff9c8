"""A node with a ``[parent]`` keeps the CRLs its parent serves, without restarts.

Revocation flows down the tree the way the network directory does (a township reaches its county,
never the city): the CA operator writes a new CRL into the root node's ``crl.pem`` (``gwx pki crl
--out``), the root node re-reads it within seconds (:class:`node.context.ReloadingCrlChecker`), and
each node below asks its parent for ``GET /peer/v1/crl`` over mutual TLS, conditionally
(If-None-Match: an unchanged file costs a 304), and re-serves what it installed to its own children.

What comes back is judged by :func:`pki.crl.judge_crl_update` against the CRLs held: every CRL must
be signed by a CA this node trusts (its root, its own intermediates, the intermediates of the
directory it holds that chain to that root) and carry a CRL number no lower than the one held for
its CA; only then it replaces ``NODE_DIR/crl.pem`` (temp, fsync, rename) and is used at once.
Refused (``PKI_CRL_UNTRUSTED``, ``PKI_CRL_ROLLBACK``, ``PKI_CRL_INCOMPLETE``, ``PKI_CRL_MALFORMED``) or
unreachable, the held CRLs stay.

When: at start, then at half the time left until the earliest next-update held (so a CRL is
replaced well before it goes stale), never later than ``[parent] refresh_seconds``; after a failure,
or while what we hold is stale and the parent has nothing newer, sooner — from
:data:`MIN_INTERVAL` doubling up to ``refresh_seconds``.

The chicken and the egg: a stale CRL makes :func:`pki.trust.verify_certificate` refuse every
certificate, the parent's TLS certificate included. This fetch judges the parent with
``ReloadingCrlChecker.revoked_only`` (a parent a CRL we hold lists stays refused, a stale CRL does
not stop the fetch), through a client of its own so that no connection judged that way carries
anything else; the parent does the same for this route (:mod:`node.federation.peer_api`). That is
safe because what is fetched is judged by its own signature, not by the channel.

Each outcome is counted in ``gwx_crl_fetches_total{outcome, code}`` and recorded in
``run/crl-fetch.json`` (:mod:`node.ops.crl_state`), which readiness names when the CRL is stale.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from cryptography import x509

from node.config import Peer
from node.context import NodeContext
from node.federation.revocation_api import etag_of
from node.federation.transport import PeerClient
from node.ops.crl_state import held_crls, record_fetch
from node.ops.directory_state import held_directory
from node.ops.metrics import Registry
from pki.crl import crl_number, judge_crl_update
from pki.errors import CrlUpdateRefused, GwxError, MalformedEncoding
from pki.keystore import write_public_file
from pki.trust import TrustStore, verify_certificate

log = logging.getLogger("gwx.node.crl")
MIN_INTERVAL = 1.0  # seconds: the first retry after a failure, and the shortest wait ever


@dataclass(frozen=True)
class CrlFetchOutcome:
    outcome: str  # installed / unchanged / refused / try-again
    code: str | None = None
    message: str | None = None


def _chains(cert: x509.Certificate, trust: TrustStore, now: dt.datetime, pool: tuple[x509.Certificate, ...]) -> bool:
    try:
        verify_certificate(cert, trust, now, pool)
    except GwxError:
        return False
    return True


class CrlFetcher:
    """Fetches, judges and installs the parent's CRLs; :meth:`run` does so until cancelled."""

    def __init__(self, ctx: NodeContext, client: PeerClient, registry: Registry) -> None:
        parent = ctx.config.parent
        if parent is None:
            raise ValueError("a CRL fetcher needs a [parent]")
        self._ctx = ctx
        self._client = client
        self._parent = Peer(parent.node_id, parent.url)
        self._refresh = parent.refresh_seconds
        self._path = ctx.config.crl_path
        self._failures = 0
        self._fetches = registry.counter("gwx_crl_fetches_total", "CRL fetches from the parent, by outcome and code",
                                         labels=("outcome", "code"))

    async def run(self) -> None:
        while True:
            outcome = await self.refresh_once()
            await asyncio.sleep(self._interval(outcome))

    async def refresh_once(self) -> CrlFetchOutcome:
        try:
            outcome = await self._refresh_once()
        except (CrlUpdateRefused, MalformedEncoding) as exc:
            log.error("CRL from %s refused (%s); keeping the CRLs we hold: %s", self._parent.node_id, exc.code,
                      exc.message)
            outcome = CrlFetchOutcome("refused", exc.code, exc.message)
        except GwxError as exc:
            log.warning("CRL fetch from %s failed (%s), trying again: %s", self._parent.node_id, exc.code,
                        exc.message)
            outcome = CrlFetchOutcome("try-again", exc.code, exc.message)
        except Exception as exc:  # a bug must not end the timer: the next refresh tries again
            log.exception("CRL refresh from %s failed", self._parent.node_id)
            outcome = CrlFetchOutcome("try-again", "INTERNAL", f"{type(exc).__name__}: {exc}")
        self._fetches.inc(outcome=outcome.outcome, code=outcome.code or "")
        try:
            await asyncio.to_thread(record_fetch, self._ctx.config, self._parent.node_id, self._ctx.clock(),
                                    outcome.outcome, outcome.code, outcome.message)
        except OSError:
            log.exception("cannot record the CRL fetch outcome")
        return outcome

    async def _refresh_once(self) -> CrlFetchOutcome:
        held_bytes = await asyncio.to_thread(self._held_bytes)
        data, _ = await self._client.fetch_crl(self._parent, etag_of(held_bytes) if held_bytes is not None else None)
        if data is None:
            return CrlFetchOutcome("unchanged")
        held = await asyncio.to_thread(self._held)
        newer = await asyncio.to_thread(judge_crl_update, data, held, self._known_cas())
        if newer is None:
            return CrlFetchOutcome("unchanged")
        await asyncio.to_thread(write_public_file, self._path, data)
        self._ctx.revocation.reload()
        log.info("CRL installed from %s: %s", self._parent.node_id,
                 ", ".join(f"'{c.issuer.rfc4514_string()}' #{crl_number(c)} next update "
                           f"{c.next_update_utc:%Y-%m-%d %H:%M:%S} UTC" for c in newer))
        return CrlFetchOutcome("installed")

    def _held_bytes(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            return None

    def _held(self) -> list[x509.CertificateRevocationList]:
        try:
            return held_crls(self._ctx.config)
        except GwxError:
            log.warning("the CRL file held is unreadable; the parent's CRLs will replace it")
            return []

    def _known_cas(self) -> list[x509.Certificate]:
        """The CA certificates whose CRLs we take: our roots and own intermediates, and the
        intermediates the directory we hold names that chain to our roots — on a 国密 network to
        the transport root too, whose intermediates issue the node TLS certificates below them."""
        ctx = self._ctx
        trusts = (ctx.trust, ctx.tls_trust) if ctx.tls_trust else (ctx.trust,)
        cas = [root for trust in trusts for root in trust.roots] + list(ctx.intermediates)
        try:
            directory = held_directory(ctx.config)
        except (OSError, GwxError):
            directory = None
        named = {c for n in (directory.nodes if directory else ()) for c in n.chain}
        for cert in named - set(cas):
            if any(_chains(cert, trust, ctx.clock(), tuple(named)) for trust in trusts):
                cas.append(cert)
        return cas

    def _interval(self, outcome: CrlFetchOutcome) -> float:
        now = self._ctx.clock()
        dues = [c.next_update_utc for c in self._held() if c.next_update_utc is not None]
        remaining = (min(dues) - now).total_seconds() if dues else 0.0
        if outcome.outcome in ("refused", "try-again") or remaining <= 0:
            self._failures += 1
            return min(self._refresh, MIN_INTERVAL * 2 ** min(self._failures - 1, 20))
        self._failures = 0
        return max(MIN_INTERVAL, min(self._refresh, remaining / 2))

