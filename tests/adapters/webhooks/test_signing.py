"""adapters.webhooks.signing: what a receiver checks — the MAC over timestamp and body, the age, the
event id, duplicates."""

from __future__ import annotations

import json

import pytest

from adapters.webhooks.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDuplicate,
    WebhookSignatureInvalid,
    WebhookTooOld,
    new_secret,
    sign,
    signature,
    verify,
)

SECRET = new_secret()
BODY = json.dumps({"event_id": "node-a-7", "type": "document.received", "data": {"title": "关于…的通知"}},
                  ensure_ascii=False).encode()
NOW = 1_800_000_000


def headers(secret=SECRET, at=NOW, body=BODY, event_id="node-a-7"):
    return sign(secret, at, body, event_id, "document.received")


def test_a_good_delivery_verifies_once_then_is_a_duplicate():
    seen: set[str] = set()
    event = verify(SECRET, headers(), BODY, NOW + 5, seen=seen)
    assert event["data"]["title"] == "关于…的通知" and seen == set()  # not acted on yet
    verify(SECRET, headers(), BODY, NOW + 5, seen=seen)  # a retry after a failed action: acted on again
    seen.add(event["event_id"])  # the receiver acted
    lower = {k.lower(): v for k, v in headers().items()}  # header names are case-insensitive
    with pytest.raises(WebhookDuplicate):
        verify(SECRET, lower, BODY, NOW + 6, seen=seen)


def test_the_scheme_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers()[SIGNATURE_HEADER] == f"v1={expected}" == signature(SECRET, NOW, BODY)


@pytest.mark.parametrize("change", ["secret", "body", "timestamp", "event_id", "no_signature", "garbage_stamp"])
def test_anything_altered_is_refused(change):
    h, body = headers(), BODY
    if change == "secret":
        h = headers(secret=new_secret())
    elif change == "body":
        body = BODY.replace("关于".encode(), "关於".encode())
    elif change == "timestamp":
        h[TIMESTAMP_HEADER] = str(NOW + 1)  # a new timestamp on an old signature
    elif change == "event_id":
        h = headers(event_id="node-a-8")
    elif change == "no_signature":
        del h[SIGNATURE_HEADER]
    else:
        h[TIMESTAMP_HEADER] = "12ab"
    with pytest.raises(WebhookSignatureInvalid) as info:
        verify(SECRET, h, body, NOW)
    assert info.value.code == "WEBHOOK_SIGNATURE_INVALID"


def test_an_old_or_future_delivery_is_refused():
    with pytest.raises(WebhookTooOld):
        verify(SECRET, headers(), BODY, NOW + 301)
    with pytest.raises(WebhookTooOld):
        verify(SECRET, headers(), BODY, NOW - 301)
    assert verify(SECRET, headers(), BODY, NOW + 1000, tolerance=1200)["event_id"] == "node-a-7"


@pytest.mark.parametrize("name, value", [("X-Gwx-Timestamp", "\u00b2"), ("X-Gwx-Signature", "v1=\u00e9"),
                                         ("X-Gwx-Timestamp", "١٢٣")])
def test_headers_that_are_not_ascii_are_refused_with_the_signature_error(name, value):
    odd = dict(headers())
    odd[name] = value
    with pytest.raises(WebhookSignatureInvalid):
        verify(SECRET, odd, BODY, NOW)
