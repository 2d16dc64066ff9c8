"""The duplicate/replay identity of an envelope, and the decision it feeds; pure, storage outside.

Delivery is at-least-once on the wire and exactly-once in the inbox. A receiver remembers, per
message id, the *identity* of the envelope it accepted (:func:`envelope_identity`) and the signed
transport receipt it answered with. The identity is the network's digest (SHA-256, or SM3 on a 国密
network: :mod:`exchange_protocol.digests`) over the header and signature lengths,
the header bytes and the signature bytes — the frame without its hop count, which every relay
changes (as IP changes its TTL), so the same envelope arriving by another route, or forwarded once
more, is still "the same". The payload is not hashed into it: the signed header binds it through
``payload_sha256`` (``payload_sm3``). Whoever judges an arrival by identity alone, without opening it, must therefore
check the payload bytes against that digest (:class:`~exchange_protocol.envelope_seal.EnvelopeOpener`
does; the node's no-crypto duplicate path hashes the payload when the bytes are not the stored ones).

- unknown id → :attr:`Verdict.NEW`: store it, then answer with a fresh receipt;
- known id, same identity → :attr:`Verdict.DUPLICATE`: answer with the *original* receipt, store nothing;
- known id, other identity → :class:`EnvelopeReplayed` (``ENV_REPLAYED``): a replay with altered
  bytes, or an id collision; refused either way.

The receipt answered to a duplicate binds the bytes first received (``envelope_sha256`` or ``envelope_sm3`` of
that frame); a sender that resends its own stored frame gets back exactly what it expects.
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass

from . import digests
from .errors import EnvelopeReplayed


def envelope_identity(header_bytes: bytes, signature: bytes, digest: str = digests.SHA256) -> str:
    """The envelope's identity for duplicate detection (hex, of the network's ``digest``; the hop
    count left out)."""
    h = digests.new(digest, struct.pack(">II", len(header_bytes), len(signature)))
    h.update(header_bytes)
    h.update(signature)
    return h.hexdigest()


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


def classify_replay(message_id: str, identity_digest: str, seen: SeenEnvelope | None) -> ReplayDecision:
    """Whether ``message_id`` arriving with ``identity_digest`` is new, a duplicate of what was
    ``seen`` under that id (None: nothing was), or a replay (raises ``ENV_REPLAYED``)."""
    if seen is None:
        return ReplayDecision(Verdict.NEW)
    if hmac.compare_digest(seen.identity_digest, identity_digest):
        return ReplayDecision(Verdict.DUPLICATE, seen.receipt)
    raise EnvelopeReplayed(f"message {message_id} was already received with different bytes",
                           message_id=message_id)
