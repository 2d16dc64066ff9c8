"""What 转发 keeps (``NodeStore.forwards``; SQLite: :mod:`node.store.sqlite.forwards`).

* :class:`ForwardedCopy` — on the forwarding unit's node: a received document sent on, unchanged,
  to one unit with a cover 通知 (``cover_doc_id``, the forwarding unit's own document); its status
  moves like a recipient row's (送达, 签收, 退回, 发送失败) as the notices come back.
* :class:`ForwardedIn` — on the receiving node: which unit forwarded the document to this unit, and
  the message of the cover it came with (the cover's 公文标识 is found through it).
* :class:`ForwardedOn` — on the issuer's node: a recipient unit told it that it forwarded the
  issuer's document, to which units, under which cover (a ``forwarded`` notice; migration 19).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ForwardedCopy:
    doc_id: str
    unit: str
    cover_doc_id: str
    from_unit: str  # the forwarding unit
    destination_node: str
    status: str
    who: str | None = None
    when: datetime | None = None
    reason: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ForwardedIn:
    doc_id: str
    unit: str
    forwarded_by: str
    cover_message_id: str


@dataclass(frozen=True)
class ForwardedOn:
    doc_id: str  # the issuer's document
    forwarding_unit: str  # the recipient unit that forwarded it
    cover_doc_id: str
    units: tuple[str, ...]  # the units it was forwarded to
    forwarded_by: str | None  # the clerk who forwarded it
    forwarded_at: datetime
    origin_node: str  # the forwarding unit's node, which told us


class ForwardStore(Protocol):
    async def add(self, tx: Any, copies: Sequence[ForwardedCopy], actor: str) -> None: ...
    async def get(self, doc_id: str, unit: str) -> ForwardedCopy | None: ...
    async def for_cover(self, cover_doc_id: str) -> list[ForwardedCopy]: ...
    async def update(self, tx: Any, doc_id: str, unit: str, expected_status: str, changes: dict[str, Any],
                     actor: str, action: str, details: dict[str, Any]) -> None: ...
    async def note_received(self, tx: Any, item: ForwardedIn) -> None: ...
    async def received(self, doc_id: str, unit: str) -> tuple[ForwardedIn, str | None] | None: ...
    async def note_forwarded_on(self, tx: Any, item: ForwardedOn, actor: str) -> bool: ...
    async def forwarded_on(self, doc_id: str, limit: int = 200) -> list[ForwardedOn]: ...
