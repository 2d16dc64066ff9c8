"""Everything a running node loads once at start, handed to the components that need it.

:class:`NodeContext` holds the parsed configuration, the node's own credentials (the TLS files,
the signing :class:`~pki.signer.Signer`, the decryption key), the trust store and revocation
checker, the seals of the hosted units, the router and the clock. Components receive the
context (or the parts of it they use) through their constructors — no global lookups — and read
the credentials from it each time they use them: a renewal (:mod:`node.renewal`) swaps them in a
running node with :meth:`NodeContext.adopt`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from exchange_protocol.envelope_crypto import DecryptionKey
from exchange_protocol.envelope_seal import Sender, TrustPolicy
from exchange_protocol.frame import FrameLimits
from node.config import NodeConfig
from node.errors import ConfigError
from node.federation.routing import DirectoryRouter, Router
from node.renewal import PreviousSet, credentials_lock, finish_pending, previous_sets
from pki.certificates import load_certificate, load_certificates
from pki.crl import load_crls
from pki.errors import CertificateRevoked, GwxError, RevocationUnknown
from pki.keystore import read_private_key
from pki.revocation import CrlChecker
from pki.seal_store import SealCredential, load_seal_credential, seal_installed
from pki.signer import SoftwareSigner
from pki.trust import TrustStore

log = logging.getLogger("gwx.node")
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ReloadingCrlChecker:
    """A CRL checker over ``path`` that picks up a replaced file (checked at most every few seconds).

    The file holds one CRL per CA of the network, concatenated (PEM): the root's and every
    intermediate's, since peers and seals may come from any of them.

    Fails closed: no usable CRL for an issuer means :class:`~pki.errors.RevocationUnknown`.

    :meth:`revoked_only` is the one exception, for fetching a fresh CRL (the chicken and the egg:
    a node whose CRL is stale must still reach the parent that has the next one).
    """

    def __init__(self, path: Path, recheck_seconds: float = 5.0) -> None:
        self.path = path
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._checked_at = 0.0
        self._checker: CrlChecker | None = None
        self._error: str | None = None

    def _current(self) -> CrlChecker:
        now = time.monotonic()
        with self._lock:
            if self._checker is None or now - self._checked_at > self._recheck:
                self._checked_at = now
                try:
                    mtime = os.stat(self.path).st_mtime
                    if mtime != self._mtime:
                        self._checker = CrlChecker(load_crls(self.path.read_bytes()))
                        self._mtime, self._error = mtime, None
                except (OSError, GwxError) as exc:
                    self._error = f"cannot read CRL {self.path}: {exc}"
            if self._checker is None:
                raise RevocationUnknown(self._error or f"no CRL at {self.path}")
            return self._checker

    def __call__(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
        self._current()(cert, issuer, now)

    def verdict_token(self) -> tuple[object, dt.datetime, dt.datetime] | None:
        """The CRLs in force now (:meth:`pki.revocation.CrlChecker.verdict_token`): another file, another token."""
        try:
            return self._current().verdict_token()
        except RevocationUnknown:
            return None

    def reload(self) -> None:
        """Read the file again at the next check (a fetched CRL was just installed)."""
        with self._lock:
            self._checked_at, self._mtime = float("-inf"), None

    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        """The CRLs held now (empty when none can be read)."""
        try:
            return self._current().crls
        except RevocationUnknown:
            return ()

    def revoked_only(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
        """Refuse ``cert`` only when a CRL we hold lists it, however stale that CRL is; pass when
        ours cannot tell (stale, missing). Used to judge the parent's TLS certificate, and a child's,
        when a CRL is fetched: what travels there is a CRL whose own signature decides its worth, so
        our stale CRL must not stop the fetch that cures it — while a node we know to be revoked
        still gets nothing."""
        try:
            CrlChecker(self.crls(), accept_stale=True)(cert, issuer, now)
        except CertificateRevoked:
            raise
        except RevocationUnknown:
            return


@dataclass(frozen=True)
class NodeCredentials:
    """The node's own keys as loaded from ``credentials/`` (:mod:`node.renewal` describes the layout)."""

    signer: SoftwareSigner
    decryption_key: DecryptionKey
    intermediates: tuple[x509.Certificate, ...]
    previous: tuple[PreviousSet, ...] = ()  # sets a renewal replaced, while their overlap runs
    previous_keys: tuple[DecryptionKey, ...] = ()  # their encryption keys, newest first

    @classmethod
    def load(cls, config: NodeConfig, passphrase: bytes, now: dt.datetime) -> NodeCredentials:
        """The current set, and the previous ones still overlapping (those past their overlap are
        destroyed here); an interrupted renewal is completed or discarded first."""
        creds = config.credentials_dir
        if not creds.is_dir():
            raise ConfigError(f"node credentials incomplete: {creds} is missing")
        with credentials_lock(creds):
            finish_pending(creds)
            try:
                sign_chain = load_certificates((creds / "sign.crt").read_bytes())
                enc_cert = load_certificates((creds / "enc.crt").read_bytes())[0]
            except FileNotFoundError as exc:
                raise ConfigError(f"node credentials incomplete: {exc.filename} is missing") from None
            signer = SoftwareSigner(read_private_key(creds / "sign.key", passphrase), sign_chain[0])
            key = DecryptionKey(read_private_key(creds / "enc.key", passphrase), enc_cert)
            previous = tuple(p for p in previous_sets(creds, now) if p.certificates["enc"] != enc_cert)
            previous_keys = tuple(p.decryption_key(passphrase) for p in previous)
        return cls(signer, key, tuple(sign_chain[1:]), previous, previous_keys)


