"""Adapters: legacy office (OA) systems joining the network without their users noticing gwx.

Every adapter is a client of the document service's contract
(:class:`node.documents.contract.DocumentServiceApi`), the same one the local API uses, so an OA
system sending over SOAP, a watched folder or a webhook gets exactly the checks, errors and audit
events a clerk at the console gets.

What happens to a unit's documents reaches the adapters through ONE core, never through hooks in
the processor: the node's audit log is the journal (every state change appends its event in the
same transaction), and each consumer follows it with its own durable cursor.

- :mod:`adapters.events` — the one table from audit actions to :class:`~adapters.events.AdapterEvent`
  (``document.received``, ``document.signed_for`` …, for which unit, with a stable ``event_id``).
- :mod:`adapters.outbox` — the :class:`~adapters.outbox.Consumer` protocol every adapter implements
  and the :class:`~adapters.outbox.Outbox`: fan-out into per-consumer rows persisted before any
  attempt, one delivery loop per consumer (in order, backoff from :mod:`exchange_protocol.retry`,
  dead letters after the consumer's window, operator replay). An adapter registers its consumers
  with ``await outbox.add(consumer, policy, attempt_timeout=…)`` before ``node.runner`` starts it
  (or at any time after).
- :mod:`adapters.webhooks` — webhooks: a unit's events POSTed as signed JSON (``gwx webhook …``).
- :mod:`adapters.soapserver` — the SOAP endpoint every node serves for OA systems that call us
  (SOAP 1.1/1.2, WSDL, MTOM, WS-Security tokens; hostile XML refused).
- :mod:`adapters.folder` — watched folders: OA drops sent exactly once, results and rejects (issue 9 §4).
- :mod:`adapters.oa_push` — the SOAP client pushing received documents and status changes to OA systems.
"""
