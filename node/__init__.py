"""gwx's node: the running gateway, the imperative shell around :mod:`exchange_protocol` and :mod:`pki`.

A node hosts units (单位), accepts their documents through the local API (and, later, adapters
and the console), seals and sends them to the nodes hosting the addressees over mutual TLS,
accepts what peers send it durably before answering with a signed receipt, and applies what it
accepted to the units' inboxes and to the rows of what they sent. Data flows one way::

    api/ (local API, CLI) ─> documents/ (the service) ─> federation/ (queues, transport) ─> peer
    peer ─> federation/ (peer API, acceptor) ─> store/ ─> federation/processor ─> documents/ rows

Rooms (each subpackage's docstring is its module map):

- :mod:`node.documents` — the document service and its contract (what a clerk can do), tracking of
  per-recipient rows. Adapters and the API call only the contract.
- :mod:`node.federation` — talking to other nodes: per-destination outbound queues, the transport
  client, TLS contexts, the peer API, the acceptor, the processor that applies what was accepted,
  routing.
- :mod:`node.api` — the local HTTP API (tokens, roles, upload, OpenAPI); the console will live here.
- :mod:`node.store` — durable storage behind ``Protocol``s: the blob store and the SQLite backend.
- :mod:`node.ops` — structured logs, Prometheus metrics, readiness and the status report.
- :mod:`node.cli` — the ``gwx`` command line (PKI, the network directory, documents, node
  administration, clerks).

Modules at this level are the node as a whole:

- ``config``: ``node.toml`` parsed once into frozen dataclasses (``config_checks``: what its sections
  must agree on; ``config_toml``: the configuration written back as TOML
  for ``gwx node init``); ``context``: what a running node
  loads once (configuration, credentials, trust) and hands to its components; ``provision``:
  ``gwx node init``; ``directory_source``: the root operator's network source (TOML) read into
  a network directory for ``gwx net build``; ``config_edit``: changing ``node.toml`` with comments kept, checked before it
  is written; ``run_lock``: one running node per directory; ``runner``: start, serve, drain and
  stop; ``errors``: the node's typed errors; ``error_kinds``: the one error taxonomy — HTTP status,
  exit code, SOAP fault and retry-or-give-up by kind; ``localnet``: a real network of node processes
  on loopback for the demo, tests and benchmarks.
"""
