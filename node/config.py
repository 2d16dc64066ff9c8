"""A node's configuration: ``NODE_DIR/node.toml`` parsed once into frozen dataclasses.

Paths in the file are relative to the node directory. Components receive the parts they need
through their constructors; nothing reads the file again at run time. Unknown keys are refused so
a typo (``retry_windw``) is an error at start, not a silent default.

A commented example of every option is ``deploy/examples/node.toml`` (a test loads it, so it stays
true). Changes to an existing file go through :mod:`node.config_edit`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from adapters.oa_push.settings import OaPushSettings, parse_oa_push
from exchange_protocol.directory import LEVELS, level_of
from node.archive.settings import ArchiveSettings, parse_archive
from node.errors import ConfigError
from node.supervision.settings import SupervisionSettings, parse_supervision
from pki.certificates import NODE_ID_RE
from pki.unit_code import validate_unit_code

CONFIG_NAME = "node.toml"
MAX_BATCH = 512  # node.federation.peer_api.MAX_FRAMES: what one request to a peer may carry


@dataclass(frozen=True)
class Listener:
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    # [local_api] only: the host names browsers reach the console by (node.console.security.allowed_hosts)
    hosts: tuple[str, ...] = ()
    # [peer_api] only, PostgreSQL only: bind with SO_REUSEPORT, so several workers of one node on one
    # host share the port and the kernel spreads the peers' connections across them (node.config_checks)
    reuse_port: bool = False


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
class SoapSettings:
    """``[soap]``: the SOAP endpoint for OA systems (:mod:`adapters.soapserver`). ``enabled = false``
    takes it off the local API's listener: ``/soap/v1/…`` (the WSDL included) answers 404."""

    enabled: bool = True


@dataclass(frozen=True)
class WebhookSettings:
    """``[webhooks]``: how long a webhook's event is retried, and each attempt's timeout (adapters.webhooks)."""

    min_seconds: float = 5.0
    max_seconds: float = 600.0
    window_seconds: float = 24 * 3600
    timeout_seconds: float = 10.0


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
class ParentSettings:
    """The node this one fetches the network directory from (``[parent]``). Named here, not taken
    from the directory, because a node with no directory yet must know where to get its first one."""

    node_id: str
    url: str
    refresh_seconds: float = 600.0  # how often to ask; never later than the directory's next_update


@dataclass(frozen=True)
class RevocationSettings:
    """``[revocation]``: a plain-HTTP listener serving this node's CRL (``GET /crl``) and, with an
    ``ocsp_signer`` (a directory from ``gwx pki issue-ocsp-signer``, relative to the node directory),
    OCSP (``POST /ocsp``, RFC 6960). Plain HTTP as is usual for CRLs and OCSP: the answers are signed
    objects, and OCSP clients (``openssl ocsp``) cannot present a client certificate. Over mutual
    TLS the peer API serves the same at ``/peer/v1/crl`` and ``/peer/v1/ocsp`` whatever this says."""

    host: str = "127.0.0.1"
    port: int = 0
    ocsp_signer: str | None = None


@dataclass(frozen=True)
class FolderSettings:
    """``[[folders]]``: a watched folder for one hosted unit's OA system (:mod:`adapters.folder`).
    ``path`` holds ``outgoing/``, ``results/``, ``rejects/``, ``inbox/`` and the node's own ``work/``."""

    unit: str
    path: Path
    poll_seconds: float = 2.0


def default_check_processes() -> int:
    """``[processing] check_processes`` left unset: 0 — the node checks in its own process. Measured
    on the 2-core machine the pool was built for (docs/performance.md, bench/node.py, "the pool of
    check processes, quiet"), one check process gave no more accepted or inbox documents a second
    and cost ~1 ms more CPU a document: a check costs about twice in a child what it costs in the
    node, and the hand-off's waits eat the rest. An operator may still turn it on and measure."""
    return 0


@dataclass(frozen=True)
class ProcessingSettings:
    """``[processing]``: ``check_processes`` — processes beside the node that run the package checks
    needing no key (node.federation.check_pool); 0 (the default): in the node's own process."""

    check_processes: int = field(default_factory=default_check_processes)


