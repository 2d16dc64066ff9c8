"""Adapters: legacy office (OA) systems joining the network without their users noticing gwx.

Every adapter is a client of the document service's contract
(:class:`node.documents.contract.DocumentServiceApi`), the same one the local API uses, so an OA
system sending over SOAP, a watched folder or a webhook gets exactly the checks, errors and audit
events a clerk at the console gets. None is built yet: the SOAP endpoint and client, the watched
folder and webhooks are the adapters issue's work.
"""
