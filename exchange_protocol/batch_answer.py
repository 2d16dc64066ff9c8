"""The peer protocol's answer to a batch of envelope frames, both ways; sans-I/O.

A sender posts one or more frames back to back (``POST /peer/v1/envelopes``); the receiver answers
with canonical JSON, one of::

    {"results": [ANSWER, ...]}      one answer per header of each frame read, in frame order and
                                    header order (an ordinary envelope has one header; a fan-out
                                    bundle several, accepted or refused together)
    {"error": REFUSAL}              the request as a whole was refused (nothing was accepted)

    ANSWER  = {"message_id": "<UUIDv7>" | null, "receipt": "<base64 of the signed transport receipt>"}
            | {"message_id": "<UUIDv7>" | null, "error": REFUSAL}
    REFUSAL = {"code": "UPPER_SNAKE", "message": "for people", "details": {...}}   (details optional)

``message_id`` is null when the receiver could not read the frame's header. A *partial* answer —
the stream broke at some frame (a prefix that cannot be delimited, the body ending inside a frame)
— lists the answers of the frames before the break and then one null-id refusal for the frame that
broke it; frames after it have no answer. :func:`answers_for` pairs an answer with the frames sent:
a null-id refusal in a frame's place is that frame's verdict, a frame without an answer (or whose
answer names another message) gets :data:`NO_ANSWER` — transient, it is sent again, and a frame
accepted before the break gets its original receipt back then.

Decoding is strict (typed :class:`~exchange_protocol.errors.BatchAnswerInvalid` errors): unknown
or missing keys, wrong JSON types, ids that are not message ids, receipts that are not base64,
more answers than frames, bodies over the cap. Human messages longer than :data:`MAX_MESSAGE` are
cut, not refused. The HTTP status is the transport's business, not this module's.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pki.errors import GwxError

from .canonical import canonical_json, load_json
from .errors import (
    BatchAnswerMalformed,
    BatchAnswerMismatch,
    BatchAnswerMissing,
    BatchAnswerTooLarge,
    InvalidId,
)
from .ids import parse_id
from .transport_receipt import MAX_RECEIPT_BYTES

MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_MESSAGE = 1000
NO_ANSWER = BatchAnswerMissing.code  # the code given to a frame the peer did not answer
_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,99}$")
_MAX_RECEIPT_B64 = (MAX_RECEIPT_BYTES + 2) // 3 * 4


@dataclass(frozen=True)
class Refusal:
    """A typed refusal as it travels: stable code, human message, optional details."""

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, error: GwxError) -> Refusal:
        return cls(error.code, error.message, error.to_dict().get("details", {}))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = _plain(dict(self.details))
        return out


@dataclass(frozen=True)
class FrameAnswer:
    """The receiver's word on one frame: its signed transport receipt, or a refusal."""

    message_id: str | None
    receipt: bytes | None = None
    refusal: Refusal | None = None

    def __post_init__(self) -> None:
        if (self.receipt is None) == (self.refusal is None):
            raise ValueError("a frame answer is either a receipt or a refusal")
        if self.message_id is None and self.receipt is not None:
            raise ValueError("a receipt answers a message id")

    def to_json(self) -> dict[str, Any]:
        if self.receipt is not None:
            return {"message_id": self.message_id, "receipt": base64.b64encode(self.receipt).decode("ascii")}
        return {"message_id": self.message_id, "error": self.refusal.to_json()}  # type: ignore[union-attr]


@dataclass(frozen=True)
class BatchAnswer:
    answers: tuple[FrameAnswer, ...]


def encode_batch_answer(answers: Sequence[FrameAnswer]) -> bytes:
    return canonical_json({"results": [a.to_json() for a in answers]})


def encode_refusal(refusal: Refusal) -> bytes:
    """The answer refusing a whole request (also every other peer endpoint's error body)."""
    return canonical_json({"error": refusal.to_json()})


