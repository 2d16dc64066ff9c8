"""The node's status report — queues, peers, inbound, last errors and readiness — in one shape.

Two readers build the same report from the same rows (:func:`node.store.opener.read_status_rows`,
which opens ``data/gwx.db`` read-only — nothing is written, migrated or recovered):

* the running node, for ``GET /api/v1/node/status`` (in a thread, beside its own connections);
* ``gwx node status``, which needs only the node directory: the database read-only (WAL lets it read
  beside a running node), the lock for whether a node runs and its pid, ``run/ready.json`` for its
  URLs, the files for readiness. So an operator needs no token and no running node
  (see docs/architecture.md).

A peer's line carries what the queue knows about it: how many envelopes wait for it and the last
answer it gave (``ENV_REVOCATION_UNKNOWN`` …) — a peer that answers every request but refuses every
envelope is "up" as a connection, and this is where the operator sees why nothing arrives there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from node.config import NodeConfig
from node.ops import readiness
from node.run_lock import holder
from node.store.opener import read_status_rows
from pki.errors import GwxError

Rows = dict[str, list[tuple]]
NO_ROWS: Rows = {name: [] for name in ("queues", "drafts", "peers", "waiting", "inbound", "errors", "adapters",
                                        "adapter_dead")}


def assemble(config: NodeConfig, rows: Rows, checks: list[readiness.Check]) -> dict[str, Any]:
    queues: dict[str, dict[str, int]] = {}
    for dest, state, n in rows["queues"]:
        queues.setdefault(dest, {})[state] = n
    for dest, n in rows["drafts"]:
        queues.setdefault(dest, {})["draft"] = n
    waiting = {r[0]: {"code": r[1], "message": r[2], "at": r[3], "envelopes": r[4]} for r in rows["waiting"]}
    peers = [{"node_id": p[0], "state": p[1], "since": p[2], "failures": p[3],
              "last_error": f"{p[4]}: {p[5]}" if p[4] else None, "refusal": waiting.get(p[0])}
             for p in rows["peers"]]
    adapters: dict[str, dict[str, Any]] = {}
    for consumer, state, n in rows["adapters"]:
        adapters.setdefault(consumer, {"pending": 0, "done": 0, "dead": 0, "last_dead": None})
        if state is not None:
            adapters[consumer][state] = n
    for consumer, code, message, at in rows["adapter_dead"]:
        if consumer in adapters:
            adapters[consumer]["last_dead"] = {"code": code, "message": message, "at": at}
    return {"node_id": config.node_id,
            "units": [{"code": u.code, "name": u.name} for u in config.units],
            "readiness": readiness.report(checks),
            "queues": queues, "peers": peers,
            "inbound": {r[0]: r[1] for r in rows["inbound"]},
            "last_errors": [{"message_id": e[0], "origin": e[1], "code": e[2], "message": e[3], "at": e[4]}
                            for e in rows["errors"]],
            "adapters": adapters}


def _rows_and_store_check(config: NodeConfig) -> tuple[Rows, readiness.Check]:
    try:
        rows = read_status_rows(config.data_dir, config.store)
    except GwxError as exc:
        return NO_ROWS, readiness.store_check(exc)
    if rows is None:
        return NO_ROWS, readiness.Check("store", readiness.OK, "no database yet: the node has not run")
    return rows, readiness.store_check(None)


def from_directory(config: NodeConfig, now: dt.datetime) -> dict[str, Any]:
    """The report read from the node directory alone, whether or not the node runs."""
    rows, store = _rows_and_store_check(config)
    report = assemble(config, rows, [*readiness.file_checks(config, now), store])
    pid = holder(config.directory)
    report["running"] = {"pid": pid, **_ready_urls(config)} if pid is not None else None
    return report


async def of_running_node(config: NodeConfig, now: dt.datetime) -> dict[str, Any]:
    """``/api/v1/node/status`` of the running node (the same report, file reads off the loop)."""
    rows, store = await asyncio.to_thread(_rows_and_store_check, config)
    checks = await asyncio.to_thread(readiness.file_checks, config, now)
    return assemble(config, rows, [*checks, store])


async def readiness_of_running_node(config: NodeConfig, now: dt.datetime) -> dict[str, Any]:
    """``/readyz``."""
    _, store = await asyncio.to_thread(_rows_and_store_check, config)
    checks = await asyncio.to_thread(readiness.file_checks, config, now)
    return readiness.report([*checks, store])


def _ready_urls(config: NodeConfig) -> dict[str, str]:
    try:
        ready = json.loads((config.directory / "run" / "ready.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: ready[k] for k in ("peer_url", "local_url") if isinstance(ready.get(k), str)}
