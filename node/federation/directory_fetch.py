"""A node with a ``[parent]`` keeps the network directory its parent serves, without restarts.

At start and then on a timer (``[parent] refresh_seconds``, never later than the held directory's
next_update) the node asks its parent for ``GET /peer/v1/directory`` over mutual TLS, conditionally
(If-None-Match with the digest of the copy it holds: an unchanged directory costs a 304). A copy
that comes back is judged by :func:`exchange_protocol.directory_signing.verify_directory` against
our roots, our CRLs and the directory we hold — signature, chain, the directory-signing purpose, a
version that only grows — and only then replaces ``NODE_DIR/directory.json`` (temp, fsync, rename),
the copy this node serves to its own children. So a new version travels down the tree one hop per
refresh.

Whatever goes wrong keeps the copy we hold (routing never stops on the directory):

* a parent unreachable, or a stale CRL on our side while judging the signer (``PKI_REVOCATION_*``):
  *try again* at the next refresh — no verdict on the directory;
* a rollback, a tampered or wrongly signed copy: *refused*, logged with its code; asked again at
  the next refresh, in case the parent has since been given a good one.

Each outcome is counted in ``gwx_directory_fetches_total{outcome, code}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass

from exchange_protocol.directory import Directory
from exchange_protocol.directory_signing import read_unverified, verify_directory
from exchange_protocol.errors import DirectoryError
from node.config import Peer
from node.context import NodeContext
from node.error_kinds import kind_of_code
from node.federation.transport import PeerClient
from node.ops.metrics import Registry
from pki.errors import ErrorKind, GwxError
from pki.keystore import write_public_file

log = logging.getLogger("gwx.node.directory")
MIN_INTERVAL = 1.0  # seconds: a next_update already passed does not make us ask in a tight loop


@dataclass(frozen=True)
class FetchOutcome:
    outcome: str  # installed / unchanged / refused / try-again
    code: str | None = None
    version: int | None = None


class DirectoryFetcher:
    """Fetches, judges and installs the parent's directory; :meth:`run` does so until cancelled."""

    def __init__(self, ctx: NodeContext, client: PeerClient, registry: Registry) -> None:
        parent = ctx.config.parent
        if parent is None:
            raise ValueError("a directory fetcher needs a [parent]")
        self._ctx = ctx
        self._client = client
        self._parent = Peer(parent.node_id, parent.url)
        self._refresh = parent.refresh_seconds
        self._path = ctx.config.network_directory_path
        self._fetches = registry.counter("gwx_directory_fetches_total",
                                         "Network directory fetches from the parent, by outcome and code",
                                         labels=("outcome", "code"))

    async def run(self) -> None:
        while True:
            await self.refresh_once()
            await asyncio.sleep(self._interval())

    async def refresh_once(self) -> FetchOutcome:
        try:
            outcome = await self._refresh_once()
        except GwxError as exc:
            outcome = self._judged(exc)
        except Exception:  # a bug must not end the timer: the next refresh tries again
            log.exception("directory refresh from %s failed", self._parent.node_id)
            outcome = FetchOutcome("try-again", "INTERNAL")
        self._fetches.inc(outcome=outcome.outcome, code=outcome.code or "")
        return outcome

    async def _refresh_once(self) -> FetchOutcome:
        held = await asyncio.to_thread(self._held_bytes)
        etag = f'"{hashlib.sha256(held).hexdigest()}"' if held is not None else None
        data, _ = await self._client.fetch_directory(self._parent, etag)
        if data is None:
            return FetchOutcome("unchanged")
        current = _readable(held)
        verified = await asyncio.to_thread(verify_directory, data, self._ctx.trust, self._ctx.clock(),
                                           current=current, revocation=self._ctx.revocation)
        if verified.unchanged:
            return FetchOutcome("unchanged", version=verified.directory.version)
        await asyncio.to_thread(write_public_file, self._path, data)
        reload = getattr(self._ctx.router, "reload", None)  # routing on it from the next decision, not a second later
        if reload is not None:
            reload()
        log.info("network directory version %d (%s) installed from %s%s", verified.directory.version,
                 verified.status.value, self._parent.node_id,
                 f", replacing version {current.version}" if current else "")
        return FetchOutcome("installed", version=verified.directory.version)

    def _judged(self, exc: GwxError) -> FetchOutcome:
        cause = str(exc.details.get("cause") or "")
        if isinstance(exc, DirectoryError) and kind_of_code(cause) is not ErrorKind.TRANSIENT:
            log.error("network directory from %s refused (%s); keeping the copy we hold: %s",
                      self._parent.node_id, exc.code, exc.message)
            return FetchOutcome("refused", exc.code)
        # Our CRL is stale, the parent is down or busy: nothing is known against the directory.
        code = cause or exc.code
        log.warning("network directory from %s not judged (%s), trying again in %.0f s: %s",
                    self._parent.node_id, code, self._interval(), exc.message)
        return FetchOutcome("try-again", code)

    def _held_bytes(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except FileNotFoundError:
            return None

    def _interval(self) -> float:
        held = _readable(self._held_bytes())
        if held is None:
            return self._refresh
        until_due = (held.next_update - self._ctx.clock()).total_seconds()
        return self._refresh if until_due <= 0 else max(MIN_INTERVAL, min(self._refresh, until_due))


def _readable(data: bytes | None) -> Directory | None:
    """The directory we hold (verified when it was installed), or None when there is none we can read:
    then any valid directory from the parent is taken, as on a first start."""
    if data is None:
        return None
    with contextlib.suppress(DirectoryError):
        return read_unverified(data)
    log.warning("the network directory held is unreadable; the parent's copy will replace it")
    return None

