"""The outbox consumer ``oa:<unit>``: what one unit's OA is told, and how each event becomes a call.

It wants the documents the unit receives (``document.received``) and, when node.toml names a
``status_operation``, the status changes of what the unit sent (``document.signed_for``,
``document.returned``, ``delivery.failed``). The outbox (:mod:`adapters.outbox`) persists each
before any attempt, delivers them one at a time in order (the OA sees a document before its status
changes), retries and dead-letters by the kind of the error :meth:`OaPushConsumer.deliver` raises.

A received document is read through the document service's contract as the unit's own system
principal (never the store): its metadata from ``show``, its body and attachments from the sealed
package (``package_path``). Their content is never read into memory here: the mapping is given a
placeholder for each (:class:`~.streaming.PackagePart`), and the call streams the file's base64 from
the package into the message where the placeholder stands. Every call carries the 公文标识 and the event id
(the mapping names the OA's parameters for them), so a push resent after a kill -9 between the OA's
answer and the outbox's commit is recognised by the OA as the one it has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.events import DELIVERY_FAILED, RECEIVED, RETURNED, SIGNED_FOR, AdapterEvent
from exchange_protocol.errors import PackageMissingFile
from exchange_protocol.manifest import ATTACHMENTS_DIR
from exchange_protocol.package_reader import PackageReader
from exchange_protocol.retry import RetryPolicy
from node.api.auth import Principal
from node.config import NodeConfig
from node.documents.contract import DocumentServiceApi
from node.documents.service import DocumentRecalled

from .mapping import ReceivedDocument, StatusChange
from .settings import MIN_SEND_RATE, OaPushSettings

if TYPE_CHECKING:
    from .streaming import PackagePart

if TYPE_CHECKING:
    from .soap_call import OaClient

log = logging.getLogger("gwx.adapters.oa_push")

START_CHECK_SECONDS = 5.0  # an OA slower than this at node start is checked at its first push instead
STATUS_OF_EVENT = {SIGNED_FOR: "signed_for", RETURNED: "returned", DELIVERY_FAILED: "failed"}


class OaPushConsumer:
    def __init__(self, settings: OaPushSettings, service: DocumentServiceApi,
                 unit_name: Callable[[str], str | None] = lambda code: None, client: OaClient | None = None) -> None:
        self.settings = settings
        self.name = settings.consumer_name
        self._service = service
        self._unit_name = unit_name
        if client is None:
            # zeep and httpx are loaded only by a node that pushes to an OA: loaded in every node
            # they raise the SOAP endpoint's peak RSS under a volley of inline fetches (measured:
            # tests/adapters/soapserver/test_soap_memory.py: 137 MiB, over its 80 MiB bound).
            from .soap_call import OaClient
            client = OaClient(settings)
        self._client = client
        self._principal = Principal(token_id=self.name, name=f"OA push of {settings.unit}", role="clerk",
                                    unit=settings.unit)

    def wants(self, event: AdapterEvent) -> bool:
        if event.unit != self.settings.unit:
            return False
        return event.type == RECEIVED or (event.type in STATUS_OF_EVENT and self.settings.status_operation is not None)

    async def deliver(self, event: AdapterEvent) -> None:
        s = self.settings
        if event.type == RECEIVED:
            received = await self._received(event)
            if received is None:
                return
            document, parts = received
            await self._client.call(s.received_operation, s.mapping.received_arguments(document), parts)
        elif event.type in STATUS_OF_EVENT and s.status_operation is not None:
            recipient = str(event.data.get("recipient") or "")
            change = StatusChange(doc_id=event.doc_id, event_id=event.event_id, unit=event.unit,
                                  status=STATUS_OF_EVENT[event.type], recipient_unit=recipient, when=event.at,
                                  who=event.data.get("by"), reason=event.data.get("reason"),
                                  recipient_unit_name=self._unit_name(recipient))
            await self._client.call(s.status_operation, s.mapping.status_arguments(change))

    async def check(self, limit: float) -> None:
        """Load the OA's WSDL and check the mapping against it (node start): see ``OaClient.check``."""
        await self._client.check(limit)

    async def _received(self, event: AdapterEvent) -> tuple[ReceivedDocument, tuple[PackagePart, ...]] | None:
        shown = await self._service.show(self._principal, event.doc_id)
        try:
            package = await self._service.package_path(self._principal, event.doc_id)
        except DocumentRecalled:
            # Withdrawn before its push: the OA never gets a document its sender took back.
            log.info("OA of %s: %s was recalled before it was pushed; not pushed", self.settings.unit, event.doc_id)
            return None
        body, attachments = await asyncio.to_thread(_package_parts, package)
        document = ReceivedDocument(doc_id=event.doc_id, event_id=event.event_id, unit=event.unit,
                                    from_unit=shown["from_unit"], received_at=shown.get("received_at") or event.at,
                                    meta=shown["metadata"], body=body.token,
                                    attachments=tuple((name, part.token) for name, part in attachments),
                                    from_unit_name=self._unit_name(shown["from_unit"]))
        return document, (body, *(part for _, part in attachments))

    async def close(self) -> None:
        await self._client.close()


