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
                "SOAP_VERSION_MISMATCH", "SOAP_UNKNOWN_OPERATION", "SOAP_ACTION_MISMATCH",
                "SOAP_INVALID_MESSAGE", "SOAP_MUST_UNDERSTAND", "SOAP_BAD_MTOM", "SOAP_BAD_SECURITY_HEADER")


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
