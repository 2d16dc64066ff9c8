"""exchange_protocol.batch_answer: the peer protocol's answer to a batch of frames, both ways."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_protocol.batch_answer import (
    MAX_MESSAGE,
    NO_ANSWER,
    BatchAnswer,
    FrameAnswer,
    Refusal,
    answers_for,
    decode_batch_answer,
    encode_batch_answer,
    encode_refusal,
)
from exchange_protocol.errors import (
    BatchAnswerInvalid,
    BatchAnswerMalformed,
    BatchAnswerMismatch,
    BatchAnswerTooLarge,
    EnvelopeReplayed,
)
from exchange_protocol.ids import IdGenerator

NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
IDS = IdGenerator()
M1, M2, M3 = (IDS.new(NOW) for _ in range(3))
RECEIPT = b'{"receipt":"signed bytes","signature":"...","v":1}'


def _answer() -> list[FrameAnswer]:
    replayed = EnvelopeReplayed("message was received before with other bytes", message_id=M2, hops=2.5)
    return [FrameAnswer(M1, receipt=RECEIPT), FrameAnswer(M2, refusal=Refusal.of(replayed))]


def test_an_answer_round_trips_and_is_the_wire_form_peers_already_speak():
    body = encode_batch_answer(_answer())
    assert json.loads(body) == {"results": [
        {"message_id": M1, "receipt": base64.b64encode(RECEIPT).decode()},
        {"message_id": M2, "error": {"code": "ENV_REPLAYED", "message": "message was received before with other bytes",
                                     "details": {"message_id": M2, "hops": "2.5"}}}]}
    decoded = decode_batch_answer(body, max_answers=2)
    assert decoded == BatchAnswer(tuple(_answer()[:1]) + (FrameAnswer(M2, refusal=Refusal(
        "ENV_REPLAYED", "message was received before with other bytes", {"message_id": M2, "hops": "2.5"})),))


def test_a_refused_request_decodes_as_a_refusal():
    body = encode_refusal(Refusal("ENV_TOO_LARGE", "request of 9 bytes exceeds 8"))
    assert decode_batch_answer(body, max_answers=3) == Refusal("ENV_TOO_LARGE", "request of 9 bytes exceeds 8")


def test_a_partial_answer_keeps_the_receipts_and_gives_the_break_to_its_frame():
    broke = FrameAnswer(None, refusal=Refusal("ENV_TRUNCATED", "the request ends inside an envelope"))
    answer = decode_batch_answer(encode_batch_answer([FrameAnswer(M1, receipt=RECEIPT), broke]), max_answers=3)
    first, second, third = answers_for([M1, M2, M3], answer)
    assert first == FrameAnswer(M1, receipt=RECEIPT)
    assert second == FrameAnswer(M2, refusal=broke.refusal)  # the frame in whose place the break stands
    assert third.message_id == M3 and third.refusal.code == NO_ANSWER  # never read: sent again


def test_an_answer_naming_another_message_is_no_answer_for_that_frame():
    answer = BatchAnswer((FrameAnswer(M2, receipt=RECEIPT),))
    [only] = answers_for([M1], answer)
    assert only.message_id == M1 and only.receipt is None and only.refusal.code == NO_ANSWER


def test_more_answers_than_frames_cannot_be_paired():
    body = encode_batch_answer([FrameAnswer(M1, receipt=RECEIPT), FrameAnswer(M2, receipt=RECEIPT)])
    with pytest.raises(BatchAnswerMismatch):
        decode_batch_answer(body, max_answers=1)
    with pytest.raises(BatchAnswerMismatch):
        answers_for([M1], decode_batch_answer(body, max_answers=2))


def _results(*answers) -> bytes:
    return json.dumps({"results": list(answers)}).encode()


GOOD = {"message_id": M1, "receipt": base64.b64encode(RECEIPT).decode()}
REFUSED = {"message_id": M1, "error": {"code": "ENV_EXPIRED", "message": "expired"}}


@pytest.mark.parametrize("body", [
    b"", b"{", b'{"results": [', encode_batch_answer(_answer())[:-3],  # truncated
    b"\xff\xfe", b"[]", b"null", b'"results"', b'{"results": {}}', b'{"results": [], "more": 1}',
    b'{"error": "refused"}', b'{"error": {"code": "X"}}', b'{"results": [1]}', b'{"results": [[]]}',
    _results({"receipt": GOOD["receipt"]}),  # no message id
    _results({**GOOD, "extra": 1}),
    _results({**GOOD, "error": REFUSED["error"]}),  # both
    _results({"message_id": M1}),  # neither
    _results({**GOOD, "message_id": 7}), _results({**GOOD, "message_id": True}),
    _results({**GOOD, "message_id": "m-1"}), _results({**GOOD, "message_id": M1.upper()}),
    _results({**GOOD, "message_id": None}),  # a receipt for no message
    _results({**GOOD, "receipt": "not base64!"}), _results({**GOOD, "receipt": 12}),
    _results({**GOOD, "receipt": ""}), _results({**GOOD, "receipt": "QQ" * 100_000}),
    _results({**REFUSED, "error": {"code": "env_expired", "message": "x"}}),
    _results({**REFUSED, "error": {"code": "", "message": "x"}}),
    _results({**REFUSED, "error": {"code": "E" * 101, "message": "x"}}),
    _results({**REFUSED, "error": {"code": 3, "message": "x"}}),
    _results({**REFUSED, "error": {"code": "X", "message": None}}),
    _results({**REFUSED, "error": {"code": "X", "message": "x", "details": []}}),
    _results({**REFUSED, "error": {"code": "X", "message": "x", "why": "extra"}}),
    b'{"results": [], "results": []}',  # duplicate keys
    b'{"results": [' * 40 + b"]" * 40 + b"}",  # nested too deep
], ids=lambda body: body.replace(M1.encode(), b"M1").replace(M1.upper().encode(), b"M1-UPPER").decode("utf-8", "replace")[:80])  # stable across workers
def test_hostile_answers_are_refused_with_typed_errors(body):
    with pytest.raises(BatchAnswerMalformed):
        decode_batch_answer(body, max_answers=4)


def test_an_oversized_answer_is_refused_before_parsing():
    body = _results(*[GOOD] * 3)
    with pytest.raises(BatchAnswerTooLarge) as info:
        decode_batch_answer(body, max_answers=3, max_bytes=len(body) - 1)
    assert info.value.details == {"size": len(body), "limit": len(body) - 1}


def test_a_long_human_message_is_cut_not_refused():
    body = _results({**REFUSED, "error": {"code": "PKG_INVALID", "message": "长" * 5000}})
    [answer] = decode_batch_answer(body, max_answers=1).answers
    assert answer.refusal.code == "PKG_INVALID" and len(answer.refusal.message) == MAX_MESSAGE


def test_not_bytes_is_a_typed_error():
    with pytest.raises(BatchAnswerMalformed):
        decode_batch_answer({"results": []}, max_answers=1)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                                  st.sampled_from(["results", "error", "message_id", "receipt", "code",
                                                   "message", "details"]), inner, max_size=4),
                              max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_any_bytes_decode_or_fail_typed(body):
    try:
        decoded = decode_batch_answer(body, max_answers=4)
    except BatchAnswerInvalid:
        return
    assert isinstance(decoded, BatchAnswer | Refusal)
