"""The figures an alert rule is written against: what runs, what expires when, how long mail waits.

Read when ``/metrics`` is fetched (:meth:`node.ops.metrics.Registry.on_collect`), never on a timer:

* ``gwx_build_info{version, python}`` — always 1; the labels say which gwx answers (after an upgrade
  an operator sees every node that still runs the old one).
* ``process_start_time_seconds``, ``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
  ``process_open_fds``, ``process_max_fds`` — the names Prometheus' own clients use, so the usual
  dashboards and rules (restarts, fd exhaustion, a leak) work unchanged. Several nodes sharing one
  process (:mod:`node.cohost`) report the same process.
* ``gwx_gc_seconds_total{generation}`` — CPU seconds the process spent in the cyclic garbage
  collector (each collection timed by ``gc.callbacks``, the thread's CPU clock), and
  ``python_gc_collections_total{generation}`` (Prometheus' own client's name): a full collection
  holds the GIL while it walks every tracked object, the event loop stalled meanwhile (what
  :func:`node.runner.settle_heap` cut; ``bench/network.py`` reports it per process).
* ``gwx_certificate_expires_in_seconds{role}`` — the node's TLS, signing and encryption certificates;
  ``gwx_seal_expires_in_seconds{unit}`` — each hosted unit's seal (the SESeal within its certificate).
  Negative once expired. A file that cannot be read has no series (``gwx node status`` says why), so
  an ``absent()`` rule catches it. The CRLs' are ``gwx_crl_next_update_in`` (:mod:`node.ops.crl_state`).
* ``gwx_queue_oldest_seconds{destination}`` — how long the oldest message still waiting for a next
  hop (queued, deferred, held, or a draft waiting for the destination's certificate) has waited; 0
  for a static peer with nothing waiting. Depth says how much, this says whether it moves: a queue
  of 5,000 that drains is fine, one envelope stuck for a day is not.

The validity dates are :mod:`node.ops.readiness`'s (one place reads the node's certificates and
seals); a file is parsed again only when it changed (its size and mtime), so a scrape costs a few
``stat`` calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import platform
import resource
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from node.ops.metrics import Registry
from node.ops.readiness import CERTIFICATE_ROLES, node_certificate, seal_validity
from node.store import NodeStore
from pki.errors import GwxError
from pki.seal_store import seal_installed

_LOADED_AT = time.time()  # the start time when /proc cannot say (not Linux)


def build_version() -> str:
    try:
        return metadata.version("gwx")
    except metadata.PackageNotFoundError:
        return "unknown"


def process_figures() -> dict[str, float]:
    """This process's start time, CPU seconds, resident memory and file descriptors (Linux /proc;
    elsewhere what the standard library can say)."""
    cpu = os.times()
    figures = {"cpu_seconds_total": cpu.user + cpu.system, "start_time_seconds": _LOADED_AT,
               "max_fds": float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])}
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        figures["start_time_seconds"] = boot + int(stat[19]) / ticks  # field 22: starttime, in ticks
        figures["resident_memory_bytes"] = float(int(Path("/proc/self/statm").read_text().split()[1])
                                                 * os.sysconf("SC_PAGE_SIZE"))
        figures["open_fds"] = float(len(os.listdir("/proc/self/fd")))
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return figures


class ValidityReader:
    """End of validity of the node's certificates and seals, parsed again only when a file changed."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._cache: dict[Path, tuple[tuple[int, int], dt.datetime]] = {}

    def _end(self, path: Path, read: Callable[[], dt.datetime]) -> dt.datetime | None:
        try:
            st = path.stat()
            mark = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(path)
            if cached is None or cached[0] != mark:
                self._cache[path] = cached = (mark, read())
            return cached[1]
        except (OSError, GwxError, ValueError, IndexError):
            self._cache.pop(path, None)
            return None  # readiness names the problem; the series is absent meanwhile

    def certificate_ends(self) -> dict[str, dt.datetime]:
        ends = {role: self._end(self.config.credentials_dir / f"{role}.crt",
                                lambda role=role: node_certificate(self.config, role).not_valid_after_utc)
                for role in CERTIFICATE_ROLES}
        return {role: end for role, end in ends.items() if end is not None}

    def seal_ends(self) -> dict[str, dt.datetime]:
        ends: dict[str, dt.datetime] = {}
        for unit in self.config.units:
            if not seal_installed(unit.seal_dir):
                continue
            # A seal is two files installed together: the SESeal's size and mtime stand for both.
            end = self._end(unit.seal_dir / "seal.esl", lambda unit=unit: seal_validity(unit.seal_dir)[1])
            if end is not None:
                ends[unit.code] = end
        return ends


