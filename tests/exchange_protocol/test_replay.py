"""exchange_protocol.replay: new, duplicate (answered with the original receipt) or replayed."""

from __future__ import annotations

import pytest

from exchange_protocol.envelope import decode_frame
from exchange_protocol.envelope_seal import seal_envelope
from exchange_protocol.errors import EnvelopeReplayed
from exchange_protocol.replay import SeenEnvelope, Verdict, classify_replay
from tests.exchange_protocol.envelope_support import network


def test_new_then_duplicate_then_replay_with_real_envelopes():
    net = network()
    draft = net.draft()
    first = seal_envelope(draft, b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    # The same draft sealed again: same message id, different bytes (fresh key, fresh signature).
    second = seal_envelope(draft, b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    store: dict[str, SeenEnvelope] = {}
    head1, head2 = decode_frame(first.data)[0], decode_frame(second.data)[0]

    decision = classify_replay(draft.message_id, head1.identity_digest, store.get)
    assert decision.verdict is Verdict.NEW and decision.original_receipt is None
    store[draft.message_id] = SeenEnvelope(head1.identity_digest, b"original receipt")

    again = classify_replay(draft.message_id, decode_frame(first.data)[0].identity_digest, store.get)
    assert again.verdict is Verdict.DUPLICATE and again.original_receipt == b"original receipt"

    with pytest.raises(EnvelopeReplayed) as info:
        classify_replay(draft.message_id, head2.identity_digest, store.get)
    assert info.value.code == "ENV_REPLAYED" and info.value.details["message_id"] == draft.message_id


def test_lookup_is_asked_about_exactly_the_message_id():
    asked = []
    classify_replay("id-1", "00" * 32, lambda mid: asked.append(mid))
    assert asked == ["id-1"]
