"""A node's configuration: ``NODE_DIR/node.toml`` parsed once into frozen dataclasses.

Paths in the file are relative to the node directory. Components receive the parts they need
through their constructors; nothing reads the file again at run time. Unknown keys are refused so
a typo (``retry_windw``) is an error at start, not a silent default.

Example::

    node_id = "county-a"
    classified_network = false

    [peer_api]            # mutual TLS, our CA only
    host = "127.0.0.1"
    port = 7443
    public_url = "https://127.0.0.1:7443"

    [local_api]           # clerks, adapters, operators (bearer tokens)
    host = "127.0.0.1"
    port = 7080

    [limits]
    max_envelope_bytes = 2_147_483_648
    max_request_bytes = 1_048_576

    [retry]
    min_seconds = 1.0
    max_seconds = 300.0
    window_seconds = 172800     # after this, the sender gets a bounce

    [[units]]
    code = "11100000000013127D"
    name = "临沂市人民政府办公室"
    seal_dir = "units/11100000000013127D"

    [[peers]]
    node_id = "city"
    url = "https://127.0.0.1:7443"
    units = ["..."]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from pki.unit_code import validate_unit_code

CONFIG_NAME = "node.toml"
MAX_BATCH = 512  # node.federation.peer_api.MAX_FRAMES: what one request to a peer may carry


@dataclass(frozen=True)
class Listener:
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None


@dataclass(frozen=True)
class Limits:
    max_envelope_bytes: int = 2 * 1024**3 + 64 * 1024**2
    max_request_bytes: int = 1024**2
    max_body_pdf_bytes: int = 64 * 1024**2
    max_hops: int = 8
    batch_size: int = 64
    active_window: int = 512


@dataclass(frozen=True)
class RetrySettings:
    min_seconds: float = 1.0
    max_seconds: float = 300.0
    multiplier: float = 2.0
    jitter: float = 0.5
    window_seconds: float = 2 * 24 * 3600


@dataclass(frozen=True)
class HostedUnit:
    code: str
    name: str
    seal_dir: Path
    level: str = ""
    parent: str | None = None


@dataclass(frozen=True)
class Peer:
    node_id: str
    url: str
    units: tuple[str, ...] = ()
    unit_names: tuple[tuple[str, str], ...] = ()  # (code, name) for display; optional


@dataclass(frozen=True)
class NodeConfig:
    directory: Path
    node_id: str
    peer_api: Listener
    local_api: Listener
    units: tuple[HostedUnit, ...]
    peers: tuple[Peer, ...] = ()
    limits: Limits = field(default_factory=Limits)
    retry: RetrySettings = field(default_factory=RetrySettings)
    classified_network: bool = False

    # Well-known paths inside the node directory.
    @property
    def credentials_dir(self) -> Path:
        return self.directory / "credentials"

    @property
    def trust_root_path(self) -> Path:
        return self.credentials_dir / "root.crt"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def tokens_path(self) -> Path:
        return self.directory / "tokens.json"

    def unit(self, code: str) -> HostedUnit | None:
        return next((u for u in self.units if u.code == code), None)

    def unit_name(self, code: str) -> str | None:
        """The name of a unit hosted here or named in the peer list (display only)."""
        hosted = self.unit(code)
        if hosted is not None:
            return hosted.name
        return next((n for p in self.peers for c, n in p.unit_names if c == code), None)


def load_config(directory: str | Path) -> NodeConfig:
    directory = Path(directory).resolve()
    path = directory / CONFIG_NAME
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist; create the node with `gwx node init`") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(raw, directory)


def parse_config(raw: dict[str, Any], directory: Path) -> NodeConfig:
    raw = dict(raw)
    node_id = _take(raw, "node_id", str, required=True)
    units = tuple(_unit(u, directory) for u in _take(raw, "units", list, default=[]))
    peers = tuple(_peer(p) for p in _take(raw, "peers", list, default=[]))
    config = NodeConfig(
        directory=directory,
        node_id=node_id,
        peer_api=_section(raw.pop("peer_api", {}), Listener, "peer_api"),
        local_api=_section(raw.pop("local_api", {}), Listener, "local_api"),
        units=units,
        peers=peers,
        limits=_section(raw.pop("limits", {}), Limits, "limits"),
        retry=_section(raw.pop("retry", {}), RetrySettings, "retry"),
        classified_network=_take(raw, "classified_network", bool, default=False),
    )
    if raw:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(raw))}")
    codes = [u.code for u in units]
    if len(set(codes)) != len(codes):
        raise ConfigError("a unit is listed twice in [[units]]")
    if not 1 <= config.limits.batch_size <= MAX_BATCH:
        raise ConfigError(f"limits.batch_size must be 1–{MAX_BATCH} (the most envelopes a peer takes per request)")
    if config.limits.active_window < config.limits.batch_size:
        raise ConfigError("limits.active_window must be at least limits.batch_size")
    if config.retry.min_seconds <= 0 or config.retry.max_seconds < config.retry.min_seconds:
        raise ConfigError("retry: need 0 < min_seconds <= max_seconds")
    return config


def _take(raw: dict, key: str, kind: type, *, required: bool = False, default: Any = None) -> Any:
    if key not in raw:
        if required:
            raise ConfigError(f"configuration key {key!r} is required")
        return default
    value = raw.pop(key)
    if not isinstance(value, kind):
        raise ConfigError(f"configuration key {key!r} must be a {kind.__name__}")
    return value


def _section(raw: dict, cls: type, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"unknown keys in [{name}]: {', '.join(sorted(unknown))}")
    values = {}
    for key, value in raw.items():
        expected = known[key].type
        if expected in ("int", "float") and isinstance(value, bool):
            raise ConfigError(f"[{name}] {key} must be a number")
        if expected == "float" and isinstance(value, int):
            value = float(value)
        values[key] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{name}]: {exc}") from None


def _unit(raw: Any, directory: Path) -> HostedUnit:
    if not isinstance(raw, dict):
        raise ConfigError("each [[units]] entry must be a table")
    raw = dict(raw)
    code = validate_unit_code(_take(raw, "code", str, required=True))
    unit = HostedUnit(code=code, name=_take(raw, "name", str, required=True),
                      seal_dir=directory / _take(raw, "seal_dir", str, default=f"units/{code}"),
                      level=_take(raw, "level", str, default=""), parent=_take(raw, "parent", str))
    if raw:
        raise ConfigError(f"unknown keys in [[units]] {code}: {', '.join(sorted(raw))}")
    return unit


def _peer(raw: Any) -> Peer:
    if not isinstance(raw, dict):
        raise ConfigError("each [[peers]] entry must be a table")
    raw = dict(raw)
    names = _take(raw, "unit_names", dict, default={})
    peer = Peer(node_id=_take(raw, "node_id", str, required=True), url=_take(raw, "url", str, required=True),
                units=tuple(validate_unit_code(u) for u in _take(raw, "units", list, default=[])),
                unit_names=tuple((validate_unit_code(c), str(n)) for c, n in names.items()))
    if not peer.url.startswith("https://"):
        raise ConfigError(f"peer {peer.node_id}: url must be https:// (mutual TLS only)")
    if raw:
        raise ConfigError(f"unknown keys in [[peers]] {peer.node_id}: {', '.join(sorted(raw))}")
    return peer


def dump_config(config: NodeConfig) -> str:
    """TOML text for ``config`` (what ``gwx node init`` writes; tomllib has no writer)."""
    lines = [f"node_id = {_q(config.node_id)}", f"classified_network = {str(config.classified_network).lower()}", ""]
    for name in ("peer_api", "local_api", "limits", "retry"):
        lines.append(f"[{name}]")
        for f in fields(getattr(config, name)):
            value = getattr(getattr(config, name), f.name)
            if value is not None:
                lines.append(f"{f.name} = {_q(value)}")
        lines.append("")
    for u in config.units:
        lines += ["[[units]]", f"code = {_q(u.code)}", f"name = {_q(u.name)}",
                  f"seal_dir = {_q(str(u.seal_dir.relative_to(config.directory)))}"]
        if u.level:
            lines.append(f"level = {_q(u.level)}")
        if u.parent:
            lines.append(f"parent = {_q(u.parent)}")
        lines.append("")
    for p in config.peers:
        lines += ["[[peers]]", f"node_id = {_q(p.node_id)}", f"url = {_q(p.url)}",
                  "units = [" + ", ".join(_q(c) for c in p.units) + "]"]
        if p.unit_names:
            lines.append("unit_names = { " + ", ".join(f"{_q(c)} = {_q(n)}" for c, n in p.unit_names) + " }")
        lines.append("")
    return "\n".join(lines)


def _q(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    import json

    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string
