"""Shared helpers of the network integration tests (tests/node/network/).

Every test here runs real ``gwx node run`` processes on loopback (:mod:`node.localnet`): our own
CA, mutual TLS between nodes, SQLite files on disk, clerks' tokens. Nothing is mocked. Helpers:

* unit codes and :func:`notice_meta` (the metadata of a 通知);
* :func:`start_network` — build and start a topology once per module (retry windows shortened so
  a restarted peer is retried within a second); :func:`city_and_county`, the two-node network many
  modules share, as a module fixture; :func:`networks_by_store` with the :func:`store` and
  :func:`net_by_store` fixtures for scenarios run on SQLite and PostgreSQL (test_exchange,
  test_crash); :func:`new_network` and :func:`connect_and_start` for topologies it cannot say
  (intermediate CAs). ``net.body`` is a sample 公文 PDF
  (:func:`node.localnet.notice_pdf`) to send;
* :func:`db_rows` / :func:`db_value` — read a node's SQLite file read-only (WAL lets us read while
  the node runs), and :func:`verify_audit_chain`, which recomputes the hash chain from the file;
* :class:`RawPeer` — speak the peer protocol by hand over mutual TLS with a node's own TLS
  certificate (for hostile and malformed requests), and :func:`forge_envelope` to seal envelopes
  with any node's signing key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import http.client
import json
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from exchange_protocol.audit_chain import GENESIS_HASH, hash_at
from exchange_protocol.envelope import MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import HeaderDraft, Sender, seal_envelope
from exchange_protocol.ids import new_id
from exchange_protocol.notices import Notice
from node.config import load_config
from node.federation.tls import client_context
from node.localnet import PASSPHRASE, LocalNetwork, LocalNode, notice_pdf, wait_for
from pki.certificates import load_certificates
from pki.keystore import read_private_key, write_public_file
from pki.signer import SoftwareSigner
from pki.unit_code import make_unit_code
from tests.exchange_protocol.ofd_fixtures import make_ofd

REPO = Path(__file__).resolve().parents[3]
ENVELOPE_TYPE = "application/vnd.gwx.envelope"
PROFILES = ("international", "sm")  # pki.algorithms.NETWORK_PROFILES
# Scenarios marked @every_profile run on an international network and on a 国密 one (SM2 keys and
# seals, SM4/SM2 envelopes, node TLS under the transport root, an OFD body sealed per GB/T 38540).
every_profile = pytest.mark.parametrize("profile", PROFILES)


class ByProfile:
    """A module's network for each profile (the ``profile`` fixture), made by ``make(profile)`` when a
    test first asks for it: a scenario marked :data:`every_profile` shares the module's network on each, and the other tests the international one, as before."""

    def __init__(self, make: Callable[[str], LocalNetwork]) -> None:
        self._make = make
        self._made: dict[str, LocalNetwork] = {}

    def __call__(self, profile: str) -> LocalNetwork:
        if profile not in self._made:
            self._made[profile] = self._make(profile)
        return self._made[profile]

    def stop_all(self) -> None:
        for net in self._made.values():
            net.stop_all()
FAST_RETRY = {"min_seconds": 0.2, "max_seconds": 1.0, "window_seconds": 30}

CITY = make_unit_code("11371300MB0000001")        # 临沂市人民政府办公室 (sender)
CITY_LOCAL = make_unit_code("11371300MB0000002")  # 临沂市财政局, on the city node too
A1 = make_unit_code("11371302MB0000001")
A2 = make_unit_code("11371302MB0000002")
B1 = make_unit_code("11371311MB0000001")

UNIT_NAMES = {CITY: "临沂市人民政府办公室", CITY_LOCAL: "临沂市财政局", A1: "兰山区人民政府办公室",
              A2: "兰山区财政局", B1: "罗庄区人民政府办公室"}


def units(*codes: str) -> list[dict]:
    return [{"code": c, "name": UNIT_NAMES[c]} for c in codes]


def clerk_name(code: str) -> str:
    """The name on a clerk's token (what 签收 records as 签收人)."""
    return f"{UNIT_NAMES[code]}收发员"


_serial = iter(range(1, 100000))


