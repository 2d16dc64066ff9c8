"""The network certificate authority: a directory of certificates, encrypted keys and records.

Layout of a CA directory (every key encrypted with the CA passphrase, mode 0600)::

    root.crt          the network's trust anchor (PEM) — what every node and verifier trusts
    ca.crt, ca.key    this CA's own certificate and key (for the root CA, ca.crt == root.crt)
    chain.pem         this CA's certificate followed by its issuers up to the root
    ca.json           name, algorithm, next CRL number          ┐ the records, read and written by
    issued/SERIAL.pem every certificate this CA issued            │ pki.ca_records (CaRecords, which
    revocations.json  serial → reason and time, on each revocation ┘ this CA is)
    sealmaker.*       the seal-making authority (制章者) that signs SESeal structures
    dirsigner.*       the network directory's signer (CAs made before it existed: gwx pki
                      issue-directory-signer, pki.directory_signer)
    ocsp.*, tsa.*     the delegated OCSP responder and the RFC 3161 time-stamping unit
    transport/        a 国密 CA only: its P-256 transport CA, a CA directory of its own (no service
                      keys), which issues the node TLS certificates (:attr:`CertificateAuthority.transport`)

This module is the CA's issuing: making a root or an intermediate (and, on a 国密 network, its
transport CA), opening one, and issuing node, seal and service certificates. The names it checks and
the certificate helpers every module uses (:func:`~pki.certificates.node_id_of`, :func:`~pki.certificates.pem`,
…) are :mod:`pki.certificates`. Serial numbers are random (159 bits). Every write is temp file, fsync,
rename. The CA signs certificates with its software key through pyca/cryptography's builders; an
HSM-held CA key would replace only ``_sign``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
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
from .ca_records import CaRecords, read_config
from .certificates import (
    NODE_URI_PREFIX,
    check_name,
    check_node_id,
    host_name,
    load_certificate,
    load_certificates,
    node_id_of,
    pem,
    utcnow,
)
from .errors import (
    AlreadyIssued,
    CaError,
    CaExists,
    CaMissing,
    DirectorySignerExists,
    InvalidInput,
    NodeCredentialsExist,
)
from .keystore import read_private_key, write_private_key, write_public_file
from .profiles import Profile, build_certificate
from .signer import SoftwareSigner
from .unit_code import validate_unit_code

TRANSPORT_DIR = "transport"  # a 国密 CA's P-256 transport CA, inside its directory
TRANSPORT_ROOT_FILE = "tls-root.crt"  # its root, in a node's credentials beside root.crt


def _expect_directory(path: Path) -> None:
    """A directory to create or fill must not be a file (mkdir would say only "File exists")."""
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path} is a file, expected a directory (one is created if missing)", path=str(path))


@dataclass(frozen=True)
class NodeCredentials:
    node_id: str
    directory: Path
    tls_certificate: x509.Certificate
    signing_certificate: x509.Certificate
    encryption_certificate: x509.Certificate


class CertificateAuthority(CaRecords):
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
        self._seal_maker: SoftwareSigner | None = None  # decrypted at the first seal this object makes

    # ---- creation and opening ------------------------------------------------------------
    @classmethod
    def init_root(cls, directory: str | Path, name: str, passphrase: bytes,
                  algorithm: SignatureAlgorithm | str = DEFAULT, valid_days: int | None = None,
                  now: dt.datetime | None = None) -> CertificateAuthority:
        directory = Path(directory)
        algorithm = by_name(algorithm) if isinstance(algorithm, str) else algorithm
        check_name(name)
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
        check_name(name)
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
        config = read_config(directory / "ca.json")
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

    def issue_signer_key(self, out_dir: str | Path, key_passphrase: bytes, profile: Profile, role: str,
                         valid_days: int | None = None, now: dt.datetime | None = None,
                         ) -> tuple[PrivateKey, x509.Certificate]:
        """A delegated signer's key (directory, OCSP, TSA: :mod:`pki.directory_signer` …) with its
        certificate of ``profile``, the subject ``{CA name} {role}``; the key is written, encrypted with
        ``key_passphrase``, to ``out_dir/signer.key`` (the directory made, mode 0700), the certificate
        left to the caller's layout. A directory that holds a key already is refused
        (``PKI_SIGNER_EXISTS``): like issue-node, a key in use is never replaced silently."""
        out = Path(out_dir)
        if (out / "signer.key").exists():
            raise DirectorySignerExists(f"{out} already holds a signer key (signer.key); refusing to overwrite it "
                                        "— choose another directory", path=str(out))
        out.mkdir(parents=True, exist_ok=True)
        out.chmod(0o700)
        key = self.algorithm.generate()
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} {role}")])
        cert = self.issue(key.public_key(), subject, profile, valid_days, now=now)
        write_private_key(out / "signer.key", key, key_passphrase)
        return key, cert

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
        host_name(host)  # a bad host is refused before anything is written
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
        sans = [x509.UniformResourceIdentifier(NODE_URI_PREFIX + node_id), host_name(host)]
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
        check_name(unit_name)
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
        """The seal maker's signer, its key decrypted once per CA object: provisioning a node makes a
        seal per unit, each a 100,000-round PBKDF2 (~15 ms of CPU) if read again."""
        if self._seal_maker is None:
            self._seal_maker = self._service_signer("sealmaker")
        return self._seal_maker

    def directory_signer(self) -> SoftwareSigner:
        """The network directory's signer kept with this CA (pki.directory_signer.from_ca checks it exists)."""
        return self._service_signer("dirsigner")

    def ocsp_responder_signer(self) -> SoftwareSigner:
        return self._service_signer("ocsp")

    def tsa_signer(self) -> SoftwareSigner:
        return self._service_signer("tsa")

