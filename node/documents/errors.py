"""The document service's refusals: the typed errors of states that forbid an act (each a
:class:`~node.errors.NodeError` with its stable code; :mod:`node.error_kinds` maps them), and the
rule of what a unit may forward (转发), checked before and again inside the sending transaction."""

from __future__ import annotations

from exchange_protocol.states import ReceiverStatus
from node.errors import NodeError
from node.store import InboxRow
from pki.errors import ErrorKind


class NoSeal(NodeError):
    """The clerk's unit is hosted here but the operator has not installed its seal: the node's
    state, not the request, is what must change (409, like any other state that forbids it)."""

    code = "NODE_NO_SEAL"
    kind = ErrorKind.CONFLICT


class NoEligibleRecipient(NodeError):
    """撤回 or 催办 that applied to no recipient: every one asked for refused it, or none was left."""

    code = "DOC_NO_ELIGIBLE_RECIPIENT"
    kind = ErrorKind.CONFLICT


class DocumentRecalled(NodeError):
    """The sender recalled (撤回) the document from this unit: its body and package are withdrawn."""

    code = "DOC_RECALLED"
    kind = ErrorKind.CONFLICT  # 409: the document's state (已撤回) forbids handing out its content


class NotForwardable(NodeError):
    """转发 of a document the unit has not signed for (待签收) or has returned (已退回)."""

    code = "DOC_NOT_FORWARDABLE"
    kind = ErrorKind.CONFLICT  # 409: the row's state forbids it; 签收 first


FORWARDABLE = (ReceiverStatus.SIGNED_FOR.value, ReceiverStatus.REGISTERED.value)


def check_forwardable(row: InboxRow) -> None:
    """A unit forwards (转发) only what it has signed for: not pending, returned or recalled."""
    if row.status == ReceiverStatus.RECALLED.value:
        raise DocumentRecalled(f"document {row.doc_id} was recalled (已撤回) by its sender; it cannot be forwarded",
                               doc_id=row.doc_id)
    if row.status not in FORWARDABLE:
        raise NotForwardable(f"document {row.doc_id} is {ReceiverStatus(row.status).label}: a unit forwards (转发) "
                             "only a document it has signed for (签收)", doc_id=row.doc_id, inbox_status=row.status)
