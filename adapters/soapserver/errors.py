"""The SOAP endpoint's own refusals: what is wrong with a SOAP request before the document service
sees it. Each is a fault (``node.error_kinds.soap_fault_for``) whose detail carries the code.

Refusals the service or the local API already name (a token that is unknown, a unit that is not
the clerk's, a document that does not exist, META.json that is wrong) keep their own codes.
"""

from __future__ import annotations

import errno

from node.errors import NodeError, NodeUnavailable
from pki.errors import ErrorKind


class SoapError(NodeError):
    """A SOAP request that cannot be used as given; the code names what is wrong with it."""

    code = "SOAP_BAD_REQUEST"
    kind = ErrorKind.INVALID_INPUT
    subcodes = ("SOAP_BAD_CONTENT_TYPE", "SOAP_MALFORMED_XML", "SOAP_DTD_FORBIDDEN", "SOAP_TOO_DEEP",
                "SOAP_UNKNOWN_OPERATION", "SOAP_ACTION_MISMATCH",
                "SOAP_INVALID_MESSAGE", "SOAP_BAD_MTOM", "SOAP_BAD_SECURITY_HEADER")


class SoapVersionMismatch(SoapError):
    """An Envelope that is not the SOAP version of the binding it came by (an unknown namespace, or
    SOAP 1.2 sent as text/xml, or SOAP 1.1 as application/soap+xml): a VersionMismatch fault
    (``node.error_kinds.SOAP_FAULT_BY_CODE``) in ``answer_version`` — SOAP 1.1 §4.1.2 answers a
    SOAP 1.1 binding in SOAP 1.1; SOAP 1.2 part 1 appendix A answers a SOAP 1.1 envelope in SOAP 1.1
    whatever it came by."""

    code = "SOAP_VERSION_MISMATCH"
    kind = ErrorKind.INVALID_INPUT

    def __init__(self, message: str, *, answer_version: str = "1.1", **details: object) -> None:
        super().__init__(message, **details)
        self.answer_version = answer_version


class SoapMustUnderstand(SoapError):
    """Header blocks aimed at this node (no actor/role, or next, or ultimateReceiver) that say
    mustUnderstand and that the node does not understand: a MustUnderstand fault naming each of them
    (``not_understood``: their names in Clark notation, ``{namespace}local``). The error belongs to
    the header, so a SOAP 1.1 fault carries it in a header entry, not in ``detail`` (SOAP 1.1 §4.4)."""

    code = "SOAP_MUST_UNDERSTAND"
    kind = ErrorKind.INVALID_INPUT
    header_fault = True

    def __init__(self, message: str, *, not_understood: tuple[str, ...] = (), **details: object) -> None:
        super().__init__(message, **details)
        self.not_understood = not_understood


class SoapDisabled(NodeError):
    """The operator turned the SOAP endpoint off (``[soap] enabled = false``): every ``/soap/v1/…``
    path, the WSDL included, is not found."""

    code = "SOAP_DISABLED"
    kind = ErrorKind.NOT_FOUND


class SoapTooLarge(NodeError):
    """A request (declared or as it arrives), its envelope or one of its MTOM parts over its cap."""

    code = "SOAP_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


def out_of_disk(exc: OSError | None = None) -> NodeUnavailable | None:
    """The refusal of a request the upload directory has no room for, whether found by checking free
    space first (``exc`` None) or by a write failing (``exc``: None unless it is the disk being full):
    transient, so the OA sends again later."""
    if exc is not None and exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    return NodeUnavailable("not enough disk space for this request")
