"""The processor's scenes, shared by test_processor.py, test_retry_limiter.py, test_envelope_builder.py
and test_destination_credentials.py: a county node (units A and B) receiving from a city node (unit
SENDER), both provisioned, neither running.

:func:`open_processor` wires the county's store, outbound queue and processor as the node does;
:func:`city_package` and :func:`city_envelope` are what the city would send (real seal, real
signing and encryption keys); :func:`receive` stores an envelope as acknowledged, not yet applied;
:func:`run_until_backing_off` runs the county's loop for the city until it backs the city off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_envelope
from exchange_protocol.ids import new_id
from exchange_protocol.manifest import Manifest, parse_manifest
from exchange_protocol.meta_json import parse_meta
from exchange_protocol.package import build_package
from node.federation.destination_queue import DestinationQueue
from node.federation.outbound import Outbound
from node.federation.processor import Delivery, Processor
from node.federation.tls import client_context
from node.federation.transport import PeerClient
from node.localnet import notice_pdf
from node.ops.metrics import Registry
from node.store import InboundEnvelope, PeerState, StoredPeerCredentials
from node.store.opener import open_store
from pki import cms
from pki.certificates import load_certificates, pem, utcnow
from pki.unit_code import make_unit_code
from tests.node.federation.federation_support import node_context, provision_county_and_city
from tests.support import PASSPHRASE

A, B = make_unit_code("11371302MB0000071"), make_unit_code("11371302MB0000072")
SENDER = make_unit_code("11371300MB0000071")  # a unit of another node, "city"


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    # The city node holds the sending unit's seal.
    return provision_county_and_city(tmp_path_factory.mktemp("processing"), "处理测试CA",
                                     {A: "甲单位", B: "乙单位"}, {SENDER: "市政府办公室"})


async def open_processor(node_dir, tmp_path, pool=None):
    """The county's context, a fresh store, outbound queue and processor (close with close_processor);
    ``pool``: the node's check processes (node.federation.check_pool) its acceptor and judge use."""
    ctx = node_context(node_dir / "county")
    config = ctx.config
    store = await open_store(tmp_path / "data", node_id=ctx.node_id)
    creds = config.credentials_dir
    outbound = Outbound(ctx, store, PeerClient(client_context(creds / "tls.crt", creds / "tls.key",
                                                             config.trust_root_path, PASSPHRASE)), Registry())
    processor = Processor(ctx, store, Registry(), outbound)
    processor.judge.pool = pool
    return ctx, store, outbound, processor


@pytest.fixture(scope="module", params=["in-process", "check-process"])
def checks(request):
    """The package checks in the node's process, or in a check process beside it (the same verdicts)."""
    from node.federation.check_pool import CheckPool

    pool = CheckPool(1) if request.param == "check-process" else None
    yield pool
    if pool is not None:
        pool.close()


async def know_the_city(node_dir, store, now: dt.datetime) -> None:
    """The city's certificates in ``store`` as a first contact would have cached them (no network needed)."""
    city = node_context(node_dir / "city")
    await store.peer_credentials.save(StoredPeerCredentials(
        "city", pem(city.signer.certificate).decode(), pem(city.decryption_key.certificate).decode(),
        b"".join(pem(c) for c in city.intermediates).decode(), now))


async def close_processor(store, outbound) -> None:
    await outbound.stop(1.0)
    await outbound.client.close()
    await store.close()


def city_package(node_dir, to, *, tamper_pdf=False) -> bytes:
    """A package sealed by the city's SENDER for ``to``; ``tamper_pdf``: its PDF seal alone fails."""
    ctx = node_context(node_dir / "city")
    seal = ctx.seals[SENDER]
    meta = parse_meta({"kind": "通知", "title": "关于处理测试的通知", "doc_number": None, "issuers": [SENDER],
                       "signers": [], "to": to, "cc": [], "written_on": "2026-11-20", "urgency": None,
                       "classification": "非密", "deadline": None, "copy_number": None, "printed_by": None,
                       "printed_on": None, "note": None, "attachments_note": None, "id": None},
                      now=ctx.clock()).metadata
    out = io.BytesIO()
    build_package(out, metadata=meta, body=notice_pdf(), seal_key=seal, at=ctx.clock())
    if not tamper_pdf:
        return out.getvalue()
    # Change a byte of the sealed PDF and re-sign the manifest with the same seal key: the
    # manifest, digests and seal all verify; only the PDF's own PAdES seal does not.
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    pdf = bytearray(members["body.pdf"])
    at = len(pdf) // 3  # inside the signed byte range (the signature sits near the end)
    pdf[at] ^= 0x01
    members["body.pdf"] = bytes(pdf)
    manifest = parse_manifest(members["META-INF/manifest.json"])
    entries = [dataclasses.replace(e, digest=hashlib.sha256(pdf).hexdigest(), size=len(pdf))
               if e.path == "body.pdf" else e for e in manifest.entries]
    members["META-INF/manifest.json"] = Manifest.of(entries).to_bytes()
    members["META-INF/signature.p7s"] = cms.sign_detached(members["META-INF/manifest.json"], seal.signer,
                                                          signing_time=ctx.clock())
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return rebuilt.getvalue()


def delivery(payload_digest: str, to, message_id=None) -> Delivery:
    """The city's DOCUMENT to ``to`` as the processor is handed it once acknowledged."""
    now = utcnow()
    header = HeaderDraft(message_id or new_id(now), MessageType.DOCUMENT, "city", "county", SENDER, tuple(to), now,
                         now + dt.timedelta(days=1))
    return Delivery(header, payload_digest, now)


def doc_id_in(store, digest) -> str:
    """The 公文标识 inside a stored package."""
    with open(store.blobs.path_for(digest), "rb") as f, zipfile.ZipFile(f) as z:
        return json.loads(z.read("metadata.json"))["id"]


def city_envelope(node_dir, type, to, payload: bytes, in_reply_to=None):
    """A real envelope from the city node to the county node (the city's signing key, the county's
    encryption certificate)."""
    city = node_context(node_dir / "city")
    enc = load_certificates((node_dir / "county" / "credentials" / "enc.crt").read_bytes())[0]
    draft = HeaderDraft.new(type, "city", "county", SENDER, to, utcnow(), dt.timedelta(days=1), in_reply_to=in_reply_to)
    return seal_envelope(draft, payload, city.sender, Recipient(enc))


async def receive(store, sealed, payload: bytes):
    """``sealed`` (with its decrypted ``payload``) accepted and acknowledged, not yet applied."""
    env = await store.blobs.put(sealed.data)
    plain = await store.blobs.put(payload)
    await store.accept_inbound(InboundEnvelope(sealed.header.message_id, env.digest, env.digest, "city", b"receipt",
                                               sealed.header.type.value, len(sealed.data), plain.digest))
    return await store.messages.get_received(sealed.header.message_id)


PATIENCE_S = 120.0  # a loaded 2-core machine (load 10+) is slow; each wait ends in well under 1 s when quiet


async def run_until_backing_off(queue: DestinationQueue, store) -> PeerState:
    """Run ``queue`` (the county's loop for the city) until the city is backed off; its peer row then."""
    task = asyncio.create_task(queue.run())
    try:
        deadline = asyncio.get_running_loop().time() + PATIENCE_S
        while (peer := await store.peers.get_peer("city")) is None or peer.state != "backing-off":
            assert asyncio.get_running_loop().time() < deadline, f"the city not backed off in {PATIENCE_S} s"
            await asyncio.sleep(0.02)
    finally:
        queue.stop()
        await asyncio.wait_for(task, PATIENCE_S)
    return await store.peers.get_peer("city")
