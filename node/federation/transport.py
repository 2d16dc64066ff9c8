"""The client side of the peer protocol: mutual TLS, one keep-alive session per peer node.

Wire (all under the peer's ``/peer/v1``; the peer API module documents the server side):

* ``GET /node`` → canonical JSON ``{"node_id", "signing_cert", "encryption_cert", "chain": [PEM…]}``;
  we verify the certificates against our roots (signing / encryption purposes) and that they, and
  the TLS certificate the server presented, all name the node we meant to reach.
* ``POST /envelopes`` with a body of one or more envelope frames back to back (frames are
  self-delimiting) → the batch answer of :mod:`exchange_protocol.batch_answer` (one decoder, the
  format documented there): per frame in order a signed transport receipt or a typed refusal,
  possibly partial, or a refusal of the whole request. A batch is streamed from the blob files:
  nothing is held whole in memory.

Failures are typed by what the sender should do next: :class:`PeerUnreachable` and
:class:`PeerServerError` are transient (retry with backoff); :class:`PeerIdentityMismatch` means a
misconfigured peer (retried too). A per-envelope error carries the peer's code, and the kind of that
code decides between retrying and bouncing the envelope (:func:`node.error_kinds.gives_up_on_code`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from cryptography import x509

from exchange_protocol.batch_answer import BatchAnswer, answers_for, decode_batch_answer
from exchange_protocol.errors import BatchAnswerInvalid
from node.config import Peer
from node.errors import NodeError
from node.federation.tls import peer_chain
from node.ops.metrics import Counter, Registry
from pki.certificates import load_certificate, load_certificates, node_id_of
from pki.errors import CODE_FORMAT, ErrorKind, GwxError
from pki.trust import Purpose, TrustStore, verify_certificate

ENVELOPE_MEDIA_TYPE = "application/vnd.gwx.envelope"
CHUNK = 256 * 1024
MAX_BATCH_ANSWER = 16 * 1024 * 1024  # a batch answer's receipts are ~2.5 KB each; far above any batch
MAX_NODE_INFO = 256 * 1024  # GET /peer/v1/node: two certificates and a chain
MAX_DIRECTORY_FILE = 64 * 1024**2  # GET /peer/v1/directory: exchange_protocol refuses what is larger still
MAX_CRL_FILE = 64 * 1024**2  # GET /peer/v1/crl: ~40 bytes per revoked certificate, every CA's CRL

# Judges a server's TLS certificate, given the intermediates it presented (raises a typed error to refuse it).
ServerJudge = Callable[[x509.Certificate, Sequence[x509.Certificate]], None]


class PeerUnreachable(NodeError):
    code = "PEER_UNREACHABLE"
    kind = ErrorKind.TRANSIENT


class PeerServerError(NodeError):
    """The peer answered 5xx or 429: its trouble, not the envelope's. (An answer that is not a batch
    answer is a :class:`PeerProtocolError`.)"""

    code = "PEER_SERVER_ERROR"
    kind = ErrorKind.TRANSIENT


class PeerRefused(PeerServerError):
    """The peer refused a whole request (5xx, 429) and said why: the error carries the peer's own
    code (``ENV_REVOCATION_UNKNOWN`` when its CRL is stale …), so the sender's status names the reason
    rather than a bare status; transient like its base, whatever the peer's code."""

    code = "PEER_REFUSED"  # when the peer's answer names no code of its own
    kind = ErrorKind.TRANSIENT


class PeerIdentityMismatch(NodeError):
    """The server reached is not the node we meant, or its certificate is refused: we could not
    establish who answers. An operator fixes the peer's configuration; the envelope is not at fault."""

    code = "PEER_IDENTITY_MISMATCH"
    kind = ErrorKind.UNAUTHENTICATED


class PeerProtocolError(NodeError):
    """An answer we cannot read (no result list, a receipt that is not base64, unreadable certificates)."""

    code = "PEER_PROTOCOL_ERROR"
    kind = ErrorKind.TRANSIENT


@dataclass(frozen=True)
class PeerCredentials:
    node_id: str
    signing_certificate: x509.Certificate
    encryption_certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class OutgoingFrame:
    """One frame to send: its first header's message id, and those of the other headers of a bundle."""

    message_id: str
    path: Path
    size: int
    also: tuple[str, ...] = ()

    @property
    def message_ids(self) -> tuple[str, ...]:
        return (self.message_id, *self.also)


