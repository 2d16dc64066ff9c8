"""exchange_protocol.replay: new, duplicate (answered with the original receipt) or replayed."""

from __future__ import annotations

import pytest

from exchange_protocol.envelope_seal import seal_envelope
from exchange_protocol.errors import EnvelopeReplayed
from exchange_protocol.frame import decode_frame
from exchange_protocol.replay import SeenEnvelope, Verdict, classify_replay, envelope_identity
from tests.exchange_protocol.envelope_support import network


def test_new_then_duplicate_then_replay_with_real_envelopes():
    net = network()
    draft = net.draft()
    first = seal_envelope(draft, b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    # The same draft sealed again: same message id, different bytes (fresh key, fresh signature).
    second = seal_envelope(draft, b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    head1, head2 = decode_frame(first.data)[0].single(), decode_frame(second.data)[0].single()

    decision = classify_replay(draft.message_id, head1.identity(), None)
    assert decision.verdict is Verdict.NEW and decision.original_receipt is None
    seen = SeenEnvelope(head1.identity(), b"original receipt")

    head, payload, _ = decode_frame(first.data)
    relayed = decode_frame(head.prefix(hops=5) + payload)[0].single()  # forwarded by relays
    again = classify_replay(draft.message_id, relayed.identity(), seen)
    assert again.verdict is Verdict.DUPLICATE and again.original_receipt == b"original receipt"

    with pytest.raises(EnvelopeReplayed) as info:
        classify_replay(draft.message_id, head2.identity(), seen)
    assert info.value.code == "ENV_REPLAYED" and info.value.details["message_id"] == draft.message_id


def test_the_identity_covers_header_and_signature_and_where_one_ends():
    assert envelope_identity(b"ab", b"c") != envelope_identity(b"a", b"bc")
    assert envelope_identity(b"ab", b"c") != envelope_identity(b"ab", b"d")
    assert envelope_identity(b"ab", b"c") == envelope_identity(b"ab", b"c")
