"""Mutual TLS between nodes: contexts that trust our network root only, and peer identities.

Both directions present the node's TLS certificate (serverAuth + clientAuth) and require the
other side's, chained to the network root and nothing else (no system CA store). The peer's node
id comes from its certificate (SAN ``urn:gwx:node:ID``); trust and revocation of that certificate
are decided by ``pki.trust`` on each new connection, not by the ssl module, so the same rules
apply to TLS peers as to signatures. A peer issued by an intermediate CA sends the intermediates
in the handshake (its ``tls.crt`` is leaf + chain): :func:`peer_chain` hands them to ``pki.trust``,
since ours are only the intermediates above our own certificates.

A node's start makes both of its contexts from one decryption of ``tls.key``
(:func:`node_contexts`): the key is stretched with 100,000 PBKDF2 rounds (``pki.keystore``), ~20 ms of
CPU each time it is decrypted, and ``ssl`` loads a key from a file only. The key is decrypted once and
handed to each context through an anonymous in-memory file (``memfd_create``, Linux): it never
reaches a disk, and it lives in the process as the contexts hold it anyway. Where there is no such
file (another OS, no ``/proc``, a sandbox that refuses ``memfd_create``) each context decrypts the key
file itself, as before.
"""

from __future__ import annotations

import _ssl
import contextlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.errors import NodeError
from pki.certificates import node_id_of
from pki.errors import ErrorKind
from pki.keystore import read_private_key
from pki.trust import MAX_PATH

TLS_MIN = ssl.TLSVersion.TLSv1_2
MAX_PRESENTED = MAX_PATH + 1  # certificates of a peer's chain worth looking at (leaf + path to the root)


class PeerIdentityError(NodeError):
    """A TLS client certificate this node does not accept as a peer's (untrusted, revoked, not a node)."""

    code = "PEER_IDENTITY"
    kind = ErrorKind.UNAUTHENTICATED


def server_context(cert_path: Path, key_path: Path, root_path: Path, passphrase: bytes) -> ssl.SSLContext:
    ctx = _bare_server_context(root_path)
    ctx.load_cert_chain(str(cert_path), str(key_path), password=passphrase)
    return ctx


def client_context(cert_path: Path, key_path: Path, root_path: Path, passphrase: bytes) -> ssl.SSLContext:
    ctx = _bare_client_context(root_path)
    ctx.load_cert_chain(str(cert_path), str(key_path), password=passphrase)
    return ctx


def node_contexts(cert_path: Path, key_path: Path, root_path: Path,
                  passphrase: bytes) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A node's client and server contexts, as :func:`client_context` and :func:`server_context` make
    them, from one decryption of the key (the module's docstring)."""
    client, server = _bare_client_context(root_path), _bare_server_context(root_path)
    _load_chain([client, server], cert_path, key_path, passphrase)
    return client, server


def reload_certificate(contexts: list[ssl.SSLContext], cert_path: Path, key_path: Path, passphrase: bytes) -> None:
    """Present the certificate now in ``cert_path`` on every later handshake of ``contexts`` (a renewal,
    no restart; connections already up keep theirs). Tried on a scratch context first, so a file that
    cannot be loaded leaves the contexts as they were (``ssl.SSLError``/``OSError``/a
    :class:`pki.errors.KeyStoreError` raised)."""
    _load_chain([ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), *contexts], cert_path, key_path, passphrase)


def _bare_server_context(root_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_MIN
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(root_path))
    return ctx


def _bare_client_context(root_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = TLS_MIN
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.load_verify_locations(cafile=str(root_path))
    return ctx


def _load_chain(contexts: list[ssl.SSLContext], cert_path: Path, key_path: Path, passphrase: bytes) -> None:
    """``load_cert_chain`` on each context in turn (the first that fails raises; those before it keep
    the new chain), the key decrypted once when the OS can hand it over in memory."""
    with _decrypted_key(key_path, passphrase) as plain:
        for ctx in contexts:
            if plain is None:
                ctx.load_cert_chain(str(cert_path), str(key_path), password=passphrase)
            else:
                ctx.load_cert_chain(str(cert_path), plain)


@contextlib.contextmanager
def _decrypted_key(key_path: Path, passphrase: bytes) -> Iterator[str | None]:
    """The path of an in-memory file holding the key, decrypted (PKCS#8 PEM); None where the OS has no
    such file. The file is gone when the block ends."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None or not os.path.isdir("/proc/self/fd"):
        yield None
        return
    try:
        fd = memfd_create("gwx-tls-key", os.MFD_CLOEXEC)
    except OSError:  # refused here (a seccomp filter, a sandbox): each context decrypts the file, as before
        yield None
        return
    try:
        key = read_private_key(key_path, passphrase)  # refuses a key file others can read, as for every key
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        with open(fd, "wb", closefd=False) as file:
            file.write(pem)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


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
