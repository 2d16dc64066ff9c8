"""Talking to other nodes: everything that crosses the mutual-TLS link, in both directions.

Sending (the shape of Synapse's federation sender, every state in the store):

- ``routing``: which node hosts a unit, the next hop towards it and where that hop is
  (:class:`Router`; the static peer list first, then the network directory the node holds and
  its routes, :class:`exchange_protocol.routes.RouteTable`).
- ``outbound``: :class:`Outbound`, the sender — records messages as drafts in the caller's
  transaction, owns one queue per next hop, starts and stops them.
- ``destination_queue``: the per-destination loop — one task per peer, one batch in flight, sleeps
  until a wake-up, the next row due or the end of the peer's backoff.
- ``envelope_builder``: drafts sealed into envelopes once the destination's certificate is known
  — the drafts of one document sealed as one fan-out bundle per hop — swapped for queue rows so
  every retry resends the same bytes.
- ``destination_credentials``: that certificate, per next hop — from the directory, or fetched from a
  neighbour over mutual TLS; verified, cached, re-judged, fetched again when the neighbour renewed.
- ``batch_sender``: one batch over the wire; each envelope's receipt verified and recorded, or its
  refusal deferred or bounced; the document rows follow.
- ``retry_limiter``: a peer that cannot be reached is backed off, the backoff persisted so a restart
  remembers it. Every delay here and in ``processor`` is :func:`exchange_protocol.retry.next_attempt`
  with the node's one policy (``retry_policy``).
- ``transport``: the peer protocol's client — one keep-alive mutual-TLS session per peer, batches of
  envelope frames out, signed transport receipts back.
- ``directory_fetch``: a node with a ``[parent]`` fetches the signed network directory from it
  (conditional GET, verified, swapped in atomically) at start and on a timer.
- ``crl_fetch``: the same for CRLs — fetched from the parent before their next update, judged by CA
  signature and CRL number, swapped in atomically; a stale CRL does not stop the fetch that cures it.
- ``tls``: TLS contexts that trust the network root only, and the peer's node identity.

Receiving:

- ``peer_api``: the aiohttp app peers call under ``/peer/v1`` (node credentials, envelope batches, the
  network directory this node holds).
- ``revocation_api``: the CRL this node holds (``/peer/v1/crl``) and, on the root node, OCSP answers
  from it with a delegated signer; also on a plain-HTTP listener with ``[revocation]``.
- ``acceptor``: accept an envelope durably — verify, decrypt, check the package, blobs and row
  committed — and only then sign the transport receipt.
- ``relay``: custody of what is for other nodes — judged without a key, one frame per next hop
  kept durably and queued before the receipt; a bounce to the origin when the relay gives up.
- ``processor``: after acknowledgement, apply what was accepted: documents into inboxes, notices
  onto the rows they concern, bounces for what is refused; what may pass is retried.
- ``verdicts``: the processor's package judgement (:class:`PackageJudge`) and the verdicts it
  remembers in the process — the acceptor's, taken so that only the PDF seal is judged again;
  passing reports for a package arriving again.
- ``check_pool``: both package checks that need no key run in processes beside the node (``[processing]
  check_processes``), over a bare pipe each, the verdicts kept in the child, trust and CRLs sent by
  generation, a child that dies replaced and its job sent again; ``check_child``: one such process.
"""
