"""The network certificate authority: a directory of certificates, encrypted keys and records.

Layout of a CA directory (every key encrypted with the CA passphrase, mode 0600)::

    root.crt          the network's trust anchor (PEM) — what every node and verifier trusts
    ca.crt, ca.key    this CA's own certificate and key (for the root CA, ca.crt == root.crt)
    chain.pem         this CA's certificate followed by its issuers up to the root
    ca.json           name, algorithm, next CRL number
    issued/SERIAL.pem every certificate this CA issued (what revocation and OCSP look up)
    revocations.json  serial → reason and time, rewritten atomically on each revocation
    sealmaker.*       the seal-making authority (制章者) that signs SESeal structures
    dirsigner.*       the network directory's signer (CAs made before it existed: gwx pki
                      issue-directory-signer, pki.directory_signer)
    ocsp.*, tsa.*     the delegated OCSP responder and the RFC 3161 time-stamping unit
    transport/        a 国密 CA only: its P-256 transport CA, a CA directory of its own (no service
                      keys), which issues the node TLS certificates (:attr:`CertificateAuthority.transport`)

Serial numbers are random (159 bits). Every write is temp file, fsync, rename. The CA signs
certificates with its software key through pyca/cryptography's builders; an HSM-held CA key
would replace only ``_sign``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from . import profiles
from .algorithms import (
    DEFAULT,
    PrivateKey,
    PublicKey,
    SignatureAlgorithm,
    by_name,
    require_network_algorithm,
    require_network_key,
    transport_algorithm,
)
from .errors import (
    AlreadyIssued,
    CaError,
    CaExists,
    CaMissing,
    InvalidInput,
    MalformedEncoding,
    NodeCredentialsExist,
    UnknownCertificate,
    UnsupportedAlgorithm,
)
from .keystore import read_private_key, write_private_key, write_public_file
from .profiles import Profile, build_certificate
from .signer import SoftwareSigner
from .unit_code import validate_unit_code

NODE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
NODE_URI_PREFIX = "urn:gwx:node:"
TRANSPORT_DIR = "transport"  # a 国密 CA's P-256 transport CA, inside its directory
TRANSPORT_ROOT_FILE = "tls-root.crt"  # its root, in a node's credentials beside root.crt
REVOCATION_REASONS = {r.name: r for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _expect_directory(path: Path) -> None:
    """A directory to create or fill must not be a file (mkdir would say only "File exists")."""
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path} is a file, expected a directory (one is created if missing)", path=str(path))


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes (typed error on anything else)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise MalformedEncoding(f"not a certificate: {exc}") from None


def load_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise MalformedEncoding(f"not a PEM certificate list: {exc}") from None


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def check_node_id(node_id: str) -> str:
    """A node id as the CA accepts it (it is a URI, a file name and a log field), else InvalidInput."""
    if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id):
        raise InvalidInput(f"node id {node_id!r} must be lower-case letters, digits, '.' or '-' "
                           "(at most 63, starting with a letter or digit)", field="node_id")
    return node_id


def node_id_of(cert: x509.Certificate) -> str | None:
    """The node id a gwx node certificate names (SAN URI ``urn:gwx:node:ID``), or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(NODE_URI_PREFIX):
            return uri[len(NODE_URI_PREFIX):]
    return None