class _GcClock:
    """CPU seconds spent in each generation's collections, process-wide (installed once, shared by
    the nodes of a process). A collection runs in one thread, holding the GIL, never nested."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds[info["generation"]] += time.thread_time() - self._started


_GC_CLOCK = _GcClock()  # from this module's import on: the node's start-up, before it serves


def gc_seconds() -> list[float]:
    """CPU seconds spent in the cyclic collector so far, per generation."""
    return list(_GC_CLOCK.seconds)


def register_alert_gauges(config: NodeConfig, clock: Callable[[], dt.datetime], store: NodeStore,
                          registry: Registry) -> None:
    build = registry.gauge("gwx_build_info", "1, labelled with the gwx version and Python running this node")
    build.set(1.0, version=build_version(), python=platform.python_version())
    process = {name: registry.gauge(f"process_{name}", text) for name, text in (
        ("start_time_seconds", "Start time of the process since the Unix epoch, in seconds"),
        ("resident_memory_bytes", "Resident memory of the process, in bytes"),
        ("open_fds", "Open file descriptors of the process"),
        ("max_fds", "The process's limit of open file descriptors"))}
    cpu = registry.sampled_counter("process_cpu_seconds_total", "CPU time of the process (user and system), seconds")
    gc_cpu = registry.sampled_counter("gwx_gc_seconds_total", "CPU seconds of the process in cyclic garbage "
                                      "collections, by generation (2: full collections, the loop stalled)")
    gc_runs = registry.sampled_counter("python_gc_collections_total", "Cyclic garbage collections, by generation")
    certificates = registry.gauge("gwx_certificate_expires_in_seconds",
                                  "Seconds until the node's own certificate of a role (tls, sign, enc) expires "
                                  "(negative: expired)")
    seals = registry.gauge("gwx_seal_expires_in_seconds",
                           "Seconds until a hosted unit's seal may no longer be used (negative: expired)")
    oldest = registry.gauge("gwx_queue_oldest_seconds",
                            "Seconds the oldest message waiting for a destination (queued, deferred, held, or a "
                            "draft) has waited; 0 when none waits")
    validity = ValidityReader(config)
    static_peers = [p.node_id for p in config.peers]

    def files(now: dt.datetime) -> dict[str, Any]:
        return {"process": process_figures(), "certificates": validity.certificate_ends(),
                "seals": validity.seal_ends(), "now": now}

    async def refresh() -> None:
        read = await asyncio.to_thread(files, clock())
        now = read["now"]
        figures = read["process"]
        cpu.replace({(): figures.pop("cpu_seconds_total")})
        gc_cpu.replace({(("generation", str(g)),): v for g, v in enumerate(gc_seconds())})
        gc_runs.replace({(("generation", str(g)),): float(st["collections"]) for g, st in enumerate(gc.get_stats())})
        for name, gauge in process.items():
            gauge.replace({(): figures[name]} if name in figures else {})
        certificates.replace({(("role", role),): (end - now).total_seconds()
                              for role, end in read["certificates"].items()})
        seals.replace({(("unit", unit),): (end - now).total_seconds() for unit, end in read["seals"].items()})
        since = await store.queue.oldest_unfinished()
        for dest, at in (await store.drafts.oldest_drafts()).items():
            since[dest] = min(at, since.get(dest, at))
        ages = dict.fromkeys(((("destination", p),) for p in static_peers), 0.0)
        ages.update({(("destination", dest),): max(0.0, (now - at).total_seconds()) for dest, at in since.items()})
        oldest.replace(ages)

    registry.on_collect(refresh)
