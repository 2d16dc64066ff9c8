"""Duplicate and replay classification for received envelopes: a pure decision, storage injected.

Delivery is at-least-once on the wire and exactly-once in the inbox. A receiver remembers, per
message id, the identity digest of the envelope it accepted (:attr:`FrameHead.identity_digest`:
header and signature bytes, which bind the payload through the signed payload digest; relays'
hop counts are left out so the same envelope arriving by another route is still "the same") and the
signed transport receipt it answered with.

- unknown id → :attr:`Verdict.NEW`: store it, then answer with a fresh receipt;
- known id, same digest → :attr:`Verdict.DUPLICATE`: answer with the *original* receipt, store nothing;
- known id, different digest → :class:`EnvelopeReplayed` (``ENV_REPLAYED``): a replay with altered
  bytes, or an id collision; refused either way.

The head is verified first (signature, trust, expiry): only then is the id worth looking up.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from .errors import EnvelopeReplayed


class Verdict(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class SeenEnvelope:
    """What the receiver recorded when it accepted a message id."""

    identity_digest: str
    receipt: bytes  # the signed transport receipt it answered with (wire form)


@dataclass(frozen=True)
class ReplayDecision:
    verdict: Verdict
    original_receipt: bytes | None = None


def classify_replay(message_id: str, envelope_digest: str,
                    lookup: Callable[[str], SeenEnvelope | None]) -> ReplayDecision:
    """Decide whether ``message_id`` with ``envelope_digest`` is new, a duplicate, or a replay."""
    seen = lookup(message_id)
    if seen is None:
        return ReplayDecision(Verdict.NEW)
    if hmac.compare_digest(seen.identity_digest, envelope_digest):
        return ReplayDecision(Verdict.DUPLICATE, seen.receipt)
    raise EnvelopeReplayed(f"message {message_id} was already received with different bytes",
                           message_id=message_id)
