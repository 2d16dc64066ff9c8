"""The SOAP endpoint every node serves for office (OA) systems that call us (adapters issue §1, §3).

Document/literal SOAP 1.1 and 1.2 at ``/soap/v1/documents`` on the local API's listener, the WSDL
at ``…?wsdl``; the clerk's operations — submit, list the inbox, fetch, 签收, 退回, 登记, 撤回, 催办,
track — each calling the document service's contract and nothing else.

Module map:

* :mod:`~adapters.soapserver.endpoint` — the aiohttp sub-application mounted on the local API: its
  caps and memory budget, the WSDL and XSD, ``[soap] enabled = false``.
* :mod:`~adapters.soapserver.calls` — one request: media types, caps, SOAPAction, authentication
  (WS-Security UsernameToken / bearer), validation, the operation, faults. Loaded with the first
  SOAP request, so a node whose OA systems never call it does not import lxml and the operations.
* :mod:`~adapters.soapserver.envelope` — hardened XML parsing (no DTD, no entities, no network,
  bounded depth) and the envelope's shape.
* :mod:`~adapters.soapserver.mtom` — MTOM/XOP requests read part by part to temp files, and MTOM
  answers streamed from the sealed package.
* :mod:`~adapters.soapserver.messages` — validation against ``gwx-oa.xsd``; answers and faults.
* :mod:`~adapters.soapserver.operations` — the nine operations over the document service.
* :mod:`~adapters.soapserver.errors` — the endpoint's own refusals (``SOAP_*`` codes).
* ``gwx-oa.wsdl``, ``gwx-oa.xsd`` — what the node publishes (the address filled in when served).
"""