def unit_code_of(cert: x509.Certificate) -> str | None:
    """The 统一社会信用代码 a seal certificate names (subject organizationIdentifier)."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    return str(attrs[0].value) if attrs else None


@dataclass(frozen=True)
class Revocation:
    serial: int
    reason: str
    revoked_at: dt.datetime
    # RFC 5280 §5.3.2 invalidityDate: when the key is known or suspected to have been compromised, if
    # earlier than revoked_at (written into the CRL entry; a checker at a past moment honours it)
    invalid_since: dt.datetime | None = None


@dataclass(frozen=True)
class NodeCredentials:
    node_id: str
    directory: Path
    tls_certificate: x509.Certificate
    signing_certificate: x509.Certificate
    encryption_certificate: x509.Certificate


def _read_config(path: Path) -> dict:
    """ca.json, checked for the fields the CA reads: a damaged file is a typed error, not a traceback."""
    try:
        config = json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaError(f"{path} is corrupt: {exc}", code="PKI_CA_CORRUPT", path=str(path)) from None
    if (not isinstance(config, dict) or not isinstance(config.get("name"), str)
            or not isinstance(config.get("algorithm"), str)
            or not isinstance(config.get("next_crl_number", 1), int)):
        raise CaError(f"{path} is corrupt: it needs a name, an algorithm and a CRL number",
                      code="PKI_CA_CORRUPT", path=str(path))
    try:
        by_name(config["algorithm"])
    except UnsupportedAlgorithm as exc:
        raise CaError(f"{path} is corrupt: {exc.message}", code="PKI_CA_CORRUPT", path=str(path)) from None
    return config


class CertificateAuthority:
    """A CA opened from its directory. Create one with :meth:`init_root` or :meth:`create_intermediate`."""

    def __init__(self, directory: Path, certificate: x509.Certificate, key: PrivateKey,
                 chain: list[x509.Certificate], root: x509.Certificate, config: dict,
                 passphrase: bytes) -> None:
        self.directory = directory
        self.certificate = certificate
        self._key = key
        self.chain = chain
        self.root_certificate = root
        self._config = config
        self._passphrase = passphrase
        self._transport: CertificateAuthority | None = None

    # ---- creation and opening ------------------------------------------------------------
    @classmethod
    def init_root(cls, directory: str | Path, name: str, passphrase: bytes,
                  algorithm: SignatureAlgorithm | str = DEFAULT, valid_days: int | None = None,
                  now: dt.datetime | None = None) -> CertificateAuthority:
        directory = Path(directory)
        algorithm = by_name(algorithm) if isinstance(algorithm, str) else algorithm
        _check_name(name)
        _expect_directory(directory)
        if (directory / "ca.key").exists():
            raise CaExists(f"{directory} already holds a CA; refusing to overwrite it")
        if valid_days is not None and (isinstance(valid_days, bool) or valid_days <= 0):
            raise InvalidInput(f"validity must be at least one day, got {valid_days}", field="valid_days")
        now = now or utcnow()
        key = algorithm.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = build_certificate(subject, key.public_key(), subject, key, profiles.ROOT_CA,
                                 valid_days if valid_days is not None else profiles.ROOT_CA.default_days, now, algorithm)
        config = {"name": name, "algorithm": algorithm.name, "next_crl_number": 1, "kind": "root"}
        ca = cls._write_new(directory, cert, key, [cert], cert, config, passphrase)
        ca._create_service_credentials(now)
        if transport_algorithm(algorithm) is not None:
            ca._create_transport(None, valid_days, now, 0)
        return ca

    def create_intermediate(self, directory: str | Path, name: str, passphrase: bytes,
                            valid_days: int | None = None, now: dt.datetime | None = None, *,
                            levels_below: int = 0) -> CertificateAuthority:
        """An intermediate CA under this one. ``levels_below`` is how many further levels of
        intermediates it may create (its path length constraint): 0, the default, for a CA that
        issues only nodes and seals; 1 for, say, a city CA whose counties have their own CAs.
        This CA must itself allow that many levels below it, or it refuses (``PKI_CA_PATH_LENGTH``)
        rather than issue a CA whose certificates no verifier would accept."""
        directory = Path(directory)
        _check_name(name)
        if self.kind == "transport":  # its intermediates come with the 国密 CA's (transport/ of each)
            raise CaError(f"'{self.name}' is a transport CA: create the intermediate from the 国密 CA it belongs "
                          "to, which makes the intermediate's transport CA with it", code="PKI_CA_TRANSPORT")
        allowed = self._levels_allowed_below()
        if type(levels_below) is not int or levels_below < 0:
            raise InvalidInput(f"levels_below must be a whole number ≥ 0, not {levels_below!r}",
                               field="levels_below")
        if allowed is not None and levels_below + 1 > allowed:
            raise CaError(f"CA '{self.name}' may have {allowed} level(s) of CAs below it, so it cannot issue "
                          f"an intermediate with {levels_below} more below that (create it with more "
                          "levels_below, or issue from a CA higher up)",
                          code="PKI_CA_PATH_LENGTH", allowed=allowed, levels_below=levels_below)
        _expect_directory(directory)
        if (directory / "ca.key").exists():
            raise CaExists(f"{directory} already holds a CA; refusing to overwrite it")
        now = now or utcnow()
        key = self.algorithm.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, self._config["name"]),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        profile = dataclasses.replace(profiles.INTERMEDIATE_CA, path_length=levels_below)
        cert = self.issue(key.public_key(), subject, profile, valid_days, now=now)
        config = {"name": name, "algorithm": self.algorithm.name, "next_crl_number": 1, "kind": "intermediate"}
        ca = self._write_new(directory, cert, key, [cert, *self.chain], self.root_certificate, config,
                             passphrase)
        ca._create_service_credentials(now)
        if transport_algorithm(self.algorithm) is not None:
            ca._create_transport(self.transport, valid_days, now, levels_below)
        return ca

    def _create_transport(self, parent: CertificateAuthority | None, valid_days: int | None,
                          now: dt.datetime, levels_below: int) -> None:
        """This 国密 CA's transport CA, in ``transport/``: a P-256 root beside an SM2 root, or an
        intermediate under ``parent`` (the transport CA of this CA's issuer). Its EKU (serverAuth,
        clientAuth) limits it to TLS; it shares this CA's passphrase."""
        algorithm = transport_algorithm(self.algorithm)
        assert algorithm is not None
        name = f"{self.name[:58]} TLS传输"
        directory = self.directory / TRANSPORT_DIR
        config = {"name": name, "algorithm": algorithm.name, "next_crl_number": 1, "kind": "transport"}
        key = algorithm.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, self._config["name"]),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        if parent is None:
            cert = build_certificate(subject, key.public_key(), subject, key, profiles.TRANSPORT_ROOT_CA,
                                     valid_days or profiles.TRANSPORT_ROOT_CA.default_days, now, algorithm)
            self._transport = self._write_new(directory, cert, key, [cert], cert, config, self._passphrase)
            return
        profile = dataclasses.replace(profiles.TRANSPORT_INTERMEDIATE_CA, path_length=levels_below)
        cert = parent.issue(key.public_key(), subject, profile, valid_days, now=now)
        self._transport = self._write_new(directory, cert, key, [cert, *parent.chain], parent.root_certificate,
                                          config, self._passphrase)

    @classmethod
    def _write_new(cls, directory: Path, cert: x509.Certificate, key: PrivateKey,
                   chain: list[x509.Certificate], root: x509.Certificate, config: dict,
                   passphrase: bytes) -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        write_private_key(directory / "ca.key", key, passphrase)
        write_public_file(directory / "ca.crt", pem(cert))
        write_public_file(directory / "chain.pem", b"".join(pem(c) for c in chain))
        write_public_file(directory / "root.crt", pem(root))
        (directory / "issued").mkdir(exist_ok=True)
        ca = cls(directory, cert, key, chain, root, config, passphrase)
        ca._save_config()
        ca._record(cert)
        return ca

    @classmethod
    def open(cls, directory: str | Path, passphrase: bytes) -> CertificateAuthority:
        directory = Path(directory)
        if not (directory / "ca.json").exists():
            raise CaMissing(f"{directory} is not a gwx CA directory (no ca.json)")
        config = _read_config(directory / "ca.json")
        key = read_private_key(directory / "ca.key", passphrase)
        cert = load_certificate((directory / "ca.crt").read_bytes())
        chain = load_certificates((directory / "chain.pem").read_bytes())
        root = load_certificate((directory / "root.crt").read_bytes())
        return cls(directory, cert, key, chain, root, config, passphrase)

    def _levels_allowed_below(self) -> int | None:
        """This CA's path length constraint (None: unconstrained, as for the root)."""
        try:
            return self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        except x509.ExtensionNotFound:
            return None

    # ---- properties -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._config["name"]

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return by_name(self._config["algorithm"])

    @property
    def kind(self) -> str:
        return self._config.get("kind", "root")

    @property
    def transport(self) -> CertificateAuthority:
        """The CA that issues this network's node TLS certificates: this one, or — on a 国密 network —
        its P-256 transport CA (``transport/``, :func:`pki.algorithms.transport_algorithm`)."""
        if self._transport is None:
            if transport_algorithm(self.algorithm) is None:
                self._transport = self
            elif not (self.directory / TRANSPORT_DIR / "ca.json").exists():
                raise CaMissing(f"{self.directory} is a 国密 CA without a transport CA ({TRANSPORT_DIR}/): node TLS "
                                "certificates come from one (made by gwx pki init-root --profile sm)",
                                code="PKI_TRANSPORT_MISSING")
            else:
                self._transport = CertificateAuthority.open(self.directory / TRANSPORT_DIR, self._passphrase)
        return self._transport

    def separate_transport(self) -> CertificateAuthority | None:
        """The separate transport CA, if this CA has one (never raises)."""
        if transport_algorithm(self.algorithm) is None or not (self.directory / TRANSPORT_DIR / "ca.json").exists():
            return None
        return self.transport

    def signer(self) -> SoftwareSigner:
        return SoftwareSigner(self._key, self.certificate)

    # ---- issuing ------------------------------------------------------------------------------
    def issue(self, public_key: PublicKey, subject: x509.Name, profile: Profile,
              valid_days: int | None = None, sans: list[x509.GeneralName] | None = None,
              now: dt.datetime | None = None) -> x509.Certificate:
        """Issue and record a certificate of ``profile`` for ``public_key``, a key of this network's profile."""
        require_network_key(self.algorithm, public_key)
        now = now or utcnow()
        days = valid_days if valid_days is not None else profile.default_days
        if days <= 0:
            raise InvalidInput(f"validity must be at least one day, got {days}")
        not_after = now + dt.timedelta(days=days)
        # A certificate never outlives its issuer: verifiers would reject the tail anyway.
        not_after = min(not_after, self.certificate.not_valid_after_utc)
        cert = build_certificate(subject, public_key, self.certificate.subject, self._key, profile,
                                 None, now, self.algorithm, sans=sans, not_after=not_after,
                                 issuer_cert=self.certificate)
        self._record(cert)
        return cert

    def issue_node(self, node_id: str, host: str, out_dir: str | Path, key_passphrase: bytes,
                   algorithm: SignatureAlgorithm | str | None = None, valid_days: int | None = None,
                   now: dt.datetime | None = None, *, replace: bool = False,
                   renew: bool = False) -> NodeCredentials:
        """TLS, signing and encryption credentials for a node, written to ``out_dir``.

        A node id names one set of keys: while this CA's earlier certificates for ``node_id`` are
        valid and unrevoked, issuing again is :class:`AlreadyIssued` unless ``replace`` — and then
        the earlier certificates are revoked (``superseded``) once the new ones exist, taking
        effect with the next CRL the admin publishes — or ``renew``: the node installs the new
        credentials while it runs (``gwx node renew``) and its peers accept both sets during an
        overlap, so the earlier certificates are *not* revoked; they end with their validity, and
        the node destroys their keys when the overlap ends."""
        if replace and renew:
            raise InvalidInput("a renewal keeps the earlier certificates valid, a replacement revokes them: "
                               "choose one", field="renew")
        earlier = self.node_certificates_in_force(node_id, now, replace=replace or renew)
        _host_name(host)  # a bad host is refused before anything is written
        algorithm = by_name(algorithm) if isinstance(algorithm, str) else (algorithm or self.algorithm)
        require_network_algorithm(self.algorithm, algorithm)  # before any key is made
        out = Path(out_dir)
        _expect_directory(out)
        held = [f"{role}.{ext}" for role in profiles.NODE_ROLES for ext in ("key", "crt")
                if (out / f"{role}.{ext}").exists()]
        if held and not replace:  # like init-root and issue-seal: keys in use are never replaced silently
            raise NodeCredentialsExist(f"{out} already holds node credentials ({', '.join(held)}); refusing "
                                       "to overwrite them — choose another directory, or --replace")
        tls_ca = self.transport
        out.mkdir(parents=True, exist_ok=True)
        out.chmod(0o700)
        certs = {}
        for role in profiles.NODE_ROLES:
            issuer = tls_ca if role == "tls" else self
            key = (algorithm if issuer is self else issuer.algorithm).generate()
            cert = self.issue_node_certificate(node_id, host, role, key.public_key(), valid_days, now)
            write_private_key(out / f"{role}.key", key, key_passphrase)
            write_public_file(out / f"{role}.crt", issuer.certificate_file(cert))
            certs[role] = cert
        write_public_file(out / "root.crt", pem(self.root_certificate))
        if tls_ca is not self:
            write_public_file(out / TRANSPORT_ROOT_FILE, pem(tls_ca.root_certificate))
        if replace:
            self.supersede(earlier, now)
        return NodeCredentials(node_id, out, certs["tls"], certs["sign"], certs["enc"])

    def node_certificates_in_force(self, node_id: str, now: dt.datetime | None = None, *,
                                   replace: bool = False) -> list[x509.Certificate]:
        """Check ``node_id`` and return this CA's earlier certificates for it that are still valid:
        :class:`AlreadyIssued` if there are any, unless ``replace`` (a replacement or a renewal: the
        caller decides what becomes of them)."""
        check_node_id(node_id)
        earlier = [c for ca in (self, self.separate_transport()) if ca is not None
                   for c in ca.active_certificates(lambda c: node_id_of(c) == node_id, now)]
        if earlier and not replace:
            raise AlreadyIssued(f"this CA already issued credentials for node {node_id!r} (valid until "
                                f"{max(c.not_valid_after_utc for c in earlier):%Y-%m-%d}); to renew them "
                                "while the node runs (both valid for an overlap) say --renew, to issue new "
                                "ones and revoke those say --replace", node_id=node_id,
                                serials=[f"{c.serial_number:x}" for c in earlier])
        return earlier

    def issue_node_certificate(self, node_id: str, host: str, role: str, public_key: PublicKey,
                               valid_days: int | None = None, now: dt.datetime | None = None) -> x509.Certificate:
        """One of a node's certificates (``role`` in :data:`profiles.NODE_ROLES`): the subject, the
        names (``urn:gwx:node:ID`` and the host) and the profile are this CA's to decide. A TLS
        certificate on a 国密 network is its transport CA's (:attr:`transport`)."""
        if role == "tls" and self.transport is not self:
            return self.transport.issue_node_certificate(node_id, host, role, public_key, valid_days, now)
        check_node_id(node_id)
        sans = [x509.UniformResourceIdentifier(NODE_URI_PREFIX + node_id), _host_name(host)]
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self._config["name"]),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                             x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
        return self.issue(public_key, subject, profiles.NODE_ROLES[role], valid_days, sans=sans, now=now)

    def supersede(self, earlier: list[x509.Certificate], now: dt.datetime | None = None) -> None:
        """Revoke a node's replaced certificates (``superseded``): effective with the next CRL."""
        for cert in earlier:
            self.revoke(cert, "superseded", now=now)

    def certificate_file(self, cert: x509.Certificate) -> bytes:
        """``cert`` followed by this CA and those above it, root excluded: the leaf first, then the
        intermediates — what a TLS server presents and what a node's ``*.crt`` files hold."""
        return pem(cert) + b"".join(pem(c) for c in self.chain[:-1])

    def issue_seal_certificate(self, unit_code: str, unit_name: str, public_key: PublicKey,
                               valid_days: int | None = None,
                               now: dt.datetime | None = None) -> x509.Certificate:
        """The certificate of a unit's seal key: unit name and 统一社会信用代码 in the subject."""
        code = validate_unit_code(unit_code)
        _check_name(unit_name)
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, unit_name),
                             x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, code),
                             x509.NameAttribute(NameOID.COMMON_NAME, unit_name)])
        return self.issue(public_key, subject, profiles.SEAL, valid_days, now=now)

    # ---- service credentials (seal maker, OCSP responder, TSA) --------------------------------
    _SERVICES = {"sealmaker": (profiles.SEAL_MAKER, "电子印章制作"),
                 "dirsigner": (profiles.DIRECTORY_SIGNER, "网络目录签发"),
                 "ocsp": (profiles.OCSP_RESPONDER, "OCSP"),
                 "tsa": (profiles.TIME_STAMPING, "TSA")}

    def _create_service_credentials(self, now: dt.datetime) -> None:
        for stem, (profile, label) in self._SERVICES.items():
            key = self.algorithm.generate()
            subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, self._config["name"]),
                                 x509.NameAttribute(NameOID.COMMON_NAME, f"{self._config['name']} {label}")])
            cert = self.issue(key.public_key(), subject, profile, now=now)
            write_private_key(self.directory / f"{stem}.key", key, self._passphrase)
            write_public_file(self.directory / f"{stem}.crt", pem(cert))

    def _service_signer(self, stem: str) -> SoftwareSigner:
        key = read_private_key(self.directory / f"{stem}.key", self._passphrase)
        return SoftwareSigner(key, load_certificate((self.directory / f"{stem}.crt").read_bytes()))

    def seal_maker_signer(self) -> SoftwareSigner:
        return self._service_signer("sealmaker")

    def directory_signer(self) -> SoftwareSigner:
        """The network directory's signer kept with this CA (pki.directory_signer.from_ca checks it exists)."""
        return self._service_signer("dirsigner")

    def ocsp_responder_signer(self) -> SoftwareSigner:
        return self._service_signer("ocsp")

    def tsa_signer(self) -> SoftwareSigner:
        return self._service_signer("tsa")

    # ---- records and revocation -----------------------------------------------------------------
    def _record(self, cert: x509.Certificate) -> None:
        write_public_file(self.directory / "issued" / f"{cert.serial_number:x}.pem", pem(cert))

    def lookup(self, serial: int) -> x509.Certificate | None:
        path = self.directory / "issued" / f"{serial:x}.pem"
        return load_certificate(path.read_bytes()) if path.exists() else None

    def has_issued(self, serial: int) -> bool:
        """Whether this CA issued ``serial`` (what its OCSP answers ``unknown`` for when not)."""
        return (self.directory / "issued" / f"{serial:x}.pem").exists()

    def issued(self) -> list[x509.Certificate]:
        return [load_certificate(p.read_bytes()) for p in sorted((self.directory / "issued").glob("*.pem"))]

    def active_certificates(self, match: Callable[[x509.Certificate], bool],
                            now: dt.datetime | None = None) -> list[x509.Certificate]:
        """Certificates this CA issued that ``match``, are unrevoked and have not expired at ``now``."""
        now = now or utcnow()
        revoked = self.revocations()
        return [c for c in self.issued()
                if c.serial_number not in revoked and c.not_valid_after_utc > now and match(c)]

    def revocations(self) -> dict[int, Revocation]:
        path = self.directory / "revocations.json"
        if not path.exists():
            return {}
        raw = json.loads(path.read_text("utf-8"))
        return {int(s, 16): Revocation(int(s, 16), r["reason"], dt.datetime.fromisoformat(r["revoked_at"]),
                                       dt.datetime.fromisoformat(r["invalid_since"]) if r.get("invalid_since") else None)
                for s, r in raw.items()}

    def revoke(self, serial_or_cert: int | x509.Certificate, reason: str = "unspecified",
               now: dt.datetime | None = None, invalid_since: dt.datetime | None = None) -> Revocation:
        serial = serial_or_cert if isinstance(serial_or_cert, int) else serial_or_cert.serial_number
        if reason not in REVOCATION_REASONS:
            raise InvalidInput(f"unknown revocation reason {reason!r}", known=sorted(REVOCATION_REASONS))
        if self.lookup(serial) is None and (other := self.separate_transport()) is not None \
                and other.lookup(serial) is not None:  # a node's TLS certificate, on a 国密 network
            return other.revoke(serial, reason, now, invalid_since)
        if self.lookup(serial) is None:
            raise UnknownCertificate(f"this CA never issued a certificate with serial {serial:x}",
                                     serial=f"{serial:x}")
        current = self.revocations()
        if serial in current:
            return current[serial]  # revoking twice keeps the first date: that is when trust ended
        revoked_at = (now or utcnow()).replace(microsecond=0)
        if invalid_since is not None:
            if invalid_since.tzinfo is None:
                raise InvalidInput("invalid_since must be timezone-aware")
            invalid_since = invalid_since.replace(microsecond=0)
            if invalid_since >= revoked_at:
                invalid_since = None  # only an earlier date says anything more than the revocation date
        entry = Revocation(serial, reason, revoked_at, invalid_since)
        current[serial] = entry
        data = {f"{s:x}": {"reason": r.reason, "revoked_at": r.revoked_at.isoformat(),
                           **({"invalid_since": r.invalid_since.isoformat()} if r.invalid_since else {})}
                for s, r in sorted(current.items())}
        write_public_file(self.directory / "revocations.json",
                          json.dumps(data, indent=1, ensure_ascii=False).encode())
        return entry

    def take_crl_number(self) -> int:
        """The next CRL number, persisted before it is used so numbers never repeat. Read from ca.json
        each time: another opening of this CA (``gwx pki crl`` while a process holds it open) may have
        taken numbers since this one was opened, and a repeated number looks like a rollback."""
        self._config = _read_config(self.directory / "ca.json")
        number = int(self._config.get("next_crl_number", 1))
        self._config["next_crl_number"] = number + 1
        self._save_config()
        return number

    def _save_config(self) -> None:
        write_public_file(self.directory / "ca.json",
                          json.dumps(self._config, indent=1, ensure_ascii=False).encode())


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise InvalidInput(f"name {name!r} must be 1–64 characters", field="name")


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.match(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$", host or ""):
        raise InvalidInput(f"host {host!r} is neither an IP address nor a DNS name", field="host")
    return x509.DNSName(host.lower())