STORE_BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class StoreSettings:
    """``[store]``: where the node keeps its rows (:mod:`node.store.opener`). ``backend = "sqlite"``, the
    default, needs nothing (``data/gwx.db``); ``"postgresql"`` takes ``dsn`` (libpq's ``host=… dbname=…
    user=…`` or a ``postgresql://`` URL; a password is better in ``~/.pgpass`` than here). Blobs stay in
    ``data/blobs`` with either: several workers of one node share the database and that directory."""

    backend: str = "sqlite"
    dsn: str = ""
    # PostgreSQL: how long a worker's claim on a queued or received envelope, or an adapter outbox row,
    # lasts unrenewed — after a worker dies, another takes them over this long after
    # (node.store.postgresql.leases).
    lease_seconds: float = 30.0
    # PostgreSQL: this worker's name on the envelopes it claims (default: the host's name); each worker
    # of a node needs its own, and one process at a time may use it.
    worker: str = ""
    # Received envelopes (and their decrypted payloads) up to this many bytes live in the database
    # for good, committed with their row (node.store.sqlite.inline_blobs): one fsync a batch before
    # the receipts instead of four an envelope, and never a file; so do the envelopes this node seals
    # (notices, transport-acks), committed with their queue row. 0: every blob a file, written and
    # fsynced before the receipt or the queue row.
    inline_max_bytes: int = 262144


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
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    soap: SoapSettings = field(default_factory=SoapSettings)
    classified_network: bool = False
    parent: ParentSettings | None = None
    revocation: RevocationSettings | None = None
    folders: tuple[FolderSettings, ...] = ()
    oa_push: tuple[OaPushSettings, ...] = ()  # per unit, the OA documents are pushed to (adapters.oa_push)
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)  # 督办 (node.supervision)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)  # 一键归档's TSA (node.archive)
    store: StoreSettings = field(default_factory=StoreSettings)  # SQLite or PostgreSQL (node.store.opener)
    processing: ProcessingSettings = field(default_factory=ProcessingSettings)  # the check processes

    # Well-known paths inside the node directory.
    @property
    def credentials_dir(self) -> Path:
        return self.directory / "credentials"

    @property
    def trust_root_path(self) -> Path:
        return self.credentials_dir / "root.crt"

    @property
    def tls_root_path(self) -> Path:
        """The root peers' TLS certificates chain to: on a 国密 network its P-256 transport root
        (``tls-root.crt``, pki.ca.TRANSPORT_ROOT_FILE), otherwise the network root itself."""
        transport = self.credentials_dir / "tls-root.crt"
        return transport if transport.exists() else self.trust_root_path

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def crl_path(self) -> Path:
        """The CRLs this node judges by and serves to its children: on the root node the CA operator
        writes it (``gwx pki crl --out``), below it :mod:`node.federation.crl_fetch` does."""
        return self.directory / "crl.pem"

    @property
    def crl_fetch_state_path(self) -> Path:
        """The outcome of the last CRL fetch from the parent (what readiness names when the CRL is stale)."""
        return self.directory / "run" / "crl-fetch.json"

    @property
    def ocsp_signer_dir(self) -> Path | None:
        if self.revocation is None or self.revocation.ocsp_signer is None:
            return None
        return self.directory / self.revocation.ocsp_signer

    @property
    def network_directory_path(self) -> Path:
        """The signed network directory this node holds and serves to its children (gwx net)."""
        return self.directory / "directory.json"

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
    node_id = _node_id(_take(raw, "node_id", str, required=True), "node_id")
    if "unit" in raw:
        raise ConfigError("[[unit]] is not a node.toml table: hosted units are listed as [[units]]", key="unit")
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
        webhooks=_section(raw.pop("webhooks", {}), WebhookSettings, "webhooks"),
        soap=_section(raw.pop("soap", {}), SoapSettings, "soap"),
        classified_network=_take(raw, "classified_network", bool, default=False),
        parent=_parent(raw.pop("parent", None)),
        revocation=_revocation(raw.pop("revocation", None)),
        folders=tuple(_folder(f, directory) for f in _take(raw, "folders", list, default=[])),
        oa_push=parse_oa_push(raw.pop("oa_push", []), directory, tuple(u.code for u in units)),
        supervision=parse_supervision(raw.pop("supervision", {}), directory),
        archive=parse_archive(raw.pop("archive", {}), directory),
        store=_store(raw.pop("store", {})),
        processing=_processing(raw.pop("processing", {})),
    )
    if raw:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(raw))}", keys=sorted(raw))
    from node.config_checks import check_config  # it reads this module's types

    check_config(config)
    return config


