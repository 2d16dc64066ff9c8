"""The per-destination loop (Synapse's ``PerDestinationQueue``): one task per peer node this node hands
envelopes to (a next hop: the destination itself, or a relay on the way), one batch in flight at a time.

Each round: bounce what expired (the retry window closes whether or not the peer answers); if the
peer is backing off, wait; else send what is already sealed, due window by window, batch by batch
(:mod:`.batch_sender`), and only then seal the waiting drafts (:mod:`.envelope_builder`) and send
them — so drafts written while a frame is in flight or the peer is away leave together. A failure of the peer
itself is handed to the :class:`~node.federation.retry_limiter.RetryLimiter`, which persists when
to try again; the first batch that gets through clears it. When that backoff ends, the earliest
waiting envelope tries the peer even if its own retry time is later. Between rounds the loop sleeps
until a wake-up (a new message for this peer) or, while the peer backs off, the end of the backoff,
else the next row due (or, with only drafts waiting for a peer that failed, the end of its backoff) —
never polling, never sleeping past a due row.

Errors are judged by kind at the loop boundary (:meth:`DestinationQueue.run`): an error
:func:`node.error_kinds.disposition` says to retry (the peer down or answering badly, our own CRL
stale, our HSM away, the store busy) means back off; one it says to give up on (the peer's
certificate expired) is logged as needing an operator and backs off too — there is no message to
give up on there, they bounce by their own windows — so the peer is never called every few
seconds. An exception that is no GwxError is logged with its traceback and the loop carries on
after a pause, so a destination's task never dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING

from node.error_kinds import Disposition, disposition
from node.federation.batch_sender import BatchSender, batches
from node.federation.envelope_builder import EnvelopeBuilder
from node.federation.retry_limiter import RetryLimiter
from node.federation.transport import PeerIdentityMismatch
from pki.errors import GwxError

if TYPE_CHECKING:
    from node.federation.outbound import Outbound

log = logging.getLogger("gwx.outbound")

IDLE_SECONDS = 60.0   # the longest sleep between rounds (a clock that jumps is noticed this soon)
PAUSE_SECONDS = 5.0   # after an unexpected error, before the next round


class DestinationQueue:
    def __init__(self, outbound: Outbound, destination: str) -> None:
        self.outbound = outbound
        self.destination = destination
        self.task: asyncio.Task | None = None
        self.builder = EnvelopeBuilder(outbound, destination)
        self.sender = BatchSender(outbound, destination, on_stale_recipient=self.builder.forget_credentials,
                                  on_receipt_signer=self.builder.notice_signer)
        self.limiter = RetryLimiter(outbound.store, destination, outbound.policy, outbound.ctx.clock, outbound.rand)
        self._wakeup = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                try:
                    await self._round()
                except GwxError as exc:
                    # The peer, our credentials or our store will do better later: back off
                    # (error_kinds decides, so our own stale CRL waits like a peer that is down).
                    if isinstance(exc, PeerIdentityMismatch):
                        self.builder.forget_credentials()
                    if disposition(exc) is not Disposition.RETRY:
                        # Nothing here to give up (messages bounce by their own windows): the
                        # destination waits for an operator, e.g. the peer's certificate expired.
                        log.error("cannot serve %s until an operator acts: %s", self.destination, exc,
                                  extra={"destination": self.destination, "code": exc.code})
                    await self.limiter.failed(exc)
                if not self._stopping:
                    await self._sleep()
            except asyncio.CancelledError:
                raise
            except GwxError as exc:  # an error retrying cannot fix: log, pause, carry on
                log.error("send loop error: %s", exc, extra={"destination": self.destination, "code": exc.code})
                await self._pause(PAUSE_SECONDS)
            except Exception:  # never let the destination's task die
                log.error("unexpected error in the send loop", exc_info=True, extra={"destination": self.destination})
                await self._pause(PAUSE_SECONDS)

    async def _round(self) -> None:
        self.builder.begin_round()  # the drafts' destinations read once a round
        try:
            await self._round_steps()
        finally:
            self.builder.end_round()

    async def _round_steps(self) -> None:
        await self.limiter.load()
        now = self.outbound.ctx.clock()
        # Also while backing off: the retry window closes regardless. Drafts first: one whose window
        # ended while this node was stopped is sealed there, and its one attempt is the sender's.
        try:  # a held notice's reason says it was held (the same rule as build_drafts' below)
            await self.builder.drop_expired(now, notices_held=await self._sealed_waiting_for_the_peer())
        finally:  # a draft stuck on an error of ours must not keep expired envelopes from being given up
            await self.sender.bounce_expired(now)
        if self.limiter.backing_off():
            return
        # What is already sealed goes first, and drafts are sealed only once it has gone (Nagle's
        # rule): notices written while the peer is away or a frame is in flight wait as drafts and
        # leave together, instead of one more envelope at every retry of a peer that is down.
        await self._send_window()
        await self._seal_and_send()
        if (probe_at := await self._probe_time()) is not None:  # after the drafts: documents are sealed meanwhile
            await self._send_window(as_of=probe_at)  # raises if the peer is still away
            await self._seal_and_send()  # it is back: the notices held for it go now

    async def _seal_and_send(self) -> None:
        if await self.builder.has_drafts():
            await self.builder.build_drafts(hold_notices=await self._sealed_waiting_for_the_peer())
            await self._send_window()

    async def _sealed_waiting_for_the_peer(self) -> bool:
        """The peer has not been reached since it failed, and an envelope sealed before waits for its
        own retry time: the notices that could share an envelope wait with it (documents are sealed,
        one envelope each anyway). The peer's backoff (the limiter's) and the envelope's (its row's)
        are drawn apart and may end in either order; sealing whenever the peer's ended first made one
        more envelope of notices at every retry of a peer that was away."""
        return self.limiter.failures > 0 and await self.outbound.store.queue.next_due_at(self.destination) is not None

    async def _send_window(self, as_of: dt.datetime | None = None) -> None:
        """Send the window, batch by batch, until nothing is due (as of ``as_of``, for the first
        window only: the probe's)."""
        limits = self.outbound.ctx.config.limits
        while not self._stopping:
            window = await self.outbound.store.queue.load_active_window(self.destination, limits.active_window,
                                                                        now=as_of)
            as_of = None
            if not window:
                break
            for batch in batches(window, limits.batch_size):
                await self.sender.send(batch)
                await self.limiter.succeeded()
                if self._stopping:
                    return

    async def _probe_time(self) -> dt.datetime | None:
        """When the peer failed and its backoff is over, but no envelope is due yet: the time the
        earliest one becomes due, so that it is claimed now and tries the peer (its failure backs
        the peer off again, its success lets everything waiting go). The peer's backoff and each
        row's are drawn apart; waiting for the row left a peer that came back untried, and the
        notices held behind the row waiting, for as long as the two were apart."""
        if self.limiter.failures == 0:
            return None  # rows deferred while the peer answered keep their own retry time
        due = await self.outbound.store.queue.next_due_at(self.destination)
        return due if due is not None and due > self.outbound.ctx.clock() else None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _sleep(self) -> None:
        now = self.outbound.ctx.clock()
        if self.limiter.backing_off(now):
            # Nothing is sent before retry_at, however due a row is; at retry_at the earliest row
            # tries the peer however far off its own time is (:meth:`_probe_time`).
            wake_at = self.limiter.retry_at
        else:
            wake_at = await self.outbound.store.queue.next_due_at(self.destination)
            if wake_at is None and self.limiter.retry_at is not None and await self.builder.has_drafts():
                # Drafts wait for the peer that failed (its certificate was not had) and its backoff
                # ended already — while the failure was written, on a loaded machine: try now. Only
                # rows are "due", so drafts alone would otherwise sleep IDLE_SECONDS.
                wake_at = self.limiter.retry_at
        delay = IDLE_SECONDS if wake_at is None else max(0.0, (wake_at - now).total_seconds())
        await self._pause(min(delay, IDLE_SECONDS))
