"""What 签收/退回 evidence the node keeps (``NodeStore.evidence``; SQLite: :mod:`node.store.sqlite.evidence`).

A :class:`NoticeEvidence` is one unit-signed statement (``exchange_protocol.statements``) as the
node holds it: on the receiving side (``side="receiver"``) the one our unit's seal signed when its
clerk acted, on the sending side (``side="sender"``) the one that came with the notice about a
document we sent or forwarded, verified before the notice applied. The archive
(``notice_evidence(doc_id)``) and ``gwx doc evidence`` read them back, byte for byte as signed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

SIDES = ("receiver", "sender")


@dataclass(frozen=True)
class NoticeEvidence:
    doc_id: str
    unit: str  # the unit that signed for or returned the document
    type: str  # receipt | return
    side: str  # receiver (we made it) | sender (it came to us)
    at: datetime  # when the unit acted (the statement's time)
    statement: bytes  # CMS SignedData, DER, exactly as signed
    sha256: str  # of ``statement``
    recorded_at: datetime | None = None


class EvidenceStore(Protocol):
    async def add(self, tx: Any, items: Sequence[NoticeEvidence]) -> None:
        """Inside ``tx``; a statement already held on the same side is kept once."""

    async def notice_evidence(self, doc_id: str) -> list[NoticeEvidence]:
        """Every statement held about ``doc_id``, oldest first (by time, then unit, then side)."""
