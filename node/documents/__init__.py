"""What clerks and their tools can do with documents, independent of how they reach the node.

- ``contract``: :class:`DocumentServiceApi`, the contract the local API, the CLI and the adapters
  call — send, list, show, 签收, 退回, 登记, 撤回, 催办, track — and the value types it returns.
- ``service``: :class:`DocumentService`, its implementation: seals and packs a document, writes the
  outbox rows and the drafts for each destination node in one transaction, delivers to units on
  this node directly, and applies a clerk's act with the notice it sends; its sending half (发文,
  转发, 补发) is ``sending``, its typed refusals ``errors``.
- ``ledger``: the 台账 — a unit's sent and received rows with the 公文 element headings, filters,
  scope, a page at a time; ``ledger_files`` writes it as CSV (UTF-8 with BOM) or XLSX (openpyxl,
  write-only); ``statistics`` counts, time to 签收 (median, p90), overdue and returned rates per
  unit and period.
- ``track_page``: a sent document's track a page at a time, and ``UNSIGNED``, the statuses that
  count as 未签收; ``supervised``: what a supervisor (督办人员) sees of the units it supervises.
- ``tracking``: applies lifecycle events (decided by :mod:`exchange_protocol.states`) to the stored
  sender and receiver rows with compare-and-set.
"""
