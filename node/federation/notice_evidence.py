"""The node's side of 签收/退回 evidence: signing a statement when our clerk acts, checking one that
comes back with a notice about a document we sent (``exchange_protocol.statements`` says what a
statement is and how it verifies).

* Receiving side (:func:`make_statement`): the clerk's 签收/退回 is signed with the unit's seal key
  (``ctx.seals``) in a worker thread before the action's transaction; it travels in the notice
  (``Notice.evidence``) and is kept in the same transaction as the action (``side="receiver"``).
  A unit hosted without a seal acts as before, its notice without a statement: no statement is
  ever signed with another key — the node's own key would make the node, not the unit, the one who
  speaks. The act's audit event says ``evidence: none`` (or the statement's SHA-256), and
  ``gwx node check`` counts such units.
* The package digest a statement names is the seal key's (:func:`exchange_protocol.statements.digest_for`):
  SHA-256 is the package's blob name, the content address, at no cost; SM3 (an SM2 seal, a 国密
  network) is not stored, so :meth:`BlobStore.digest_sync` reads the package once more and hashes it —
  on the receiving side in the worker thread that signs, on the sending side once per document
  (remembered with the issuer, below), about 5 ms a MB of package.
* Sending side (:class:`EvidenceChecker`): every statement of a payload is verified in the
  processor's worker thread before the payload's transaction (signature, seal certificate to the
  network root at the time of applying, revocation with the node's CRLs, the certificate naming
  the unit); inside the transaction, before the notice changes anything, it must say what the
  notice says (type, 公文标识, unit, 签收人, time, reason) about the package we sent (its SHA-256;
  its SM3 on a 国密 network) from the unit that sent it. A statement that fails is :class:`EvidenceRefused`: alone, its
  message is refused (failed, audited ``envelope.failed``); in a batch, that notice is left out and
  audited (``notice.receipt.refused``) and the others apply. A notice without a statement (an
  older node's, or a unit's hosted without a seal) applies as before. A statement that passes is kept
  (``side="sender"``). Either way the applied 签收/退回's audit event says what it rests on
  (``evidence``: the statement's SHA-256, or ``none``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from exchange_protocol import digests
from exchange_protocol.envelope import MessageType
from exchange_protocol.notices import Notice
from exchange_protocol.statements import (
    STATEMENT_TYPES,
    Statement,
    StatementError,
    VerifiedStatement,
    check_statement,
    digest_for,
    sign_statement,
    unit_name_of,
    verify_statement,
)
from node.context import NodeContext
from node.errors import NodeError
from node.store import BlobStore, InboxRow, NodeStore, OutgoingLink, Transaction
from node.store.evidence import NoticeEvidence
from pki.errors import ErrorKind
from pki.seal_store import SealCredential
from pki.signer import SoftwareSigner

NO_EVIDENCE = "none"  # the audit's word for a 签收/退回 that carried no statement
_SENT_CACHE = 1024  # documents whose package digest and issuer we remember (they never change)


class EvidenceRefused(NodeError):
    """A 签收/退回 whose unit-signed statement does not prove it: the notice is not applied."""

    code = "NOTICE_EVIDENCE_REFUSED"
    kind = ErrorKind.VERIFICATION_FAILED


def signs_quickly(seal: SealCredential) -> bool:
    """Whether :func:`make_statement` may run on the loop: a software key (~0.1 ms) over a package
    named by its blob name; a token's signature, or a package to hash (SM3), wants a thread."""
    return isinstance(seal.signer, SoftwareSigner) and digest_for(seal.signer.algorithm) == digests.SHA256


def make_statement(seal: SealCredential, blobs: BlobStore, row: InboxRow, unit: str, kind: MessageType, by: str,
                   at: dt.datetime, reason: str | None) -> bytes:
    """The statement of ``unit``'s 签收/退回 of ``row``, signed with the unit's seal key (CMS DER; in
    a worker thread unless :func:`signs_quickly`), naming the package by the seal key's digest."""
    name = unit_name_of(seal.certificate)
    if name is None:  # the statement names the unit as its certificate does; a code is not a name
        raise StatementError(f"the seal certificate of unit {unit} names no organisation (O)",
                             code="STATEMENT_WRONG_SIGNER", unit=unit)
    algorithm = digest_for(seal.signer.algorithm)
    statement = Statement(kind, row.doc_id, blobs.digest_sync(row.package_digest, algorithm), unit, name, by,
                          at, reason, row.from_unit, algorithm)
    return sign_statement(statement, seal.signer, seal.chain)


def receiver_evidence(notice: Notice) -> list[NoticeEvidence]:
    """What the receiving side keeps of the statement it made for ``notice``."""
    if notice.evidence is None:
        return []
    return [NoticeEvidence(notice.doc_id or "", notice.units[0], notice.type.value, "receiver",
                           notice.at.replace(microsecond=0), notice.evidence,
                           hashlib.sha256(notice.evidence).hexdigest())]


def evidence_details(notice: Notice | None) -> dict[str, str] | None:
    """The audit details of the act that sends ``notice``: what its 签收/退回 rests on."""
    if notice is None or notice.type not in STATEMENT_TYPES:
        return None
    return {"evidence": hashlib.sha256(notice.evidence).hexdigest() if notice.evidence else NO_EVIDENCE}


