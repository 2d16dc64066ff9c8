"""Receiving: accept an envelope durably, and only then sign the transport receipt.

Before a receipt goes back, the node has: matched the TLS peer to the envelope's origin node;
verified the header signature, the signer's certificate and its revocation; checked destination,
expiry and hops; decrypted the payload (GCM tag verified); for a document, checked the package
(structure, manifest signature and certificates, digests, metadata, seal — everything but the
PDF's PAdES validation, done after acknowledgement once per package digest; a passing verdict is
held for this process's processor, :mod:`node.federation.verdicts`), that the origin
node hosts the issuing unit, and that every addressee is hosted here (named in the document, or added
by its issuer afterwards: 补发);
for a notice, that it parses and its type matches the header; written the envelope and its
decrypted payload as blobs (fsynced); and committed the ``received`` row (group commit). Up to
``[store] inline_max_bytes`` no file is written at all: the bytes commit with the row and stay in
the database (:mod:`node.store.sqlite.inline_blobs`), the batch's one commit makes them durable.

A duplicate (same id, same envelope — the bytes but the hop count, see
:mod:`exchange_protocol.replay` — from the same origin) gets the original receipt back with no
crypto; the same id with other bytes is ``ENV_REPLAYED``; another node presenting someone else's
envelope is refused. What happens to an accepted envelope afterwards is ``node.federation.processor``.
Small envelopes are handled in memory (:class:`Acceptor`), large ones streamed through temp
files (:class:`StreamAcceptor`); both end in :meth:`Acceptor.commit`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import tempfile
from collections.abc import AsyncIterator
from typing import BinaryIO

from exchange_protocol import digests
from exchange_protocol.envelope import EnvelopeHeader, MessageType, decode_header
from exchange_protocol.envelope_seal import EnvelopeOpener, TrustPolicy, open_frame
from exchange_protocol.errors import (
    EnvelopeBundleUnsupported,
    EnvelopePayloadDigestMismatch,
    EnvelopeTruncated,
)
from exchange_protocol.frame import FrameDecoder, FrameHead, decode_frame, read_head
from exchange_protocol.notices import MAX_SIGNED_NOTICE_BYTES, NoticeError, decode_escalation, decode_notices
from exchange_protocol.package_verify import PackageReport, verify_package
from exchange_protocol.replay import SeenEnvelope, classify_replay
from exchange_protocol.transport_receipt import TransportReceipt, sign_receipt
from node.context import NodeContext
from node.errors import BlobMissing, NodeError, StoreCorrupt
from node.federation.check_pool import MAX_PACKAGE_BYTES, Held
from node.federation.relay import OriginMismatch, Relay, check_peer, chunks_of
from node.federation.verdicts import AcceptedPackages
from node.ops.metrics import Registry
from node.store import BlobRef, InboundEnvelope, NodeStore
from pki.errors import ErrorKind, GwxError, error_for_code
from pki.trust import revocation_token

log = logging.getLogger("gwx.inbound")



PACKAGES = (MessageType.DOCUMENT, MessageType.FORWARD)  # payloads that are a sealed package (转发: forward)


class UnitNotHosted(NodeError):
    """The envelope names units that this node does not host, or that its package does not name."""

    code = "ENV_UNIT_NOT_HOSTED"
    kind = ErrorKind.FORBIDDEN
    subcodes = ("ENV_FROM_UNIT_MISMATCH", "ENV_TO_UNIT_MISMATCH")


class Acceptor:
    def __init__(self, ctx: NodeContext, store: NodeStore, registry: Registry, on_accepted=None,
                 on_relayed=None, verdicts: AcceptedPackages | None = None) -> None:
        self.ctx = ctx
        self.store = store
        self.verdicts = verdicts  # this process's processor takes the package verdicts from here
        self.registry = registry
        self.on_accepted = on_accepted or (lambda: None)
        self.relay = Relay(self, on_relayed or (lambda hop: None))
        self.accepted = registry.counter("gwx_envelopes_received_total", "Envelopes accepted durably, by type",
                                         labels=("type",))
        for kind in MessageType:  # every type's series exists from the start, at 0
            self.accepted.declare(type=kind.value)
        self.duplicates = registry.counter("gwx_envelopes_duplicate_total", "Duplicate envelopes answered again")
        self.refused = registry.counter("gwx_envelopes_refused_total", "Envelopes refused, by code", labels=("code",))
        self.accept_seconds = registry.histogram("gwx_accept_seconds", "Time to accept one envelope durably")

    @property
    def policy(self) -> TrustPolicy:
        return self.ctx.trust_policy()  # read each time: a renewal may change our intermediates

    async def accept(self, data: bytes, peer_node: str) -> bytes:
        """Accept one whole envelope (one header) held in memory; returns its signed transport receipt."""
        outcomes = await self.accept_frame(data, peer_node)
        if len(outcomes) != 1:
            raise EnvelopeBundleUnsupported("a bundle where one envelope was expected", headers=len(outcomes))
        outcome = next(iter(outcomes.values()))
        if isinstance(outcome, GwxError):
            raise outcome
        return outcome

    async def accept_frame(self, data: bytes, peer_node: str) -> dict[str, bytes | GwxError]:
        """Accept one whole frame held in memory; per header its signed transport receipt, or the
        error refusing that header alone (a frame refused as a whole raises)."""
        started = asyncio.get_running_loop().time()
        try:
            receipts = await self._accept(data, peer_node)
        except GwxError as exc:
            self.refused.inc(code=exc.code)
            raise
        self.accept_seconds.observe(asyncio.get_running_loop().time() - started)
        return receipts

    async def _accept(self, data: bytes, peer_node: str) -> dict[str, bytes | GwxError]:
        ctx = self.ctx
        policy = self.policy
        head, payload, envelope_sha = decode_frame(data, policy.limits, policy.digest)
        claimed = [decode_header(s.header_bytes, policy.limits.max_header) for s in head.signed]
        seen = {h.message_id: r for h, s in zip(claimed, head.signed, strict=True)
                if (r := await self.seen_before(h, s.identity(h.digest_algorithm), envelope_sha, peer_node,
                                                unchecked_payload=payload)) is not None}
        if len(seen) == len(claimed):
            return seen  # no crypto for a duplicate: its head was verified the first time
        if len(claimed) > 1 or claimed[0].destination_node != ctx.node_id:
            mine = any(h.destination_node == ctx.node_id for h in claimed)
            return await self.relay.accept(chunks_of(data), peer_node, mine=mine)
        return {claimed[0].message_id: await self._accept_one(data, head, payload, envelope_sha, peer_node,
                                                                    policy)}

    async def _accept_one(self, data: bytes, head: FrameHead, payload: bytes, envelope_sha: str,
                          peer_node: str, policy: TrustPolicy) -> bytes:
        """The common case, fast: a frame with one header, for this node, held in memory (``head``,
        ``payload``, ``envelope_sha``: what :func:`decode_frame` gave for ``data`` under ``policy``)."""
        now = self.ctx.clock()
        header, plaintext, payload_sha, identity, doc_id = await asyncio.to_thread(
            self._open_and_check, head, payload, envelope_sha, peer_node, now, policy)
        if max(len(data), len(plaintext)) <= self.ctx.config.store.inline_max_bytes:
            # Small: the bytes commit with the row and stay in the database (no file, ever). Blobs are
            # named by SHA-256: the frame's digest already is one on an international network.
            env_ref = BlobRef(envelope_sha if policy.digest == digests.SHA256 else hashlib.sha256(data).hexdigest(), len(data))
            payload_ref = BlobRef(payload_sha, len(plaintext))
            inline = ((env_ref.digest, data), (payload_ref.digest, plaintext))
        else:
            env_ref, payload_ref = await asyncio.gather(self.store.blobs.put(data), self.store.blobs.put(plaintext))
            inline = ()
        return await self.commit(header, identity, envelope_sha, env_ref, payload_ref, now, doc_id, inline)

    def _open_and_check(self, head: FrameHead, payload: bytes, envelope_sha: str, peer_node: str,
                        now: dt.datetime, policy: TrustPolicy) -> tuple[EnvelopeHeader, bytes, str, str, str | None]:
        """In one worker-thread job (one hand-off per envelope, not two): the frame opened
        (:func:`open_frame`), its parties checked, then its package or notice; returns the header, the
        payload, the payload's SHA-256 (the name its blob goes by: a small one's row, the verdict
        held on a package), the header's identity and the 公文标识."""
        ctx = self.ctx
        opened, plaintext = open_frame(head, payload, envelope_sha, policy, ctx.decryption_keys, ctx.node_id, now)
        header = opened.header
        self.check_parties(header, opened.hops, peer_node)
        payload_sha = hashlib.sha256(plaintext).hexdigest()  # (the signed digest is the ciphertext's)
        if header.type in PACKAGES:
            doc_id = self.check_package(header, io.BytesIO(plaintext), now, payload_sha, plaintext,
                                        opened.identity_digest)
        else:
            doc_id = self.check_notice(header, plaintext)
        return header, plaintext, payload_sha, opened.identity_digest, doc_id

    async def seen_before(self, header: EnvelopeHeader, identity: str, envelope_sha: str, peer_node: str,
                          unchecked_payload: bytes | None = None) -> bytes | None:
        """The original receipt if this envelope (hops aside) came from this origin before; None if new.

        ``unchecked_payload``: the payload bytes when nothing has compared them with the signed
        digest yet — a copy that is not byte for byte the stored one must carry the signed payload.
        """
        message_id = header.message_id
        seen = await self.store.messages.get_received(message_id)
        if seen is None:
            return None
        if seen.origin_node != header.origin_node:
            raise OriginMismatch(f"message {message_id} came from {seen.origin_node}, not from {header.origin_node}",
                                 message_id=message_id, peer=peer_node)
        exact = seen.envelope_digest == envelope_sha
        stored = identity if exact else seen.identity_digest or await self._stored_identity(seen.blob_digest)
        decision = classify_replay(message_id, identity, SeenEnvelope(stored, seen.receipt))  # or ENV_REPLAYED
        if not exact and unchecked_payload is not None \
                and digests.hexdigest(header.digest_algorithm, unchecked_payload) != header.payload_digest:
            raise EnvelopePayloadDigestMismatch("payload bytes differ from the digest the origin signed",
                                                message_id=message_id)
        self.duplicates.inc()
        if exact:
            return decision.original_receipt
        # The same envelope in other bytes (another hop count, or in another bundle after a relay's
        # crash): the receipt must bind the bytes the sender holds, or it would refuse it
        # (TRANSPORT_RECEIPT_MISMATCH) and give up on a message we have.
        return sign_receipt(TransportReceipt(message_id, envelope_sha, self.ctx.clock(), self.ctx.node_id,
                                             digest_algorithm=header.digest_algorithm),
                            self.ctx.signer, self.ctx.intermediates)

    async def _stored_identity(self, blob_digest: str) -> str:
        """The identity of a stored envelope (rows received before migration 4 did not record it)."""
        def read() -> str:
            try:
                with self.store.blobs.open(blob_digest) as f:
                    head = read_head(f, self.policy.limits)
            except BlobMissing:
                raise BlobMissing("a received envelope's blob is missing", digest=blob_digest) from None
            if head is None:
                raise StoreCorrupt("a stored envelope has no complete head", digest=blob_digest)
            return head.single().identity(self.policy.digest)
        return await asyncio.to_thread(read)

    async def keep(self, header: EnvelopeHeader, identity: str, envelope_sha: str, raw: BinaryIO, plain: BinaryIO,
                   now: dt.datetime) -> bytes:
        """A frame spooled to ``raw`` with this node's payload decrypted to ``plain`` (both verified):
        check the package or notice from the file, keep both as blobs, commit, sign the receipt."""
        plain.seek(0)
        if header.type in PACKAGES:
            doc_id = await asyncio.to_thread(self.check_package, header, plain, now)
        else:
            doc_id = self.check_notice(header, plain.read(MAX_SIGNED_NOTICE_BYTES + 1))
        raw.seek(0)
        plain.seek(0)
        env_ref = await asyncio.to_thread(self.store.blobs.put_sync, raw)
        payload_ref = await asyncio.to_thread(self.store.blobs.put_sync, plain)
        return await self.commit(header, identity, envelope_sha, env_ref, payload_ref, now, doc_id)

    async def commit(self, header: EnvelopeHeader, identity: str, envelope_sha: str, env_ref: BlobRef,
                     payload_ref: BlobRef, now: dt.datetime, doc_id: str | None = None,
                     inline: tuple[tuple[str, bytes], ...] = ()) -> bytes:
        """Sign the receipt and commit the ``received`` row (blobs are already durable, or their bytes
        in ``inline`` commit with the row); ``doc_id``: the 公文标识 the checks read from the payload,
        for the log line."""
        ctx = self.ctx
        receipt = sign_receipt(TransportReceipt(header.message_id, envelope_sha, now, ctx.node_id,
                                                digest_algorithm=header.digest_algorithm),
                               ctx.signer, ctx.intermediates)
        accepted = await self.store.accept_inbound(InboundEnvelope(
            header.message_id, envelope_sha, env_ref.digest, header.origin_node, receipt, header.type.value,
            env_ref.size, payload_ref.digest, identity, inline=inline))
        if accepted.new:
            self.accepted.inc(type=header.type.value)
            self.on_accepted()
            log.info("accepted %s from %s", header.type.value, header.origin_node,
                     extra={"message_id": header.message_id, "origin": header.origin_node, "doc_id": doc_id})
        else:
            self.duplicates.inc()
        return accepted.receipt

    def check_parties(self, header: EnvelopeHeader, hops: int, peer_node: str) -> None:
        check_peer(header, hops, peer_node, self.ctx.router)
        if header.from_unit is not None and not self.ctx.router.hosts(header.origin_node, header.from_unit):
            raise UnitNotHosted(f"node {header.origin_node} does not host unit {header.from_unit}",
                                unit=header.from_unit, node=header.origin_node)
        foreign = [u for u in header.to_units if self.ctx.config.unit(u) is None]
        if foreign:
            raise UnitNotHosted(f"this node does not host {', '.join(foreign)}", units=foreign)

    def check_package(self, header: EnvelopeHeader, package: BinaryIO, now: dt.datetime,
                      digest: str | None = None, data: bytes | None = None,
                      identity: str | None = None) -> str | None:
        """Everything but the PDF's PAdES validation, before acknowledging (``package``: a seekable file);
        returns the package's 公文标识. With ``digest`` (the package's SHA-256) a passing verdict is
        held for this process's processor (:class:`AcceptedPackages`), which then judges only the PDF
        seal. With ``data`` (the package's bytes, held in memory) the check may run in one of the
        node's check processes (:mod:`node.federation.check_pool`): the same verdict, the same errors.
        ``identity``: the envelope's identity digest, held with its header (the processor takes that
        header only for the envelope the store kept under that identity)."""
        trust, token = self.ctx.trust, revocation_token(self.ctx.revocation)  # taken before judging
        pool = self.verdicts.pool if self.verdicts is not None else None
        generation = (pool.generation(trust, token) if pool is not None and digest is not None and data is not None
                      and len(data) <= MAX_PACKAGE_BYTES else None)
        if generation is not None:
            answer = pool.accept(generation, digest, data, now)  # type: ignore[union-attr,arg-type]
            failure, issuers, doc_id = answer.first_failure, answer.issuers, answer.document_id
            held: PackageReport | Held | None = answer.held
            valid = (answer.valid_from, answer.valid_until)
        else:
            report = verify_package(package, trust, now, revocation=self.ctx.revocation, validate_pdf=False,
                                    allow_classified=self.ctx.config.classified_network)
            first = report.failures[0] if report.failures else None
            failure = None if first is None else (first.code, first.name, first.message)
            issuers, doc_id, held, valid = report.issuers, report.document_id, report, None
        if failure is not None:
            code, name, message = failure
            raise error_for_code(code or "PKG_INVALID", f"package refused: {name}: {message}")
        if header.type is not MessageType.FORWARD and (not issuers or issuers[0] != header.from_unit):
            raise UnitNotHosted(f"the package is issued by {issuers[:1]}, the envelope says {header.from_unit}",
                                code="ENV_FROM_UNIT_MISMATCH")
        # 转发 (forward): a unit of the origin sends on a document it received (the seal says who
        # issued it). Addressees the document does not name are the issuer's 补发 (a unit added after
        # sending): who receives its document is the issuer's choice, and only the issuer's node sends it.
        if digest is not None and self.verdicts is not None and held is not None:
            self.verdicts.hold(digest, held, trust, token, valid, header, identity)
        return doc_id

    def check_notice(self, header: EnvelopeHeader, payload: bytes) -> str | None:
        """A malformed notice (or batch of notices) is refused now, not discovered later; returns the
        公文标识 it concerns (None: a relay's bounce, which cannot read it)."""
        if header.type is MessageType.ESCALATE:  # 督办: its own shape; header and payload must agree
            escalation = decode_escalation(payload)
            escalation.check_header(header)
            return escalation.doc_id
        notices = decode_notices(payload)
        for notice in notices:
            if notice.type is not header.type:
                raise NoticeError(f"a {header.type.value} envelope carries a {notice.type.value} notice",
                                  code="NOTICE_TYPE_MISMATCH")
        return notices[0].doc_id if notices else None


