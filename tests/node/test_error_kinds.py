"""Every error code in the code base has one kind, and every kind an HTTP status, an exit code, a
SOAP fault and a retry-or-give-up decision (``node.error_kinds``)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import adapters
import exchange_protocol
import node
import pki
from node import error_kinds
from node.error_kinds import Disposition, disposition, exit_code_for, http_status_for, soap_fault_for
from pki.errors import CODE_FORMAT, ErrorKind, GwxError, registered_codes

PACKAGES = (pki, exchange_protocol, node, adapters)
ROOT = Path(pki.__file__).resolve().parent.parent

# Raise sites whose code is computed, each relaying a code that is declared elsewhere.
COMPUTED_CODES = {
    ("pki/errors.py", "cls"),  # error_for_code: the class that declares the code
    ("exchange_protocol/package_reader.py", "PackageMissingPart"),  # PKG_MISSING_*, its subcodes
    ("node/api/local_api.py", "ApiError"),  # API_HTTP_<status> for aiohttp's own HTTP errors, status kept
    ("node/cli/api_client.py", "RemoteError"),  # the node's own code, kind from its HTTP status
    ("node/cli/api_client.py", "__init__"),  # RemoteError handing that code on to GwxError
    ("node/federation/transport.py", "PeerRefused"),  # the code a peer refused a whole request with
}


def _modules():
    for package in PACKAGES:
        yield package.__name__
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            yield info.name


for _name in _modules():
    importlib.import_module(_name)


def _ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] in {p.__name__ for p in PACKAGES}


def _all_error_classes() -> list[type[GwxError]]:
    seen, todo = [], [GwxError]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return [c for c in seen if _ours(c)]


CLASSES = _all_error_classes()
BY_NAME = {c.__name__: c for c in CLASSES}


def test_the_code_base_has_the_error_classes_we_expect():
    assert len(CLASSES) > 150 and len(BY_NAME) == len(CLASSES), "two error classes share a name"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_sets_its_own_code_and_kind(cls):
    assert isinstance(cls.__dict__.get("kind"), ErrorKind), f"{cls.__name__} does not set its kind"
    assert CODE_FORMAT.fullmatch(cls.__dict__.get("code", "")), f"{cls.__name__} does not set a code"
    for code in cls.__dict__.get("subcodes", ()):
        assert CODE_FORMAT.fullmatch(code), code


def test_every_code_belongs_to_exactly_one_class():
    owners = {code: [c for c in classes if _ours(c)] for code, classes in registered_codes().items()}
    shared = {code: [c.__name__ for c in classes] for code, classes in owners.items() if len(classes) > 1}
    assert not shared


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_kind_answers_every_caller(cls):
    error = cls("x")
    assert http_status_for(error) in {400, 401, 403, 404, 405, 409, 411, 413, 415, 421, 422, 500, 503}
    assert exit_code_for(error) in {1, 2, 3, 4, 5}
    assert soap_fault_for(error, "1.1") in {"Client", "Server", "VersionMismatch", "MustUnderstand"}
    assert soap_fault_for(error, "1.2") in {"Sender", "Receiver", "VersionMismatch", "MustUnderstand"}
    assert disposition(error) in set(Disposition)


def test_the_tables_cover_every_kind():
    for table in (error_kinds.HTTP_STATUS, error_kinds.EXIT_CODE, error_kinds.SOAP11_FAULT,
                  error_kinds.SOAP12_FAULT, error_kinds.DISPOSITION):
        assert set(table) == set(ErrorKind)
    assert set(error_kinds.HTTP_STATUS_BY_CODE) <= set(registered_codes())
    assert set(error_kinds.SOAP_FAULT_BY_CODE) <= set(registered_codes())


def test_error_modules_lists_every_module_that_defines_an_error():
    assert {c.__module__ for c in CLASSES} <= set(error_kinds.ERROR_MODULES)


def _raise_sites():
    """(file, callee, code or None) for every ``code=`` given to a call in our packages."""
    for package in PACKAGES:
        for path in sorted(Path(package.__path__[0]).rglob("*.py")):
            tree = ast.parse(path.read_text("utf-8"))
            for call in ast.walk(tree):
                if not isinstance(call, ast.Call):
                    continue
                callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
                for kw in call.keywords:
                    if kw.arg == "code":
                        literal = kw.value.value if isinstance(kw.value, ast.Constant) else None
                        yield str(path.relative_to(ROOT)), callee, literal


def test_every_code_given_at_a_raise_site_is_declared_by_the_class_raised():
    sites = list(_raise_sites())
    assert len(sites) > 50
    for where, callee, code in sites:
        if (where, callee) in COMPUTED_CODES:
            continue
        cls = BY_NAME.get(callee)
        if cls is None:
            continue  # not an error (a unit's code, a TOML key)
        assert code is not None, f"{where}: {callee}(code=...) computes an undeclared code"
        declared = (cls.__dict__["code"], *cls.__dict__.get("subcodes", ()))
        assert code in declared, f"{where}: {callee} raised with {code}, which it does not declare"


# Strings shaped like an error code that are not one: metadata warnings (MetadataWarning.code, which
# never travel as an error), environment variables, export names and argparse metavars.
NOT_ERROR_CODES = {
    "DOC_LEGACY_KIND_MAPPED", "DOC_LEGACY_URGENCY_MAPPED", "DOC_NUMBER_NORMALISED",  # meta_json warnings
    "DOC_URGENT_NO_DEADLINE", "DOC_PRINTED_BEFORE_WRITTEN", "DOC_DEADLINE_BEFORE_WRITTEN",  # model warnings
    "GWX_TOKEN", "GWX_NODE", "GWX_PASSPHRASE", "GWX_PORT_SLICE",  # environment variables
    "ROUTE_ROLES", "PEER_BACKING_OFF", "PEER_DEAD", "PEER_STATES", "PEER_UP", "QUEUE_STATES",  # __all__ names
    "SEAL_DIR", "NODE_DIR",  # metavars
}


def _code_shaped_literals():
    """(file, line, string) for every string literal in our packages shaped like an error code with
    a prefix some declared code has — wherever it is written: ``code=``, a positional argument
    (``Check("seal", FAIL, "SEAL_…")``), a constant, a table key."""
    declared = set(registered_codes())
    prefixes = {code.split("_")[0] for code in declared}
    for package in PACKAGES:
        for path in sorted(Path(package.__path__[0]).rglob("*.py")):
            for node_ in ast.walk(ast.parse(path.read_text("utf-8"))):
                if (isinstance(node_, ast.Constant) and isinstance(node_.value, str) and "_" in node_.value
                        and CODE_FORMAT.fullmatch(node_.value) and node_.value.split("_")[0] in prefixes):
                    yield str(path.relative_to(ROOT)), node_.lineno, node_.value


def test_every_code_written_anywhere_is_declared_by_a_class():
    """A code no class declares has no kind: kind_of_code gives None, so a peer's refusal with it is
    retried for the whole window and our own answer with it is an internal error."""
    error_kinds.kind_of_code("X")  # loads every error module
    literals = list(_code_shaped_literals())
    assert len(literals) > 100
    undeclared = [f"{where}:{line} {code}" for where, line, code in literals
                  if code not in registered_codes() and code not in NOT_ERROR_CODES]
    assert not undeclared, "codes no error class declares: " + ", ".join(undeclared)


def test_every_code_a_package_check_reports_has_a_kind():
    """Check(...) takes its code positionally (not as ``code=``): each must still have a kind."""
    sites = []
    for path in sorted(Path(exchange_protocol.__path__[0]).rglob("*.py")):
        for call in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Check":
                args = [*call.args[2:3], *(kw.value for kw in call.keywords if kw.arg == "code")]
                sites += [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    for code in sites:
        assert error_kinds.kind_of_code(code) is not None, f"Check code {code} has no kind"
    assert error_kinds.kind_of_code("SEAL_CERT_NOT_LISTED") is ErrorKind.VERIFICATION_FAILED
    assert error_kinds.gives_up_on_code("SEAL_CERT_NOT_LISTED")


def test_a_code_from_a_peer_is_classed_by_its_kind():
    assert error_kinds.kind_of_code("ENV_REVOCATION_UNKNOWN") is ErrorKind.TRANSIENT
    assert not error_kinds.gives_up_on_code("ENV_REVOCATION_UNKNOWN")
    assert not error_kinds.gives_up_on_code("PKI_REVOCATION_STALE")
    assert not error_kinds.gives_up_on_code("PEER_IDENTITY")
    assert error_kinds.gives_up_on_code("ENV_BAD_SIGNATURE")
    assert error_kinds.gives_up_on_code("ENV_TO_UNIT_MISMATCH")  # a subcode
    assert error_kinds.gives_up_on_code("NOTICE_REASON_REQUIRED")
    assert error_kinds.gives_up_on_code("CMS_MALFORMED")
    assert not error_kinds.gives_up_on_code("SOMETHING_A_NEWER_PEER_SAYS")


def test_the_kind_behind_a_status_is_the_kind_that_chose_it():
    for kind, status in error_kinds.HTTP_STATUS.items():
        assert error_kinds.kind_for_status(status) is kind
    for code, status in error_kinds.HTTP_STATUS_BY_CODE.items():
        assert error_kinds.kind_for_status(status) is error_kinds.kind_of_code(code), code
    assert error_kinds.kind_for_status(502) is ErrorKind.INTERNAL
