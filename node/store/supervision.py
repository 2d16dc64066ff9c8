"""What 督办 keeps: per received row the durable marks, per supervising unit the items it was sent.

Values and the :class:`SupervisionStore` protocol (``NodeStore.supervision``); the SQLite backend
is :mod:`node.store.sqlite.supervision`. The rules (when a row is overdue, when escalation falls
due) are :mod:`exchange_protocol.supervision`'s; the sweep that applies them is
:mod:`node.supervision.escalation`.

* A **mark** (:class:`SupervisionMark`) belongs to one inbox row (document, receiving unit): when
  the node noticed it was overdue (the ``document.overdue`` event fired, once), when it escalated it
  and to which supervising unit (once), and when the unit settled it after that.
* An **item** (:class:`SupervisionItem`) is what a supervising unit holds: a 督办 naming the
  document, the late unit, the sending unit, the deadline and how late, and once the late unit has
  acted, when, by whom and how (``signed_for`` / ``returned``; ``recalled`` when the sender withdrew it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class LateRow:
    """An inbox row past its deadline and not settled, with its marks (what the sweep reads)."""

    doc_id: str
    unit: str
    from_unit: str
    title: str
    status: str
    deadline: datetime
    overdue_noted_at: datetime | None
    escalated_at: datetime | None


@dataclass(frozen=True)
class SupervisionMark:
    doc_id: str
    unit: str
    overdue_noted_at: datetime | None = None
    escalated_at: datetime | None = None
    supervisor: str | None = None  # set with escalated_at
    working_days_late: int | None = None
    settled_at: datetime | None = None


@dataclass(frozen=True)
class SupervisionItem:
    doc_id: str
    unit: str  # the late unit
    supervisor: str
    sent_by: str
    title: str
    deadline: datetime
    escalated_at: datetime
    working_days_late: int
    origin_node: str  # the node hosting the late unit (this node for a local one)
    received_at: datetime
    settled_at: datetime | None = None
    settled_by: str | None = None
    settled_as: str | None = None
    id: int | None = None


class SupervisionStore(Protocol):
    async def late_rows(self, now: datetime, unsettled: Sequence[str], limit: int = 500,
                        after: tuple[datetime, str, str] | None = None) -> list[LateRow]:
        """Inbox rows in an ``unsettled`` status whose deadline is before ``now`` and that are not
        escalated yet, by (deadline, doc_id, unit); ``after`` such a key: the page after it."""

    async def marks_for(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SupervisionMark]:
        """The marks of these (doc_id, unit) rows (rows without marks are left out)."""

    async def note_overdue(self, tx: Any, doc_id: str, unit: str, at: datetime, details: dict[str, Any]) -> bool:
        """Mark the row noticed overdue (audit ``inbox.overdue``) unless it was; True if marked now."""

    async def note_no_supervisor(self, tx: Any, doc_id: str, unit: str, at: datetime) -> bool:
        """Note (no audit event: nobody was told) that the row fell due for escalation while no
        supervising unit was known; True the first time. The row stays unescalated: the sweep tries
        again each round, so a supervisor the directory names later gets it."""

    async def mark_escalated(self, tx: Any, doc_id: str, unit: str, at: datetime, supervisor: str,
                             working_days_late: int, unsettled: Sequence[str], details: dict[str, Any]) -> bool:
        """Mark the row escalated (audit ``inbox.escalated``) if it is not yet and its status is still
        one of ``unsettled`` (checked in ``tx``, under the writer lock); True if marked now."""

    async def mark_settled(self, tx: Any, doc_id: str, unit: str, at: datetime) -> SupervisionMark | None:
        """Record that an escalated row was settled; the mark as it was (None: not escalated)."""

    async def owe_settlement(self, tx: Any, doc_id: str, unit: str, payload: bytes) -> None:
        """Keep the encoded settlement 督办 (:class:`exchange_protocol.notices.Escalation`) of a row whose
        supervisor no route reached when it was settled, for the sweep to send later."""

    async def owed_settlements(self, limit: int = 500) -> list[bytes]:
        """The settlements kept by :meth:`owe_settlement` and not sent yet."""

    async def settlement_sent(self, tx: Any, doc_id: str, unit: str) -> None:
        """The owed settlement of this row is queued (or recorded) now."""

    async def add_item(self, tx: Any, item: SupervisionItem, actor: str) -> bool:
        """Record a 督办 for ``item.supervisor`` (audit ``supervision.escalated``) unless one for the
        same document and unit is held; True if added now."""

    async def settle_item(self, tx: Any, doc_id: str, unit: str, supervisor: str, at: datetime, by: str,
                          settled_as: str, actor: str) -> bool:
        """Mark the held 督办 settled (audit ``supervision.settled``); True if it changed now."""

    async def items(self, supervisor: str, *, settled: bool | None = None, limit: int = 50,
                    before_id: int | None = None) -> list[SupervisionItem]:
        """The 督办 items of ``supervisor``, newest first; ``settled`` filters (None: all)."""

    async def items_of_units(self, units: Sequence[str], *, settled: bool | None = None, limit: int = 50,
                             before_id: int | None = None) -> list[SupervisionItem]:
        """The 督办 items about these late ``units`` (whoever holds them here), newest first: what a
        supervisor's console shows of the units it supervises."""

    async def overdue_rows(self, units: Sequence[str], now: datetime, unsettled: Sequence[str], *, limit: int = 50,
                           after: tuple[datetime, str, str] | None = None) -> list[LateRow]:
        """Rows of ``units`` hosted here in an ``unsettled`` status past their deadline (escalated or
        not: ``escalated_at`` says), by (deadline, doc_id, unit); ``after`` such a key."""
