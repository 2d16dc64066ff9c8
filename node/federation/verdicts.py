"""Package verdicts a node remembers in its process, so that no package is judged twice for nothing.

* :class:`PackageJudge`: the processor's judgement of an acknowledged package — its full report,
  taken from the two caches below while their verdicts stand, else judged (only the PDF seal, when
  the acceptor's verdict stands; the whole package otherwise) and remembered if it passes.
* :class:`AcceptedPackages`: the acceptor checked a package before its receipt (structure, manifest
  signature, digests, metadata, seal — everything but the PDF seal); this process's processor,
  applying the same package moments later, takes that verdict and judges only the PDF seal
  (:func:`exchange_protocol.package_verify.judge_pdf_later`) instead of the whole package again.
  It also holds the envelope's header as the acceptor decoded it (:meth:`AcceptedPackages.header`,
  matched by the envelope's identity digest), so the processor does not read the stored frame back
  to decode the same header again.
* :class:`PdfValidationCache`: a passing full report by package digest, for a package that
  arrives again (relayed, forwarded, resent).

Both hold a verdict only while it must stand — the rule of ``pki.trust``'s own verdict caches: the
same trust roots (the same ``TrustStore`` object: a reload is a new one), the same revocation
information (the check's ``verdict_token``: a new CRL file is another token, so a CRL loaded
between acceptance and processing judges the whole package afresh), and a moment inside every
judged certificate's and the seal's validity (the report's ``valid_from``–``valid_until``) and
inside the CRLs' thisUpdate–nextUpdate. Nothing else the check judges depends on the moment.
A revocation check offering no token (OCSP, plain functions) is never remembered, nor is a
failure (it may be ours: a stale CRL).

With check processes (:mod:`node.federation.check_pool`), the acceptor's report stays in the child
that made it and :class:`AcceptedPackages` holds only which child (and incarnation) has it, under
the same rule; the processor's judgement then runs in that child.

Memory only, per process: with several workers on one PostgreSQL database, a worker that did not
accept a package finds nothing here and checks it in full; after a restart everything is checked
in full. Keyed by the package's SHA-256 (the payload blob's digest), so what is remembered is
about those exact bytes whichever message carries them.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from typing import Any

from exchange_protocol.envelope import EnvelopeHeader
from exchange_protocol.model import DocumentMetadata
from exchange_protocol.package_verify import PackageReport, judge_pdf_later, verify_package
from node.context import NodeContext
from node.federation.check_child import HELD_BYTES, HELD_ENTRIES, holds_body
from node.federation.check_pool import MAX_PACKAGE_BYTES, CheckPool, Held, Judged
from node.store import BlobStorage
from pki.trust import revocation_token


def _standing(valid_from: dt.datetime | None, valid_until: dt.datetime | None,
              token: tuple | None) -> tuple[dt.datetime, dt.datetime] | None:
    """The moments within which a passing report valid ``valid_from``–``valid_until``, judged under
    ``token``, stands (None: never remember)."""
    if token is None or valid_from is None or valid_until is None:
        return None
    return max(valid_from, token[1]), min(valid_until, token[2])


class AcceptedPackages:
    """The acceptor's verdicts on the packages it accepted, until the processor takes them.

    An entry holds the report (``validate_pdf=False``, carrying the body for the PDF seal check);
    taking it removes it. Bounded by entries and by body bytes, the oldest dropped first (its
    package is then checked in full, as on another worker) — the limits a check process holds its
    reports under (:mod:`node.federation.check_child`), whose bodies are counted here too, so the
    node drops an entry no later than the child drops its report. Used from several threads.
    """

    def __init__(self, max_entries: int = HELD_ENTRIES, max_bytes: int = HELD_BYTES,
                 pool: CheckPool | None = None) -> None:
        self.pool = pool  # the node's check processes (the acceptor checks there), or None
        self._entries: OrderedDict[str, tuple[PackageReport | Held, object, object, dt.datetime, dt.datetime,
                                              tuple[EnvelopeHeader, str] | None, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def hold(self, digest: str, report: PackageReport | Held, trust: object, token: tuple | None,
             valid: tuple[dt.datetime | None, dt.datetime | None] | None = None,
             header: EnvelopeHeader | None = None, identity: str | None = None) -> None:
        """Remember the acceptor's passing ``report`` on package ``digest`` (or which check process
        holds it, valid ``valid``), judged with ``trust`` and the revocation check's ``token`` as
        taken *before* the check; ``header``: the header of the envelope that carried it, whose
        identity digest is ``identity`` (without one the header is not held)."""
        if isinstance(report, Held):  # the body is in the child: counted as it counts it, to push out alike
            window, size = _standing(*(valid or (None, None)), token), report.size
        else:
            window = _standing(report.valid_from, report.valid_until, token) if not report.failures else None
            size = len(report.pdf_to_judge.body) if report.pdf_to_judge is not None else 0
        if window is None or not holds_body(size, self._max_bytes):
            return
        with self._lock:
            self._pop(digest)
            kept = (header, identity) if header is not None and identity is not None else None
            self._entries[digest] = (report, trust, token[0], *window, kept, size)  # type: ignore[index]
            self._bytes += size
            while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
                self._pop(next(iter(self._entries)))

    def header(self, digest: str, message_id: str, identity: str | None) -> EnvelopeHeader | None:
        """The header of ``message_id`` if the verdict held on ``digest`` came with it (left held):
        the stored frame's header as the acceptor decoded it, whatever the verdict's standing (None:
        another envelope carried the package last, or nothing is held — read it from the store).

        Matched by the envelope's identity digest (header and signature), not by the message id
        alone: two envelopes naming one message id may both pass their checks before the store
        refuses the second as a replay, and the second's header — another sender's, other
        addressees — must never be applied to the document the first one brought."""
        with self._lock:
            entry = self._entries.get(digest)
        kept = entry[-2] if entry is not None else None
        if kept is None or identity is None:
            return None
        header, held_identity = kept
        return header if held_identity == identity and header.message_id == message_id else None

    def take(self, digest: str, trust: object, token: tuple | None, at: dt.datetime) -> PackageReport | Held | None:
        """The acceptor's report on ``digest`` if it still stands at ``at`` under ``trust`` and
        ``token`` (removed either way)."""
        with self._lock:
            entry = self._pop(digest)
        if entry is None or token is None:
            return None
        report, held_trust, held_token, start, end, _, _ = entry
        if held_trust is not trust or held_token is not token[0] or not start <= at <= end:
            return None
        return report

    def _pop(self, digest: str):
        entry = self._entries.pop(digest, None)
        if entry is not None:
            self._bytes -= entry[-1]
        return entry


class PdfValidationCache:
    """Passing verification reports by package digest: a package that arrives again (relayed,
    forwarded, resent) is not validated again while its verdict must stand (module docstring).
    Used from the processor's worker thread only."""

    def __init__(self, size: int = 256) -> None:
        self._reports: OrderedDict[str, tuple[dict[str, Any], DocumentMetadata | None, object, object,
                                              dt.datetime, dt.datetime]] = OrderedDict()
        self._size = size

    def get(self, digest: str) -> dict[str, Any] | None:
        """The report remembered for ``digest``, whether or not it still stands."""
        entry = self._reports.get(digest)
        return entry[0] if entry else None

    def valid(self, digest: str, trust: object, token: tuple | None,
              at: dt.datetime) -> tuple[dict[str, Any], DocumentMetadata | None] | None:
        """The report (and the package's metadata) if it still stands at ``at``."""
        entry = self._reports.get(digest)
        if entry is None or token is None:
            return None
        report, meta, held_trust, held_token, start, end = entry
        if held_trust is not trust or held_token is not token[0] or not start <= at <= end:
            return None
        self._reports.move_to_end(digest)
        return report, meta

    def put(self, digest: str, report: PackageReport | Judged, trust: object, token: tuple | None) -> dict[str, Any]:
        """Remember ``report`` if it passed; returns it as shown (``to_dict``, made once for both)."""
        shown = report.report if isinstance(report, Judged) else report.to_dict()
        window = _standing(report.valid_from, report.valid_until, token) if report.ok else None
        if window is None:
            return shown  # a failure may be ours (a stale CRL): judged afresh next time
        self._reports[digest] = (shown, report.metadata, trust, token[0], *window)  # type: ignore[index]
        while len(self._reports) > self._size:
            self._reports.popitem(last=False)
        return shown


