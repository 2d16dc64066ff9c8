"""A small pool of check processes beside the node: the package checks that need no key, off its GIL.

One node process keeps about 1.1 cores busy; 28 % of its GIL time went to the package check before
the receipt and the processor's judgement of the PDF seal (docs/performance.md, "A pool of check
processes"). Neither needs a private key (opening the frame — ECDH, AES-GCM — stays in the node),
so ``[processing] check_processes`` children (:mod:`node.federation.check_child`) run them:

* **Hand-off**: a bare pipe per child, one pickled job and one answer (14 µs answered at once, a
  ``ProcessPoolExecutor`` job 160–260 µs; waiting ~1 ms for the child's answer adds the sleep and
  wake-up, 0.17–0.19 ms a call in all on a loaded VM: docs/performance.md). Callers are
  worker threads (the acceptor's ``asyncio.to_thread`` job, the processor's thread): they block on the
  pipe with the GIL released. Packages above :data:`MAX_PACKAGE_BYTES` (streamed envelopes, big
  attachments) stay in the node's process: copying megabytes through a pipe costs the node what
  the check would, and the child would hold the PDF body for the processor.
* **Verdicts stay in the child**: the acceptor's report does not pickle, so the child that checked
  a package keeps it and the processor's judgement of that package goes back to the same child
  (:class:`Held`); a child restarted since answers "miss" and is sent the package for the whole
  lean check.
* **Trust**: every job names a generation — the node's trust store and the CRLs of its revocation
  token at the moment the caller took it, as :func:`generation` is given them — and a child is
  sent the roots and CRLs (DER) whenever the generation it holds is not the job's; a child that
  does not hold the job's generation (the material did not load) answers "stale" and is sent it
  once more (a second "stale" fails the job and leaves the child to be sent it again). A revocation
  check without a token (no current CRL) is judged in the node's process, as before.
* **Errors**: a typed error in the child comes back as code, message and details and is raised here
  with :func:`pki.errors.error_for_code`, so the node answers with the code it gives in-process.
* **A child's death** (end of file on its pipe, a kill -9 mid-job) restarts it and sends the job
  again; a package a child died under before (in this call or an earlier one: the last
  :data:`KILLERS_KEPT` digests are remembered) is refused for good, ``NODE_CHECK_CRASHED``, rather than
  costing a process at every retry of its sender; after :data:`ATTEMPTS` deaths in a row the job
  fails ``NODE_UNAVAILABLE`` (the sender retries). Nothing is ever accepted unchecked.
* **A hung child** (no answer within :data:`JOB_SECONDS`, or a job it does not take from the pipe in
  that time) is killed and the job fails ``NODE_CHECK_TIMEOUT`` (transient: the sender retries) —
  not sent again in the same call, as a hang is most likely the input's; the next job starts
  another child. A child ends by itself when the node's process does (it watches its parent).

Children are spawned (never forked from a running event loop) on first use — a node that never
receives a package never starts one — and stopped with the node (:meth:`CheckPool.close`,
``node.runner``'s cleanup).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import multiprocessing
import os
import socket
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from exchange_protocol.model import DocumentMetadata
from node.errors import NodeUnavailable, PackageKillsCheck
from node.federation import check_child
from pki.errors import error_for_code

log = logging.getLogger("gwx.checks")

MAX_PACKAGE_BYTES = 2 * 1024 * 1024  # above: checked in the node's process (module docstring)
ATTEMPTS = 3  # a job's tries on children that die under it
STOP_SECONDS = 5.0
# A job's answer (and the child taking it from the pipe) within this, or the child is killed. A 2 MiB
# package's check takes milliseconds; the bound is for a hung child, so generous enough for a loaded
# 2-core machine (load 10+) where a check may take a hundred times as long.
JOB_SECONDS = 30.0
KILLERS_KEPT = 1024  # digests of packages a child died under, for the second death's final refusal
KEPT_GENERATIONS = 4  # trust material kept for jobs that took their generation just before a change


@dataclass(frozen=True)
class Held:
    """The child holding the acceptor's report on a package (by its index and incarnation)."""

    child: int
    incarnation: int
    size: int = 0  # the PDF body's bytes it holds there (the node's AcceptedPackages counts them)


