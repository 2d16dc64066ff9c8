"""The outbound queue's lifecycle as one table: which event moves an envelope from which state to which.

Pure (no I/O), like :mod:`exchange_protocol.states`. The SQLite backend asks this table for every
``WHERE state IN (…)`` and every new state it writes, so the rule lives here and only here::

    incoming ──claim──▶ active ──sent──▶ sent                       (final)
        │                 │ defer
        │                 ▼
        │ defer ──▶ deferred ──claim (when due again)──▶ active …
        │
    incoming / active / deferred ──hold──▶ hold ──release──▶ incoming (never tried) / deferred (tried)
    active ──restart──▶ incoming (never tried) / deferred (tried)      (start-up: nothing is in flight)
    incoming / deferred ──retry──▶ the same, due now                  (an operator: try it now)
    any unfinished ──bounce──▶ bounced (final)     any unfinished ──corrupt──▶ corrupt

- ``incoming``: accepted, never tried. ``deferred``: tried, waiting for ``next_attempt_at``. Both are
  *waiting*: a row of either is claimed once due and not expired.
- ``active``: in the destination's bounded in-flight window. It is written down only so that the
  window stays bounded; after a restart (``restart``) active rows go back to waiting (delivery is
  at-least-once; the receiver's dedupe makes it exactly-once). Claiming is therefore not audited;
  every other move is.
- ``hold``: parked by an operator; a receipt for an envelope already on the wire still counts
  (``sent``). ``corrupt``: its blob is missing or altered (found at start-up).
- ``sent`` / ``bounced`` are final: no event moves them; old ones are purged (the audit log keeps
  their history) so the blobs they pinned can be collected.
- Withdrawal: a waiting row (never in flight at that moment) of our own message may be taken out
  of the queue altogether when its units have moved to another node (:mod:`node.federation.reroute`
  re-addresses the message as a new draft); an active row is left alone until it is waiting again.
- Expiry: a waiting or active row past ``expires_at`` is bounced by the sender; a held row is not
  (an operator holds it on purpose).

Retry timing (when ``next_attempt_at`` is) is :mod:`exchange_protocol.retry`'s; this table only says
which moves are legal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

INCOMING, ACTIVE, DEFERRED, HOLD, CORRUPT, SENT, BOUNCED = (
    "incoming", "active", "deferred", "hold", "corrupt", "sent", "bounced")
QUEUE_STATES = (INCOMING, ACTIVE, DEFERRED, HOLD, CORRUPT, SENT, BOUNCED)
FINAL_STATES = frozenset({SENT, BOUNCED})
UNFINISHED_STATES = frozenset({INCOMING, ACTIVE, DEFERRED, HOLD})
WAITING_STATES = frozenset({INCOMING, DEFERRED})     # claimed into the window once due
EXPIRABLE_STATES = frozenset({INCOMING, ACTIVE, DEFERRED})  # bounced when past expires_at
AT_REST_STATES = frozenset({INCOMING, DEFERRED, HOLD})  # unfinished and not in flight (after a restart)
WITHDRAWABLE_STATES = WAITING_STATES  # may be taken out of the queue to be re-addressed (not held, not in flight)

BACK_TO_WAITING = "back to waiting"  # a target: incoming if never tried, else deferred


class QueueEvent(Enum):
    CLAIM = "claim"        # into the destination's in-flight window (due, unexpired)
    SENT = "sent"          # the next node's signed transport receipt
    DEFER = "defer"        # a failed attempt; try again later
    HOLD = "hold"          # an operator parks it
    RELEASE = "release"    # an operator lets it go again, due now
    RETRY = "retry"        # an operator: a waiting row is due now (its peer's backoff is cut short too)
    RESTART = "restart"    # start-up: what was in flight is not any more
    BOUNCE = "bounce"      # give up: refused for good, or the retry window closed
    CORRUPT = "corrupt"    # its blob is missing or altered


@dataclass(frozen=True)
class Move:
    sources: frozenset[str]
    target: str  # a state, or BACK_TO_WAITING


TRANSITIONS: Mapping[QueueEvent, Move] = {
    QueueEvent.CLAIM: Move(WAITING_STATES, ACTIVE),
    QueueEvent.SENT: Move(UNFINISHED_STATES, SENT),
    QueueEvent.DEFER: Move(frozenset({INCOMING, ACTIVE, DEFERRED}), DEFERRED),
    QueueEvent.HOLD: Move(frozenset({INCOMING, ACTIVE, DEFERRED}), HOLD),
    QueueEvent.RELEASE: Move(frozenset({HOLD}), BACK_TO_WAITING),
    QueueEvent.RESTART: Move(frozenset({ACTIVE}), BACK_TO_WAITING),
    QueueEvent.RETRY: Move(WAITING_STATES, BACK_TO_WAITING),
    QueueEvent.BOUNCE: Move(UNFINISHED_STATES, BOUNCED),
    QueueEvent.CORRUPT: Move(UNFINISHED_STATES, CORRUPT),
}


class IllegalQueueMove(ValueError):
    """Raised by :func:`next_state` for an event the table does not allow from a state."""


def ordered(states: frozenset[str]) -> tuple[str, ...]:
    """States in lifecycle order (a stable order for queries and messages)."""
    return tuple(s for s in QUEUE_STATES if s in states)


def sources(event: QueueEvent) -> tuple[str, ...]:
    """The states ``event`` may move a row out of, in lifecycle order."""
    return ordered(TRANSITIONS[event].sources)


def target(event: QueueEvent, attempts: int) -> str:
    """The state ``event`` moves a row to, given how many attempts the row has had."""
    to = TRANSITIONS[event].target
    if to == BACK_TO_WAITING:
        return INCOMING if attempts == 0 else DEFERRED
    return to


def next_state(state: str, event: QueueEvent, attempts: int = 0) -> str:
    """The state after ``event`` from ``state``; :class:`IllegalQueueMove` if the table forbids it."""
    if state not in TRANSITIONS[event].sources:
        raise IllegalQueueMove(f"{event.value} is not allowed from {state}")
    return target(event, attempts)


__all__ = [
    "ACTIVE", "AT_REST_STATES", "BACK_TO_WAITING", "BOUNCED", "CORRUPT", "DEFERRED", "EXPIRABLE_STATES",
    "FINAL_STATES", "HOLD", "INCOMING", "QUEUE_STATES", "SENT", "TRANSITIONS", "UNFINISHED_STATES",
    "WAITING_STATES", "WITHDRAWABLE_STATES", "IllegalQueueMove", "Move", "QueueEvent", "next_state", "ordered", "sources", "target",
]
