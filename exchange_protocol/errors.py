"""Machine-readable errors of the exchange protocol (documents, packages, envelopes, states).

All derive from :class:`ProtocolError` (itself a :class:`pki.errors.GwxError`). Codes are a
contract: adapters and peers match on them. Group by area; keep one class per distinct cause.
"""

from __future__ import annotations

from pki.errors import GwxError


class ProtocolError(GwxError):
    code = "PROTO_ERROR"


# --- document model (metadata.json / META.json) -------------------------------------------
class MetadataError(ProtocolError):
    code = "DOC_INVALID_METADATA"


# --- sealed packages (ZIP) ------------------------------------------------------------------
class PackageError(ProtocolError):
    code = "PKG_INVALID"


# --- envelopes (node to node) ---------------------------------------------------------------
class EnvelopeError(ProtocolError):
    code = "ENV_INVALID"


# --- state machines -------------------------------------------------------------------------
class IllegalTransition(ProtocolError):
    code = "STATE_ILLEGAL_TRANSITION"
