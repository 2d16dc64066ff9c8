"""What follows from an error's kind: HTTP status, CLI exit code, SOAP fault, retry or give up.

Every :class:`pki.errors.GwxError` class sets its :class:`~pki.errors.ErrorKind` in its own body;
the decisions callers make about an error are the tables below, over that kind, and nowhere else:
the local and peer APIs answer :func:`http_status_for`, ``gwx`` exits with :func:`exit_code_for`,
SOAP adapters fault with :func:`soap_fault_for`, and the sender (a peer refused an envelope) and
the processor (applying an acknowledged message failed) retry or give up by :func:`disposition`.

It lives in ``node`` (not ``pki``, which only names errors) so that ``node.api``, ``node.cli``,
``node.federation`` and ``adapters`` share it; ``pki`` and ``exchange_protocol`` never import it.
"""

from __future__ import annotations

import enum
import importlib

from pki.errors import ErrorKind, GwxError, registered_codes


class Disposition(enum.Enum):
    RETRY = "retry"  # try again later with backoff, until the retry window closes
    GIVE_UP = "give_up"  # final: bounce the envelope, fail the message, tell the sender why


HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID_INPUT: 400,
    ErrorKind.VERIFICATION_FAILED: 422,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.TRANSIENT: 503,
    ErrorKind.INTERNAL: 500,
}

# A few codes have an HTTP status of their own that HTTP clients, proxies and load balancers act
# on (405 wants an Allow header, 411 and 413 tell the client to change how it sends, 415 names the
# media type, 421 tells a proxy it sent the request to the wrong server). Each is still its kind
# (invalid input) for everything else. A package that unpacks too large (PKG_TOO_LARGE) is not a
# request that is: it fails verification like any other package check (422).
HTTP_STATUS_BY_CODE: dict[str, int] = {
    "API_METHOD_NOT_ALLOWED": 405,
    "API_LENGTH_REQUIRED": 411,
    "API_TOO_LARGE": 413,
    "API_OCSP_TOO_LARGE": 413,
    "API_TSA_TOO_LARGE": 413,
    "ENV_TOO_LARGE": 413,
    "API_UNSUPPORTED_MEDIA_TYPE": 415,
    "ENV_WRONG_RECIPIENT": 421,
}

# ``gwx`` exit codes (README "Exit codes"). argparse exits 2 on a usage error too.
SUCCESS = 0
VERIFY_FAILED = 1
BAD_INPUT = 2
REFUSED = 3
TRY_AGAIN = 4
INTERNAL = 5

EXIT_CODE: dict[ErrorKind, int] = {
    ErrorKind.VERIFICATION_FAILED: VERIFY_FAILED,
    ErrorKind.INVALID_INPUT: BAD_INPUT,
    ErrorKind.NOT_FOUND: BAD_INPUT,
    ErrorKind.CONFLICT: BAD_INPUT,
    ErrorKind.UNAUTHENTICATED: REFUSED,
    ErrorKind.FORBIDDEN: REFUSED,
    ErrorKind.TRANSIENT: TRY_AGAIN,
    ErrorKind.INTERNAL: INTERNAL,
}

# SOAP 1.1 faultcode / SOAP 1.2 Code/Value (local names; the adapter adds its envelope prefix):
# the asker's fault or ours. "Server"/"Receiver" faults may succeed when sent again.
SOAP11_FAULT: dict[ErrorKind, str] = {kind: "Client" for kind in ErrorKind} | {
    ErrorKind.TRANSIENT: "Server", ErrorKind.INTERNAL: "Server"}
SOAP12_FAULT: dict[ErrorKind, str] = {kind: "Sender" for kind in ErrorKind} | {
    ErrorKind.TRANSIENT: "Receiver", ErrorKind.INTERNAL: "Receiver"}

# Two refusals have a fault code of their own in both SOAP versions, which SOAP stacks act on
# (SOAP 1.1 §4.4.1; SOAP 1.2 part 1 §5.4.6): an Envelope in a namespace that is not the version's
# (VersionMismatch: the client should send the other version), a mustUnderstand header block we do
# not understand (MustUnderstand). Each is still its kind (invalid input) for everything else.
SOAP_FAULT_BY_CODE: dict[str, str] = {
    "SOAP_VERSION_MISMATCH": "VersionMismatch",
    "SOAP_MUST_UNDERSTAND": "MustUnderstand",
}