def notice_meta(from_unit: str, to: Sequence[str], cc: Sequence[str] = (), *, title: str | None = None,
                deadline: str | None = None) -> dict[str, Any]:
    n = next(_serial)
    return {"kind": "通知", "title": title or f"关于做好冬季安全生产工作的通知（第{n}号）",
            "doc_number": f"临政办发〔2026〕{n}号", "issuers": [from_unit], "signers": [], "to": list(to),
            "cc": list(cc), "written_on": "2026-11-20", "urgency": None, "classification": "非密",
            "deadline": deadline, "copy_number": None, "printed_by": UNIT_NAMES.get(from_unit, "临沂市"),
            "printed_on": "2026-11-20", "note": None, "attachments_note": None, "id": None}


def start_network(base: Path, topology: dict[str, tuple[list[str], dict]], *,
                  profile: str = "international", running: Collection[str] | None = None) -> LocalNetwork:
    """``topology``: node id → (unit codes, config overrides). All nodes know each other. ``profile``:
    the network's cryptography (:data:`PROFILES`), for scenarios parametrised on it. ``running``: the
    nodes started (default: all); the others are provisioned and known to every node, but their
    process is never started — for a module that only speaks as them, with their keys and certificates."""
    net = new_network(base, profile=profile)
    for node_id, (codes, overrides) in topology.items():
        net.add_node(node_id, units(*codes), **{"retry": FAST_RETRY, **overrides})
    return connect_and_start(net, running)


def city_and_county(name: str):
    """A module's ``networks`` fixture (``networks = city_and_county("peerdown")``): the city node
    (:data:`CITY`) and county-a (:data:`A1`), each profile's started when a test first asks for it
    (:class:`ByProfile`, the ``net`` fixture of conftest.py), all stopped after the module."""
    @pytest.fixture(scope="module")
    def networks(tmp_path_factory) -> Iterator[ByProfile]:
        made = ByProfile(lambda profile: start_network(tmp_path_factory.mktemp(f"{name}-{profile}"),
                                                       {"city": ([CITY], {}), "county-a": ([A1], {})},
                                                       profile=profile))
        yield made
        made.stop_all()
    return networks


def networks_by_store(name: str, topology: dict[str, tuple[list[str], dict]]):
    """A module's ``networks`` fixture for scenarios run on SQLite and on PostgreSQL (the module takes
    :func:`store` and :func:`net_by_store` too): ``topology`` as :func:`start_network` takes it, each
    node keeping its rows in SQLite, or in a PostgreSQL database of its own (empty: the node makes its
    tables at its first start). One network per (store, profile) a test asks for, made then and kept
    for the module — so that a scenario's copies share it whatever order they run in (a store as a
    module fixture's param, overridden by the copies, was set up again at each change). After the
    module every node is stopped cleanly and its audit chain still verifies."""
    @pytest.fixture(scope="module")
    def networks(tmp_path_factory):
        made: dict[tuple[str, str], LocalNetwork] = {}

        def get(store: str, profile: str, server) -> LocalNetwork:
            if (store, profile) not in made:
                stores = {node: {} for node in topology}
                if server is not None:
                    stores = {node: {"store": {"backend": "postgresql", "dsn": server.new_database(migrated=False)}}
                              for node in topology}
                network = start_network(tmp_path_factory.mktemp(f"{name}-{store}-{profile}"),
                                        {node: (codes, {**overrides, **stores[node]})
                                         for node, (codes, overrides) in topology.items()}, profile=profile)
                stack.callback(_stop_and_check, network)
                if server is not None:  # the rows are in PostgreSQL, none in a SQLite file
                    assert not any(db_path(node).exists() for node in network.nodes.values())
                made[store, profile] = network
            return made[store, profile]

        with contextlib.ExitStack() as stack:
            yield get
    return networks


def _stop_and_check(network: LocalNetwork) -> None:
    network.stop_all()
    for node in network.nodes.values():  # after a clean stop, every node's audit chain still verifies
        assert verify_audit_chain(node) > 0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request) -> str:
    """The store a scenario of a :func:`networks_by_store` module runs on (each scenario on both, unless
    it is parametrised on ``store`` itself)."""
    return request.param


