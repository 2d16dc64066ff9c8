"""The peer API: what other nodes call, over mutual TLS only, under ``/peer/v1``.

* ``GET /node`` — this node's signing and encryption certificates (and intermediates), so a
  sender can encrypt for us; canonical JSON.
* ``GET /health`` — liveness for peers.
* ``GET /directory`` — the signed network directory this node holds (``NODE_DIR/directory.json``),
  as installed: whoever fetches it verifies it (:func:`exchange_protocol.directory_signing.verify_directory`).
  Its ETag is the SHA-256 of the file; ``If-None-Match`` with it answers 304 and no body, so a child
  polling its parent costs a few hundred bytes while nothing changed. 404 ``NODE_NO_DIRECTORY``
  while none is installed.
* ``GET /crl`` and ``POST /ocsp`` — the CRL this node holds (ETag, 304) and, on the root node, OCSP
  answers: :mod:`node.federation.revocation_api`.
* ``POST /envelopes`` — one or more envelope frames back to back (``application/vnd.gwx.envelope``,
  ``Content-Length`` required). Frames up to :data:`SMALL_FRAME` bytes are read whole and accepted
  concurrently (their commits group); larger frames are streamed (:class:`~node.federation.acceptor.StreamAcceptor`).
  The answer (:mod:`exchange_protocol.batch_answer`, the one encoder) lists, in frame order and
  within a frame in header order (a fan-out bundle carries several headers), either the signed
  transport receipt or a typed refusal for each header; a frame that cannot even be
  delimited ends the batch: the answers before it, then its refusal (status of that refusal). A
  peer that hangs up before the body it announced has arrived is :class:`PeerHungUp`: one log
  line, nothing of the frame it cut off kept or acknowledged (frames it sent whole before are, as
  for any broken batch).
* ``POST /tsa`` — RFC 3161 time-stamps, on the node holding the network's TSA signer (the root
  node): :mod:`node.federation.tsa_api`.
* ``GET /messages/{message_id}/whereabouts?depth=N`` — where a message this node holds for others
  is (queued here for which hop, handed on when, delivered here), following it up to ``depth``
  hops further (:mod:`node.federation.whereabouts`, which says who may ask): routing facts only.
  A malformed id is 400 ``API_BAD_MESSAGE_ID``; an id this node does not hold for the asker, 404.

Every request first passes :func:`peer_identity`: the client certificate must chain to our root for
TLS client use and not be revoked (``pki.trust`` + the node's CRL); its node id is what the
envelope's origin must match. On the revocation routes a stale CRL of ours does not refuse the
peer (only a CRL listing its certificate does): a child must get the CRL we hold however old ours
is, and we must not refuse the fetch that would cure our own (``ReloadingCrlChecker.revoked_only``).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from exchange_protocol.batch_answer import FrameAnswer, Refusal, encode_batch_answer, encode_refusal
from exchange_protocol.canonical import canonical_json
from exchange_protocol.envelope import decode_header
from exchange_protocol.errors import EnvelopeRevocationUnknown, EnvelopeTooLarge, EnvelopeTruncated
from exchange_protocol.frame import FIXED_LEN, prefix_length, read_layout
from node.config import MAX_BATCH
from node.context import NodeContext
from node.error_kinds import http_status_for
from node.errors import ApiError, NodeError, NodeUnavailable, NoDirectory
from node.federation.acceptor import Acceptor, StreamAcceptor
from node.federation.revocation_api import RevocationService, add_routes, conditional
from node.federation.tls import PeerIdentityError, peer_chain, peer_node_id
from node.federation.transport import ENVELOPE_MEDIA_TYPE
from node.federation.tsa_api import TimeStampService, add_tsa_route
from node.federation.whereabouts import Whereabouts, check_message_id
from pki.certificates import pem
from pki.errors import ErrorKind, GwxError, RevocationUnknown
from pki.trust import Purpose, verify_certificate

log = logging.getLogger("gwx.peer_api")

SMALL_FRAME = 4 * 1024 * 1024
MAX_FRAMES = MAX_BATCH
PEER_NODE = "gwx.peer_node"
REVOCATION_ROUTES = ("/peer/v1/crl", "/peer/v1/ocsp")

CONTEXT = web.AppKey("context", NodeContext)
ACCEPTOR = web.AppKey("acceptor", Acceptor)
WHEREABOUTS = web.AppKey("whereabouts", Whereabouts)
DRAINING = web.AppKey("draining", asyncio.Event)  # set: shutting down, refuse new envelopes


# What reading a request body raises when the peer goes away: the socket reset or closed, or
# aiohttp's parser finding the payload shorter than its Content-Length.
_HANG_UPS = (ConnectionError, HttpProcessingError)


class PeerHungUp(NodeError):
    """The peer closed the connection before the request body it announced had arrived."""

    code = "PEER_HUNG_UP"
    kind = ErrorKind.TRANSIENT  # a cut connection, not a verdict on the envelope: sent again, it may pass


class PeerBody:
    """The request body as the frame readers see it (``read(n)``): however the peer goes away
    mid-body — a reset, a close, a short payload — it is one typed :class:`PeerHungUp`."""

    def __init__(self, content, announced: int) -> None:
        self._content = content
        self.announced = announced
        self.received = 0
        self.frame: str | None = None  # the message id of the frame being read, once its header is in

    async def read(self, n: int = -1) -> bytes:
        try:
            chunk = await self._content.read(n)
        except _HANG_UPS as exc:
            raise self._hung_up(type(exc).__name__) from None
        if not chunk and n != 0 and self.received < self.announced:
            raise self._hung_up("end of stream")
        self.received += len(chunk)
        return chunk

    def _hung_up(self, how: str) -> PeerHungUp:
        return PeerHungUp(f"the peer hung up after {self.received} of the {self.announced} bytes it announced "
                          f"({how})", received=self.received, announced=self.announced)


def error_response(exc: GwxError) -> web.Response:
    return web.Response(body=encode_refusal(Refusal.of(exc)), status=http_status_for(exc),
                        content_type="application/json")


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except GwxError as exc:
        log.warning("peer request refused: %s", exc, extra={"peer": request.get(PEER_NODE), "code": exc.code})
        return error_response(exc)
    except web.HTTPException as exc:
        return web.Response(body=encode_refusal(Refusal(f"API_HTTP_{exc.status}", exc.reason or "")),
                            status=exc.status, content_type="application/json")


@web.middleware
async def peer_identity(request: web.Request, handler):
    ctx = request.app[CONTEXT]
    chain = peer_chain(request.transport.get_extra_info("ssl_object") if request.transport else None)
    cert = chain[0]
    revocation = ctx.revocation.revoked_only if request.path in REVOCATION_ROUTES else ctx.revocation
    try:
        # The peer's own intermediates (from the handshake) first: it may hang under another branch.
        verify_certificate(cert, ctx.tls_roots, ctx.clock(), (*chain[1:], *ctx.intermediates), Purpose.TLS_CLIENT,
                           revocation)
    except RevocationUnknown as exc:
        # Our CRL cannot tell (stale, missing): our problem, not the peer's — a transient 503 that
        # names it, never a 403 that blames the peer's certificate (docs/architecture.md).
        raise EnvelopeRevocationUnknown(f"{ctx.node_id} cannot check revocation right now ({exc.message}); "
                                        f"{_who_cures(ctx)} — try again later",
                                        cause=exc.code) from None
    except GwxError as exc:
        raise PeerIdentityError(f"peer certificate refused: {exc.message}", cause=exc.code) from None
    request[PEER_NODE] = peer_node_id(cert)
    return await handler(request)


def _who_cures(ctx: NodeContext) -> str:
    parent = ctx.config.parent
    if parent is not None:
        return f"it fetches a current CRL from its parent {parent.node_id} by itself"
    return "its CA operator must publish a current CRL (gwx pki crl) into the root node's crl.pem"


async def node_info(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    enc_pem = pem(ctx.decryption_key.certificate).decode()
    body = canonical_json({"node_id": ctx.node_id, "signing_cert": pem(ctx.signer.certificate).decode(),
                           "encryption_cert": enc_pem, "chain": [pem(c).decode() for c in ctx.intermediates]})
    return web.Response(body=body, content_type="application/json")


async def network_directory(request: web.Request) -> web.Response:
    path = request.app[CONTEXT].config.network_directory_path
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise NoDirectory("this node holds no network directory") from None
    return conditional(request, data, "application/json")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "node_id": request.app[CONTEXT].node_id})


async def whereabouts(request: web.Request) -> web.Response:
    message_id = check_message_id(request.match_info["message_id"])
    ctx = request.app[CONTEXT]
    raw = request.query.get("depth", "1")
    if not raw.isdigit() or not 0 <= int(raw) <= ctx.config.limits.max_hops:
        raise ApiError(f"depth must be a whole number 0..{ctx.config.limits.max_hops}", code="API_BAD_PARAMETER",
                       field="depth")
    answer = await request.app[WHEREABOUTS].answer_peer(request[PEER_NODE], message_id, int(raw))
    return web.Response(body=canonical_json(answer), content_type="application/json")


async def envelopes(request: web.Request) -> web.Response:
    if request.app[DRAINING].is_set():
        raise NodeUnavailable("this node is shutting down; try again shortly", code="NODE_SHUTTING_DOWN")
    ctx, acceptor = request.app[CONTEXT], request.app[ACCEPTOR]
    peer = request[PEER_NODE]
    if request.content_type != ENVELOPE_MEDIA_TYPE:
        raise ApiError(f"envelopes are sent as {ENVELOPE_MEDIA_TYPE}, not {request.content_type}",
                       code="API_UNSUPPORTED_MEDIA_TYPE")
    if request.content_length is None:
        raise ApiError("Content-Length is required", code="API_LENGTH_REQUIRED")
    cap = ctx.config.limits.max_envelope_bytes * 2
    if request.content_length > cap:
        raise EnvelopeTooLarge(f"request of {request.content_length} bytes exceeds {cap}")
    body = PeerBody(request.content, request.content_length)
    limits = acceptor.policy.limits
    pending: list[asyncio.Future] = []
    try:
        await _read_frames(body, limits, acceptor, peer, pending)
    except PeerHungUp as exc:
        # Nobody is left to answer. Frames read whole before the hang-up are accepted as usual (the
        # sender's retry gets their original receipts); the one cut off was never acknowledged.
        await asyncio.gather(*pending)
        log.warning("peer %s hung up in the middle of a request: %s", peer, exc.message,
                    extra={"peer": peer, "code": exc.code, "message_id": body.frame})
        return error_response(exc)
    except GwxError as exc:
        if not pending:
            raise
        # Frames before the one that broke the stream were accepted (and committed): answer them,
        # and the break. The sender sees fewer results than frames, a transient protocol error, and
        # retries — getting the original receipts for the accepted ones — rather than bouncing them.
        answers = [a for frame in await asyncio.gather(*pending) for a in frame]
        return web.Response(body=encode_batch_answer([*answers, FrameAnswer(None, refusal=Refusal.of(exc))]),
                            status=http_status_for(exc), content_type="application/json")
    answers = [a for frame in await asyncio.gather(*pending) for a in frame]
    return web.Response(body=encode_batch_answer(answers), content_type="application/json")


async def _read_frames(content: PeerBody, limits, acceptor: Acceptor, peer: str, pending: list[asyncio.Future]) -> None:
    while fixed := await _read_exactly(content, FIXED_LEN):
        if len(pending) >= MAX_FRAMES:
            raise ApiError(f"more than {MAX_FRAMES} envelopes in one request", code="API_TOO_MANY_FRAMES")
        # A bad prefix (fixed part or header table): the stream cannot be resynchronised.
        prefix = fixed + await _read_exactly(content, prefix_length(fixed, limits) - FIXED_LEN)
        layout = read_layout(prefix, limits)
        length = layout.frame_length
        head = prefix + await _read_exactly(content, layout.lengths[0][0])  # the first header: its message id
        content.frame = _peek_message_id(head[layout.table_end:])  # named if the peer hangs up from here on
        head += await _read_exactly(content, layout.head_length - len(head))  # every other header
        message_ids = [_peek_message_id(s.header_bytes) for s in layout.signed_headers(head)]
        if length <= SMALL_FRAME:
            rest = await _read_exactly(content, length - len(head))
            if len(head) + len(rest) != length:
                raise EnvelopeTruncated("the request ends inside an envelope")
            pending.append(asyncio.ensure_future(_outcomes(message_ids, peer,
                                                           acceptor.accept_frame(head + rest, peer))))
        else:  # streamed: it must be consumed before the next frame can be read
            streamer = StreamAcceptor(acceptor)
            outcomes = await _outcomes(message_ids, peer, streamer.accept(head, content, length, peer))
            await _discard(content, length - streamer.consumed)  # nothing left if it was read whole
            pending.append(asyncio.ensure_future(_done(outcomes)))


async def _outcomes(message_ids: list[str | None], peer: str, accepting) -> list[FrameAnswer]:
    """One answer per header of a frame: its receipt, or the frame's refusal (a frame is accepted or
    refused whole)."""
    try:
        receipts = await accepting
    except PeerHungUp:
        raise  # not a verdict on the envelope: the request handler logs it once
    except GwxError as exc:
        # The operator must see who was refused and why (a revoked signer, a forged unit…).
        log.warning("envelope %s from %s refused: %s", message_ids[0], peer, exc,
                    extra={"message_id": message_ids[0], "peer": peer, "code": exc.code, "headers": len(message_ids)})
        return [FrameAnswer(m, refusal=Refusal.of(exc)) for m in message_ids]
    except Exception:
        log.exception("unexpected error accepting an envelope", extra={"message_id": message_ids[0]})
        return [FrameAnswer(m, refusal=Refusal("INTERNAL", "internal error")) for m in message_ids]
    # Judged header by header: every header, so every id, was read.
    answers = []
    for m in message_ids:
        outcome = receipts[m]  # type: ignore[index]
        if isinstance(outcome, GwxError):
            log.warning("envelope %s from %s refused: %s", m, peer, outcome,
                        extra={"message_id": m, "peer": peer, "code": outcome.code})
            answers.append(FrameAnswer(m, refusal=Refusal.of(outcome)))
        else:
            answers.append(FrameAnswer(m, receipt=outcome))
    return answers


async def _done(value: list[FrameAnswer]) -> list[FrameAnswer]:
    return value


def _peek_message_id(header_bytes: bytes) -> str | None:
    try:
        return decode_header(header_bytes).message_id
    except GwxError:
        return None


async def _discard(content, n: int) -> None:
    while n > 0 and (chunk := await content.read(min(n, 1024 * 1024))):
        n -= len(chunk)


async def _read_exactly(content, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await content.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def make_peer_app(ctx: NodeContext, acceptor: Acceptor, where: Whereabouts,
                  revocation: RevocationService | None = None,
                  time_stamps: TimeStampService | None = None) -> web.Application:
    app = web.Application(middlewares=[errors_middleware, peer_identity], client_max_size=1024 * 1024)
    app[CONTEXT] = ctx
    app[ACCEPTOR] = acceptor
    app[DRAINING] = asyncio.Event()
    app[WHEREABOUTS] = where
    app.router.add_get("/peer/v1/node", node_info)
    app.router.add_get("/peer/v1/health", health)
    app.router.add_get("/peer/v1/directory", network_directory)
    app.router.add_post("/peer/v1/envelopes", envelopes)
    app.router.add_get("/peer/v1/messages/{message_id}/whereabouts", whereabouts, allow_head=False)
    add_routes(app, revocation or RevocationService(ctx), "/peer/v1")
    add_tsa_route(app, time_stamps or TimeStampService(ctx), "/peer/v1")
    return app