@dataclass
class NodeContext:
    config: NodeConfig
    signer: SoftwareSigner
    decryption_key: DecryptionKey
    trust: TrustStore  # what signatures, seals, receipts and the directory chain to
    intermediates: tuple[x509.Certificate, ...]
    revocation: ReloadingCrlChecker
    seals: dict[str, SealCredential]
    router: Router
    passphrase: bytes = field(repr=False, default=b"")
    clock: Clock = system_clock
    tls_trust: TrustStore | None = None  # peers' TLS certificates, when not ``trust`` (a 国密 network's transport root)
    previous: tuple[PreviousSet, ...] = ()
    previous_keys: tuple[DecryptionKey, ...] = ()

    @property
    def node_id(self) -> str:
        return self.config.node_id

    @property
    def tls_roots(self) -> TrustStore:
        """The roots a peer's TLS certificate must chain to (config.tls_root_path)."""
        return self.tls_trust or self.trust

    @property
    def sender(self) -> Sender:
        return Sender(self.node_id, self.signer, self.intermediates)

    @property
    def decryption_keys(self) -> tuple[DecryptionKey, ...]:
        """Every key an envelope for us may be sealed for: the current, then those of a renewal's overlap."""
        return (self.decryption_key, *self.previous_keys)

    def trust_policy(self) -> TrustPolicy:
        limits = FrameLimits(max_payload=self.config.limits.max_envelope_bytes)
        return TrustPolicy(self.trust, self.intermediates, self.revocation, limits, self.config.limits.max_hops)

    def adopt(self, creds: NodeCredentials) -> None:
        """Use ``creds`` from now on (a renewal picked up while running). Each attribute is swapped
        whole, between awaits, so every envelope, receipt and answer uses one set or the other."""
        self.signer, self.decryption_key, self.intermediates = creds.signer, creds.decryption_key, creds.intermediates
        self.previous, self.previous_keys = creds.previous, creds.previous_keys

    @classmethod
    def load(cls, config: NodeConfig, passphrase: bytes, clock: Clock = system_clock) -> NodeContext:
        try:
            root = load_certificate(config.trust_root_path.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigError(f"node credentials incomplete: {exc.filename} is missing") from None
        creds = NodeCredentials.load(config, passphrase, clock())
        seals = {u.code: load_seal_credential(u.seal_dir, passphrase) for u in config.units
                 if seal_installed(u.seal_dir)}  # a unit hosted without a seal: readiness counts it
        ctx = cls(config=config, signer=creds.signer, decryption_key=creds.decryption_key,
                  trust=TrustStore.of([root]), intermediates=creds.intermediates,
                  revocation=ReloadingCrlChecker(config.crl_path), seals=seals, router=DirectoryRouter(config),
                  passphrase=passphrase, clock=clock,
                  tls_trust=(TrustStore.of([load_certificate(config.tls_root_path.read_bytes())])
                             if config.tls_root_path != config.trust_root_path else None))
        ctx.adopt(creds)
        return ctx
