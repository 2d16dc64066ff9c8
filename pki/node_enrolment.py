"""Enrolling a node without handing out the CA: request on the node, signing at the CA, install.

1. On the node (``gwx node request``): :func:`create_node_request` makes the TLS, signing and
   encryption keys in the node's credentials directory — encrypted with the node's passphrase,
   mode 0600 — keeps the network's root certificate the operator was given (``root.crt``, its
   fingerprint checked out of band), and writes ONE request file: three PKCS#10 requests in PEM,
   one per key, each naming its role (OU ``tls``/``sign``/``enc``) and the node id (CN).
2. At the CA (``gwx pki sign-request``): :func:`sign_node_request` checks the requests
   (:mod:`pki.csr`: self-signatures, key types, nothing asked for; here: all three roles once, one
   node id, three different keys, the node id the admin expects) and issues the three certificates
   with the same profiles and names ``gwx pki issue-node`` gives (:meth:`CertificateAuthority.
   issue_node_certificate`). The response file holds the three certificates, then the intermediate
   CAs above them (root excluded: the node trusts its own copy).
3. On the node (``gwx node install-certs``): :func:`install_node_response` opens each key with the
   node's passphrase, finds the certificate for it, checks it chains to the node's ``root.crt``, has
   its role's purpose and names this node, and only then writes ``tls.crt``, ``sign.crt`` and
   ``enc.crt`` together (:func:`pki.keystore.write_public_files`).

The credentials directory ends up exactly as ``issue-node`` leaves it — ``{tls,sign,enc}.key``,
``{tls,sign,enc}.crt`` (leaf, then intermediates), ``root.crt`` — plus ``request.pem``, the request
as made (hand it in again if the response is lost; it names the node id the install checks).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from . import profiles
from .algorithms import PublicKey, SignatureAlgorithm, by_name, transport_algorithm
from .ca import TRANSPORT_ROOT_FILE, CertificateAuthority
from .certificates import check_node_id, load_certificate, node_id_of, pem, utcnow
from .csr import (
    REQUEST_LABEL,
    CheckedRequest,
    key_fingerprint,
    make_request,
    pem_block,
    pem_blocks,
    read_requests,
)
from .errors import (
    CertificateInvalid,
    CertificateWrongUsage,
    InvalidInput,
    MalformedEncoding,
    NodeCredentialsExist,
    RequestInvalid,
    ResponseInvalid,
    ResponseUntrusted,
)
from .keystore import read_private_key, write_private_key, write_public_file, write_public_files
from .signer import SoftwareSigner
from .trust import Purpose, TrustStore, verify_certificate
from .x509_sm2 import network_algorithm, public_key_of, signed_by

_DER, _SPKI = Encoding.DER, PublicFormat.SubjectPublicKeyInfo
REQUEST_FILE = "request.pem"
ROOT_FILE = "root.crt"
# What each role's certificate must be good for (pki.trust), checked when a response is installed.
ROLE_PURPOSES: dict[str, tuple[Purpose, ...]] = {"tls": (Purpose.TLS_SERVER, Purpose.TLS_CLIENT),
                                                 "sign": (Purpose.SIGNING,), "enc": (Purpose.ENCRYPTION,)}


@dataclass(frozen=True)
class NodeRequest:
    node_id: str
    path: Path  # the credentials directory's copy of the request
    pem: bytes
    key_fingerprint: str


@dataclass(frozen=True)
class SignedNodeRequest:
    node_id: str
    certificates: dict[str, x509.Certificate]  # role → leaf
    response: bytes
    key_fingerprint: str
    superseded: list[x509.Certificate]


# ---- on the node ---------------------------------------------------------------------------------

def create_node_request(directory: str | Path, node_id: str, root: x509.Certificate, passphrase: bytes,
                        algorithm: SignatureAlgorithm | str | None = None, *,
                        tls_root: x509.Certificate | None = None) -> NodeRequest:
    """Make the node's three keys in ``directory`` (its credentials directory) and its request. The
    keys are ``algorithm``'s, by default the network's as its root shows (SM2 under an SM2 root). A
    国密 network's TLS key is P-256 for its transport CA, whose root ``tls_root`` the node is then
    given beside ``root`` (kept as ``tls-root.crt``); another network has none."""
    directory = Path(directory)
    check_node_id(node_id)
    check_root(root)
    chosen = by_name(algorithm) if isinstance(algorithm, str) else algorithm
    algorithm = chosen or network_algorithm(root)
    tls_algorithm = transport_algorithm(network_algorithm(root))
    if tls_algorithm is None and tls_root is not None:
        raise InvalidInput("--tls-root is a 国密 network's transport root; this network's root issues TLS "
                           "certificates itself", field="tls_root")
    if tls_algorithm is not None:
        if tls_root is None:
            raise InvalidInput("a 国密 network's node TLS certificates come from its P-256 transport CA: give its "
                               "root (--tls-root, the CA directory's transport/root.crt) beside --root",
                               field="tls_root")
        check_root(tls_root)
        if network_algorithm(tls_root) is not tls_algorithm:
            raise InvalidInput(f"--tls-root must be the network's {tls_algorithm.name} transport root, not a "
                               f"{network_algorithm(tls_root).name} one", field="tls_root")
    if directory.exists() and not directory.is_dir():
        raise InvalidInput(f"{directory} is a file, expected a directory (one is created if missing)")
    held = [name for name in [*(f"{role}.key" for role in profiles.NODE_ROLES), REQUEST_FILE]
            if (directory / name).exists()]
    if held:
        raise NodeCredentialsExist(f"{directory} already holds {', '.join(held)}: this node has made its keys. "
                                   f"Hand in {directory / REQUEST_FILE} again if the PKI admin needs it; the "
                                   "keys are never replaced silently (to renew them, make new ones in a new "
                                   "directory: gwx node request --dir NEW_DIR, then gwx node renew --from "
                                   "NEW_DIR/credentials)", held=held)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    written: list[Path] = []
    try:
        keys = {}
        for role in profiles.NODE_ROLES:
            # the network's choice, unless the operator named one (which the CA then judges)
            keys[role] = (tls_algorithm if role == "tls" and tls_algorithm and not chosen else algorithm).generate()
            written.append(write_private_key(directory / f"{role}.key", keys[role], passphrase))
        requests = [make_request(SoftwareSigner(key), common_name=node_id, role=role) for role, key in keys.items()]
        fingerprint = key_fingerprint(k.public_key() for k in keys.values())
        text = (f"# gwx node enrolment request: node {node_id}, its TLS, signing and encryption keys\n"
                f"# key fingerprint {fingerprint} — read it out to the PKI admin, whose\n"
                f"#   gwx pki sign-request --ca CA_DIR --request THIS_FILE --host HOST --out RESPONSE\n"
                f"# prints the same before it signs\n").encode() + b"".join(pem_block(REQUEST_LABEL, r)
                                                                         for r in requests)
        written.append(write_public_file(directory / ROOT_FILE, pem(root)))
        if tls_root is not None:
            written.append(write_public_file(directory / TRANSPORT_ROOT_FILE, pem(tls_root)))
        path = write_public_file(directory / REQUEST_FILE, text)
    except BaseException:
        for leftover in written:  # a half-made request leaves nothing a second run would refuse
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    return NodeRequest(node_id, path, text, fingerprint)


def install_node_response(directory: str | Path, response: bytes, passphrase: bytes,
                          now: dt.datetime | None = None) -> dict[str, x509.Certificate]:
    """Check the CA's response against this node's keys, request and root; install it (role → leaf)."""
    directory = Path(directory)
    node_id, _ = _own_request(directory)
    root = load_certificate((directory / ROOT_FILE).read_bytes())
    tls_root_file = directory / TRANSPORT_ROOT_FILE  # a 国密 network's: TLS is judged under it
    roots = {role: load_certificate(tls_root_file.read_bytes()) if role == "tls" and tls_root_file.exists()
             else root for role in profiles.NODE_ROLES}
    leaves, intermediates = split_response(response)
    now = now or utcnow()
    installed: dict[str, x509.Certificate] = {}
    files: dict[Path, bytes] = {}
    for role in profiles.NODE_ROLES:
        public_key = read_private_key(directory / f"{role}.key", passphrase).public_key()
        leaf = next((c for c in leaves if same_key(public_key_of(c), public_key)), None)
        if leaf is None:
            raise ResponseInvalid(f"the response holds no certificate for this node's {role} key: it answers "
                                  "another request (another node's keys, or keys made again since)",
                                  code="PKI_RESPONSE_KEY_MISMATCH", role=role)
        if node_id_of(leaf) != node_id:
            raise ResponseInvalid(f"the {role} certificate names node {node_id_of(leaf)!r}, this node asked as "
                                  f"{node_id!r}", code="PKI_RESPONSE_NODE_MISMATCH", role=role)
        path = verified_path(leaf, roots[role], intermediates, ROLE_PURPOSES[role], now, f"the {role} certificate")
        installed[role] = leaf
        files[directory / f"{role}.crt"] = pem(leaf) + b"".join(pem(c) for c in path[1:-1])
    extra = [c for c in leaves if c not in installed.values()]
    if extra:
        raise ResponseInvalid(f"the response also holds {len(extra)} certificate(s) for keys this node does not "
                              "have; refusing a response that is not for exactly this request",
                              code="PKI_RESPONSE_KEY_MISMATCH")
    write_public_files(files)
    return installed


def installed_node_id(directory: str | Path, passphrase: bytes) -> str:
    """The node id of complete credentials in ``directory``: each key opens with ``passphrase`` and
    its certificate certifies it (what ``gwx node init`` without a CA checks before using them)."""
    directory = Path(directory)
    ids = set()
    for role in profiles.NODE_ROLES:
        crt = directory / f"{role}.crt"
        if not crt.exists():
            what = "the request is still with the PKI admin (gwx node install-certs the response)" \
                if (directory / REQUEST_FILE).exists() else "make a request first (gwx node request)"
            raise RequestInvalid(f"{crt} is not installed yet: {what}", code="PKI_REQUEST_PENDING")
        cert = load_certificate(crt.read_bytes())
        SoftwareSigner(read_private_key(directory / f"{role}.key", passphrase), cert)  # mismatch: typed error
        ids.add(node_id_of(cert))
    if len(ids) != 1 or None in ids:
        raise ResponseInvalid(f"the certificates in {directory} do not name one node ({sorted(map(str, ids))})",
                              code="PKI_RESPONSE_NODE_MISMATCH")
    return ids.pop()


def _own_request(directory: Path) -> tuple[str, list[CheckedRequest]]:
    try:
        requests = read_requests((directory / REQUEST_FILE).read_bytes())
    except FileNotFoundError:
        raise ResponseInvalid(f"{directory} holds no request ({REQUEST_FILE}): make one with gwx node request "
                              "before installing what the CA sends back", code="PKI_RESPONSE_NO_REQUEST") from None
    return requests[0].common_name or "", requests


# ---- at the CA -----------------------------------------------------------------------------------

def read_node_request(data: bytes, expected_node_id: str | None = None,
                      network: SignatureAlgorithm | None = None) -> tuple[str, dict[str, CheckedRequest]]:
    """The node id and role → request of a node's request file, every check of the module docstring
    (with ``network``, the signing CA's algorithm, its keys of that network's profile)."""
    requests = read_requests(data, network)
    by_role: dict[str, CheckedRequest] = {}
    for r in requests:
        if r.role not in profiles.NODE_ROLES or r.unit_code is not None or r.role in by_role:
            raise RequestInvalid(f"a node's request holds one key for each of {', '.join(profiles.NODE_ROLES)} "
                                 f"(its subject's OU); this file has {[x.role for x in requests]}"
                                 + (" and names a unit (a seal's request? gwx pki issue-seal --request)"
                                    if r.unit_code else ""), code="PKI_REQUEST_ROLES")
        by_role[r.role] = r
    if set(by_role) != set(profiles.NODE_ROLES):
        raise RequestInvalid(f"a node's request holds one key for each of {', '.join(profiles.NODE_ROLES)}; "
                             f"this file has {sorted(by_role)}", code="PKI_REQUEST_ROLES")
    names = {r.common_name for r in requests}
    if len(names) != 1:
        raise RequestInvalid(f"the requests name different nodes ({', '.join(sorted(map(str, names)))}); one "
                             "request file is one node's", code="PKI_REQUEST_NODE_MISMATCH")
    node_id = names.pop() or ""
    try:
        check_node_id(node_id)
    except InvalidInput as exc:
        raise RequestInvalid(f"the request's subject: {exc.message}", code="PKI_REQUEST_SUBJECT") from None
    if expected_node_id is not None and node_id != expected_node_id:
        raise RequestInvalid(f"the request is for node {node_id!r}, not {expected_node_id!r} as you said",
                             code="PKI_REQUEST_NODE_MISMATCH", node_id=node_id)
    keys = [r.public_key for r in requests]
    if any(same_key(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]):
        raise RequestInvalid("the request uses one key for two roles; a node has three different keys",
                             code="PKI_REQUEST_KEY_REUSED")
    return node_id, by_role


def sign_node_request(ca: CertificateAuthority, data: bytes, host: str, *, node_id: str | None = None,
                      valid_days: int | None = None, replace: bool = False, renew: bool = False,
                      now: dt.datetime | None = None) -> SignedNodeRequest:
    """Issue a node's three certificates for the keys its request names; nothing is issued unless
    every check passes. A node id that already has valid certificates needs ``replace`` (they are
    revoked as superseded) or ``renew`` (they stay valid for the overlap of ``gwx node renew``), as
    issue-node."""
    if replace and renew:
        raise InvalidInput("a renewal keeps the earlier certificates valid, a replacement revokes them: "
                           "choose one", field="renew")
    node_id, by_role = read_node_request(data, node_id, ca.algorithm)
    earlier = ca.node_certificates_in_force(node_id, now, replace=replace or renew)
    certs = {role: ca.issue_node_certificate(node_id, host, role, by_role[role].public_key, valid_days, now)
             for role in profiles.NODE_ROLES}
    if renew:
        earlier = []  # kept valid: peers accept both sets until the node's overlap ends
    ca.supersede(earlier, now)
    fingerprint = key_fingerprint(by_role[role].public_key for role in profiles.NODE_ROLES)
    header = (f"# gwx node enrolment response: node {node_id}, certificates for the keys with fingerprint\n"
              f"# {fingerprint}, issued by {ca.name}. On the node:\n"
              f"#   gwx node install-certs --dir NODE_DIR THIS_FILE\n").encode()
    transport = ca.separate_transport()  # a 国密 network's: the TLS certificate's intermediates
    response = header + b"".join(pem(certs[role]) for role in profiles.NODE_ROLES) \
        + b"".join(pem(c) for c in (*ca.chain[:-1], *(transport.chain[:-1] if transport else ())))
    return SignedNodeRequest(node_id, certs, response, fingerprint, earlier)


# ---- shared by node and seal enrolment ---------------------------------------------------------

def check_root(root: x509.Certificate) -> None:
    """A root certificate to trust: self-issued, a CA, its self-signature valid."""
    try:
        ca = root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca or root.issuer != root.subject:
        raise InvalidInput("--root must be the network's root CA certificate (self-issued, CA:TRUE); this is "
                           f"{root.subject.rfc4514_string()}", field="root")
    if not signed_by(root, root):
        raise InvalidInput("--root's self-signature does not verify: it is not a root certificate as the CA "
                           "made it", field="root")


def split_response(response: bytes) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The leaf certificates and the CA certificates of a response file."""
    try:
        certs = [x509.load_der_x509_certificate(der) for der in pem_blocks(response, "CERTIFICATE")]
    except (ValueError, MalformedEncoding) as exc:
        raise ResponseInvalid(f"the response holds a certificate that does not parse: {exc}",
                              code="PKI_RESPONSE_MALFORMED") from None
    if not certs:
        raise ResponseInvalid("no certificate in this file (expected what gwx pki sign-request or issue-seal "
                              "--request wrote)", code="PKI_RESPONSE_MALFORMED")
    leaves, cas = [], []
    for cert in certs:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except (x509.ExtensionNotFound, ValueError):
            is_ca = False
        (cas if is_ca else leaves).append(cert)
    return leaves, cas


def verified_path(leaf: x509.Certificate, root: x509.Certificate, intermediates: list[x509.Certificate],
                  purposes: tuple[Purpose, ...], now: dt.datetime, what: str) -> list[x509.Certificate]:
    """``leaf``'s path to ``root`` good for every one of ``purposes``, or a typed response error."""
    path: list[x509.Certificate] = []
    for purpose in purposes:
        try:
            path = verify_certificate(leaf, TrustStore.of([root]), now, intermediates, purpose)
        except CertificateWrongUsage as exc:
            raise ResponseInvalid(f"{what} is not for {purpose.value}: {exc.message}",
                                  code="PKI_RESPONSE_WRONG_PURPOSE", purpose=purpose.value) from None
        except CertificateInvalid as exc:
            raise ResponseUntrusted(f"{what} does not verify under this node's root certificate "
                                    f"({exc.code}: {exc.message})", reason=exc.code) from None
    return path


def same_key(a: PublicKey, b: PublicKey) -> bool:
    return a.public_bytes(_DER, _SPKI) == b.public_bytes(_DER, _SPKI)
