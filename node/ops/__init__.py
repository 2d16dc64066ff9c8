"""What an operator watches: structured logs and metrics.

- ``logs``: one JSON object a line, with the message id and destination when known.
- ``metrics``: a small Prometheus registry (counters, gauges, histograms) served at ``/metrics``.
"""