def decode_batch_answer(body: bytes, *, max_answers: int,
                        max_bytes: int = MAX_ANSWER_BYTES) -> BatchAnswer | Refusal:
    """A peer's answer to a batch of ``max_answers`` frames, strictly (typed errors)."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise BatchAnswerMalformed(f"a batch answer is bytes, not {type(body).__name__}")
    if len(body) > max_bytes:
        raise BatchAnswerTooLarge(f"batch answer of {len(body)} bytes exceeds {max_bytes}", size=len(body),
                                  limit=max_bytes)
    raw = load_json(body, max_bytes=max_bytes, what="batch answer", error=BatchAnswerMalformed)
    if isinstance(raw, dict) and set(raw) == {"error"}:
        return _refusal(raw["error"], "error")
    if not isinstance(raw, dict) or set(raw) != {"results"}:
        raise BatchAnswerMalformed('a batch answer is {"results": [...]} or {"error": {...}}')
    results = raw["results"]
    if not isinstance(results, list):
        raise BatchAnswerMalformed("results must be a list")
    if len(results) > max_answers:
        raise BatchAnswerMismatch(f"{len(results)} answers to a batch of {max_answers} frames",
                                  answers=len(results), frames=max_answers)
    return BatchAnswer(tuple(_answer(r, f"results[{i}]") for i, r in enumerate(results)))


def answers_for(message_ids: Sequence[str], answer: BatchAnswer) -> tuple[FrameAnswer, ...]:
    """One answer per frame sent (``message_ids`` in sending order), each naming that frame's id."""
    if len(answer.answers) > len(message_ids):
        raise BatchAnswerMismatch(f"{len(answer.answers)} answers to a batch of {len(message_ids)} frames",
                                  answers=len(answer.answers), frames=len(message_ids))
    out = []
    for i, message_id in enumerate(message_ids):
        a = answer.answers[i] if i < len(answer.answers) else None
        if a is not None and a.message_id is None:
            # In this frame's place: the peer could not read its header, or the stream broke here.
            out.append(FrameAnswer(message_id, refusal=a.refusal))
        elif a is None or a.message_id != message_id:
            out.append(FrameAnswer(message_id, refusal=Refusal(NO_ANSWER, "the peer gave no answer for this envelope")))
        else:
            out.append(a)
    return tuple(out)


def _answer(raw: Any, where: str) -> FrameAnswer:
    if not isinstance(raw, dict) or "message_id" not in raw or set(raw) not in ({"message_id", "receipt"},
                                                                                {"message_id", "error"}):
        raise BatchAnswerMalformed(f"{where} must be {{message_id, receipt}} or {{message_id, error}}", at=where)
    message_id = raw["message_id"]
    if message_id is not None:
        try:
            parse_id(message_id)
        except InvalidId:
            raise BatchAnswerMalformed(f"{where}.message_id is not a message id", at=where) from None
    if "error" in raw:
        return FrameAnswer(message_id, refusal=_refusal(raw["error"], f"{where}.error"))
    if message_id is None:
        raise BatchAnswerMalformed(f"{where} is a receipt without a message id", at=where)
    text = raw["receipt"]
    if not isinstance(text, str) or not text or len(text) > _MAX_RECEIPT_B64:
        raise BatchAnswerMalformed(f"{where}.receipt must be base64 text of at most {_MAX_RECEIPT_B64} "
                                   "characters", at=where)
    try:
        receipt = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BatchAnswerMalformed(f"{where}.receipt is not base64", at=where) from None
    return FrameAnswer(message_id, receipt=receipt)


def _refusal(raw: Any, where: str) -> Refusal:
    if not isinstance(raw, dict) or not {"code", "message"} <= set(raw) <= {"code", "message", "details"}:
        raise BatchAnswerMalformed(f"{where} must be {{code, message[, details]}}", at=where)
    code, message, details = raw["code"], raw["message"], raw.get("details", {})
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise BatchAnswerMalformed(f"{where}.code must be an upper-case error code", at=where)
    if not isinstance(message, str):
        raise BatchAnswerMalformed(f"{where}.message must be text", at=where)
    if not isinstance(details, dict):
        raise BatchAnswerMalformed(f"{where}.details must be an object", at=where)
    return Refusal(code, message[:MAX_MESSAGE], details)


def _plain(value: Any) -> Any:
    """Details as canonical JSON takes them (it refuses floats: they are reported as text)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
