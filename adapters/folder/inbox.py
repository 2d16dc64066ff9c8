"""The watched folder's receiving side: documents and events written into ``inbox/`` for the OA.

A :class:`FolderInbox` is the unit's consumer (``folder:<unit>``) of the adapters' outbox
(:mod:`adapters.outbox`): every event for the unit reaches it in order, persisted before the first
attempt and retried until it returns. For each event it writes:

* ``document.received`` — first the folder ``inbox/DOC_ID/``: ``META.json`` (the same contract as a
  drop's), ``body.pdf`` (``body.ofd`` for an OFD 正文), ``attachments/…``, ``verification.json`` (the node's report on seal,
  signature and package) and ``document.json`` (the inbox item: sender, status, received_at …).
  Read through the document service contract (``show``, ``package_path``) as a clerk principal of
  the unit, streamed out of the sealed package with its checks. A document recalled before it was
  written has no body or attachments (the sender withdrew them), only its record.
* every event, the received one included — then ``inbox/events/SEQ-TYPE.json``: the event as
  :meth:`adapters.events.AdapterEvent.to_json` gives it (``event_id``, ``type``, ``doc_id``, ``at``,
  ``data``: who signed for, the reason of a 退回, the recipient …), named so that a listing sorts in
  the order things happened. For a received document, ``document`` names its folder.

Both appear whole (built hidden, fsynced, renamed in). An event delivered again after a kill -9
(the outbox's at-least-once) finds its folder there already and writes the same event file over
itself: the OA sees each once. Writing fails → ``FOLDER_INBOX_UNWRITABLE`` (retried).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from adapters.events import RECEIVED, AdapterEvent
from adapters.folder.errors import InboxUnwritable
from adapters.folder.layout import FolderLayout, write_json, write_tree
from adapters.folder.outgoing import folder_principal
from exchange_protocol.manifest import ATTACHMENTS_DIR
from exchange_protocol.package_reader import PackageReader
from node.documents.contract import DocumentServiceApi
from node.documents.service import DocumentRecalled

log = logging.getLogger("gwx.folder")
_PLAIN_NAME = re.compile(r"^[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,127}$")


def folder_name(doc_id: str) -> str:
    """The folder a document is written to: its 公文标识 when that is a plain file name (gwx refuses
    others when sent), else a digest of it — an id from a peer never chooses a path, nor takes the
    name of ``events/``."""
    if _PLAIN_NAME.match(doc_id) and ".." not in doc_id and doc_id.lower() != "events":
        return doc_id
    return "doc-" + hashlib.sha256(doc_id.encode()).hexdigest()[:32]


def event_file_name(event: AdapterEvent) -> str:
    return f"{event.seq:012d}-{event.type}.json"


class FolderInbox:
    def __init__(self, layout: FolderLayout, unit: str, service: DocumentServiceApi) -> None:
        self.name = f"folder:{unit}"
        self.layout = layout
        self.unit = unit
        self.service = service
        self.principal = folder_principal(unit)

    def wants(self, event: AdapterEvent) -> bool:
        return event.unit == self.unit

    async def deliver(self, event: AdapterEvent) -> None:
        extra = {"doc_id": event.doc_id}
        try:
            body: dict[str, Any] = event.to_json()
            if event.type == RECEIVED:
                body["document"] = await self._document(event.doc_id)
            path = self.layout.events / event_file_name(event)
            await asyncio.to_thread(write_json, path, body)
        except OSError as exc:
            raise InboxUnwritable(f"cannot write {self.layout.inbox}: {exc.strerror or exc}",
                                  unit=self.unit) from None
        log.info("folder %s: %s %s written to inbox/events/%s", self.unit, event.type, event.doc_id, path.name,
                 extra=extra)

    async def _document(self, doc_id: str) -> str:
        name = folder_name(doc_id)
        target = self.layout.inbox / name
        if os.path.lexists(target):  # written before a crash cut the event's delivery off: it is whole
            return name
        shown = await self.service.show(self.principal, doc_id)
        try:
            package = await self.service.package_path(self.principal, doc_id)
        except DocumentRecalled:
            package = None
        record = {k: v for k, v in shown.items() if k not in ("metadata", "verification")}
        await asyncio.to_thread(_write_document, target, shown, record, package)
        log.info("folder %s: document %s written to inbox/%s", self.unit, doc_id, name, extra={"doc_id": doc_id})
        return name


def _write_document(target: Path, shown: dict[str, Any], record: dict[str, Any], package: Path | None) -> None:
    def as_json(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"

    files: dict[str, Any] = {"META.json": as_json(shown["metadata"]),
                             "verification.json": as_json(shown["verification"]),
                             "document.json": as_json(record)}
    if package is None:
        write_tree(target, files)
        return
    with open(package, "rb") as f, PackageReader(f) as reader:
        # body.pdf or body.ofd, as the package carries it; streamed, checked against the manifest
        files[reader.body_name] = reader.iter_member(reader.body_name)
        for entry in reader.attachments:
            files[f"attachments/{entry.path.removeprefix(ATTACHMENTS_DIR)}"] = reader.iter_member(entry.path)
        write_tree(target, files)