class StreamAcceptor:
    """Acceptance of an envelope too large to hold in memory (streamed to temp files).

    The header is judged (signature, trust, parties) as soon as it has arrived, before the payload
    is decrypted; plaintext and raw frame go to temporary files, become blobs only once the GCM tag
    and the payload digest have verified, and the package is checked from its file.
    """

    CHUNK = 256 * 1024

    def __init__(self, acceptor: Acceptor) -> None:
        self.acceptor = acceptor
        self.consumed = 0  # frame bytes taken from the stream (the caller drains the rest on error)

    async def accept(self, prefix: bytes, content, length: int, peer_node: str) -> dict[str, bytes | GwxError]:
        """Accept one frame from ``prefix`` (its whole head) and ``content``; per header its receipt
        or the error refusing it alone."""
        try:
            return await self._accept(prefix, content, length, peer_node)
        except GwxError as exc:
            self.acceptor.refused.inc(code=exc.code)
            raise

    async def _chunks(self, prefix: bytes, content, length: int) -> AsyncIterator[bytes]:
        """The frame's bytes: ``prefix`` (already read), then the rest from ``content``, counted."""
        chunk, remaining = prefix, length
        while True:
            self.consumed += len(chunk)
            yield chunk
            remaining -= len(chunk)
            if remaining <= 0:
                return
            chunk = await content.read(min(self.CHUNK, remaining))
            if not chunk:
                raise EnvelopeTruncated("the connection ended inside an envelope", missing=remaining)

    async def _accept(self, prefix: bytes, content, length: int, peer_node: str) -> dict[str, bytes | GwxError]:
        acceptor, ctx = self.acceptor, self.acceptor.ctx
        destinations = _destinations(prefix, acceptor.policy)
        if destinations is not None and destinations != [ctx.node_id]:
            return await acceptor.relay.accept(self._chunks(prefix, content, length), peer_node,
                                               mine=ctx.node_id in destinations)
        return await self._accept_one(prefix, content, length, peer_node)

    async def _accept_one(self, prefix: bytes, content, length: int, peer_node: str) -> dict[str, bytes]:
        acceptor, ctx = self.acceptor, self.acceptor.ctx
        now = ctx.clock()
        opener = EnvelopeOpener(acceptor.policy, ctx.decryption_keys, ctx.node_id, now)
        sha = digests.new(acceptor.policy.digest)  # the network's: what the receipt binds
        checked = False
        with tempfile.TemporaryFile(dir=acceptor.store.blobs.tmp_dir) as raw, \
                tempfile.TemporaryFile(dir=acceptor.store.blobs.tmp_dir) as plain:
            async for chunk in self._chunks(prefix, content, length):
                sha.update(chunk)
                raw.write(chunk)
                plain.write(opener.feed(chunk))
                if not checked and opener.verified is not None:
                    acceptor.check_parties(opener.mine.header, opener.verified.head.hops, peer_node)
                    checked = True
            opened = opener.close()  # the payload has been checked against its signed digest
            header = opened.header
            envelope_sha = sha.hexdigest()
            if (receipt := await acceptor.seen_before(header, opened.identity_digest, envelope_sha, peer_node)) is not None:
                return {header.message_id: receipt}
            return {header.message_id: await acceptor.keep(header, opened.identity_digest, envelope_sha, raw,
                                                           plain, now)}


def _destinations(head_bytes: bytes, policy) -> list[str] | None:
    """The destination nodes the headers in ``head_bytes`` name (None if the head is not all there
    or not readable: the opener then reads it and refuses what is wrong with it)."""
    decoder = FrameDecoder(policy.limits)
    try:
        decoder.feed(head_bytes)
        if decoder.head is None:
            return None
        return [decode_header(s.header_bytes, policy.limits.max_header).destination_node
                for s in decoder.head.signed]
    except GwxError:
        return None