@pytest.fixture(name="net")
def net_by_store(networks, store, profile, request) -> LocalNetwork:
    """The module's network (:func:`networks_by_store`) on the scenario's store and profile."""
    return networks(store, profile, request.getfixturevalue("postgres_server") if store == "postgresql" else None)


# A scenario whose behaviour involves the profile's algorithms runs on a 国密 network too — on SQLite
# alone (the store keeps the same rows whichever algorithm signed them) — and on PostgreSQL, internationally.
every_profile_by_store = pytest.mark.parametrize(("store", "profile"), [("sqlite", p) for p in PROFILES]
                                                 + [("postgresql", "international")])


def new_network(base: Path, *, profile: str = "international") -> LocalNetwork:
    """A network with its root CA (of ``profile``) and no node yet; ``net.body`` is a sample 公文 to send
    (a PDF; an OFD on a 国密 network)."""
    net = LocalNetwork(base, profile=profile)
    # On a 国密 network the body is an OFD, its SM2 seal inside per GB/T 38540 (a PDF sealed with SM2
    # is taken there too: tests/exchange_protocol/test_sm_package.py).
    net.body = base / ("body.ofd" if profile == "sm" else "body.pdf")
    net.body.write_bytes(make_ofd() if profile == "sm" else notice_pdf())
    return net


@contextmanager
def directory_network(base: Path, hosted: Mapping[str, list[dict]], tree: Sequence[tuple[str, str, str | None]],
                      directory_units: Sequence[dict[str, str]],
                      overrides: Mapping[str, dict] | None = None, *,
                      profile: str = "international", running: Collection[str] | None = None) -> Iterator[LocalNetwork]:
    """Nodes that route by the network directory, running: ``hosted`` is node id → the units it
    hosts (as ``add_node`` takes them), ``tree`` and ``directory_units`` what the directory says
    (see :func:`signed_directory`), ``overrides`` node id → config overrides. Every node holds
    version 1 of the directory from the start; all are stopped afterwards. ``running``: the nodes
    started (default: all; the others provisioned, as :func:`start_network` says)."""
    net = new_network(base, profile=profile)
    for node_id, its_units in hosted.items():
        net.add_node(node_id, its_units, **{"retry": FAST_RETRY, **(overrides or {}).get(node_id, {})})
    directory = signed_directory(net, 1, tree, directory_units)
    for node in net.nodes.values():
        write_public_file(node.directory / "directory.json", directory)
    try:
        for node in net.nodes.values():
            if running is None or node.node_id in running:
                net.start(node)
        yield net
    finally:
        net.stop_all()


def connect_and_start(net: LocalNetwork, running: Collection[str] | None = None) -> LocalNetwork:
    """Every node learns every other, then all start (those named in ``running``, when given); if one
    cannot, those started are stopped."""
    net.connect_all()
    try:
        for node in net.nodes.values():
            if running is None or node.node_id in running:
                net.start(node)
    except BaseException:
        net.stop_all()
        raise
    return net


def stop_network(net: LocalNetwork) -> None:
    net.stop_all()


def ensure_running(net: LocalNetwork, *nodes: LocalNode) -> None:
    for node in nodes:
        if not node.running:
            net.start(node)


# --- the nodes' databases (SQLite files, or PostgreSQL with [store] backend = "postgresql") --------
def db_path(node: LocalNode) -> Path:
    return _store_of(node.directory)[1]


_stores: dict[Path, tuple[tuple[int, int, int], Any, Path]] = {}


def _store_of(directory: Path) -> tuple[Any, Path]:
    """The node's ``[store]`` and SQLite file, read again only when its node.toml changed (tests poll
    a node's rows every 10–200 ms, and parsing and checking node.toml is a third of a read's CPU)."""
    seen = (directory / "node.toml").stat()
    stamp = (seen.st_ino, seen.st_mtime_ns, seen.st_size)
    cached = _stores.get(directory)
    if cached is None or cached[0] != stamp:
        config = load_config(directory)
        cached = _stores[directory] = (stamp, config.store, config.data_dir / "gwx.db")
    return cached[1], cached[2]


