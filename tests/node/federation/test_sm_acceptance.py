"""A node on a 国密 network accepts an envelope another node of it sealed: real node contexts on an SM2
root (their keys as the running node loads them), a real SQLite store, the node's acceptor. The
envelope is SM4-GCM with SM2 key transport and an SM2-signed header; the transport receipt the county
answers with is SM2-signed, binds the frame by SM3 (`openssl dgst -sm3`) and the city verifies it; a
duplicate is told by its SM3 identity. An envelope of an international network is
refused with PKI_PROFILE_MISMATCH and nothing is stored. (TLS between such nodes is smnet's part.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_envelope
from exchange_protocol.frame import decode_frame
from exchange_protocol.ids import new_id
from exchange_protocol.notices import Notice
from exchange_protocol.transport_receipt import parse_receipt, verify_receipt
from node.federation.acceptor import Acceptor
from node.ops.metrics import Registry
from node.store.opener import open_store
from pki.certificates import load_certificates
from pki.errors import GwxError
from pki.sm2 import Sm2PublicKey
from pki.unit_code import make_unit_code
from pki.x509_sm2 import public_key_of
from tests.node.federation.federation_support import node_context, provision_county_and_city
from tests.support import run_openssl

A = make_unit_code("11371302MB0000071")
SENDER = make_unit_code("11371300MB0000071")  # a unit of the city node


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    sm = provision_county_and_city(tmp_path_factory.mktemp("sm-accept"), "国密接收测试CA", {A: "甲单位"},
                                   {SENDER: "市政府办公室"}, algorithm="sm2-sm3")
    p256 = provision_county_and_city(tmp_path_factory.mktemp("p256-accept"), "接收测试CA", {A: "甲单位"},
                                     {SENDER: "市政府办公室"})
    return sm, p256


def _sealed(sender_dir, receiver_dir) -> tuple[bytes, HeaderDraft]:
    city = node_context(sender_dir / "city")
    enc = load_certificates((receiver_dir / "county" / "credentials" / "enc.crt").read_bytes())[0]
    now = city.clock()
    draft = HeaderDraft.new(MessageType.URGE, "city", "county", SENDER, (A,), now, dt.timedelta(days=1),
                            in_reply_to=new_id(now))
    payload = Notice(draft.type, "doc-1", draft.to_units, draft.created).encode()
    return seal_envelope(draft, payload, city.sender, Recipient(enc)).data, draft


def test_an_sm2_node_accepts_an_sm_envelope_and_answers_with_an_sm2_receipt(networks, tmp_path):
    sm, _ = networks

    async def run():
        county = node_context(sm / "county")
        assert isinstance(public_key_of(county.signer.certificate), Sm2PublicKey)
        frame, draft = _sealed(sm, sm)
        head, payload, _ = decode_frame(frame)
        relayed = head.prefix(hops=1) + payload  # the same envelope by another route: other bytes
        store = await open_store(tmp_path / "data")
        try:
            acceptor = Acceptor(county, store, Registry())
            receipt = await acceptor.accept(frame, "city")
            assert sum((await store.messages.inbound_counts()).values()) == 1
            assert await acceptor.accept(frame, "city") == receipt  # a duplicate: the original receipt
            again = await acceptor.accept(relayed, "city")  # the same identity (SM3), other frame bytes
            altered = head.prefix(hops=1) + payload[:-20] + bytes([payload[-20] ^ 1]) + payload[-19:]
            with pytest.raises(GwxError) as err:
                await acceptor.accept(altered, "city")
            assert err.value.code == "ENV_PAYLOAD_DIGEST_MISMATCH"
            assert sum((await store.messages.inbound_counts()).values()) == 1
        finally:
            await store.close()
        city = node_context(sm / "city")
        for wire, sent in ((receipt, frame), (again, relayed)):
            body = json.loads(parse_receipt(wire)[1])
            assert "envelope_sha256" not in body and body["envelope_sm3"] == _openssl_sm3(sent)
            verified = verify_receipt(wire, trust=city.trust, now=city.clock(), message_id=draft.message_id,
                                      envelope_digest=_openssl_sm3(sent), digest_algorithm="sm3",
                                      receiver_node="county")
            assert isinstance(public_key_of(verified.signer_certificate), Sm2PublicKey)
    asyncio.run(run())


def _openssl_sm3(data: bytes) -> str:
    return run_openssl("dgst", "-sm3", "-r", input=data).stdout.decode().split()[0]


def test_an_international_envelope_at_an_sm_node_is_a_profile_mismatch_and_nothing_is_stored(networks, tmp_path):
    sm, p256 = networks

    async def run():
        county = node_context(sm / "county")
        frame, _ = _sealed(p256, p256)
        store = await open_store(tmp_path / "data")
        try:
            with pytest.raises(GwxError) as err:
                await Acceptor(county, store, Registry()).accept(frame, "city")
            assert err.value.code == "PKI_PROFILE_MISMATCH"
            assert sum((await store.messages.inbound_counts()).values()) == 0
        finally:
            await store.close()
    asyncio.run(run())
