"""How a webhook delivery is signed, and how a receiver checks it (pure: no I/O, no clock of its own).

Every POST carries the event as its JSON body and these headers:

    X-Gwx-Event-Id:   <event id>            the same on every attempt: de-duplicate on it
    X-Gwx-Event-Type: <type>                document.received, document.signed_for, …
    X-Gwx-Timestamp:  <unix seconds>         when this attempt was signed
    X-Gwx-Signature:  v1=<hex>               HMAC-SHA256(secret, "<timestamp>." + body)

The secret is the text ``gwx webhook add`` printed once (``whsec_`` and 43 URL-safe characters);
its UTF-8 bytes are the HMAC key. The timestamp is inside the MAC, so a captured delivery cannot be
re-sent later with a new timestamp, and the event id is inside the body, so it cannot be changed to
slip past de-duplication. A receiver:

1. recomputes the MAC over the exact bytes received and compares in constant time;
2. refuses a timestamp more than ``tolerance`` seconds (default 300) away from its own clock;
3. checks the header's event id is the body's, and remembers the ids it has *acted on* — after it
   acted, not before, so that an action that failed is done when gwx tries again — for as long as
   gwx may send them again: the retry window (``[webhooks]``, a day by default) and an operator's
   ``gwx webhook replay`` at any time later, so keep them on disk. A known id is a duplicate (our
   retry, or a replay), answered 2xx without acting again.

:func:`verify` does 1–3 (3 against the receiver's own ``seen`` set, which it only reads: the
receiver adds the id once it has acted); ``deploy/examples/webhook_receiver.py`` is a complete
receiver built on it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, MutableSet
from typing import Any

from pki.errors import ErrorKind, GwxError

EVENT_ID_HEADER = "X-Gwx-Event-Id"
EVENT_TYPE_HEADER = "X-Gwx-Event-Type"
TIMESTAMP_HEADER = "X-Gwx-Timestamp"
SIGNATURE_HEADER = "X-Gwx-Signature"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300


class WebhookSignatureInvalid(GwxError):
    """A delivery whose signature does not verify (wrong secret, altered body, missing headers)."""

    code = "WEBHOOK_SIGNATURE_INVALID"
    kind = ErrorKind.UNAUTHENTICATED


class WebhookTooOld(GwxError):
    """A delivery signed too long ago (or too far ahead): a replay, or a clock far off."""

    code = "WEBHOOK_TIMESTAMP_OUT_OF_RANGE"
    kind = ErrorKind.UNAUTHENTICATED


class WebhookDuplicate(GwxError):
    """An event id this receiver has acted on already: answer 2xx and do nothing."""

    code = "WEBHOOK_DUPLICATE"
    kind = ErrorKind.CONFLICT


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def sign(secret: str, timestamp: int, body: bytes, event_id: str, event_type: str) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {"Content-Type": "application/json; charset=utf-8", EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float, *,
           tolerance: float = DEFAULT_TOLERANCE, seen: MutableSet[str] | None = None) -> dict[str, Any]:
    """Check one delivery; returns the event (the parsed body). ``headers`` is matched without regard
    to case. With ``seen``, an id in it is :class:`WebhookDuplicate` (after every other check
    passed); adding the id once the delivery was acted on is the caller's part. Raises only the
    typed errors above, whatever the headers hold."""
    lower = {k.lower(): v for k, v in headers.items()}
    given, stamp = lower.get(SIGNATURE_HEADER.lower(), ""), lower.get(TIMESTAMP_HEADER.lower(), "")
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not (stamp.isascii() and stamp.isdigit()) or not given.startswith(SCHEME + "="):
        raise WebhookSignatureInvalid("the delivery has no timestamp or no v1 signature")
    # Compared as bytes: compare_digest refuses str holding anything but ASCII.
    if not hmac.compare_digest(signature(secret, int(stamp), body).encode(), given.encode("utf-8", "replace")):
        raise WebhookSignatureInvalid("the signature does not match the body (wrong secret, or altered)")
    if abs(now - int(stamp)) > tolerance:
        raise WebhookTooOld(f"signed {now - int(stamp):.0f}s from now; more than {tolerance:g}s is refused",
                            timestamp=int(stamp))
    try:
        event = json.loads(body)
        event_id = event["event_id"]
    except (ValueError, TypeError, KeyError):
        raise WebhookSignatureInvalid("the signed body is not an event") from None
    if lower.get(EVENT_ID_HEADER.lower()) != event_id:
        raise WebhookSignatureInvalid("the event id header is not the signed body's")
    if seen is not None and event_id in seen:
        raise WebhookDuplicate(f"event {event_id} was delivered before", event_id=event_id)
    return event