class _PostgresReaders:
    """One read-only connection per PostgreSQL database, kept for the test process: a connection is a
    server process forked and started (~7 ms of the server's CPU, ~1 ms of ours), which a test
    polling a node's rows every 10–20 ms paid at every read. Autocommit, so each read sees what
    the node committed up to then; a connection the server dropped is opened again once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[str, Any] = {}

    def rows(self, dsn: str, sql: str, params: Sequence[Any]) -> list[tuple]:
        import psycopg

        from node.store.postgresql.dialect import translate

        with self._lock:
            for attempt in (1, 2):
                pg = self._connections.get(dsn)
                if pg is None or pg.closed:
                    pg = self._connections[dsn] = psycopg.connect(dsn, autocommit=True)
                    pg.read_only = True
                try:
                    return [tuple(r) for r in pg.execute(translate(sql), tuple(params)).fetchall()]
                except psycopg.OperationalError:
                    pg.close()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")


_postgres = _PostgresReaders()


def db_rows(node: LocalNode, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """``sql`` (SQLite's words, ``?`` placeholders) on the node's database, read-only, whichever backend."""
    store, path = _store_of(node.directory)
    if store.backend == "postgresql":
        return _postgres.rows(store.dsn, sql, params)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    finally:
        conn.close()


def db_value(node: LocalNode, sql: str, params: Sequence[Any] = ()) -> Any:
    rows = db_rows(node, sql, params)
    return rows[0][0] if rows else None


def verify_audit_chain(node: LocalNode) -> int:
    """Recompute the audit log's hash chain from the file; returns the number of events."""
    prev, count = GENESIS_HASH, 0
    v2_from = db_value(node, "SELECT from_seq FROM audit_version WHERE version = 2")
    rows = db_rows(node, "SELECT seq, at, actor, action, subjects, details, prev_hash, hash, content_hash"
                         " FROM audit ORDER BY seq")
    for expected_seq, (seq, at, actor, action, subjects, details, prev_hash, digest, content) in enumerate(rows, 1):
        assert seq == expected_seq, f"{node.node_id}: audit event {expected_seq} missing"
        assert prev_hash == prev, f"{node.node_id}: audit chain broken at {seq}"
        assert hash_at(v2_from, prev, seq, at, actor, action, json.loads(subjects), json.loads(details)) \
            == (digest, content), f"{node.node_id}: audit event {seq} does not match its hash"
        prev, count = digest, count + 1
    return count


# --- speaking the peer protocol by hand ------------------------------------------------------------
def tls_context_of(node: LocalNode) -> ssl.SSLContext:
    return tls_context_from(load_config(node.directory).credentials_dir)


def peer_url(node: LocalNode) -> str:
    return load_config(node.directory).peer_api.public_url


class RawPeer:
    """HTTP requests to ``target``'s peer API over mutual TLS, presenting ``context``'s certificate."""

    def __init__(self, target: LocalNode, context: ssl.SSLContext) -> None:
        url = peer_url(target)
        host, port = url.removeprefix("https://").rsplit(":", 1)
        self.host, self.port, self.context = host, int(port), context

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict | None, bytes]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30)
        try:
            try:
                conn.request(method, path, body=body, headers=headers or {})
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before the body was read: the answer is waiting
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "")
        finally:
            conn.close()
        parsed = json.loads(data) if ctype.startswith("application/json") and data else None
        return resp.status, parsed, data

    def post_envelopes(self, body: bytes, content_type: str = ENVELOPE_TYPE) -> tuple[int, dict | None, bytes]:
        return self.request("POST", "/peer/v1/envelopes", body, {"Content-Type": content_type})

    def health(self) -> dict:
        status, parsed, data = self.request("GET", "/peer/v1/health")
        assert status == 200, data
        return parsed


def node_sender(node: LocalNode) -> Sender:
    """``node``'s signing identity, read from its credentials directory (as the node does)."""
    return sender_from(load_config(node.directory).credentials_dir, node.node_id)


def sender_from(creds: Path, node_id: str) -> Sender:
    chain = load_certificates((creds / "sign.crt").read_bytes())
    key = read_private_key(creds / "sign.key", PASSPHRASE)
    return Sender(node_id, SoftwareSigner(key, chain[0]), tuple(chain[1:]))


