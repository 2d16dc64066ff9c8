"""Webhook subscriptions: what the operator may ask for, and where each secret is kept.

A subscription is ``(id, unit, url, event types)``, a row in the node's store (so ``gwx webhook
add`` made while the node runs is picked up within a second, and the consumer's cursor starts in
the same transaction: events from that moment on). Its secret is NOT in the database: it is
``NODE_DIR/webhooks/<id>.secret``, mode 0600 in a 0700 directory, written before the row and
removed after it; ``gwx webhook add`` prints it once and nothing prints it again.

Everything an operator types is checked here, each with its typed error: the URL (http or https,
a host, no user:password — it would be shown by ``list`` —, no fragment, at most 2000 characters),
the unit (one this node hosts), the event types (those of :mod:`adapters.events`).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from adapters.events import TYPES
from adapters.webhooks.signing import SECRET_PREFIX, new_secret
from node.config import NodeConfig
from node.store import NodeStore, WebhookSubscription
from pki.errors import ErrorKind, GwxError, InvalidInput
from pki.keystore import write_secret_file

SECRETS_DIR = "webhooks"
MAX_URL = 2000
_ID = re.compile(r"^[0-9a-f]{8}$")


class WebhookBadUrl(GwxError):
    code = "WEBHOOK_BAD_URL"
    kind = ErrorKind.INVALID_INPUT


class WebhookUnknownEvent(GwxError):
    code = "WEBHOOK_UNKNOWN_EVENT"
    kind = ErrorKind.INVALID_INPUT


class WebhookUnknownUnit(GwxError):
    code = "WEBHOOK_UNKNOWN_UNIT"
    kind = ErrorKind.INVALID_INPUT


class WebhookNotFound(GwxError):
    code = "WEBHOOK_NOT_FOUND"
    kind = ErrorKind.NOT_FOUND


class WebhookSecretMissing(GwxError):
    """The subscription's secret file is gone or unreadable: nothing can be signed for it."""

    code = "WEBHOOK_SECRET_MISSING"
    kind = ErrorKind.NOT_FOUND


def check_url(url: str) -> str:
    if not isinstance(url, str) or not url or len(url) > MAX_URL or any(c.isspace() for c in url):
        raise WebhookBadUrl(f"a webhook URL is http(s)://host/path, without spaces, at most {MAX_URL} characters",
                            url=str(url)[:100])
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise WebhookBadUrl(f"not a URL: {exc}", url=url[:100]) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookBadUrl("a webhook URL starts with http:// or https:// and names a host", url=url[:100])
    if parts.username is not None or parts.password is not None:
        raise WebhookBadUrl("a webhook URL must not carry a user or password (gwx webhook list shows URLs; the "
                            "delivery is authenticated by its signature)", url=f"{parts.scheme}://…@{parts.hostname}")
    if parts.fragment:
        raise WebhookBadUrl("a webhook URL has no #fragment", url=url[:100])
    if port == 0:
        raise WebhookBadUrl("a webhook URL's port is 1–65535", url=url[:100])
    return url


def check_types(types: Iterable[str] | None) -> tuple[str, ...]:
    """The event types asked for (all when none are named), in the table's order."""
    wanted = list(types or TYPES)
    unknown = sorted(set(wanted) - set(TYPES))
    if unknown:
        raise WebhookUnknownEvent(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(TYPES)}",
                                  unknown=unknown)
    return tuple(t for t in TYPES if t in wanted)


def check_unit(config: NodeConfig, unit: str) -> str:
    hosted = [u.code for u in config.units]
    if unit not in hosted:
        raise WebhookUnknownUnit(f"this node hosts no unit {unit}; it hosts {', '.join(hosted)}", unit=unit)
    return unit


def check_id(webhook_id: str) -> str:
    if not isinstance(webhook_id, str) or not _ID.match(webhook_id):
        raise WebhookNotFound(f"{webhook_id!r} is not a webhook id (8 hex digits, as gwx webhook list shows)",
                              webhook=str(webhook_id)[:40])
    return webhook_id


def secret_path(config: NodeConfig, webhook_id: str) -> Path:
    return config.directory / SECRETS_DIR / f"{check_id(webhook_id)}.secret"


def read_secret(config: NodeConfig, webhook_id: str) -> str:
    path = secret_path(config, webhook_id)
    try:
        secret = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise WebhookSecretMissing(f"cannot read the secret of webhook {webhook_id} ({path}): {exc}",
                                   webhook=webhook_id) from None
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretMissing(f"{path} does not hold a webhook secret", webhook=webhook_id)
    return secret


async def add(store: NodeStore, config: NodeConfig, unit: str, url: str, types: Iterable[str] | None,
              now: datetime) -> tuple[WebhookSubscription, str]:
    """Create a subscription; returns it and its secret (the only time the secret is handed out)."""
    sub = WebhookSubscription(id=secrets.token_hex(4), unit=check_unit(config, unit), url=check_url(url),
                              types=check_types(types), created_at=now)
    secret = new_secret()
    path = secret_path(config, sub.id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret_file(path, secret.encode() + b"\n")
    try:
        await store.adapter_outbox.add_webhook(sub)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return sub, secret


async def change(store: NodeStore, config: NodeConfig, webhook_id: str, *, url: str | None = None,
                 new_secret_too: bool = False) -> tuple[WebhookSubscription, str | None]:
    """Point a webhook at another URL and/or give it a new secret, keeping its id — so its cursor and
    the events queued for it (pending and dead) stay and go to the new URL, with the new secret from
    the next attempt on. Returns it and the new secret (None when kept)."""
    sub = await get(store, webhook_id)
    if url is None and not new_secret_too:
        raise InvalidInput("say what to change: --url, --new-secret or both")
    if url is not None:
        sub = await store.adapter_outbox.change_webhook_url(webhook_id, check_url(url))
    secret = None
    if new_secret_too:
        secret = new_secret()
        write_secret_file(secret_path(config, webhook_id), secret.encode() + b"\n")
    return sub, secret


async def remove(store: NodeStore, config: NodeConfig, webhook_id: str) -> WebhookSubscription:
    """Remove a subscription, its pending and finished rows and its secret."""
    check_id(webhook_id)
    if webhook_id not in {s.id for s in await store.adapter_outbox.webhooks()}:
        raise WebhookNotFound(f"no webhook {webhook_id} (gwx webhook list shows them)", webhook=webhook_id)
    sub = await store.adapter_outbox.remove_webhook(webhook_id)
    with contextlib.suppress(FileNotFoundError):
        secret_path(config, webhook_id).unlink()
    return sub


async def get(store: NodeStore, webhook_id: str) -> WebhookSubscription:
    check_id(webhook_id)
    for sub in await store.adapter_outbox.webhooks():
        if sub.id == webhook_id:
            return sub
    raise WebhookNotFound(f"no webhook {webhook_id} (gwx webhook list shows them)", webhook=webhook_id)
