"""A small real network for the envelope tests: a root CA, an intermediate, EC and RSA nodes, and an
untrusted CA with a node claiming the same id. Built once per test process (key generation and
passphrase-encrypted key files are the slow part)."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exchange_protocol.envelope_crypto import DecryptionKey, Recipient
from exchange_protocol.envelope_seal import HeaderDraft, Sender, TrustPolicy
from pki import profiles
from pki.ca import CertificateAuthority, NodeCredentials
from pki.certificates import NODE_URI_PREFIX, pem
from pki.keystore import read_private_key
from pki.signer import SoftwareSigner
from pki.trust import TrustStore
from tests.support import PASSPHRASE

NOW = dt.datetime(2026, 3, 2, 8, 0, 0, tzinfo=dt.UTC)
UNIT_A = "91350100M000100Y43"
UNIT_B = "11100000000013127D"


@dataclass(frozen=True)
class Node:
    creds: NodeCredentials
    sender: Sender
    recipient: Recipient
    key: DecryptionKey
    enc_key_pem: Path  # the decrypted encryption key, for openssl

    @property
    def id(self) -> str:
        return self.creds.node_id


@dataclass(frozen=True)
class Network:
    base: Path
    root: CertificateAuthority
    inter: CertificateAuthority
    nodes: dict[str, Node]
    policy: TrustPolicy

    def draft(self, origin="a", destination="b", type="document", in_reply_to=None, ttl_days=1,
              max_hops=8, to=(UNIT_B,)) -> HeaderDraft:
        return HeaderDraft.new(type, origin, destination, UNIT_A, to, NOW, dt.timedelta(days=ttl_days),
                               in_reply_to=in_reply_to, max_hops=max_hops)


def _node(ca: CertificateAuthority, node_id: str, base: Path, algorithm: str | None = None,
          chain: tuple[x509.Certificate, ...] = ()) -> Node:
    out = base / f"{node_id}-{ca.name}"
    creds = ca.issue_node(node_id, f"{node_id}.example", out, PASSPHRASE, algorithm=algorithm,
                          now=NOW - dt.timedelta(days=1))
    sign_key = read_private_key(out / "sign.key", PASSPHRASE)
    enc_key = read_private_key(out / "enc.key", PASSPHRASE)
    pem_path = out / "enc.plain.pem"
    pem_path.write_bytes(enc_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    (out / "enc.leaf.pem").write_bytes(pem(creds.encryption_certificate))
    return Node(creds, Sender(node_id, SoftwareSigner(sign_key, creds.signing_certificate), chain),
                Recipient(creds.encryption_certificate), DecryptionKey(enc_key, creds.encryption_certificate),
                pem_path)


@functools.cache
def network() -> Network:
    base = Path(tempfile.mkdtemp(prefix="gwx-envelope-"))
    atexit.register(shutil.rmtree, base, True)
    root = CertificateAuthority.init_root(base / "root", "测试网", PASSPHRASE, now=NOW - dt.timedelta(days=2))
    inter = root.create_intermediate(base / "inter", "测试县", PASSPHRASE, now=NOW - dt.timedelta(days=2))
    rogue = CertificateAuthority.init_root(base / "rogue", "Rogue", PASSPHRASE, now=NOW - dt.timedelta(days=2))
    nodes = {
        "a": _node(root, "a", base),
        "b": _node(root, "b", base),
        "c": _node(inter, "c", base, chain=(inter.certificate,)),
        "r": _node(root, "r", base, algorithm="rsa3072-sha256"),
        "rogue-a": _node(rogue, "a", base),
    }
    (base / "root.pem").write_bytes(pem(root.certificate))
    return Network(base, root, inter, nodes, TrustPolicy(TrustStore.of([root.certificate])))



@dataclass(frozen=True)
class Destination:
    """A destination node with only what a bundle needs of it: its encryption certificate and key."""

    id: str
    recipient: Recipient
    key: DecryptionKey


@functools.cache
def destinations(count: int) -> tuple[Destination, ...]:
    """``count`` destination nodes d0, d1, … (encryption certificates from the root, P-256 keys held
    in memory: no key files, so hundreds take a second)."""
    net = network()
    out = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"d{i}")])
        cert = net.root.issue(key.public_key(), subject, profiles.NODE_ENCRYPTION,
                              sans=[x509.UniformResourceIdentifier(NODE_URI_PREFIX + f"d{i}")],
                              now=NOW - dt.timedelta(days=1))
        out.append(Destination(f"d{i}", Recipient(cert), DecryptionKey(key, cert)))
    return tuple(out)


@functools.cache
def sm_network() -> Network:
    """The same small network on the 国密 profile: an SM2 root and intermediate, SM2 nodes a, b and c
    (c under the intermediate), and a rogue SM2 root with a node claiming a's id."""
    base = Path(tempfile.mkdtemp(prefix="gwx-sm-envelope-"))
    atexit.register(shutil.rmtree, base, True)
    root = CertificateAuthority.init_root(base / "root", "国密测试网", PASSPHRASE, algorithm="sm2-sm3",
                                          now=NOW - dt.timedelta(days=2))
    inter = root.create_intermediate(base / "inter", "国密测试县", PASSPHRASE, now=NOW - dt.timedelta(days=2))
    rogue = CertificateAuthority.init_root(base / "rogue", "Rogue SM", PASSPHRASE, algorithm="sm2-sm3",
                                           now=NOW - dt.timedelta(days=2))
    nodes = {
        "a": _node(root, "a", base),
        "b": _node(root, "b", base),
        "c": _node(inter, "c", base, chain=(inter.certificate,)),
        "rogue-a": _node(rogue, "a", base),
    }
    (base / "root.pem").write_bytes(pem(root.certificate))
    return Network(base, root, inter, nodes, TrustPolicy(TrustStore.of([root.certificate])))
