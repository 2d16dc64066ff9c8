"""Time-ordered unique ids for 公文标识 and envelope message ids (UUIDv7 layout, RFC 9562).

Layout of the 128 bits: 48-bit Unix time in milliseconds, version 7, a 12-bit counter (``rand_a``),
the RFC 4122 variant, 62 random bits. Written as the usual lower-case 36-character UUID string, so
the text sorts exactly as the number does, and the number sorts by creation time first.

Sans-I/O: the time is passed in; randomness comes from :func:`secrets.token_bytes` (or an injected
source in tests). :class:`IdGenerator` makes ids strictly increasing per generator (RFC 9562
§6.2 method 1): within one millisecond the counter goes up from a random start below 2**11 (so
there is room for at least 2048 ids a millisecond), and when the clock stands still or steps back
the generator keeps using its last millisecond rather than emitting an id that sorts earlier. On
counter overflow it borrows the next millisecond. Use one generator per process (the module-level
:func:`new_id` does); ids from different nodes interleave by time, which is all the order they need.

公文标识 from legacy systems are opaque strings and need not be UUIDs (GB/T 33477's format was not at
hand); :func:`parse_id` is for ids gwx made, e.g. to read back their creation time.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .errors import InvalidId

_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_MAX_MS = (1 << 48) - 1
_COUNTER_MAX = (1 << 12) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _unix_ms(now: datetime) -> int:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise InvalidId("the time for an id must be a timezone-aware datetime", value=repr(now))
    ms = (now - _EPOCH) // timedelta(milliseconds=1)
    if not 0 <= ms <= _MAX_MS:
        raise InvalidId(f"time {now.isoformat()} is outside the UUIDv7 range", value=now.isoformat())
    return ms


def _compose(ms: int, counter: int, rand62: int) -> str:
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand62
    return str(uuid.UUID(int=value))


class IdGenerator:
    """Strictly increasing UUIDv7 ids. Thread-safe; ``random_bytes(n)`` is injectable for tests."""

    def __init__(self, random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._random_bytes = random_bytes
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new(self, now: datetime) -> str:
        ms = _unix_ms(now)
        with self._lock:
            rnd = int.from_bytes(self._random_bytes(10), "big")
            if ms > self._last_ms:
                self._last_ms, self._counter = ms, (rnd >> 62) & 0x7FF
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:
                if self._last_ms >= _MAX_MS:
                    raise InvalidId("id space of the last representable millisecond is exhausted")
                self._last_ms, self._counter = self._last_ms + 1, (rnd >> 62) & 0x7FF
            return _compose(self._last_ms, self._counter, rnd & ((1 << 62) - 1))


_default = IdGenerator()


def new_id(now: datetime) -> str:
    """A new time-ordered id from the process-wide generator."""
    return _default.new(now)


def parse_id(text: str) -> uuid.UUID:
    """Validate an id gwx made (canonical lower-case UUIDv7 text) or raise :class:`InvalidId`."""
    if not isinstance(text, str) or not _ID_RE.match(text):
        raise InvalidId(f"{text!r} is not a lower-case UUIDv7 id", value=repr(text)[:80])
    return uuid.UUID(text)


def id_time(text: str) -> datetime:
    """The creation time (millisecond precision, UTC) encoded in an id."""
    ms = parse_id(text).int >> 80
    return _EPOCH + timedelta(milliseconds=ms)