def _package_parts(path: Path) -> tuple[PackagePart, tuple[tuple[str, PackagePart], ...]]:
    """The body and the attachments of a sealed package, as parts to stream (their content is read,
    and checked against the manifest, while the call sends it)."""
    with open(path, "rb") as file, PackageReader(file) as reader:
        body = reader.manifest.get(reader.body_name)  # body.pdf or body.ofd
        if body is None:  # PackageReader's layout check refuses such a package already
            raise PackageMissingFile(f"{reader.body_name} is not a file of this package", name=reader.body_name)
        from .streaming import PackagePart  # zeep is loaded only by a node that pushes to an OA

        attachments = tuple((entry.path.removeprefix(ATTACHMENTS_DIR), PackagePart(path, entry.path, entry.size))
                            for entry in reader.attachments)
    return PackagePart(path, body.path, body.size), attachments


async def check_against_wsdls(consumers: list[OaPushConsumer]) -> None:
    """At node start: each OA's WSDL loaded (all at once, waiting at most :data:`START_CHECK_SECONDS`)
    and the mapping checked against it. A WSDL that does not fit stops the start with its typed error
    (:class:`~.errors.OaWsdlMismatch`, :class:`~.errors.OaParameterTypeMismatch` naming the field),
    as a bad mapping file does; an OA that cannot be reached now, or answers its WSDL's URL with
    a page that is not a WSDL (a maintenance page), is checked at its first push."""
    from .errors import OaWsdlMismatch

    outcomes = await asyncio.gather(*(c.check(START_CHECK_SECONDS) for c in consumers), return_exceptions=True)
    for consumer, outcome in zip(consumers, outcomes, strict=True):
        if isinstance(outcome, OaWsdlMismatch):
            raise outcome
        if isinstance(outcome, BaseException):
            log.warning("OA of %s: its WSDL could not be checked at start (%s); checked at the first push",
                        consumer.settings.unit, getattr(outcome, "message", outcome))


def oa_push_consumers(config: NodeConfig, service: DocumentServiceApi
                      ) -> Iterator[tuple[OaPushConsumer, RetryPolicy, float]]:
    """One consumer per ``[[oa_push]]`` entry, with its retry policy — the node's ``[retry]`` backoff,
    the entry's window — and the outbox's guard on one attempt (reading the package, loading the
    WSDL and the call, each bounded by ``timeout_seconds``, and sending the largest package the
    node accepts at the call's least rate)."""
    largest = config.limits.max_envelope_bytes * 4 / 3 / MIN_SEND_RATE
    r = config.retry
    for push in config.oa_push:
        policy = RetryPolicy(min_delay=timedelta(seconds=r.min_seconds), max_delay=timedelta(seconds=r.max_seconds),
                             multiplier=r.multiplier, jitter=r.jitter, max_age=timedelta(seconds=push.window_seconds))
        for note in push.mapping.notes:
            log.info("OA of %s: %s", push.unit, note)
        yield OaPushConsumer(push, service, config.unit_name), policy, 2 * push.timeout_seconds + 30.0 + largest
