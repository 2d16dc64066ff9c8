"""Talking to other nodes: everything that crosses the mutual-TLS link, in both directions.

Sending:

- ``routing``: which node hosts a unit (:class:`Router`; the static peer list today).
- ``outbound``: one queue per destination node, one batch in flight each, backoff from
  :mod:`exchange_protocol.retry`, drafts turned into envelopes once the peer's certificate is known.
- ``transport``: the peer protocol's client — one keep-alive mutual-TLS session per peer, batches of
  envelope frames out, signed transport receipts back.
- ``tls``: TLS contexts that trust the network root only, and the peer's node identity.

Receiving:

- ``peer_api``: the aiohttp app peers call under ``/peer/v1`` (node credentials, envelope batches).
- ``acceptor``: accept an envelope durably — verify, decrypt, check the package, blobs and row
  committed — and only then sign the transport receipt.
- ``processor``: after acknowledgement, apply what was accepted: documents into inboxes, notices
  onto the rows they concern, bounces for what is refused.
"""