def tls_context_from(creds: Path) -> ssl.SSLContext:
    """A client context with the node's TLS certificate, trusting what the node trusts for TLS (its
    transport root on a 国密 network, ``tls-root.crt``; otherwise the network root)."""
    root = creds / "tls-root.crt" if (creds / "tls-root.crt").exists() else creds / "root.crt"
    return client_context(creds / "tls.crt", creds / "tls.key", root, PASSPHRASE)


def node_recipient(node: LocalNode) -> Recipient:
    creds = load_config(node.directory).credentials_dir
    return Recipient(load_certificates((creds / "enc.crt").read_bytes())[0])


def forge_envelope(signer_node: LocalNode | None, destination: LocalNode, *, from_unit: str | None,
                   to_units: Sequence[str], payload: bytes | None = None,
                   type: MessageType = MessageType.URGE, message_id: str | None = None,
                   sender: Sender | None = None, in_reply_to: str | None = None) -> tuple[str, bytes]:
    """An envelope signed with ``signer_node``'s key (or ``sender``'s: its origin) for ``destination``."""
    now = dt.datetime.now(dt.UTC)
    sender = sender or node_sender(signer_node)
    if in_reply_to is None and type is not MessageType.DOCUMENT:
        in_reply_to = new_id(now)  # notices must name a message; one the receiver never saw
    draft = HeaderDraft.new(type, sender.node_id, destination.node_id, from_unit, to_units, now,
                            dt.timedelta(days=1), in_reply_to=in_reply_to)
    if message_id is not None:
        draft = HeaderDraft(message_id, draft.type, draft.origin_node, draft.destination_node, draft.from_unit,
                            draft.to_units, draft.created, draft.expires, draft.in_reply_to, draft.max_hops)
    if payload is None:
        payload = Notice(type, "forged-doc-0001", tuple(to_units), now).encode()
    sealed = seal_envelope(draft, payload, sender, node_recipient(destination))
    return draft.message_id, sealed.data


# --- the clerks' and operators' command line --------------------------------------------------------
def gwx(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                                                          "PYTHONIOENCODING": "utf-8"})


def token_file(node: LocalNode, name: str) -> Path:
    return node.directory / "tokens" / f"{name}.token"


def track(node: LocalNode, unit: str, doc_id: str) -> str:
    """``gwx track`` as ``unit``'s clerk sees it (the text, which must succeed)."""
    out = gwx("track", doc_id, "--node", node.ready["local_url"], "--token-file", str(token_file(node, f"clerk-{unit}")))
    assert out.returncode == 0, out.stderr
    return out.stdout


def recipients_by_unit(tracking: dict) -> dict[str, dict]:
    return {r["unit"]: r for r in tracking["recipients"]}


def wait_status(node: LocalNode, sender_unit: str, doc_id: str, expected: dict[str, str],
                timeout: float = 30.0) -> dict:
    """Wait until the sender's tracking shows ``expected`` (unit → status); returns the tracking.
    On a timeout the error says what each unit showed last (status, reason, where it waits)."""
    seen: dict[str, dict] = {}

    def check():
        tracking = node.clerk(sender_unit).get(f"/api/v1/outbox/{doc_id}")
        by_unit = recipients_by_unit(tracking)
        seen.update({u: {k: by_unit[u].get(k) for k in ("status", "reason", "where")} for u in expected})
        return tracking if all(by_unit[u]["status"] == s for u, s in expected.items()) else None
    try:
        return wait_for(check, timeout, interval=0.1, what=f"{doc_id} reaching {expected}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last seen: {seen}") from None


def inbox_item(node: LocalNode, unit: str, doc_id: str, timeout: float = 30.0) -> dict:
    def find():
        return next((i for i in node.clerk(unit).get("/api/v1/inbox", {"limit": 500}) if i["doc_id"] == doc_id), None)
    return wait_for(find, timeout, what=f"{doc_id} in the inbox of {unit}")


def blob_path(node: LocalNode, digest: str) -> Path:
    return load_config(node.directory).data_dir / "blobs" / "sha256" / digest[:2] / digest[2:]


