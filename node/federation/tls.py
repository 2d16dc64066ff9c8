"""Mutual TLS between nodes: contexts that trust our network root only, and peer identities.

Both directions present the node's TLS certificate (serverAuth + clientAuth) and require the
other side's, chained to the network root and nothing else (no system CA store). The peer's node
id comes from its certificate (SAN ``urn:gwx:node:ID``); trust and revocation of that certificate
are decided by ``pki.trust`` on each new connection, not by the ssl module, so the same rules
apply to TLS peers as to signatures.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509

from node.errors import NodeError
from pki.ca import node_id_of

TLS_MIN = ssl.TLSVersion.TLSv1_2


class PeerIdentityError(NodeError):
    code = "PEER_IDENTITY"


def server_context(cert_path: Path, key_path: Path, root_path: Path, passphrase: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_MIN
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(root_path))
    ctx.load_cert_chain(str(cert_path), str(key_path), password=passphrase)
    return ctx


def client_context(cert_path: Path, key_path: Path, root_path: Path, passphrase: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = TLS_MIN
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.load_verify_locations(cafile=str(root_path))
    ctx.load_cert_chain(str(cert_path), str(key_path), password=passphrase)
    return ctx


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate:
    """The certificate the other side presented on this connection."""
    if ssl_object is None:
        raise PeerIdentityError("connection is not TLS")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerIdentityError("peer presented no certificate")
    return x509.load_der_x509_certificate(der)


def peer_node_id(cert: x509.Certificate) -> str:
    node_id = node_id_of(cert)
    if node_id is None:
        raise PeerIdentityError("peer certificate names no gwx node (no urn:gwx:node: SAN)")
    return node_id
