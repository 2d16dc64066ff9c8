"""One check process of :mod:`node.federation.check_pool`: judges packages for the node, holds nothing secret.

The node sends jobs down a bare pipe (pickled tuples, one at a time) and reads one answer per job:

* ``("trust", generation, roots_der, crls_der, allow_classified)`` — no answer: the trust roots and
  CRLs the following jobs name by ``generation`` (the node's trust store and the CRLs of its
  revocation token, as DER). A new generation drops the verdicts held under the old one.
* ``("accept", generation, digest, package, now)`` — the acceptor's check before its receipt
  (:func:`~exchange_protocol.package_verify.verify_package` with ``validate_pdf=False``) →
  ``("ok", first_failure, issuers, document_id, valid_from, valid_until, held)``. A passing report is
  kept here by ``digest`` (``held``: the bytes of PDF body it holds, or None when not kept): a :class:`~exchange_protocol.package_verify.PackageReport` holds
  certificate objects and does not pickle, so the processor's later judgement comes back to this
  process.
* ``("judge", generation, digest, package | None, now)`` — the processor's judgement: with no
  package, only the PDF seal of the report held for ``digest``
  (:func:`~exchange_protocol.package_verify.judge_pdf_later`), or ``("miss",)`` when none is held;
  with the package, the whole lean check. Either → ``("report", report_dict, metadata, ok,
  valid_from, valid_until)``.

A job naming a generation this process does not hold (the trust material failed to load, or
never came) answers ``("stale", why)``: the node sends the trust again. A typed error raised by a
check answers ``("error", code, message, details)`` (a ``GwxError``
pickles but comes back as the base class: the node raises :func:`pki.errors.error_for_code`);
anything else ``("bug", text)``. End of file on the pipe ends the process (the node stopped or
died). Ctrl-C and SIGTERM (sent to the node's whole process group or cgroup) are the node's to
handle: ignored here, as the node still drains through this process and stops it afterwards. A thread watches the parent: if the node's
process is gone (killed in the middle of a job this process is stuck in), this one exits too.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

from cryptography import x509

from exchange_protocol.package_verify import PackageReport, judge_pdf_later, verify_package
from pki.errors import GwxError
from pki.revocation import CrlChecker
from pki.trust import TrustStore

# The acceptor's verdicts held for the processor — here, or in the node's process
# (node.federation.verdicts.AcceptedPackages, which also counts what a check process holds for it):
# one set of limits, owned here.
HELD_ENTRIES = 4096
HELD_BYTES = 16 * 1024 * 1024  # their PDF bodies


def holds_body(size: int, max_bytes: int = HELD_BYTES) -> bool:
    """Whether a verdict whose PDF body is ``size`` bytes is held at all, under ``max_bytes``."""
    return size <= max_bytes // 8


class _Stale(Exception):
    """The job names a generation this process does not hold (its trust material did not load)."""


class Judge:
    """The child's state: the trust material of the newest generation and the reports held under it."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.trust: TrustStore | None = None
        self.revocation: CrlChecker | None = None
        self.allow_classified = False
        self.held: OrderedDict[str, tuple[PackageReport, int]] = OrderedDict()
        self.held_bytes = 0
        self.unusable = ""

    def answer(self, job: tuple) -> tuple | None:
        if job[0] == "trust":  # never answered: a failure here is what the next job answers
            try:
                return self._trust(*job[1:])
            except Exception as exc:
                self.generation, self.trust, self.revocation = None, None, None
                self.unusable = f"the trust material of generation {job[1]} did not load: {exc}"
                return None
        try:
            return getattr(self, "_" + job[0])(*job[1:])
        except _Stale as exc:
            return "stale", str(exc)
        except GwxError as exc:
            return "error", exc.code, exc.message, exc.to_dict().get("details", {})
        except Exception as exc:  # a defect: the node says so, it never passes unchecked
            return "bug", f"{type(exc).__name__}: {exc}"

    def _trust(self, generation: int, roots: tuple[bytes, ...], crls: tuple[bytes, ...],
               allow_classified: bool) -> None:
        self.trust = TrustStore.of(x509.load_der_x509_certificate(r) for r in roots)
        self.revocation = CrlChecker(x509.load_der_x509_crl(c) for c in crls)
        self.generation, self.allow_classified, self.unusable = generation, allow_classified, ""
        self.held.clear()
        self.held_bytes = 0
        return None

    def _material(self, generation: int) -> tuple[TrustStore, CrlChecker]:
        if generation != self.generation or self.trust is None or self.revocation is None:
            raise _Stale(self.unusable or f"asked to judge under generation {generation}, holding {self.generation}")
        return self.trust, self.revocation

    def _accept(self, generation: int, digest: str, package: bytes, now: dt.datetime) -> tuple:
        trust, revocation = self._material(generation)
        report = verify_package(io.BytesIO(package), trust, now, revocation=revocation, validate_pdf=False,
                                allow_classified=self.allow_classified)
        first = report.failures[0] if report.failures else None
        held = self._hold(digest, report) if first is None else None
        return ("ok", None if first is None else (first.code, first.name, first.message), report.issuers,
                report.document_id, report.valid_from, report.valid_until, held)

    def _hold(self, digest: str, report: PackageReport) -> int | None:
        """Keep ``report``; the bytes it holds (None: not kept)."""
        size = len(report.pdf_to_judge.body) if report.pdf_to_judge is not None else 0
        if report.valid_from is None or report.valid_until is None or not holds_body(size):
            return None
        self._drop(digest)
        self.held[digest] = (report, size)
        self.held_bytes += size
        while len(self.held) > HELD_ENTRIES or self.held_bytes > HELD_BYTES:
            self._drop(next(iter(self.held)))
        return size

    def _drop(self, digest: str) -> tuple[PackageReport, int] | None:
        entry = self.held.pop(digest, None)
        if entry is not None:
            self.held_bytes -= entry[1]
        return entry

    def _judge(self, generation: int, digest: str, package: bytes | None, now: dt.datetime) -> tuple:
        trust, revocation = self._material(generation)
        if package is None:
            entry = self._drop(digest)
            if entry is None:
                return ("miss",)
            report = judge_pdf_later(entry[0], now, revocation=revocation)
        else:
            self._drop(digest)
            report = verify_package(io.BytesIO(package), trust, now, revocation=revocation,
                                    allow_classified=self.allow_classified, lean_pdf=True)
        return "report", report.to_dict(), report.metadata, report.ok, report.valid_from, report.valid_until


PARENT_POLL_SECONDS = 1.0


def _exit_with_parent(parent: int) -> None:
    """End this process once its parent is gone (it is then re-parented: another ``getppid()``)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def main(conn: Connection, parent: int | None = None) -> None:
    """The child's loop: one job, one answer, until the pipe ends. ``parent``: the node's pid, given
    by the node (read here, it would already be another if the node died while this one started)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group's SIGTERM: the node drains, then stops us
    threading.Thread(target=_exit_with_parent, args=(parent or os.getppid(),), daemon=True,
                     name="parent-watch").start()
    judge = Judge()
    while True:
        try:
            job: Any = conn.recv()
        except (EOFError, OSError):
            return
        answer = judge.answer(job)
        if answer is not None:
            try:
                conn.send(answer)
            except OSError:
                return
