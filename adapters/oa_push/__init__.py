"""OA push: a SOAP client delivering to OA systems that want documents pushed to them (issue 9 §2).

Per hosted unit, node.toml's ``[[oa_push]]`` names the OA's WSDL, its operations and a field mapping
file; the node then pushes each document the unit receives, and each status change of what the unit
sent (签收, 退回, a failed delivery), to that OA through zeep's async client.

Modules:

- :mod:`.errors`: typed errors — a bad mapping (refused at config load), the OA's faults, the OA
  unavailable or slow, a WSDL that lacks what was named — each with the kind that decides retry or
  dead letter.
- :mod:`.codes`: the value tables of a mapping (文种 through the legacy table, 紧急程度, 密级, status
  codes, date and unit code formats), each checked whole. Pure.
- :mod:`.mapping`: a mapping file → the keyword arguments of the OA's operations for a received
  document or a status change. Pure.
- :mod:`.settings`: the ``[[oa_push]]`` entries of node.toml (WSDL, operations, timeout, window),
  loading each mapping file so a bad one stops the node at start.
- :mod:`.signature`: the mapping against the types of the OA's operation signature (the body into
  ``xs:base64Binary``, a code into ``xs:int`` …), naming the field that does not fit.
- :mod:`.streaming`: the transport that sends the envelope zeep built with each file's base64
  streamed from the sealed package in its place, and reads the OA's answer with a bound (an HTML
  error page → its status and an excerpt).
- :mod:`.soap_call`: the zeep ``AsyncClient`` layer — WSDL loading (one at a time per OA, checked at
  node start), one operation call, the OA's fault → :class:`~.errors.OaFault` with its text,
  HTTP 413 → :class:`~.errors.OaTooLarge`, timeouts and connection failures → transient.
- :mod:`.consumer`: the outbox consumer ``oa:<unit>`` (:mod:`adapters.outbox`): which events the OA
  is told, the document read through the service contract, one call per event; and
  :func:`~.consumer.oa_push_consumers`, what ``node.runner`` registers. ``gwx oa dead | replay``
  (:mod:`node.cli.oa`) show and resend its dead letters.
"""
