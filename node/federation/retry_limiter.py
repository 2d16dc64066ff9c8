"""Backing off from a peer that cannot be reached, remembered across restarts.

Synapse's ``RetryLimiter``, with its state in the store: after a failed attempt to reach a peer
(unreachable, a 5xx, a garbled answer, a certificate naming another node) nothing is sent to it
until ``retry_at``, which :func:`exchange_protocol.retry.next_attempt` decides from the number of
consecutive failures — the same function, and the same policy, that times each envelope's own
retries and the processor's. The peers row (state, failures, ``retry_at``, last error) is written
on every change, so a node restarted while a peer is down keeps waiting instead of hammering it,
and the count goes on from where it was. The first success clears it.

A peer is ``dead`` (for ``gwx node status`` and ``/metrics``) after :data:`DEAD_AFTER_FAILURES`
failures in a row; it is still tried, at the ceiling of the backoff.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from exchange_protocol.retry import GIVE_UP, RetryPolicy, next_attempt
from node.config import RetrySettings
from node.store import PEER_BACKING_OFF, PEER_DEAD, PEER_UP, NodeStore
from pki.errors import GwxError

log = logging.getLogger("gwx.outbound")

DEAD_AFTER_FAILURES = 8


def retry_policy(settings: RetrySettings) -> RetryPolicy:
    """The node's one retry policy (``[retry]`` in node.toml) as :mod:`exchange_protocol.retry` takes it."""
    return RetryPolicy(min_delay=dt.timedelta(seconds=settings.min_seconds),
                       max_delay=dt.timedelta(seconds=settings.max_seconds), multiplier=settings.multiplier,
                       jitter=settings.jitter, max_age=dt.timedelta(seconds=settings.window_seconds))


class RetryLimiter:
    """Whether ``destination`` may be tried now; records each failure and the first success after."""

    def __init__(self, store: NodeStore, destination: str, policy: RetryPolicy, clock: Callable[[], dt.datetime],
                 rand: Callable[[], float]) -> None:
        self._store = store
        self.destination = destination
        self._policy = policy
        self._clock = clock
        self._rand = rand
        self.failures = 0
        self.retry_at: dt.datetime | None = None
        self._loaded = False

    async def load(self) -> None:
        """Read what the store remembers of this peer (once; later calls do nothing)."""
        if self._loaded:
            return
        peer = await self._store.peers.get_peer(self.destination)
        if peer is not None and peer.state != PEER_UP:
            self.failures, self.retry_at = peer.failures, peer.retry_at
        self._loaded = True

    def backing_off(self, now: dt.datetime | None = None) -> bool:
        """True while nothing may be sent to the peer."""
        return self.retry_at is not None and (now or self._clock()) < self.retry_at

    async def failed(self, error: GwxError) -> dt.datetime:
        """Count a failure to reach the peer; returns when to try it again."""
        await self.load()
        self.failures += 1
        now = self._clock()
        when = next_attempt(self.failures, now, now, self._policy, self._rand())
        if when is GIVE_UP:  # a peer is never given up on: envelopes bounce by their own windows
            when = now + self._policy.max_delay
        self.retry_at = when
        state = PEER_DEAD if self.failures >= DEAD_AFTER_FAILURES else PEER_BACKING_OFF
        await self._store.peers.set_peer_state(self.destination, state, failures=self.failures, error=error,
                                               retry_at=when)
        log.warning("peer %s %s (failure %d): %s; next try at %s", self.destination, state, self.failures,
                    error.message, when.isoformat(),
                    extra={"destination": self.destination, "code": error.code, "attempt": self.failures})
        return when

    async def try_now(self) -> None:
        """An operator asked to try now: the backoff ends here (its failures still count, and the
        store keeps them until the peer answers or fails again)."""
        await self.load()
        self.retry_at = None

    async def succeeded(self) -> None:
        """The peer answered: no backoff any more. The store's row is written only when it says
        otherwise — a failure since, this sender's or another worker's: it was a write transaction
        after every request to a healthy peer (~70 in the 签收 phase of the medium city's 54-node
        process), where a read of its row by its key (the loop's own connection on SQLite) tells."""
        await self.load()
        if self.failures:
            log.info("peer %s is reachable again", self.destination, extra={"destination": self.destination})
        self.failures, self.retry_at = 0, None
        peer = await self._store.peers.get_peer(self.destination)
        if peer is not None and (peer.state, peer.failures, peer.retry_at) == (PEER_UP, 0, None):
            return
        await self._store.peers.set_peer_state(self.destination, PEER_UP)
