"""The node's local HTTP API: what clerks' tools, adapters and operators call on this node.

- ``local_api``: the aiohttp application (app factory, ``cleanup_ctx``, ``web.AppKey``, thin
  handlers) over :class:`node.documents.contract.DocumentServiceApi`.
- ``ledger_routes``: the 台账 routes — CSV streamed, XLSX from a temporary file — and their statistics.
- ``upload``: a document submission as multipart/form-data, streamed part by part to disk.
- ``auth``: bearer tokens (hashed at rest) and roles — a clerk of one unit, an operator.
- ``openapi``: the OpenAPI 3.1 description served at ``/api/v1/openapi.json``.
- HTTP statuses come from the error's kind, in :mod:`node.error_kinds` (shared with the CLI and the peer API).
"""