def _node_id(value: str, key: str) -> str:
    if not NODE_ID_RE.match(value):
        raise ConfigError(f"{key} {value!r} must be lower-case letters, digits, '.' or '-' "
                          "(at most 63, starting with a letter or digit)", key=key)
    return value


_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "str | None": (str,), "bool": (bool,),
          "tuple[str, ...]": (list,)}
_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "str | None": "a string",
               "bool": "true or false", "tuple[str, ...]": "a list of strings"}


def _take(raw: dict, key: str, kind: type, *, required: bool = False, default: Any = None) -> Any:
    if key not in raw:
        if required:
            raise ConfigError(f"configuration key {key!r} is required", key=key)
        return default
    value = raw.pop(key)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"configuration key {key!r} must be a {kind.__name__}, got {value!r}", key=key)
    return value


def _section(raw: dict, cls: type, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table", key=name)
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"unknown keys in [{name}]: {', '.join(sorted(unknown))}", key=name,
                          keys=sorted(unknown))
    values = {}
    for key, value in raw.items():
        expected = str(known[key].type)
        # bool is an int subclass in Python; `port = true` is a mistake, not port 1.
        if (isinstance(value, bool) and expected != "bool") or not isinstance(value, _TYPES[expected]):
            raise ConfigError(f"[{name}] {key} must be {_TYPE_NAMES[expected]}, got {value!r}",
                              key=f"{name}.{key}")
        if expected == "tuple[str, ...]":
            if not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"[{name}] {key} must be a list of strings, got {value!r}", key=f"{name}.{key}")
            value = tuple(value)
        values[key] = float(value) if expected == "float" else value
    return cls(**values)


def _store(raw: Any) -> StoreSettings:
    settings = _section(raw, StoreSettings, "store")
    if settings.backend not in STORE_BACKENDS:
        raise ConfigError(f"[store] backend must be one of {', '.join(STORE_BACKENDS)}, got {settings.backend!r}",
                          key="store.backend")
    if settings.backend == "postgresql" and not settings.dsn.strip():
        raise ConfigError('[store] backend = "postgresql" needs dsn (e.g. "host=/run/postgresql dbname=gwx")',
                          key="store.dsn")
    if not 1.0 <= settings.lease_seconds <= 3600.0:
        raise ConfigError(f"[store] lease_seconds must be 1–3600, got {settings.lease_seconds}",
                          key="store.lease_seconds")
    if not 0 <= settings.inline_max_bytes <= 16 * 1024 * 1024:
        raise ConfigError(f"[store] inline_max_bytes must be 0–16777216, got {settings.inline_max_bytes}",
                          key="store.inline_max_bytes")
    if settings.backend == "sqlite" and settings.dsn:
        raise ConfigError("[store] dsn is for backend = \"postgresql\"; SQLite keeps its rows in data/gwx.db",
                          key="store.dsn")
    return settings


def _processing(raw: Any) -> ProcessingSettings:
    settings = _section(raw, ProcessingSettings, "processing")
    if not 0 <= settings.check_processes <= 64:
        raise ConfigError(f"[processing] check_processes must be 0–64, got {settings.check_processes}",
                          key="processing.check_processes")
    return settings


def _unit_level(text: str, code: str) -> str:
    """A unit's level in the network directory's vocabulary (``exchange_protocol.directory.LEVELS``,
    or its Chinese name: 市级 is city); empty when not given."""
    if not text:
        return ""
    level = level_of(text)
    if level is None:
        raise ConfigError(f"unit {code}: level {text!r} is none of {', '.join(LEVELS)} (or 中央, 省级, 市级, 县级, "
                          "乡镇, 村级)", key="units.level", unit=code)
    return level


