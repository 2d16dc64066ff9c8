"""Documents refused after acknowledgement are bounced back: the sender's rows turn failed, with why.

The receiver acknowledges a document once it is durable and everything but the PDF's PAdES seal
checked out; the rest is judged when the document is applied. Two refusals happen only then:

* the same 公文标识 arrives with another package (another unit reusing an id the receiving unit
  already holds): ``DOC_ID_CONFLICT``;
* the PDF seal fails its full validation: the document is quarantined, never offered for 签收.

Either way a ``bounce`` goes back to the sending node, whose recipient rows turn 发送失败 with the
receiver's reason — in the API and in ``gwx track`` — instead of waiting on 已发送 for ever. The
id conflict runs on a 国密 network too (SM2-signed bounce, SM4 payload); the PDF seal's is a PDF's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import sqlite3

import pytest

from exchange_protocol.manifest import BODY_NAME, MANIFEST_NAME, SIGNATURE_NAME
from node.config import load_config
from node.localnet import PASSPHRASE, send_document, wait_for
from pki.seal_store import load_seal_credential
from tests.exchange_protocol.hostile.corpus import assemble, members_of
from tests.node.network.network_support import (
    A1,
    B1,
    CITY,
    ByProfile,
    blob_path,
    db_path,
    db_rows,
    db_value,
    ensure_running,
    every_profile,
    inbox_item,
    notice_meta,
    recipients_by_unit,
    start_network,
    track,
    wait_status,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        def make(profile: str):
            network = start_network(tmp_path_factory.mktemp(f"bounce-{profile}"),
                                    {"city": ([CITY], {}), "county-a": ([A1], {}), "county-b": ([B1], {})},
                                    profile=profile)
            stack.callback(network.stop_all)
            return network
        yield ByProfile(make)


def received_state(node, message_id: str) -> tuple | None:
    rows = db_rows(node, "SELECT state, error_code FROM received WHERE message_id = ?", [message_id])
    return rows[0] if rows else None


@every_profile
def test_a_reused_document_id_is_bounced_to_its_sender(net):
    city, county_a, county_b = net.nodes["city"], net.nodes["county-a"], net.nodes["county-b"]
    ensure_running(net, city, county_a, county_b)
    first = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county_a, A1, first)
    # Another unit, on another node, sends a different document under the same 公文标识.
    meta = {**notice_meta(B1, [A1], title="关于报送年度统计数据的通知"), "id": first}
    assert send_document(county_b, B1, meta, net.body)["doc_id"] == first

    tracking = wait_status(county_b, B1, first, {A1: "failed"})
    row = recipients_by_unit(tracking)[A1]
    assert "DOC_ID_CONFLICT" in row["reason"], row
    text = track(county_b, B1, first)
    a1_line = next(line for line in text.splitlines() if line.startswith(A1))
    assert "失败" in a1_line and "DOC_ID_CONFLICT" in a1_line
    # The receiving unit still holds the city's document, untouched.
    held = county_a.clerk(A1).get(f"/api/v1/inbox/{first}")
    assert held["from_unit"] == CITY and held["status"] == "pending"
    assert db_value(county_a, "SELECT COUNT(*) FROM inbox WHERE doc_id = ?", [first]) == 1
    # The city's own delivery of that id is not disturbed by the bounce going to county-b.
    assert recipients_by_unit(city.clerk(CITY).get(f"/api/v1/outbox/{first}"))[A1]["status"] == "delivered"


def _resealed_with_a_broken_pdf_seal(package: bytes, signer) -> bytes:
    """The same package, its body changed after sealing (bytes appended), manifest signed again
    with the unit's own seal key: everything checks out except the PDF's PAdES seal."""
    files = {k: v for k, v in members_of(package).items() if k not in (MANIFEST_NAME, SIGNATURE_NAME)}
    files[BODY_NAME] = files[BODY_NAME] + b"\n% appended after sealing\n"
    return assemble(files, signer, dt.datetime.now(dt.UTC))


def test_a_document_whose_pdf_seal_fails_is_quarantined_and_bounced(net):
    """The city's node sends while county-b is down, so the document waits as a draft (payload
    blob + header); with the city stopped, the draft's package is swapped for one whose PDF seal
    no longer validates — what a damaged or misbehaving sender puts on the wire. Everything after
    that is the real nodes' doing."""
    city, county_b = net.nodes["city"], net.nodes["county-b"]
    ensure_running(net, city)
    net.stop(county_b)
    doc_id = send_document(city, CITY, notice_meta(CITY, [B1]), net.body)["doc_id"]
    draft = wait_for(lambda: db_rows(city, "SELECT d.message_id, d.payload_digest FROM drafts d JOIN outgoing o"
                                           " ON o.message_id = d.message_id WHERE o.doc_id = ?", [doc_id]),
                     30, what="the document waiting as a draft")[0]
    net.stop(city)

    seal = load_seal_credential(load_config(city.directory).unit(CITY).seal_dir, PASSPHRASE)
    forged = _resealed_with_a_broken_pdf_seal(blob_path(city, draft[1]).read_bytes(), seal.signer)
    digest = hashlib.sha256(forged).hexdigest()
    blob_path(city, digest).parent.mkdir(parents=True, exist_ok=True)
    blob_path(city, digest).write_bytes(forged)
    with sqlite3.connect(db_path(city)) as conn:
        conn.execute("UPDATE drafts SET payload_digest = ?, payload_size = ? WHERE message_id = ?",
                     (digest, len(forged), draft[0]))
    conn.close()
    net.start(city)
    net.start(county_b)

    # county-b acknowledged it (the city's row reached 已发送 or beyond) and then refused it.
    state = wait_for(lambda: (s := received_state(county_b, draft[0])) and s[0] != "new" and s, 60,
                     what="the forged document applied")
    assert state == ("failed", "PKG_PDF_SEAL_APPENDED")  # its body grew after sealing
    tracking = wait_status(city, CITY, doc_id, {B1: "failed"})
    row = recipients_by_unit(tracking)[B1]
    assert "pdf_seal" in row["reason"] and "PKG_PDF_SEAL_APPENDED" in row["reason"], row
    b1_line = next(line for line in track(city, CITY, doc_id).splitlines() if line.startswith(B1))
    assert "失败" in b1_line and "PKG_PDF_SEAL_APPENDED" in b1_line
    # Quarantined: never offered for 签收.
    assert all(i["doc_id"] != doc_id for i in county_b.clerk(B1).get("/api/v1/inbox", {"limit": 500}))
    assert db_value(county_b, "SELECT COUNT(*) FROM inbox WHERE doc_id = ?", [doc_id]) == 0
