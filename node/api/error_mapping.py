"""The one place that maps gwx error codes to HTTP statuses.

Peers, clerks' tools and adapters see ``{"error": {"code", "message", "details"}}`` with the
status chosen here. Codes are matched by exact name first, then by prefix, so a new code in a
known family gets a sensible status without an edit here.
"""

from __future__ import annotations

from pki.errors import GwxError

EXACT: dict[str, int] = {
    "API_UNAUTHENTICATED": 401,
    "API_FORBIDDEN": 403,
    "API_NOT_FOUND": 404,
    "API_METHOD_NOT_ALLOWED": 405,
    "API_LENGTH_REQUIRED": 411,
    "API_UNSUPPORTED_MEDIA_TYPE": 415,
    "API_TOO_LARGE": 413,
    "ENV_TOO_LARGE": 413,
    "PKG_TOO_LARGE": 413,
    "ENV_REPLAYED": 409,
    "STORE_CONFLICT": 409,
    "STATE_ILLEGAL_TRANSITION": 409,
    "ENV_WRONG_RECIPIENT": 421,
    "PEER_IDENTITY": 403,
    "PEER_HUNG_UP": 400,
    "ENV_ORIGIN_MISMATCH": 403,
    "ENV_UNIT_NOT_HOSTED": 403,
    "NODE_UNAVAILABLE": 503,
    "NODE_SHUTTING_DOWN": 503,
    "STORE_CORRUPT": 500,
    "STORE_NOT_FOUND": 404,
    "STORE_DUPLICATE": 409,
}

PREFIXES: tuple[tuple[str, int], ...] = (
    ("API_", 400),
    ("DOC_", 422),
    ("PKG_", 422),
    ("ENV_", 400),
    ("SEAL_", 422),
    ("PKI_CERT_", 403),
    ("PKI_", 422),
    ("STATE_", 409),
    ("ROUTE_", 422),
    ("STORE_", 500),
)


def http_status_for(error: GwxError | str) -> int:
    code = error if isinstance(error, str) else error.code
    if code in EXACT:
        return EXACT[code]
    for prefix, status in PREFIXES:
        if code.startswith(prefix):
            return status
    return 500