def _unit(raw: Any, directory: Path) -> HostedUnit:
    if not isinstance(raw, dict):
        raise ConfigError("each [[units]] entry must be a table", key="units")
    raw = dict(raw)
    code = validate_unit_code(_take(raw, "code", str, required=True))
    unit = HostedUnit(code=code, name=_take(raw, "name", str, required=True),
                      seal_dir=directory / _take(raw, "seal_dir", str, default=f"units/{code}"),
                      level=_unit_level(_take(raw, "level", str, default=""), code),
                      parent=_take(raw, "parent", str))
    if raw:
        raise ConfigError(f"unknown keys in [[units]] {code}: {', '.join(sorted(raw))}", key="units",
                          keys=sorted(raw))
    return unit


def _parent(raw: Any) -> ParentSettings | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not {"node_id", "url"} <= set(raw):
        raise ConfigError("[parent] is a table with node_id and url", key="parent")
    parent = _section(raw, ParentSettings, "parent")
    _node_id(parent.node_id, "parent.node_id")
    _https_url(parent.url, "[parent]", "parent.url")
    if parent.refresh_seconds <= 0:
        raise ConfigError("[parent] refresh_seconds must be positive", key="parent.refresh_seconds")
    return parent


def _revocation(raw: Any) -> RevocationSettings | None:
    if raw is None:
        return None
    settings = _section(raw, RevocationSettings, "revocation")
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"[revocation] port must be 0–65535 (0: any free port), got {settings.port}",
                          key="revocation.port")
    return settings


def _folder(raw: Any, directory: Path) -> FolderSettings:
    if not isinstance(raw, dict) or "unit" not in raw:
        raise ConfigError("each [[folders]] entry is a table with at least unit", key="folders")
    raw = dict(raw)
    unit = validate_unit_code(_take(raw, "unit", str, required=True))
    path = directory / _take(raw, "path", str, default=f"folders/{unit}")
    poll = raw.pop("poll_seconds", 2.0)
    if raw:
        raise ConfigError(f"unknown keys in [[folders]] {unit}: {', '.join(sorted(raw))}", key="folders",
                          keys=sorted(raw))
    if isinstance(poll, bool) or not isinstance(poll, (int, float)) or not 0.05 <= poll <= 3600:
        raise ConfigError(f"[[folders]] {unit}: poll_seconds must be 0.05–3600, got {poll!r}",
                          key="folders.poll_seconds")
    return FolderSettings(unit=unit, path=path.resolve(), poll_seconds=float(poll))


def _https_url(url: str, where: str, key: str) -> None:
    if not url.startswith("https://") or len(url) <= len("https://") or " " in url:
        raise ConfigError(f"{where}: url must be https://HOST:PORT (mutual TLS only), got {url!r}", key=key)


def _peer(raw: Any) -> Peer:
    if not isinstance(raw, dict):
        raise ConfigError("each [[peers]] entry must be a table", key="peers")
    raw = dict(raw)
    node_id = _node_id(_take(raw, "node_id", str, required=True), "[[peers]] node_id")
    names = _take(raw, "unit_names", dict, default={})
    codes = _take(raw, "units", list, default=[])
    if not all(isinstance(c, str) for c in codes) or not all(isinstance(n, str) for n in names.values()):
        raise ConfigError(f"[[peers]] {node_id}: units and unit_names hold strings", key="peers.units")
    peer = Peer(node_id=node_id, url=_take(raw, "url", str, required=True),
                units=tuple(validate_unit_code(u) for u in codes),
                unit_names=tuple((validate_unit_code(c), n) for c, n in names.items()))
    _https_url(peer.url, f"[[peers]] {peer.node_id}", "peers.url")
    if len(set(peer.units)) != len(peer.units):
        raise ConfigError(f"[[peers]] {peer.node_id} lists a unit twice", key="peers.units")
    if raw:
        raise ConfigError(f"unknown keys in [[peers]] {peer.node_id}: {', '.join(sorted(raw))}", key="peers",
                          keys=sorted(raw))
    return peer
