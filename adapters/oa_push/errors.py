"""Errors of the OA push adapter: a mapping or [[oa_push]] section that cannot be used (refused when
the node's configuration is loaded), and what pushing to an OA can end in (the OA's SOAP fault, the
OA unreachable or too slow, a WSDL that does not offer what the operator named).

Each kind decides what the outbox does (:func:`node.error_kinds.disposition`): an OA that is down,
slow or answers a Server fault is TRANSIENT (retried with backoff until the window closes); a Client
fault means the OA refused this push as given (INVALID_INPUT: dead-lettered at once, with the OA's
fault text, for the operator to replay once the OA's side is fixed); a WSDL that lacks the named
operation or a parameter is our configuration's fault (INTERNAL: retried, so nothing is dropped
while the operator corrects node.toml).
"""

from __future__ import annotations

from node.errors import ConfigError
from pki.errors import ErrorKind, GwxError


class OaMappingInvalid(ConfigError):
    """A field mapping file (or an [[oa_push]] entry) that cannot be used; the message names the key."""

    code = "OA_MAPPING_INVALID"
    kind = ErrorKind.INVALID_INPUT


class OaValueUnmapped(GwxError):
    """A document carries a value the OA's mapping has no code for (cannot happen for a mapping that
    loaded, which covers every value; kept as a typed refusal rather than an empty field)."""

    code = "OA_VALUE_UNMAPPED"
    kind = ErrorKind.INVALID_INPUT


class OaPushError(GwxError):
    """Base of what a push to an OA can end in; ``details`` carry the unit and operation."""

    code = "OA_PUSH_FAILED"
    kind = ErrorKind.INTERNAL


class OaFault(OaPushError):
    """The OA answered with a SOAP Client/Sender fault: it refuses this push as given.
    The message carries the OA's own fault text."""

    code = "OA_FAULT"
    kind = ErrorKind.INVALID_INPUT


class OaServerFault(OaPushError):
    """The OA answered with a SOAP Server/Receiver fault: its own trouble, may pass when sent again."""

    code = "OA_SERVER_FAULT"
    kind = ErrorKind.TRANSIENT


class OaUnavailable(OaPushError):
    """The OA could not be reached, timed out or answered with something that is not SOAP."""

    code = "OA_UNAVAILABLE"
    kind = ErrorKind.TRANSIENT
    subcodes = ("OA_TIMEOUT",)


class OaWsdlMismatch(OaPushError):
    """The OA's WSDL does not offer the operation or parameters node.toml and the mapping name."""

    code = "OA_WSDL_MISMATCH"
    kind = ErrorKind.INTERNAL


class OaParameterTypeMismatch(OaWsdlMismatch):
    """A mapped value does not fit the type the OA's WSDL gives its parameter (a title into an xs:int,
    the body into an xs:string). ``details`` name the field (``field``, the mapping's ``key``) and the
    WSDL's type. Refused at node start and by ``gwx node check``; at a push, retried like any WSDL
    mismatch until the mapping is corrected."""

    code = "OA_PARAMETER_TYPE"
    kind = ErrorKind.INTERNAL


class OaTooLarge(OaPushError):
    """The OA (or a proxy before it) answered HTTP 413: the push is larger than it accepts. Sending
    the same bytes again cannot pass, so it is dead-lettered at once, with the OA's page excerpt;
    the operator raises the OA's limit and replays it."""

    code = "OA_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT
