"""One webhook as an outbox consumer: POST the event, signed; the answer decides done, retry or dead.

:class:`WebhookConsumer` implements :class:`adapters.outbox.Consumer` (name ``webhook:<id>``). The
outbox has already persisted the event; this module only makes one attempt and classifies it:

=============================================  ===========================  ======================
the receiver …                                 error                        then
=============================================  ===========================  ======================
answers 2xx                                    —                            done
answers 408, 425, 429 or 5xx                   WEBHOOK_RECEIVER_UNAVAILABLE  retried (backoff)
cannot be reached, hangs up, answers garbage   WEBHOOK_UNREACHABLE           retried (backoff)
does not answer within the timeout             WEBHOOK_TIMEOUT               retried (backoff)
answers 3xx (redirects are not followed)       WEBHOOK_REDIRECTED            dead at once
answers another 4xx (refused: fix, replay)     WEBHOOK_REFUSED               dead at once
=============================================  ===========================  ======================

Redirects are not followed: a signed delivery goes only to the URL the operator named. Only the
first 2 KiB of an answer are read (for the error message); a receiver cannot make the node read a
huge or endless answer.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from adapters.events import AdapterEvent
from adapters.webhooks.signing import sign
from node.store import WebhookSubscription
from pki.errors import ErrorKind, GwxError

ANSWER_READ_LIMIT = 2048
RETRYABLE_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "gwx-webhook/1"
TEST_EVENT = "webhook.test"  # gwx webhook test; never queued, not an adapter event type


class WebhookUnavailable(GwxError):
    code = "WEBHOOK_RECEIVER_UNAVAILABLE"
    kind = ErrorKind.TRANSIENT


class WebhookUnreachable(GwxError):
    code = "WEBHOOK_UNREACHABLE"
    kind = ErrorKind.TRANSIENT


class WebhookTimeout(GwxError):
    code = "WEBHOOK_TIMEOUT"
    kind = ErrorKind.TRANSIENT


class WebhookRedirected(GwxError):
    code = "WEBHOOK_REDIRECTED"
    kind = ErrorKind.INVALID_INPUT


class WebhookRefused(GwxError):
    code = "WEBHOOK_REFUSED"
    kind = ErrorKind.INVALID_INPUT


def consumer_name(webhook_id: str) -> str:
    return f"webhook:{webhook_id}"


class WebhookConsumer:
    """``secret`` is asked at each attempt (it may raise ``WEBHOOK_SECRET_MISSING``: dead at once)."""

    def __init__(self, subscription: WebhookSubscription, secret: Callable[[], str], session: aiohttp.ClientSession,
                 clock: Callable[[], datetime], timeout: float = 10.0) -> None:
        self.subscription = subscription
        self.name = consumer_name(subscription.id)
        self._secret = secret
        self._session = session
        self._clock = clock
        self._timeout = timeout

    def wants(self, event: AdapterEvent) -> bool:
        return event.unit == self.subscription.unit and event.type in self.subscription.types

    async def deliver(self, event: AdapterEvent) -> None:
        await post_event(self._session, self.subscription.url, self._secret(), event.to_text().encode(),
                         event.event_id, event.type, int(self._clock().timestamp()), self._timeout)


async def post_event(session: aiohttp.ClientSession, url: str, secret: str, body: bytes, event_id: str,
                     event_type: str, timestamp: int, timeout: float) -> int:
    """One signed POST; returns the 2xx status, or raises the typed error of the table above."""
    headers = {"User-Agent": USER_AGENT, **sign(secret, timestamp, body, event_id, event_type)}
    where = {"url": url, "event_id": event_id}
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
            status = answer.status
            text = (await answer.content.read(ANSWER_READ_LIMIT)).decode("utf-8", "replace").strip()
    except TimeoutError:
        raise WebhookTimeout(f"the receiver did not answer within {timeout:g}s", **where) from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise WebhookUnreachable(f"cannot deliver to the receiver: {type(exc).__name__}: {exc}"[:300],
                                 **where) from None
    said = f": {text[:200]}" if text else ""
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise WebhookRedirected(f"the receiver answered {status} (redirects are not followed; fix the URL, "
                                "then replay)", status=status, **where)
    if status in RETRYABLE_STATUSES or status >= 500:
        raise WebhookUnavailable(f"the receiver answered {status}{said}", status=status, **where)
    raise WebhookRefused(f"the receiver refused the delivery with {status}{said} (fix it, then replay)",
                         status=status, **where)


async def send_test(subscription: WebhookSubscription, secret: str, node_id: str, timeout: float = 10.0) -> int:
    """``gwx webhook test``: one signed ``webhook.test`` event, sent now and not queued; returns the
    receiver's 2xx status or raises the typed error of the table above."""
    now = datetime.now(UTC)
    event_id = f"{node_id}-test-{secrets.token_hex(4)}"
    body = json.dumps({"event_id": event_id, "type": TEST_EVENT, "unit": subscription.unit, "doc_id": "",
                       "at": now.isoformat().replace("+00:00", "Z"), "seq": 0,
                       "data": {"message": "gwx webhook test", "webhook": subscription.id}},
                      ensure_ascii=False, sort_keys=True).encode()
    async with aiohttp.ClientSession() as session:
        return await post_event(session, subscription.url, secret, body, event_id, TEST_EVENT, int(now.timestamp()),
                                timeout)