@dataclass(frozen=True)
class FrameResult:
    message_id: str
    receipt: bytes | None = None
    error_code: str | None = None
    error_message: str | None = None


def verify_peer_credentials(node_id: str, signing_pem: str, encryption_pem: str, chain_pems: Sequence[str],
                            trust: TrustStore, now, revocation=None) -> PeerCredentials:
    try:
        sign = load_certificate(signing_pem.encode())
        enc = load_certificate(encryption_pem.encode())
        chain = tuple(c for pem in chain_pems for c in load_certificates(pem.encode()))
    except (GwxError, AttributeError) as exc:
        raise PeerProtocolError(f"peer {node_id} sent unreadable certificates: {exc}") from None
    return judge_credentials(node_id, sign, enc, chain, trust, now, revocation)


def judge_credentials(node_id: str, sign: x509.Certificate, enc: x509.Certificate,
                      chain: Sequence[x509.Certificate], trust: TrustStore, now, revocation=None) -> PeerCredentials:
    """A node's signing and encryption certificates, judged now (chain, purpose, revocation, node id),
    wherever they came from: the node itself or the network directory."""
    chain = tuple(chain)
    verify_certificate(sign, trust, now, chain, Purpose.SIGNING, revocation)
    verify_certificate(enc, trust, now, chain, Purpose.ENCRYPTION, revocation)
    for cert in (sign, enc):
        if node_id_of(cert) != node_id:
            raise PeerIdentityMismatch(f"peer certificates name node {node_id_of(cert)!r}, expected {node_id!r}",
                                       expected=node_id)
    return PeerCredentials(node_id, sign, enc, chain)