def stored_bytes(node: LocalNode, digest: str) -> bytes:
    """A blob of ``node``'s: its file, or — a small one (a received envelope, an envelope it sealed:
    ``[store] inline_max_bytes``) — its row of ``inline_blobs``."""
    path = blob_path(node, digest)
    if path.is_file():
        return path.read_bytes()
    [(data,)] = db_rows(node, "SELECT data FROM inline_blobs WHERE digest = ?", [digest])
    return bytes(data)


def kept_statements(node: LocalNode, doc_id: str, side: str) -> dict[str, dict]:
    """The 签收/退回 statements ``node`` keeps for ``doc_id`` on ``side`` (receiver/sender), by unit: the
    signed content as the CMS carries it, read with asn1crypto."""
    from asn1crypto import cms as acms
    rows = db_rows(node, "SELECT unit, statement FROM notice_evidence WHERE doc_id = ? AND side = ?", [doc_id, side])
    return {unit: json.loads(acms.ContentInfo.load(bytes(der))["content"]["encap_content_info"]["content"].native)
            for unit, der in rows}


def package_digest_by_openssl(net: LocalNetwork, package: bytes) -> tuple[str, str]:
    """(the statement key, the digest) a 签收/退回 statement names ``package`` by on ``net``: SM3 on a
    国密 network, SHA-256 on an international one — computed by `openssl dgst`."""
    algorithm = "sm3" if net.profile == "sm" else "sha256"
    out = subprocess.run(["openssl", "dgst", f"-{algorithm}", "-r"], input=package, capture_output=True, check=True)
    return f"package_{algorithm}", out.stdout.decode().split()[0]


def metric(node: LocalNode, name: str, **labels: str) -> float:
    """A counter's value from the node's /metrics (0 when the series does not exist yet)."""
    text = node.client("operator").get("/metrics")
    text = text.decode() if isinstance(text, bytes) else text
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def log_text(node: LocalNode) -> str:
    return node.log_path.read_text(errors="replace") if node.log_path and node.log_path.exists() else ""


def wait_log(node: LocalNode, needle: str, timeout: float = 10.0) -> str:
    return wait_for(lambda: needle in log_text(node) and log_text(node), timeout, what=f"{needle!r} in the log")


def monotonic_deadline(seconds: float) -> float:
    return time.monotonic() + seconds


def signed_directory(net: LocalNetwork, version: int, nodes: Sequence[tuple[str, str, str | None]],
                     units: Sequence[dict[str, str]], *, issued: dt.datetime | None = None,
                     signer: Any = None, supervision: Mapping[str, Any] | None = None) -> bytes:
    """The root operator's network directory of running nodes, as ``gwx net build`` makes it: a
    source written out (``nodes`` as (node id, level, parent); ``units`` as their source tables),
    read and signed by the network CA's directory signer, or by ``signer`` when a test forges one;
    ``supervision`` the source's ``[supervision]`` (the network's 督办 rules)."""
    from exchange_protocol.directory_signing import sign_directory
    from node.directory_source import read_source
    from pki import directory_signer
    from pki.certificates import utcnow

    lines = ['network = "临沂市电子政务外网"', f"version = {version}"]
    for node_id, level, parent in nodes:
        config = load_config(net.nodes[node_id].directory)
        lines += ["[[nodes]]", f'id = "{node_id}"', f'urls = ["{config.peer_api.public_url}"]',
                  f'level = "{level}"', f'credentials = "{config.credentials_dir}"']
        lines += [f'parent = "{parent}"'] if parent else []
    for unit in units:
        lines += ["[[units]]", *(f'{key} = "{value}"' for key, value in unit.items())]
    if supervision is not None:  # the network's 督办 rules: [supervision] of the source, values as TOML
        lines += ["[supervision]", *(f"{key} = {json.dumps(value)}" for key, value in supervision.items())]
    source = net.base / f"network-{version}.toml"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    directory = read_source(source, issued or utcnow())
    if signer is not None:
        return sign_directory(directory, signer)
    transport = net.ca.separate_transport()
    if transport is not None:  # as gwx net build names a 国密 network's transport root
        directory = dataclasses.replace(directory, transport_root=transport.root_certificate)
    official = directory_signer.from_ca(net.ca)
    return sign_directory(directory, official.signer, official.chain)
