"""Mutual TLS between nodes: contexts that trust our network root only, and peer identities.

Both directions present the node's TLS certificate (serverAuth + clientAuth) and require the
other side's, chained to the network root and nothing else (no system CA store). The peer's node
id comes from its certificate (SAN ``urn:gwx:node:ID``); trust and revocation of that certificate
are decided by ``pki.trust`` on each new connection, not by the ssl module, so the same rules
apply to TLS peers as to signatures. A peer issued by an intermediate CA sends the intermediates
in the handshake (its ``tls.crt`` is leaf + chain): :func:`peer_chain` hands them to ``pki.trust``,
since ours are only the intermediates above our own certificates.
"""

from __future__ import annotations

import _ssl
import ssl
from pathlib import Path

from cryptography import x509

from node.errors import NodeError
from pki.certificates import node_id_of
from pki.errors import ErrorKind
from pki.trust import MAX_PATH

TLS_MIN = ssl.TLSVersion.TLSv1_2
MAX_PRESENTED = MAX_PATH + 1  # certificates of a peer's chain worth looking at (leaf + path to the root)


class PeerIdentityError(NodeError):
    """A TLS client certificate this node does not accept as a peer's (untrusted, revoked, not a node)."""

    code = "PEER_IDENTITY"
    kind = ErrorKind.UNAUTHENTICATED


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


def reload_certificate(contexts: list[ssl.SSLContext], cert_path: Path, key_path: Path, passphrase: bytes) -> None:
    """Present the certificate now in ``cert_path`` on every later handshake of ``contexts`` (a renewal,
    no restart; connections already up keep theirs). Tried on a scratch context first, so a file that
    cannot be loaded leaves the contexts as they were (``ssl.SSLError``/``OSError`` raised)."""
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(cert_path), str(key_path), password=passphrase)
    for ctx in contexts:
        ctx.load_cert_chain(str(cert_path), str(key_path), password=passphrase)


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate:
    """The certificate the other side presented on this connection."""
    if ssl_object is None:
        raise PeerIdentityError("connection is not TLS")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerIdentityError("peer presented no certificate")
    return x509.load_der_x509_certificate(der)


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> tuple[x509.Certificate, ...]:
    """The certificates the other side presented on this connection, its own first.

    The rest are untrusted hints (intermediates) for ``pki.trust``, which builds and judges the
    path itself. Python 3.13 exposes the chain as ``get_unverified_chain()``; before that the same
    method lives on the ``_sslobj`` underneath.
    """
    leaf = peer_certificate(ssl_object)
    getter = getattr(ssl_object, "get_unverified_chain", None) \
        or getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    presented = getter() if getter is not None else None
    chain = [leaf]
    for item in (presented or ())[:MAX_PRESENTED]:  # a longer chain could not be a path anyway
        der = item if isinstance(item, bytes) else item.public_bytes(_ssl.ENCODING_DER)
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:  # an undecodable extra certificate is no help in building a path
            continue
        if cert not in chain:
            chain.append(cert)
    return tuple(chain)


def peer_node_id(cert: x509.Certificate) -> str:
    node_id = node_id_of(cert)
    if node_id is None:
        raise PeerIdentityError("peer certificate names no gwx node (no urn:gwx:node: SAN)")
    return node_id