@dataclass(frozen=True)
class Accepted:
    """The acceptor's check, as the child answered it."""

    first_failure: tuple[str | None, str, str] | None  # (code, check name, message)
    issuers: tuple[str, ...]
    document_id: str | None
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    held: Held | None


@dataclass(frozen=True)
class Judged:
    """The processor's judgement: the report as a clerk sees it, and what remembering it needs."""

    report: dict[str, Any]
    metadata: DocumentMetadata | None
    ok: bool
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None


class _Child:
    def __init__(self, index: int) -> None:
        self.index = index
        self.lock = threading.Lock()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: Any = None
        self.incarnation = 0
        self.generation: int | None = None  # the trust material it holds


class CheckPool:
    """``processes`` check processes; every method but :meth:`close` is called from worker threads."""

    def __init__(self, processes: int, allow_classified: bool = False, job_seconds: float = JOB_SECONDS) -> None:
        self._children = [_Child(i) for i in range(processes)]
        self._allow_classified = allow_classified
        self.job_seconds = job_seconds
        self._spawn = multiprocessing.get_context("spawn")
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._key: tuple[object, object] | None = None
        self._generation = 0
        self._materials: dict[int, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}  # the last few generations'
        self._killers: OrderedDict[str, None] = OrderedDict()  # digests a child died under
        self._closed = False
        self.restarts = 0  # children restarted after a death (tests, the log)

    def __len__(self) -> int:
        return len(self._children)

    def pids(self) -> list[int]:
        """The children running now (none before the first job)."""
        return [c.process.pid for c in self._children
                if c.process is not None and c.process.pid is not None and c.process.is_alive()]

    def generation(self, trust: object, token: tuple | None) -> int | None:
        """The generation to judge under ``trust`` and the revocation ``token`` the caller took before
        judging (None: judge in the node's process — no token, or CRLs it cannot send)."""
        crls = getattr(token[0], "crls", None) if token is not None else None
        roots = getattr(trust, "roots", None)
        if crls is None or roots is None or self._closed:
            return None
        with self._lock:
            if self._key is None or self._key[0] is not trust or self._key[1] is not token[0]:
                self._generation += 1
                self._key = (trust, token[0])
                self._materials[self._generation] = (tuple(r.public_bytes(Encoding.DER) for r in roots),
                                                     tuple(c.public_bytes(Encoding.DER) for c in crls))
                self._materials.pop(self._generation - KEPT_GENERATIONS, None)
            return self._generation

    def accept(self, generation: int, digest: str, package: bytes, now: dt.datetime) -> Accepted:
        """The acceptor's check of ``package`` (everything but the PDF seal) in a child."""
        child = self._children[next(self._turn) % len(self._children)]
        answer, incarnation = self._call(child, generation, ("accept", generation, digest, package, now))
        _, first, issuers, document_id, valid_from, valid_until, held = answer
        return Accepted(first, tuple(issuers), document_id, valid_from, valid_until,
                        Held(child.index, incarnation, held) if held is not None else None)

    def judge(self, generation: int, digest: str, now: dt.datetime, held: Held | None,
              read: Callable[[], bytes | None]) -> Judged | None:
        """The processor's judgement of package ``digest``: only its PDF seal in the child that
        ``held`` names, if that child still holds it; else the whole lean check of the bytes ``read``
        gives (None from ``read``: too big for the pool — and then None here, judge it in-process)."""
        if held is not None and held.child < len(self._children):
            child = self._children[held.child]
            if child.incarnation == held.incarnation:
                answer, _ = self._call(child, generation, ("judge", generation, digest, None, now))
                if answer[0] == "report":
                    return Judged(*answer[1:])
        package = read()
        if package is None:
            return None
        child = self._children[next(self._turn) % len(self._children)]
        answer, _ = self._call(child, generation, ("judge", generation, digest, package, now))
        return Judged(*answer[1:])

    def _call(self, child: _Child, generation: int, job: tuple) -> tuple[tuple, int]:
        """``job`` answered by ``child`` (restarted and asked again if it dies under it); the answer
        and the incarnation that gave it. A typed error in the child is raised here."""
        with child.lock:
            for _ in range(ATTEMPTS):
                if self._closed:
                    raise NodeUnavailable("the node is stopping: its check processes are closed",
                                          code="NODE_SHUTTING_DOWN")
                try:
                    answer = self._ask(child, generation, job)
                    if answer[0] == "stale":  # the trust it was sent did not load (or is not held): once more
                        child.generation = None
                        answer = self._ask(child, generation, job)
                        if answer[0] == "stale":
                            child.generation = None  # and sent again with the next job
                            raise RuntimeError(f"a check process failed: {answer[1]}")
                except (BlockingIOError, TimeoutError) as exc:  # a send or an answer not taken in time
                    self._bury(child, exc)
                    raise NodeUnavailable(f"check process {child.index} did not answer within "
                                          f"{self.job_seconds:g} s; it was stopped", code="NODE_CHECK_TIMEOUT") from None
                except (EOFError, OSError) as exc:
                    self._bury(child, exc)
                    if not self._closed and self._killed_before(job[2]):  # closing kills: not the package's doing
                        raise PackageKillsCheck(f"package {job[2]} was being checked when a check process died, "
                                                "twice: refused", code="NODE_CHECK_CRASHED", digest=job[2]) from None
                    continue
                return _raise_error(answer), child.incarnation
        raise NodeUnavailable(f"check process {child.index} died {ATTEMPTS} times in a row under one job",
                              code="NODE_UNAVAILABLE")

    def _ask(self, child: _Child, generation: int, job: tuple) -> tuple:
        """One try of ``job`` on ``child`` (started, and sent the generation's trust, if need be)."""
        if child.process is None:
            self._start(child)
        if child.generation != generation:
            with self._lock:
                material = self._materials.get(generation)
            if material is None:  # judged long ago, trust and CRLs changed several times since
                raise NodeUnavailable("the trust material changed while judging", code="NODE_REVOCATION_UNKNOWN")
            roots, crls = material
            child.conn.send(("trust", generation, roots, crls, self._allow_classified))
            child.generation = generation
        child.conn.send(job)
        if not child.conn.poll(self.job_seconds):
            raise TimeoutError
        return child.conn.recv()

    def _killed_before(self, digest: str) -> bool:
        """Whether a child died under package ``digest`` before (remembered now: bounded, oldest out)."""
        with self._lock:
            if digest in self._killers:
                return True
            self._killers[digest] = None
            while len(self._killers) > KILLERS_KEPT:
                self._killers.popitem(last=False)
            return False

    def _start(self, child: _Child) -> None:
        ours, theirs = self._spawn.Pipe()
        # A send blocks while the child takes nothing from the pipe (stopped, hung): bounded like
        # the answer, the write then fails with BlockingIOError (the pipe is a socket pair).
        seconds = max(1, int(self.job_seconds))
        with socket.socket(fileno=ours.fileno()) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, 0))
            sock.detach()
        process = self._spawn.Process(target=check_child.main, args=(theirs, os.getpid()), daemon=True,
                                      name=f"gwx-check-{child.index}")
        process.start()
        theirs.close()
        child.process, child.conn, child.generation = process, ours, None
        child.incarnation += 1

    def _bury(self, child: _Child, exc: BaseException) -> None:
        """A child that died (or whose pipe broke): gone for good; the next try starts another."""
        process, child.process = child.process, None
        if child.conn is not None:
            child.conn.close()
        if process is not None:
            process.kill()
            process.join(STOP_SECONDS)
        self.restarts += 1
        log.warning("check process %d ended (%s); starting another", child.index, type(exc).__name__)

    def close(self) -> None:
        """Stop every child (end of file on its pipe, then kill if it lingers); later jobs are refused.
        A child busy with a job for longer than :data:`STOP_SECONDS` is killed under its caller
        (who then sees ``NODE_SHUTTING_DOWN``)."""
        self._closed = True
        for child in self._children:
            if not child.lock.acquire(timeout=STOP_SECONDS):
                process = child.process
                if process is not None:
                    process.kill()
                    process.join(STOP_SECONDS)
                continue
            try:
                process, child.process = child.process, None
                if child.conn is not None:
                    child.conn.close()
                if process is not None:
                    process.join(STOP_SECONDS)
                    if process.is_alive():
                        process.kill()
                        process.join(STOP_SECONDS)
            finally:
                child.lock.release()


def _raise_error(answer: tuple) -> tuple:
    if answer[0] == "error":
        _, code, message, details = answer
        raise error_for_code(code, message, **details)
    if answer[0] == "bug":
        raise RuntimeError(f"a check process failed: {answer[1]}")
    return answer
