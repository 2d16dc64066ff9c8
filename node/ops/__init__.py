"""What an operator watches: structured logs, metrics, readiness and the status report.

- ``logs``: one JSON object a line, with the message id and destination when known.
- ``metrics``: a small Prometheus registry (counters, gauges, histograms) served at ``/metrics``.
- ``readiness``: what blocks the node right now (CRL freshness, certificate and seal expiry, the
  store, the network directory's age and expiry, free disk), served at ``/readyz`` and shown by
  ``gwx node status``.
- ``crl_state``: the CRLs the node holds and its last fetch from the parent, read for readiness and
  /metrics (a stale CRL is named with the reason no newer one is here).
- ``directory_state``: the network directory the node holds, read for readiness and /metrics.
- ``housekeeping``: finished queue rows purged and unreferenced blobs collected, hourly, while the
  node runs.
- ``status``: the status report (queues, peers, inbound, last errors, readiness) in one shape,
  from the running node or read-only from its directory.
"""