class PackageJudge:
    """The verification report of an acknowledged package, judged at most once while its verdict
    stands: the acceptor's (:class:`AcceptedPackages`, only the PDF seal judged again) or an
    earlier passing report (:class:`PdfValidationCache`). Called in the processor's worker thread."""

    def __init__(self, blobs: BlobStorage, pool: CheckPool | None = None) -> None:
        self.blobs = blobs
        self.reports = PdfValidationCache()
        self.accepted = AcceptedPackages(pool=pool)  # filled by this process's acceptor (node.runner)

    @property
    def pool(self) -> CheckPool | None:
        """The check processes both judgements run in (node.federation.check_pool), or None: this process."""
        return self.accepted.pool

    @pool.setter
    def pool(self, pool: CheckPool | None) -> None:
        self.accepted.pool = pool

    def report(self, ctx: NodeContext, package_digest: str) -> tuple[dict[str, Any], bool, DocumentMetadata | None]:
        """The package's verification report under ``ctx``'s trust, revocation and clock, whether it
        was validated now, and its metadata as the check parsed it (None when that check failed)."""
        now, trust = ctx.clock(), ctx.trust
        token = revocation_token(ctx.revocation)
        # Taken first, whatever follows: one left behind would hold its PDF body until pushed out.
        checked = self.accepted.take(package_digest, trust, token, now)
        held = self.reports.valid(package_digest, trust, token, now)
        if held is not None:
            return held[0], False, held[1]
        generation = self.pool.generation(trust, token) if self.pool is not None else None
        if generation is not None and not isinstance(checked, PackageReport):
            judged = self.pool.judge(generation, package_digest, now, checked,  # type: ignore[union-attr]
                                     lambda: self._small_package(package_digest))
            if judged is not None:
                self.reports.put(package_digest, judged, trust, token)
                return judged.report, True, judged.metadata
        if isinstance(checked, PackageReport):  # our acceptor checked the rest, its verdict stands: the PDF seal
            fresh = judge_pdf_later(checked, now, revocation=ctx.revocation)
        else:
            fresh = self._verify_blob(ctx, package_digest, now)
        return self.reports.put(package_digest, fresh, trust, token), True, fresh.metadata

    def _small_package(self, package_digest: str) -> bytes | None:
        """The package's bytes for a check process, or None when it is too big to hand over."""
        with self.blobs.open(package_digest) as f:
            size = f.seek(0, 2)
            if size > MAX_PACKAGE_BYTES:
                return None
            f.seek(0)
            return f.read()

    def _verify_blob(self, ctx: NodeContext, package_digest: str, now: dt.datetime) -> PackageReport:
        # The lean PAdES check (exchange_protocol.pades_lean): byte ranges and the CMS; pyHanko, the
        # full validator, is for `gwx doc verify` and archive checks (docs/architecture.md).
        with self.blobs.open(package_digest) as f:
            return verify_package(f, ctx.trust, now, revocation=ctx.revocation,
                                  allow_classified=ctx.config.classified_network, lean_pdf=True)
