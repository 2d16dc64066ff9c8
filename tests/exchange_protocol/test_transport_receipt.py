"""exchange_protocol.transport_receipt: signed receipts binding the exact envelope bytes received."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os

import pytest

from exchange_protocol import errors as E
from exchange_protocol.envelope_seal import open_envelope_bytes, seal_envelope
from exchange_protocol.transport_receipt import (
    ReceiptStatus,
    TransportReceipt,
    parse_receipt,
    sign_receipt,
    verify_receipt,
)
from pki import cms
from tests.exchange_protocol.envelope_support import NOW, network
from tests.support import run_openssl


def delivered():
    """a sends b an envelope; b opens it and signs a receipt for the bytes it got."""
    net = network()
    env = seal_envelope(net.draft(), b"body", net.nodes["a"].sender, net.nodes["b"].recipient)
    opened, _ = open_envelope_bytes(env.data, net.policy, net.nodes["b"].key, "b", NOW)
    receipt = TransportReceipt(opened.header.message_id, opened.envelope_digest, NOW, "b")
    return env, receipt, sign_receipt(receipt, net.nodes["b"].sender.signer)


def verify(wire, env, **changes):
    args = dict(trust=network().policy.trust, now=NOW, message_id=env.header.message_id,
                envelope_digest=hashlib.sha256(env.data).hexdigest(), receiver_node="b")
    args.update(changes)
    return verify_receipt(wire, **args)


def test_the_sender_verifies_a_receipt_for_the_bytes_it_sent():
    env, receipt, wire = delivered()
    verified = verify(wire, env)
    assert verified.receipt == receipt and verified.receipt.status is ReceiptStatus.ACCEPTED
    assert verified.signer_certificate == network().nodes["b"].creds.signing_certificate
    assert json.loads(verified.signed_bytes)["envelope_sha256"] == hashlib.sha256(env.data).hexdigest()


def test_openssl_verifies_the_receipt_signature(tmp_path):
    _, _, wire = delivered()
    receipt, body, signature = parse_receipt(wire)
    (tmp_path / "receipt.json").write_bytes(body)
    (tmp_path / "sig.der").write_bytes(signature)
    result = run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                         "-content", tmp_path / "receipt.json", "-CAfile", network().base / "root.pem",
                         "-purpose", "any", "-out", os.devnull, check=False)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("field, value", [
    ("message_id", "01a1fdc1-5917-70b1-af51-e09b5a58f529"),
    ("envelope_digest", "00" * 32),
    ("receiver_node", "c"),
])
def test_a_receipt_for_something_else_is_a_mismatch(field, value):
    env, _, wire = delivered()
    with pytest.raises(E.TransportReceiptMismatch) as info:
        verify(wire, env, **{field: value})
    assert info.value.code == "ENV_RECEIPT_MISMATCH"


def _rewrap(wire: bytes, body: bytes | None = None, signature: bytes | None = None) -> bytes:
    outer = json.loads(wire)
    if body is not None:
        outer["receipt"] = body.decode()
    if signature is not None:
        outer["signature"] = base64.b64encode(signature).decode()
    return json.dumps(outer, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_altered_receipts_fail_their_signature():
    env, receipt, wire = delivered()
    forged = TransportReceipt(receipt.message_id, receipt.envelope_digest, receipt.received_at, "b",
                              ReceiptStatus.DUPLICATE)
    with pytest.raises(E.TransportReceiptBadSignature):
        verify(_rewrap(wire, body=forged.encode()), env)


def test_a_receipt_signed_by_another_node_than_it_names_is_refused():
    env, receipt, wire = delivered()
    by_a = cms.sign_detached(receipt.encode(), network().nodes["a"].sender.signer)
    with pytest.raises(E.TransportReceiptBadSignature, match="names"):
        verify(_rewrap(wire, signature=by_a), env)
    with pytest.raises(E.TransportReceiptInvalid):
        sign_receipt(receipt, network().nodes["a"].sender.signer)  # our own signer refuses to lie too


def test_a_receipt_from_an_untrusted_ca_is_refused():
    env, receipt, wire = delivered()
    rogue = cms.sign_detached(receipt.encode(), network().nodes["rogue-a"].sender.signer)
    with pytest.raises(E.TransportReceiptBadSignature) as info:
        verify(_rewrap(wire, signature=rogue), env)
    assert info.value.details["cause"] == "PKI_CERT_UNTRUSTED"


@pytest.mark.parametrize("wire", [
    b"", b"{}", b"[1]", b'{"v":1,"receipt":"{}","signature":"AA=="}',
    b'{"v":1,"receipt":"x","signature":"not base64!"}',
    b'{"v":2,"receipt":"{}","signature":""}',
])
def test_malformed_receipts_are_typed_errors(wire):
    env, _, _ = delivered()
    with pytest.raises(E.TransportReceiptInvalid):
        verify(wire, env)


def test_non_canonical_receipt_bodies_are_refused():
    env, receipt, wire = delivered()
    spaced = json.dumps(json.loads(receipt.encode()), sort_keys=True).encode()
    with pytest.raises(E.TransportReceiptInvalid, match="canonical"):
        verify(_rewrap(wire, body=spaced), env)


def test_receipt_values_are_validated():
    with pytest.raises(E.TransportReceiptInvalid):
        TransportReceipt("not-an-id", "00" * 32, NOW, "b")
    with pytest.raises(E.TransportReceiptInvalid):
        TransportReceipt("01a1fdc1-5917-70b1-af51-e09b5a58f529", "00" * 32, NOW, "b", "lost")
    with pytest.raises(E.TransportReceiptInvalid):
        TransportReceipt("01a1fdc1-5917-70b1-af51-e09b5a58f529", "00" * 32, dt.datetime(2026, 1, 1), "b")
