"""Webhooks (issue 9 §5): a unit's events POSTed, signed, to any HTTP receiver (an SMS gateway, a chat bot …).

Built on the adapters' core (:mod:`adapters.outbox`): each subscription is one consumer, so every
event is persisted before it is sent, retried with backoff, dead-lettered after the window in
node.toml's ``[webhooks]`` and replayable by the operator.

- :mod:`.signing` — the signature scheme (HMAC-SHA256 over timestamp and body) and :func:`verify`,
  what a receiver calls to refuse forged, old and repeated deliveries.
- :mod:`.subscriptions` — checking what the operator asks for (URL, unit, event types); secrets in
  0600 files beside the store.
- :mod:`.delivery` — the consumer: one signed POST per attempt, the answer classified (done, retry,
  dead) with a typed error; ``gwx webhook test``'s one-off event.
- :mod:`.service` — the running node's set of webhook consumers, kept in step with the store.

The command line is :mod:`node.cli.webhook`; a receiver to copy is ``deploy/examples/webhook_receiver.py``.
"""
