"""Retry timing: when to try a failed delivery again, or that it is time to give up (bounce).

One pure function, :func:`next_attempt`, decides it for every queue in gwx. Everything it needs is
passed in — the attempt number, the time of the first failure, now, the policy and a random number
in [0, 1) — so it is deterministic under test and the node owns the clock and the randomness.

The schedule is exponential with *proportional full jitter*:

    ceiling(n) = min(max_delay, min_delay × multiplier^(n−1))      n = failed attempts so far
    delay(n)   = max(min_delay, ceiling(n) × (1 − jitter × r))     r ∈ [0, 1)

``jitter = 1`` is AWS's "full jitter" (any delay up to the ceiling), floored at ``min_delay`` so a
dead peer is never hammered; ``jitter = 0`` is plain exponential backoff. Jitter is subtracted, not
added, so ``max_delay`` is a hard ceiling. We chose this over "decorrelated jitter"
(delay = rand(min, 3 × previous)): that one needs the previous delay as state, and its bounds do not
grow monotonically with the attempt number, which makes "how long until attempt n" unanswerable
for operators and untestable as a property. Ours: both bounds of delay(n) are non-decreasing in n
and lie in [min_delay, max_delay].

The retry window (``max_age``) is counted from the first failure. A retry that would fall after
the window's end is moved to the end, so there is always one last attempt at the edge; once now has
reached the end, the answer is :data:`GIVE_UP` and the sender gets a bounce. A clock that steps
back (now before the first failure) counts as no time elapsed rather than as an error: the queue
must keep working through NTP corrections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal

from .errors import InvalidRetryInput, InvalidRetryPolicy


class GiveUp(Enum):
    GIVE_UP = "give_up"


GIVE_UP = GiveUp.GIVE_UP


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters, validated at construction."""

    min_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)
    multiplier: float = 2.0
    jitter: float = 0.5
    max_age: timedelta = timedelta(days=2)

    def __post_init__(self) -> None:
        for name in ("min_delay", "max_delay", "max_age"):
            if not isinstance(getattr(self, name), timedelta):
                raise InvalidRetryPolicy(f"{name} must be a timedelta", field=name)
        if self.min_delay <= timedelta(0):
            raise InvalidRetryPolicy("min_delay must be positive", field="min_delay")
        if self.max_delay < self.min_delay:
            raise InvalidRetryPolicy("max_delay must not be less than min_delay", field="max_delay")
        if self.max_age <= timedelta(0):
            raise InvalidRetryPolicy("max_age (the retry window) must be positive", field="max_age")
        for name in ("multiplier", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidRetryPolicy(f"{name} must be a finite number", field=name)
        if self.multiplier < 1:
            raise InvalidRetryPolicy("multiplier must be at least 1", field="multiplier")
        if not 0 <= self.jitter <= 1:
            raise InvalidRetryPolicy("jitter must be between 0 and 1", field="jitter")

    def ceiling(self, attempt: int) -> timedelta:
        """The largest delay after ``attempt`` failures (before jitter)."""
        lo, hi = self.min_delay.total_seconds(), self.max_delay.total_seconds()
        # Compare in log space: multiplier ** 10_000 would overflow a float.
        if self.multiplier == 1 or (attempt - 1) * math.log(self.multiplier) < math.log(hi / lo):
            seconds = min(hi, lo * self.multiplier ** (attempt - 1))
        else:
            seconds = hi
        return timedelta(seconds=seconds)

    def delay(self, attempt: int, rand: float) -> timedelta:
        """The jittered delay after ``attempt`` failures, ``rand`` in [0, 1)."""
        ceiling = self.ceiling(attempt)
        return max(self.min_delay, ceiling * (1 - self.jitter * rand))


def next_attempt(attempt: int, first_failure: datetime, now: datetime, policy: RetryPolicy,
                 rand: float) -> datetime | Literal[GiveUp.GIVE_UP]:
    """When to try again after ``attempt`` (≥ 1) failed attempts, or :data:`GIVE_UP`."""
    if type(attempt) is not int or attempt < 1:
        raise InvalidRetryInput(f"attempt must be an integer ≥ 1, got {attempt!r}", field="attempt")
    if isinstance(rand, bool) or not isinstance(rand, (int, float)) or not 0 <= rand < 1:
        raise InvalidRetryInput(f"rand must be in [0, 1), got {rand!r}", field="rand")
    for name, value in (("first_failure", first_failure), ("now", now)):
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise InvalidRetryInput(f"{name} must be a timezone-aware datetime", field=name)
    if not isinstance(policy, RetryPolicy):
        raise InvalidRetryInput("policy must be a RetryPolicy", field="policy")
    window_end = first_failure + policy.max_age
    base = max(now, first_failure)
    if base >= window_end:
        return GIVE_UP
    return min(base + policy.delay(attempt, rand), window_end)