# Retry or give up, for a message already on its way. Authentication between nodes fails on
# credentials (a CRL to refresh, a certificate to renew, a peer to reconfigure) that operators fix
# without the message changing, so it is retried; a verdict on the message itself is final.
DISPOSITION: dict[ErrorKind, Disposition] = {
    ErrorKind.INVALID_INPUT: Disposition.GIVE_UP,
    ErrorKind.VERIFICATION_FAILED: Disposition.GIVE_UP,
    ErrorKind.UNAUTHENTICATED: Disposition.RETRY,
    ErrorKind.FORBIDDEN: Disposition.GIVE_UP,
    ErrorKind.NOT_FOUND: Disposition.GIVE_UP,
    ErrorKind.CONFLICT: Disposition.GIVE_UP,
    ErrorKind.TRANSIENT: Disposition.RETRY,
    ErrorKind.INTERNAL: Disposition.RETRY,
}

# Every module that defines error classes, so that a code read off the wire (a peer's refusal, the
# node's answer to the CLI) finds its class even in a process that has not imported it yet. A test
# checks that this list is complete.
ERROR_MODULES = (
    "pki.errors", "exchange_protocol.errors", "exchange_protocol.archive_errors",
    "exchange_protocol.notices", "node.errors", "node.directory_source", "node.api.auth",
    "node.api.upload", "node.documents.errors", "node.documents.ledger", "node.federation.acceptor",
    "node.federation.processor", "node.federation.notice_apply",
    "node.federation.peer_api", "node.federation.relay", "node.federation.routing", "node.federation.tls", "node.federation.transport",
    "node.cli.exit_codes", "node.cli.api_client", "node.renewal", "adapters.events", "adapters.outbox",
    "adapters.webhooks.signing", "adapters.webhooks.subscriptions", "adapters.webhooks.delivery",
    "adapters.soapserver.errors",
    "adapters.folder.errors",
    "adapters.oa_push.errors",
    "node.console.errors",
    "exchange_protocol.supervision", "node.supervision.escalation",
    "exchange_protocol.statements", "node.federation.notice_evidence",
    "exchange_protocol.ofd_errors", "node.ops.backup",
)
_loaded = False


def kind_of_code(code: str) -> ErrorKind | None:
    """The kind of the class that declares ``code``, or None for a code no gwx class declares
    (a newer peer's, a proxy's)."""
    global _loaded
    if not _loaded:
        for name in ERROR_MODULES:
            importlib.import_module(name)
        _loaded = True
    classes = registered_codes().get(code)
    return classes[0].kind if classes else None


def kind_for_status(status: int) -> ErrorKind:
    """The kind behind an HTTP status a gwx node answered with (the inverse of the tables above;
    the code-level statuses are all invalid input, as is any other 4xx)."""
    for kind, kind_status in HTTP_STATUS.items():
        if kind_status == status:
            return kind
    return ErrorKind.INVALID_INPUT if 400 <= status < 500 else ErrorKind.INTERNAL


def http_status_for(error: GwxError) -> int:
    return HTTP_STATUS_BY_CODE.get(error.code) or HTTP_STATUS[error.kind]


def exit_code_for(error: GwxError) -> int:
    return EXIT_CODE[error.kind]


def soap_fault_for(error: GwxError, soap_version: str = "1.1") -> str:
    """The SOAP 1.1 faultcode or SOAP 1.2 Code/Value (local name) ``error`` is answered with."""
    table = SOAP12_FAULT if soap_version == "1.2" else SOAP11_FAULT
    return SOAP_FAULT_BY_CODE.get(error.code) or table[error.kind]


def disposition(error: GwxError) -> Disposition:
    return DISPOSITION[error.kind]


def gives_up_on_code(code: str) -> bool:
    """Whether a peer's refusal with ``code`` is final. A code we do not know is retried: it is no
    reason to drop a document, and the retry window bounds how long we keep trying."""
    kind = kind_of_code(code)
    return kind is not None and DISPOSITION[kind] is Disposition.GIVE_UP