class EvidenceChecker:
    """Verifies and keeps the statements that come back with 签收/退回 notices (see the module header)."""

    def __init__(self, ctx: NodeContext, store: NodeStore) -> None:
        self.ctx = ctx
        self.store = store
        self._sent: OrderedDict[tuple[str, str, str], tuple[str, str]] = OrderedDict()
        self._hashed: OrderedDict[tuple[str, str], str] = OrderedDict()  # (blob name, digest) → the package's

    def verify_all(self, notices: Sequence[Notice]) -> dict[bytes, VerifiedStatement | StatementError]:
        """Each statement's verdict (in a worker thread: signatures and certificate paths). A stale
        CRL is raised (transient: the message is retried once a fresh CRL is in)."""
        verdicts: dict[bytes, VerifiedStatement | StatementError] = {}
        for notice in notices:
            if notice.evidence is not None and notice.evidence not in verdicts:
                verdicts[notice.evidence] = self._verify(notice.evidence)
        return verdicts

    def _verify(self, der: bytes, revocation: bool = True) -> VerifiedStatement | StatementError:
        try:
            return verify_statement(der, self.ctx.trust, now=self.ctx.clock(), intermediates=self.ctx.intermediates,
                                    revocation=self.ctx.revocation if revocation else None)
        except StatementError as exc:
            return exc

    async def accept(self, tx: Transaction, notice: Notice, link: OutgoingLink,
                     verdicts: dict[bytes, VerifiedStatement | StatementError] | None) -> str | None:
        """Inside ``tx``, before ``notice`` changes anything: refuse it (:class:`EvidenceRefused`)
        unless its statement proves it; keep the statement. A notice without one passes.

        Returns what the applied 签收/退回 rests on, for its audit event: the verified statement's
        SHA-256, or ``"none"`` (no unit-signed evidence); ``None`` for other notices."""
        if notice.type not in STATEMENT_TYPES:
            return None
        if notice.evidence is None:
            return NO_EVIDENCE
        verdict = (verdicts or {}).get(notice.evidence)
        if verdict is None:
            # A notice applied here, from a unit of this node, in the clerk's own request: its statement
            # was signed a moment ago with the seal credential this node holds. Checked on the spot, but
            # not against the CRL — a stale CRL must not fail the clerk's 签收 (remote notices wait for
            # a fresh one instead; this one has no envelope to wait in). Off the loop: a node answering
            # its own 通知 for hundreds of units would otherwise stall every request ~1–2 ms each. The
            # default pool, not the processor's single thread: that one may be busy for seconds with a
            # package's validation while this waits inside the clerks' write transaction.
            verdict = await asyncio.to_thread(self._verify, notice.evidence, False)
        unit = notice.units[0]
        try:
            if isinstance(verdict, StatementError):
                raise verdict
            blob_name, sender = await self._what_we_sent(link, unit, tx)
            algorithm = verdict.statement.digest_algorithm  # the seal key's: verify_statement held it to it
            check_statement(verdict.statement, type=notice.type, doc_id=link.doc_id, unit=unit, by=notice.by,
                            at=notice.at, reason=notice.reason, package_digest=await self._digest(blob_name, algorithm),
                            sender_unit=sender, digest_algorithm=algorithm)
        except StatementError as exc:
            raise EvidenceRefused(f"the {notice.type.value} of {unit} for {link.doc_id} carries a statement that "
                                  f"does not prove it ({exc.code}: {exc.message})", doc_id=link.doc_id, unit=unit,
                                  cause=exc.code) from None
        await self.store.evidence.add(tx, [NoticeEvidence(link.doc_id, unit, notice.type.value, "sender",
                                                          verdict.statement.at, verdict.der, verdict.sha256)])
        return verdict.sha256

    async def _digest(self, blob_name: str, algorithm: str) -> str:
        """The package's ``algorithm`` digest (SM3: read and hashed in a thread once, then remembered)."""
        if algorithm == digests.SHA256:
            return blob_name
        key = (blob_name, algorithm)
        known = self._hashed.get(key)
        if known is None:
            known = await asyncio.to_thread(self.store.blobs.digest_sync, blob_name, algorithm)
            self._hashed[key] = known
            while len(self._hashed) > _SENT_CACHE:
                self._hashed.popitem(last=False)
        self._hashed.move_to_end(key)
        return known

    async def _what_we_sent(self, link: OutgoingLink, unit: str, tx: Transaction) -> tuple[str, str]:
        """The blob name (SHA-256) of the package ``link``'s message carried and the unit that sent it: our
        document's issuer, or for a copy we forwarded (转发) the unit that forwarded it."""
        key = (link.type, link.doc_id, unit if link.type == MessageType.FORWARD.value else "")
        known = self._sent.get(key)
        if known is not None:
            self._sent.move_to_end(key)
            return known
        if link.type == MessageType.FORWARD.value:
            copy = await self.store.forwards.get(link.doc_id, unit)
            held = await self.store.messages.get_inbox(link.doc_id, copy.from_unit, tx=tx) if copy else None
            if copy is None or held is None:
                raise StatementError(f"no forwarded copy of {link.doc_id} to {unit} here", code="STATEMENT_MISMATCH",
                                     field="doc_id")
            known = (held.package_digest, copy.from_unit)
        else:
            sent = await self.store.messages.get_outbox(link.doc_id, recipients=False)
            if sent is None:
                raise StatementError(f"we sent no document {link.doc_id}", code="STATEMENT_MISMATCH", field="doc_id")
            known = (sent.package_digest, sent.from_unit)
        self._sent[key] = known
        while len(self._sent) > _SENT_CACHE:
            self._sent.popitem(last=False)
        return known
