"""Peers that misbehave, with valid certificates: each is refused with a typed code, nothing stored.

Envelopes are sealed by hand with a node's real keys (read from its credentials directory) and
POSTed over mutual TLS with a node's real TLS certificate, so every check the receiver makes is
the one a production peer would meet: a node speaking for a unit it does not host, an envelope
whose origin is not the node on the connection, a replay, an oversized request. The origin and
replay checks run on a 国密 network too: there the TLS certificate is under the transport root and
the header signed with SM2 under the network's root, and the replay identity is the header's SM3.
county-b is provisioned and known to the others, but its process is never started: the tests
speak as county-b themselves, with its keys and TLS certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import struct

import pytest

from exchange_protocol.canonical import canonical_json
from exchange_protocol.envelope import MessageType
from exchange_protocol.frame import MAGIC
from exchange_protocol.ids import new_id
from exchange_protocol.meta_json import parse_meta
from exchange_protocol.notices import Notice
from exchange_protocol.package import build_package
from node.config import load_config
from node.localnet import PASSPHRASE, send_document, wait_for
from pki.seal_store import load_seal_credential
from tests.exchange_protocol.package_fixtures import with_forced_id
from tests.node.network.network_support import (
    A1,
    B1,
    CITY,
    ByProfile,
    RawPeer,
    db_rows,
    db_value,
    every_profile,
    forge_envelope,
    inbox_item,
    log_text,
    metric,
    notice_meta,
    peer_url,
    start_network,
    stored_bytes,
    tls_context_of,
    wait_status,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
MAX_ENVELOPE = 256 * 1024  # county-a's limit (a request may carry two envelopes' worth)


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    made = ByProfile(lambda profile: start_network(
        tmp_path_factory.mktemp(f"hostile-{profile}"),
        {"city": ([CITY], {}), "county-a": ([A1], {"limits": {"max_envelope_bytes": MAX_ENVELOPE}}),
         "county-b": ([B1], {})}, profile=profile, running=("city", "county-a")))
    yield made
    made.stop_all()


@pytest.fixture
def nodes(net):
    return net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]


def stored_anything(node, message_id: str) -> bool:
    return bool(db_value(node, "SELECT COUNT(*) FROM received WHERE message_id = ?", [message_id])) or \
        bool(db_value(node, "SELECT COUNT(*) FROM inbox WHERE message_id = ?", [message_id]))


def single_result(status: int, parsed: dict | None, raw: bytes) -> dict:
    assert status == 200 and parsed is not None, (status, raw[:300])
    assert len(parsed["results"]) == 1
    return parsed["results"][0]


def test_a_node_speaking_for_a_unit_it_does_not_host_is_refused(nodes):
    city, county_a, county_b = nodes
    inbox_before = db_value(county_a, "SELECT COUNT(*) FROM inbox")
    refused_before = metric(county_a, "gwx_envelopes_refused_total", code="ENV_UNIT_NOT_HOSTED")
    as_b = RawPeer(county_a, tls_context_of(county_b))
    # county-b's real keys and certificate, but the city's unit as the sender.
    message_id, envelope = forge_envelope(county_b, county_a, from_unit=CITY, to_units=[A1])
    result = single_result(*as_b.post_envelopes(envelope))
    assert result["message_id"] == message_id and "receipt" not in result
    assert result["error"]["code"] == "ENV_UNIT_NOT_HOSTED"
    assert CITY in result["error"]["message"]
    assert not stored_anything(county_a, message_id)
    logged = wait_for(lambda: next((line for line in log_text(county_a).splitlines()
                                    if message_id in line and "refused" in line), None), 10)
    assert "ENV_UNIT_NOT_HOSTED" in logged and "county-b" in logged
    # …and addressed to a unit the receiver does not host (the city's): refused the same way.
    message_id, envelope = forge_envelope(county_b, county_a, from_unit=B1, to_units=[CITY])
    result = single_result(*as_b.post_envelopes(envelope))
    assert result["error"]["code"] == "ENV_UNIT_NOT_HOSTED"
    assert not stored_anything(county_a, message_id)
    assert db_value(county_a, "SELECT COUNT(*) FROM inbox") == inbox_before
    assert metric(county_a, "gwx_envelopes_refused_total", code="ENV_UNIT_NOT_HOSTED") == refused_before + 2
    assert as_b.health()["node_id"] == "county-a"


@every_profile
def test_an_envelope_whose_origin_is_not_the_tls_peer_is_refused(nodes):
    city, county_a, county_b = nodes
    # Signed by the city (a valid signature), delivered over county-b's connection.
    message_id, envelope = forge_envelope(city, county_a, from_unit=CITY, to_units=[A1])
    result = single_result(*RawPeer(county_a, tls_context_of(county_b)).post_envelopes(envelope))
    assert result["error"]["code"] == "ENV_ORIGIN_MISMATCH"
    assert "county-b" in result["error"]["message"]
    assert not stored_anything(county_a, message_id)
    # The same bytes over the city's own connection are accepted: the refusal was about the peer.
    result = single_result(*RawPeer(county_a, tls_context_of(city)).post_envelopes(envelope))
    assert "receipt" in result


@every_profile
def test_a_replayed_envelope_gets_the_original_receipt_and_other_bytes_are_refused(net, nodes):
    city, county_a, _ = nodes
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county_a, A1, doc_id)
    wait_status(city, CITY, doc_id, {A1: "delivered"})
    [(message_id, digest, original_receipt)] = db_rows(
        city, "SELECT q.message_id, q.blob_digest, q.receipt FROM queue q JOIN outgoing o"
              " ON o.message_id = q.message_id WHERE o.doc_id = ? AND o.type = 'document'", [doc_id])
    envelope = stored_bytes(city, digest)
    as_city = RawPeer(county_a, tls_context_of(city))
    for _ in range(2):
        result = single_result(*as_city.post_envelopes(envelope))
        assert result["message_id"] == message_id
        assert base64.b64decode(result["receipt"]) == original_receipt  # byte for byte
    assert db_value(county_a, "SELECT COUNT(*) FROM inbox WHERE doc_id = ?", [doc_id]) == 1
    assert db_value(county_a, "SELECT COUNT(*) FROM received WHERE message_id = ?", [message_id]) == 1

    # The same message id on other bytes (validly signed by the city): a replay, refused.
    _, other = forge_envelope(city, county_a, from_unit=CITY, to_units=[A1], message_id=message_id)
    result = single_result(*as_city.post_envelopes(other))
    assert result["error"]["code"] == "ENV_REPLAYED"
    assert db_value(county_a, "SELECT COUNT(*) FROM received WHERE message_id = ?", [message_id]) == 1
    assert county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["status"] == "pending"


def test_an_oversized_request_is_refused_with_413_and_the_node_keeps_serving(net, nodes):
    city, county_a, _ = nodes
    as_city = RawPeer(county_a, tls_context_of(city))
    received_before = db_value(county_a, "SELECT COUNT(*) FROM received")
    status, parsed, raw = as_city.post_envelopes(os.urandom(2 * MAX_ENVELOPE + 1))
    assert status == 413, raw[:300]
    assert parsed["error"]["code"] == "ENV_TOO_LARGE"
    assert as_city.health()["ok"] is True

    # A small request whose frame declares a payload over the limit is refused from its prefix.
    prefix = struct.pack(">4sBBHQII", MAGIC, 2, 0, 1, MAX_ENVELOPE + 1, 100, 100)
    status, parsed, raw = as_city.post_envelopes(prefix + b"\0" * 200)
    assert 400 <= status < 500, raw[:300]
    assert parsed["error"]["code"] == "ENV_PAYLOAD_TOO_LARGE"
    assert db_value(county_a, "SELECT COUNT(*) FROM received") == received_before

    # Documents under the limit still flow.
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    assert inbox_item(county_a, A1, doc_id)["verified"] is True


def test_forged_notices_only_touch_rows_of_the_origin(net, nodes):
    """A valid peer may only speak about what was sent to it: county-b 'recalling' a document
    county-a received from the city is accepted on the wire but changes nothing."""
    city, county_a, county_b = nodes
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    item = inbox_item(county_a, A1, doc_id)
    payload = Notice(MessageType.RECALL, doc_id, (A1,), dt.datetime.now(dt.UTC), by="冒充者").encode()
    document_message = db_value(county_a, "SELECT message_id FROM inbox WHERE doc_id = ?", [doc_id])
    # Even naming the right document message, county-b is not the node that sent it.
    message_id, envelope = forge_envelope(county_b, county_a, from_unit=B1, to_units=[A1], payload=payload,
                                          type=MessageType.RECALL, in_reply_to=document_message)
    result = single_result(*RawPeer(county_a, tls_context_of(county_b)).post_envelopes(envelope))
    assert "receipt" in result  # durable and acknowledged; judged when applied
    state = wait_for(lambda: db_value(county_a, "SELECT state FROM received WHERE message_id = ?", [message_id])
                     in ("done", "failed") and
                     db_rows(county_a, "SELECT state, error_code FROM received WHERE message_id = ?", [message_id])[0],
                     15, what="the forged recall processed")
    assert state == ("failed", "NOTICE_NOT_OURS")
    assert county_a.clerk(A1).get(f"/api/v1/inbox/{doc_id}")["status"] == item["status"] == "pending"


def test_a_document_or_notice_with_an_unaddressable_id_is_refused_with_a_typed_code(net, nodes):
    """A peer running older code (or a hostile one) seals a 公文标识 no route could address: the
    receiver refuses it before acknowledging, so no clerk is left with a document they cannot open."""
    city, county_a, _ = nodes
    as_city = RawPeer(county_a, tls_context_of(city))
    unit = next(u for u in load_config(city.directory).units if u.code == CITY)
    seal = load_seal_credential(unit.seal_dir, PASSPHRASE)
    meta = parse_meta(notice_meta(CITY, [A1])).metadata
    for bad in ("../../etc/passwd", "a?b=1#c", "<script>"):
        package = io.BytesIO()
        build_package(package, metadata=with_forced_id(meta, bad), body=net.body.read_bytes(), seal_key=seal,
                      at=dt.datetime.now(dt.UTC))
        message_id, envelope = forge_envelope(city, county_a, from_unit=CITY, to_units=[A1],
                                              payload=package.getvalue(), type=MessageType.DOCUMENT)
        result = single_result(*as_city.post_envelopes(envelope))
        assert "receipt" not in result and result["error"]["code"] == "DOC_INVALID_ID", result
        assert not stored_anything(county_a, message_id)
        # …and a notice about such an id.
        notice = canonical_json({"v": 1, "type": "urge", "doc_id": bad, "units": [A1], "by": None,
                                 "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": None,
                                 "text": None})
        message_id, envelope = forge_envelope(city, county_a, from_unit=CITY, to_units=[A1], payload=notice)
        result = single_result(*as_city.post_envelopes(envelope))
        assert "receipt" not in result and result["error"]["code"] == "NOTICE_BAD_DOC_ID", result
        assert not stored_anything(county_a, message_id)
    assert as_city.health()["node_id"] == "county-a"


def test_one_bad_frame_never_condemns_its_batch(net, nodes, tmp_path):
    """The sender's client against a real receiver: good envelopes keep their receipts whatever
    frame breaks the stream, before or after them; the bad frame gets its own verdict."""
    import asyncio

    from node.config import Peer
    from node.federation.transport import OutgoingFrame, PeerClient

    city, county_a, _ = nodes
    frames = {}
    for name in ("good1", "good2"):
        message_id, envelope = forge_envelope(city, county_a, from_unit=CITY, to_units=[A1])
        (tmp_path / name).write_bytes(envelope)
        frames[name] = OutgoingFrame(message_id, tmp_path / name, len(envelope))
    (tmp_path / "bad").write_bytes(b"NOT A FRAME AT ALL, NOT EVEN A PREFIX")
    frames["bad"] = OutgoingFrame(new_id(dt.datetime.now(dt.UTC)), tmp_path / "bad", 37)
    peer = Peer("county-a", peer_url(county_a), (A1,))

    async def send(order):
        client = PeerClient(tls_context_of(city))
        try:
            return await client.send_frames(peer, [frames[n] for n in order])
        finally:
            await client.close()

    after = asyncio.run(send(["good1", "bad"]))  # the stream breaks after a good frame
    assert after[0].receipt is not None and after[1].error_code == "ENV_BAD_MAGIC"
    before = asyncio.run(send(["bad", "good2"]))  # the stream breaks at once: each judged alone
    assert before[0].error_code == "ENV_BAD_MAGIC" and before[1].receipt is not None
    for name in ("good1", "good2"):
        assert db_value(county_a, "SELECT COUNT(*) FROM received WHERE message_id = ?",
                        [frames[name].message_id]) == 1
