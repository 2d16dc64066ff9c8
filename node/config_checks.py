"""What node.toml's sections must agree on once each is read (:func:`node.config.parse_config` calls
:func:`check_config`): ranges, which listener may share its port, an unambiguous routing table, and
watched folders that do not overlap. Each refusal is a :class:`~node.errors.ConfigError` naming the key."""

from __future__ import annotations

from dataclasses import fields

from node.config import MAX_BATCH, Limits, NodeConfig
from node.errors import ConfigError


def check_config(config: NodeConfig) -> None:
    check_ranges(config)
    check_listeners(config)
    check_units_and_peers(config)
    check_folders(config)


def check_ranges(config: NodeConfig) -> None:
    for name in ("peer_api", "local_api"):
        port = getattr(config, name).port
        if not 0 <= port <= 65535:
            raise ConfigError(f"[{name}] port must be 0–65535 (0: any free port), got {port}", key=f"{name}.port")
    for f in fields(Limits):
        if getattr(config.limits, f.name) <= 0:
            raise ConfigError(f"[limits] {f.name} must be positive", key=f"limits.{f.name}")
    if not 1 <= config.limits.batch_size <= MAX_BATCH:
        raise ConfigError(f"limits.batch_size must be 1–{MAX_BATCH} (the most envelopes a peer takes per request)",
                          key="limits.batch_size")
    if config.limits.active_window < config.limits.batch_size:
        raise ConfigError("limits.active_window must be at least limits.batch_size", key="limits.active_window")
    r = config.retry
    if r.min_seconds <= 0 or r.max_seconds < r.min_seconds:
        raise ConfigError("retry: need 0 < min_seconds <= max_seconds", key="retry.min_seconds")
    if r.multiplier < 1 or not 0 <= r.jitter <= 1 or r.window_seconds <= 0:
        raise ConfigError("retry: need multiplier >= 1, 0 <= jitter <= 1 and window_seconds > 0", key="retry")
    w = config.webhooks
    if not 0 < w.min_seconds <= w.max_seconds or w.window_seconds <= 0 or w.timeout_seconds <= 0:
        raise ConfigError("webhooks: need 0 < min_seconds <= max_seconds, window_seconds > 0 and timeout_seconds > 0",
                          key="webhooks")


def check_listeners(config: NodeConfig) -> None:
    """``[peer_api] reuse_port``: only where several processes may serve one node (PostgreSQL's leases),
    on a fixed port. On SQLite one process serves a node, so a second one bound to the port would be
    another node (or a stray copy) taking a share of the peers' connections silently, where without
    the option it fails to start (address in use). The local API keeps one port per worker: its
    ``/metrics``, its readiness and ``run/ready.json``'s ``local_url`` (what the CLI talks to) are
    one process's, and a port shared by several would answer for any of them."""
    if config.local_api.reuse_port:
        raise ConfigError("[local_api] reuse_port: the local API keeps a port of its own per worker (its "
                          "/metrics and readiness are one process's); only [peer_api] may share one",
                          key="local_api.reuse_port")
    if not config.peer_api.reuse_port:
        return
    if config.store.backend != "postgresql":
        raise ConfigError('[peer_api] reuse_port needs [store] backend = "postgresql": on SQLite one process '
                          "serves a node, and another bound to the port would take a share of its peers",
                          key="peer_api.reuse_port")
    if config.peer_api.port == 0:
        raise ConfigError("[peer_api] reuse_port needs a fixed port (0 gives each worker a port of its own)",
                          key="peer_api.reuse_port")


def check_units_and_peers(config: NodeConfig) -> None:
    """The routing table must be unambiguous: every unit code leads to exactly one node."""
    codes = [u.code for u in config.units]
    if len(set(codes)) != len(codes):
        raise ConfigError("a unit is listed twice in [[units]]", key="units")
    owner = {code: config.node_id for code in codes}
    for peer in config.peers:
        if peer.node_id == config.node_id:
            raise ConfigError(f"[[peers]] {peer.node_id} is this node itself", key="peers.node_id")
        if sum(p.node_id == peer.node_id for p in config.peers) > 1:
            raise ConfigError(f"[[peers]] {peer.node_id} is listed twice", key="peers.node_id")
        for code in peer.units:
            if code in owner:
                where = "this node hosts it" if owner[code] == config.node_id else f"peer {owner[code]} claims it"
                raise ConfigError(f"[[peers]] {peer.node_id} claims unit {code}, but {where}", key="peers.units",
                                  unit=code)
            owner[code] = peer.node_id


def check_folders(config: NodeConfig) -> None:
    """One folder per hosted unit, and no folder inside another's (a drop must not be claimed twice)."""
    for f in config.folders:
        if config.unit(f.unit) is None:
            raise ConfigError(f"[[folders]] unit {f.unit} is not hosted on this node", key="folders.unit",
                              unit=f.unit)
    for i, a in enumerate(config.folders):
        for b in config.folders[i + 1:]:
            if a.unit == b.unit:
                raise ConfigError(f"[[folders]] lists unit {a.unit} twice", key="folders.unit", unit=a.unit)
            if a.path == b.path or a.path in b.path.parents or b.path in a.path.parents:
                raise ConfigError(f"[[folders]] {a.unit} and {b.unit} share a folder ({a.path}, {b.path})",
                                  key="folders.path")
