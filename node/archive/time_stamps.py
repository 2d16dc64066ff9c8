"""Where a node gets the RFC 3161 time-stamps of its archive packages, and the check before use.

In order: this node's own TSA signer (``[archive] tsa_signer``: it is the network's TSA); the node
named by ``[archive] tsa_node`` / ``tsa_url``; the root node of the signed network directory held
(its first URL). Requests go over the peer API's mutual TLS (``POST /peer/v1/tsa``,
:mod:`node.federation.tsa_api`). None of them: ``ARCHIVE_NO_TSA``.

The token that comes back is checked before it goes into an archive: it answers this request (the
imprint and the nonce), and its TSA certificate is a time-stamping certificate under the network's
root — an archive whose own time-stamp would not verify is never written.
"""

from __future__ import annotations

import asyncio

from node.config import Peer
from node.context import NodeContext
from node.errors import ArchiveNoTsa
from node.federation.transport import PeerClient
from node.federation.tsa_api import TimeStampService
from pki import tsa


class TimeStamps:
    def __init__(self, ctx: NodeContext, client: PeerClient, local: TimeStampService) -> None:
        self.ctx = ctx
        self.client = client
        self.local = local

    def where(self) -> Peer | None:
        """The TSA node asked (None: this node signs itself); ``ARCHIVE_NO_TSA`` when there is none."""
        if self.local.configured:
            return None
        settings = self.ctx.config.archive
        if settings.tsa_node is not None and settings.tsa_url is not None:
            return Peer(settings.tsa_node, settings.tsa_url)
        directory = getattr(self.ctx.router, "directory", lambda: None)()
        if directory is not None:
            root = next((n for n in directory.nodes if n.parent is None), None)
            if root is not None and root.urls and root.id != self.ctx.node_id:
                return Peer(root.id, root.urls[0].rstrip("/"))
        raise ArchiveNoTsa(f"{self.ctx.node_id} has no time-stamping authority to ask: name one in node.toml "
                           "([archive] tsa_node and tsa_url: the root node), install a TSA signer ([archive] "
                           "tsa_signer) or hold the network directory (its root node time-stamps)")

    async def token_for(self, data: bytes, hash_name: str = "sha256") -> tuple[bytes, tsa.TimeStamp]:
        """A verified TimeStampToken over ``data``'s digest ``hash_name`` (the network's: SHA-256, or
        SM3 on a 国密 network) and what it asserts."""
        digest = tsa.make_imprint(hash_name, data)
        nonce = tsa.random_serial()
        request = tsa.make_request(digest=digest, hash_name=hash_name, nonce=nonce, cert_req=True)
        peer = self.where()
        if peer is None:
            response = await asyncio.to_thread(self.local.answer, request)
        else:
            response = await self.client.time_stamp(peer, request)
        token = tsa.token_from_response(response)
        stamp = await asyncio.to_thread(tsa.verify_token, token, digest=digest, trust_roots=self.ctx.trust,
                                        nonce=nonce, tsa_certificates=self.ctx.intermediates)
        return token, stamp

