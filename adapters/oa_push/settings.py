"""``[[oa_push]]`` in node.toml: per hosted unit, the OA system documents are pushed to.

::

    [[oa_push]]
    unit = "<a unit hosted here>"
    wsdl = "http://oa.example.gov.cn:8080/gwjh/GongwenService?wsdl"   # a URL, or a file in the node directory
    received_operation = "ReceiveGongwen"   # called once per document the unit receives
    status_operation = "UpdateZhuangtai"    # optional: 签收/退回/failed deliveries of what the unit sent
    mapping = "oa-mapping.toml"             # the field mapping (adapters.oa_push.mapping), node directory
    endpoint = "http://10.1.2.3:8080/gwjh/GongwenService"   # optional: instead of the WSDL's address
    service = "GongwenService"              # optional: which service and port of the WSDL
    port = "GongwenServiceSoap"
    duplicate_fault = "公文已存在"            # optional: the OA's fault text for a push it already has
    username = "gwx"                        # optional: HTTP Basic authentication to the OA, with
    password_file = "oa-password"           # the password in this file (node directory, not world-readable)
    authentication = "http_basic"           # or "ws_security" (a UsernameToken, PasswordText, in each
                                            # call's SOAP header) or "ws_security_digest" (PasswordDigest)
    timeout_seconds = 30.0                  # one call; a slower answer is retried
    window_seconds = 172800.0               # how long a push is retried before it is dead-lettered

The mapping file is loaded here, so a bad one is refused when the configuration is (``gwx node run``
and every command that reads node.toml), not at the first push. Whether the WSDL offers the named
operations, and whether each mapped value fits its parameter's type, is known only once the OA
answers: checked at node start and by ``gwx node check`` when it does, else at the first call
(:class:`~.errors.OaWsdlMismatch`, retried until node.toml is corrected).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

from .errors import OaMappingInvalid
from .mapping import OaMapping, load_mapping

_KEYS = {"unit", "wsdl", "received_operation", "status_operation", "mapping", "endpoint", "service", "port",
         "duplicate_fault", "username", "password_file", "authentication", "timeout_seconds", "window_seconds"}
AUTHENTICATIONS = ("http_basic", "ws_security", "ws_security_digest")
_REQUIRED = ("unit", "wsdl", "received_operation", "mapping")
# A push may take timeout_seconds plus the time to send its files' base64 at this rate (bytes/s).
MIN_SEND_RATE = 1024 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OaPushSettings:
    unit: str
    wsdl: str  # a URL or an absolute path
    received_operation: str
    mapping_path: Path
    mapping: OaMapping
    status_operation: str | None = None
    endpoint: str | None = None
    service: str | None = None
    port: str | None = None
    duplicate_fault: str | None = None  # a fault text by which the OA says it already has this push
    username: str | None = None  # authentication to the OA: HTTP Basic (WSDL and calls) or WS-Security
    password: str | None = field(default=None, repr=False)  # read from password_file at load
    authentication: str = "http_basic"  # one of AUTHENTICATIONS
    timeout_seconds: float = 30.0
    window_seconds: float = 2 * 24 * 3600.0

    @property
    def consumer_name(self) -> str:
        """The outbox consumer (and cursor) of this OA: one per unit."""
        return f"oa:{self.unit}"


def parse_oa_push(raw: Any, directory: Path, hosted_units: tuple[str, ...]) -> tuple[OaPushSettings, ...]:
    if not isinstance(raw, list):
        raise OaMappingInvalid("[[oa_push]] is a list of tables, one per unit", key="oa_push")
    entries = tuple(_entry(item, directory, hosted_units) for item in raw)
    units = [e.unit for e in entries]
    twice = sorted({u for u in units if units.count(u) > 1})
    if twice:
        raise OaMappingInvalid(f"[[oa_push]] names unit {twice[0]} twice: one OA per unit", key="oa_push.unit",
                               unit=twice[0])
    return entries


def _entry(raw: Any, directory: Path, hosted_units: tuple[str, ...]) -> OaPushSettings:
    if not isinstance(raw, dict):
        raise OaMappingInvalid("each [[oa_push]] entry must be a table", key="oa_push")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise OaMappingInvalid(f"unknown keys in [[oa_push]]: {', '.join(unknown)}", key="oa_push", keys=unknown)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise OaMappingInvalid(f"[[oa_push]] needs {', '.join(missing)}", key=f"oa_push.{missing[0]}")
    for key in _KEYS - {"timeout_seconds", "window_seconds"}:
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise OaMappingInvalid(f"[[oa_push]] {key} must be a non-empty string", key=f"oa_push.{key}")
    try:
        unit = validate_unit_code(raw["unit"])
    except InvalidUnitCode as exc:
        raise OaMappingInvalid(f"[[oa_push]] unit: {exc.message}", key="oa_push.unit") from None
    if unit not in hosted_units:
        raise OaMappingInvalid(f"[[oa_push]] unit {unit} is not hosted on this node ([[units]])",
                               key="oa_push.unit", unit=unit)
    seconds = {}
    for key, default in (("timeout_seconds", 30.0), ("window_seconds", 2 * 24 * 3600.0)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise OaMappingInvalid(f"[[oa_push]] {unit}: {key} must be a positive number, got {value!r}",
                                   key=f"oa_push.{key}")
        seconds[key] = float(value)
    mapping_path = directory / raw["mapping"]
    mapping = load_mapping(mapping_path)
    status_operation = raw.get("status_operation")
    if (status_operation is None) != (mapping.status_change is None):
        raise OaMappingInvalid(
            f"[[oa_push]] {unit}: status_operation and the mapping's [status_change] go together "
            f"({'no' if status_operation is None else 'a'} status_operation, "
            f"{'no' if mapping.status_change is None else 'a'} [status_change] in {mapping_path})",
            key="oa_push.status_operation", unit=unit)
    wsdl = raw["wsdl"]
    for key in ("wsdl", "endpoint"):
        value = raw.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")) and urlsplit(value).password:
            # it would show in logs, dead letters and gwx node check: credentials go in password_file
            raise OaMappingInvalid(f"[[oa_push]] {unit}: {key} carries a user:password; name the user in "
                                   "username and the password in password_file", key=f"oa_push.{key}", unit=unit)
    if not wsdl.startswith(("http://", "https://")):
        wsdl = str(directory / wsdl)
        if not Path(wsdl).is_file():
            raise OaMappingInvalid(f"[[oa_push]] {unit}: wsdl {raw['wsdl']!r} is neither an http(s) URL nor a "
                                   "file in the node directory", key="oa_push.wsdl", unit=unit)
    username, password = _credentials(raw, directory, unit)
    authentication = raw.get("authentication", "http_basic")
    if authentication not in AUTHENTICATIONS:
        raise OaMappingInvalid(f"[[oa_push]] {unit}: authentication {authentication!r} is none of "
                               f"{', '.join(AUTHENTICATIONS)}", key="oa_push.authentication", unit=unit)
    if "authentication" in raw and username is None:
        raise OaMappingInvalid(f"[[oa_push]] {unit}: authentication needs username and password_file",
                               key="oa_push.authentication", unit=unit)
    _warn_if_in_clear(raw, unit, username, authentication)
    return OaPushSettings(unit=unit, wsdl=wsdl, received_operation=raw["received_operation"],
                          mapping_path=mapping_path, mapping=mapping, status_operation=status_operation,
                          endpoint=raw.get("endpoint"), service=raw.get("service"), port=raw.get("port"),
                          duplicate_fault=raw.get("duplicate_fault"), username=username, password=password,
                          authentication=authentication,
                          **seconds)


def _warn_if_in_clear(raw: dict, unit: str, username: str | None, authentication: str) -> None:
    """HTTP Basic and a PasswordText token carry the password as it is: over http:// anyone on the way
    reads it. Allowed (many OAs sit on an internal network without TLS), but said at every load."""
    plain = [key for key in ("wsdl", "endpoint") if str(raw.get(key) or "").startswith("http://")]
    if username is None or authentication == "ws_security_digest" or not plain:
        return
    how = "HTTP Basic" if authentication == "http_basic" else "a WS-Security PasswordText token"
    log.warning("[[oa_push]] %s: the OA's password goes as %s over plain http (%s), readable on the way; "
                "use https, or authentication = \"ws_security_digest\" if the OA takes it", unit, how,
                ", ".join(plain))


def _credentials(raw: dict, directory: Path, unit: str) -> tuple[str | None, str | None]:
    if ("username" in raw) != ("password_file" in raw):
        raise OaMappingInvalid(f"[[oa_push]] {unit}: username and password_file go together",
                               key="oa_push.password_file", unit=unit)
    if "username" not in raw:
        return None, None
    path = directory / raw["password_file"]
    try:
        if path.stat().st_mode & 0o077:
            raise OaMappingInvalid(f"[[oa_push]] {unit}: {path} is open to others than its owner; chmod 600 it",
                                   key="oa_push.password_file", unit=unit)
        password = path.read_text("utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise OaMappingInvalid(f"[[oa_push]] {unit}: password_file {path} cannot be read: {exc}",
                               key="oa_push.password_file", unit=unit) from None
    if not password:
        raise OaMappingInvalid(f"[[oa_push]] {unit}: password_file {path} is empty", key="oa_push.password_file",
                               unit=unit)
    return raw["username"], password