class _NodeConnector(aiohttp.TCPConnector):
    """A connector that judges, once per new TLS connection, the server we reached.

    Hostname verification (done by ``ssl``) proves the address; ``judge`` (``pki.trust`` with the
    node's CRL) decides the certificate as for any other peer, and the node identity in it
    (``urn:gwx:node:ID``) must be the node we meant — what matters when nodes share a host.
    """

    def __init__(self, expected_node: str, judge: ServerJudge | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self._expected = expected_node
        self._judge = judge

    async def _wrap_create_connection(self, *args, **kwargs):
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        try:
            chain = peer_chain(transport.get_extra_info("ssl_object"))
            cert = chain[0]
            if self._judge is not None:
                self._judge(cert, chain[1:])
        except GwxError as exc:
            transport.close()
            raise PeerIdentityMismatch(f"server certificate of {self._expected} refused: {exc.message}",
                                       peer=self._expected, cause=exc.code) from None
        if node_id_of(cert) != self._expected:
            transport.close()
            raise PeerIdentityMismatch(f"server presented a certificate for node {node_id_of(cert)!r}, "
                                       f"not {self._expected!r}", peer=self._expected)
        return transport, protocol


class PeerClient:
    """HTTP client for all peers; one connection pool (keep-alive) per peer node."""

    def __init__(self, ssl_context: ssl.SSLContext, *, judge: ServerJudge | None = None,
                 connect_timeout: float = 10.0, read_timeout: float = 120.0, registry: Registry | None = None) -> None:
        self._ssl = ssl_context
        self._judge = judge
        # What this node puts on its uplink: the envelope bytes of every POST, resends included
        # (HTTP headers and TLS framing left out). A fan-out's cost at the origin shows here.
        self._bytes_sent = (registry or Registry()).counter(
            "gwx_peer_bytes_sent_total", "Envelope bytes sent to peer nodes (request bodies, resends included)",
            labels=("peer",))
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._retiring: set[aiohttp.ClientSession] = set()
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        self._read_timeout = read_timeout

    def _session(self, peer: Peer) -> aiohttp.ClientSession:
        session = self._sessions.get(peer.node_id)
        if session is None or session.closed:
            connector = _NodeConnector(peer.node_id, self._judge, ssl=self._ssl, limit=4, keepalive_timeout=120)
            session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._sessions[peer.node_id] = session
        return session

    async def close(self) -> None:
        for session in (*self._sessions.values(), *self._retiring):
            await session.close()
        self._sessions.clear()
        self._retiring.clear()

    def renew_connections(self) -> None:
        """Our TLS certificate changed (a renewal): later requests open new connections, which present
        it; the pooled ones finish what they carry and are closed once a read would have timed out."""
        loop = asyncio.get_running_loop()
        for session in self._sessions.values():
            self._retiring.add(session)
            loop.call_later(self._read_timeout + 30, lambda s=session: loop.create_task(self._retire(s)))
        self._sessions.clear()

    async def _retire(self, session: aiohttp.ClientSession) -> None:
        if session in self._retiring:
            self._retiring.discard(session)
            await session.close()

    async def fetch_credentials(self, peer: Peer, trust: TrustStore, now, revocation=None) -> PeerCredentials:
        try:
            async with self._session(peer).get(f"{peer.url}/peer/v1/node") as resp:
                body = await _read_body(resp, peer, MAX_NODE_INFO)
                if resp.status != 200:
                    raise _refused(peer, resp.status, body, "GET /peer/v1/node")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnreachable(f"cannot reach {peer.node_id} at {peer.url}: {exc or type(exc).__name__}",
                                  peer=peer.node_id) from None
        try:
            info = json.loads(body)
            return verify_peer_credentials(peer.node_id, info["signing_cert"], info["encryption_cert"],
                                           info.get("chain", []), trust, now, revocation)
        except (ValueError, KeyError, TypeError) as exc:
            raise PeerProtocolError(f"{peer.node_id} sent malformed node information: {exc}") from None

    async def fetch_directory(self, peer: Peer, etag: str | None) -> tuple[bytes | None, str | None]:
        """GET the peer's signed network directory, conditionally: (None, etag) when it still holds
        the copy ``etag`` names (304), else (the file, its new ETag). Judging it is the caller's."""
        return await self._fetch_conditional(peer, "/peer/v1/directory", etag, MAX_DIRECTORY_FILE)

    async def fetch_crl(self, peer: Peer, etag: str | None) -> tuple[bytes | None, str | None]:
        """GET the CRLs the peer holds (``/peer/v1/crl``), conditionally, as :meth:`fetch_directory`."""
        return await self._fetch_conditional(peer, "/peer/v1/crl", etag, MAX_CRL_FILE)

    async def _fetch_conditional(self, peer: Peer, path: str, etag: str | None,
                                 limit: int) -> tuple[bytes | None, str | None]:
        try:
            async with self._session(peer).get(f"{peer.url}{path}",
                                               headers={"If-None-Match": etag} if etag else {}) as resp:
                body = await _read_body(resp, peer, limit)
                if resp.status == 304:
                    return None, etag
                if resp.status != 200:
                    raise _refused(peer, resp.status, body, f"GET {path}")
                return body, resp.headers.get("ETag")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnreachable(f"cannot reach {peer.node_id} at {peer.url}: {exc or type(exc).__name__}",
                                  peer=peer.node_id) from None

    async def fetch_whereabouts(self, peer: Peer, message_id: str, depth: int, timeout: float) -> dict:
        """GET where ``peer`` says message ``message_id`` is (:mod:`node.federation.whereabouts`),
        asking it to follow the message ``depth`` hops further; gives up after ``timeout`` seconds."""
        try:
            async with self._session(peer).get(f"{peer.url}/peer/v1/messages/{message_id}/whereabouts",
                                               params={"depth": str(depth)},
                                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                body = await _read_body(resp, peer, MAX_NODE_INFO)
                if resp.status != 200:
                    raise _refused(peer, resp.status, body, "GET /peer/v1/messages/…/whereabouts")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnreachable(f"cannot reach {peer.node_id} at {peer.url}: {exc or type(exc).__name__}",
                                  peer=peer.node_id) from None
        try:
            answer = json.loads(body)
            if not isinstance(answer, dict) or not isinstance(answer.get("stops"), list):
                raise ValueError("no list of stops")
            return answer
        except ValueError as exc:
            raise PeerProtocolError(f"{peer.node_id} sent a malformed whereabouts answer: {exc}") from None

    async def time_stamp(self, peer: Peer, request_der: bytes, timeout: float = 30.0) -> bytes:
        """POST an RFC 3161 TimeStampReq to ``peer``'s TSA (``/peer/v1/tsa``); the DER TimeStampResp.
        Judging the token is the caller's (:func:`pki.tsa.verify_token`)."""
        try:
            async with self._session(peer).post(f"{peer.url}/peer/v1/tsa", data=request_der,
                                                headers={"Content-Type": "application/timestamp-query"},
                                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                body = await _read_body(resp, peer, MAX_NODE_INFO)
                if resp.status != 200:
                    raise _refused(peer, resp.status, body, "POST /peer/v1/tsa")
                return body
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnreachable(f"cannot reach the TSA {peer.node_id} at {peer.url}: {exc or type(exc).__name__}",
                                  peer=peer.node_id) from None

    async def send_frames(self, peer: Peer, frames: Sequence[OutgoingFrame]) -> list[FrameResult]:
        """POST a batch; return one result per header of each frame (in order), or raise a transient error."""
        total = sum(f.size for f in frames)
        try:
            async with self._session(peer).post(
                    f"{peer.url}/peer/v1/envelopes", data=_stream(frames, peer.node_id, self._bytes_sent),
                    headers={"Content-Type": ENVELOPE_MEDIA_TYPE, "Content-Length": str(total),
                             "X-Gwx-Frames": str(len(frames))}) as resp:
                body = await _read_body(resp, peer, MAX_BATCH_ANSWER)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise PeerUnreachable(f"cannot deliver to {peer.node_id}: {exc or type(exc).__name__}",
                                  peer=peer.node_id) from None
        if status >= 500 or status == 429:
            raise _refused(peer, status, body, "POST /peer/v1/envelopes")
        try:
            ids = [m for f in frames for m in f.message_ids]
            answer = decode_batch_answer(body, max_answers=len(ids))
        except BatchAnswerInvalid as exc:
            raise PeerProtocolError(f"{peer.node_id} answered {status} with {exc.message}", peer=peer.node_id,
                                    status=status, cause=exc.code) from None
        if not isinstance(answer, BatchAnswer):
            if len(frames) > 1:
                # The whole request was refused (413, a frame that broke the stream…): judge each
                # envelope on its own rather than let one condemn its batch.
                return [r for f in frames for r in await self.send_frames(peer, [f])]
            return [FrameResult(m, error_code=answer.code, error_message=answer.message) for m in ids]
        # A frame the peer did not answer (the stream broke before it) is tried again; what it
        # answered before the break is kept.
        return [FrameResult(a.message_id, receipt=a.receipt) if a.refusal is None  # type: ignore[arg-type]
                else FrameResult(a.message_id, error_code=a.refusal.code,  # type: ignore[arg-type]
                                 error_message=a.refusal.message)
                for a in answers_for(ids, answer)]


def _refused(peer: Peer, status: int, body: bytes, what: str) -> PeerRefused:
    """The peer's own word (its error code and message) in the error the sender records, so the
    operator's status says why the peer refuses — not just a bare HTTP status. The peer's code, when
    it gave one, is the code recorded (ENV_REVOCATION_UNKNOWN says more than PEER_SERVER_ERROR); the
    class keeps it transient for the queues."""
    try:
        error = json.loads(body).get("error")
        code, message = str(error["code"])[:100], str(error.get("message") or "")[:1000]
    except (ValueError, AttributeError, TypeError, KeyError):
        code, message = None, ""
    return PeerRefused(f"{peer.node_id} answered {status} to {what}" + (f": {message}" if message else ""),
                       code=code if code and CODE_FORMAT.fullmatch(code) else None, peer=peer.node_id, status=status)


async def _read_body(resp: aiohttp.ClientResponse, peer: Peer, limit: int) -> bytes:
    """The whole body, however many TCP reads it arrives in, refused past ``limit`` bytes.

    (``resp.content.read(n)`` returns what has arrived so far, not ``n`` bytes: a 150 KB batch
    answer came back cut, read as malformed, and was retried for ever.)"""
    if resp.content_length is not None and resp.content_length > limit:
        raise PeerProtocolError(f"{peer.node_id} answered with {resp.content_length} bytes, over {limit}",
                                peer=peer.node_id, status=resp.status)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise PeerProtocolError(f"{peer.node_id} answered with more than {limit} bytes",
                                    peer=peer.node_id, status=resp.status)
    return bytes(body)


async def _stream(frames: Sequence[OutgoingFrame], peer: str, sent: Counter) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    for frame in frames:
        with open(frame.path, "rb") as f:
            while chunk := await loop.run_in_executor(None, f.read, CHUNK):
                yield chunk
                sent.inc(len(chunk), peer=peer)  # once the connection has taken it
