"""签收/退回 statements coming back to the sender (issue 10 §4): the city applies a 签收 only when the
unit-signed statement it carries proves it, keeps the statement, and refuses — with a typed error,
in the audit trail, its row unchanged — one signed with another unit's seal, about another package,
or saying another reason. Real stores, keys, seals, envelopes and processors (no process, no TLS:
tests/node/network covers those)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib

import pytest

from exchange_protocol.envelope import MessageType
from exchange_protocol.notices import Notice
from exchange_protocol.statements import Statement, sign_statement, unit_name_of, verify_statement
from node.store import InboxRow
from pki import cms
from pki.certificates import pem
from pki.unit_code import make_unit_code
from tests.node.federation.federation_support import node_context, provision_county_and_city
from tests.node.federation.test_notice_batches import SENDER, Node, _arrive, _batch_from_county, _city_sent
from tests.support import run_openssl

UNITS = [make_unit_code(f"54371302MA{2000 + i:07d}") for i in range(4)]  # the county's communities


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return provision_county_and_city(tmp_path_factory.mktemp("notice-evidence"), "回执证据测试CA",
                                     {u: f"第{i}社区居民委员会" for i, u in enumerate(UNITS)}, {SENDER: "市政府办公室"})


def _signed(node_dir, unit: str, doc_id: str, digest: str, at, *, kind=MessageType.RECEIPT, reason=None,
            seal_of: str | None = None, **changes) -> Notice:
    """The notice a county clerk's act sends, with its statement signed by ``seal_of``'s seal (the unit's own
    by default); ``changes`` alter the statement alone (what a forger would try)."""
    county = node_context(node_dir / "county")
    seal = county.seals[seal_of or unit]
    statement = Statement(kind, doc_id, digest, unit, unit_name_of(seal.certificate), "收发员", at, reason, SENDER)
    statement = dataclasses.replace(statement, **changes)
    if seal_of and seal_of != unit:  # our signer refuses another unit's statement: a forger writes the CMS
        der = cms.sign_detached(statement.encode(), seal.signer, encapsulate=True, signing_time=at)
    else:
        der = sign_statement(statement, seal.signer, seal.chain)
    return Notice(kind, doc_id, (unit,), at, by="收发员", reason=reason, evidence=der)


def test_statements_that_prove_their_notices_apply_and_are_kept_for_the_archive(node_dir, tmp_path):
    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS)
            digest = hashlib.sha256(b"the package").hexdigest()  # what _city_sent stored as the package
            at = city.ctx.clock().replace(microsecond=0)
            notices = [_signed(node_dir, u, doc_id, digest, at) for u in UNITS[:2]]
            notices.append(Notice(MessageType.RECEIPT, doc_id, (UNITS[2],), at, by="老节点收发员"))  # an older node's
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, notices))
            await city.processor._process(received)
            assert (await city.store.messages.get_received(received.message_id)).state == "done"
            rows = {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert rows == {UNITS[0]: "signed_for", UNITS[1]: "signed_for", UNITS[2]: "signed_for",
                            UNITS[3]: "delivered"}
            held = await city.store.evidence.notice_evidence(doc_id)
            assert [(e.unit, e.side, e.type, e.statement) for e in held] == \
                [(u, "sender", "receipt", n.evidence) for u, n in zip(UNITS[:2], notices, strict=False)]
            # Each applied 签收 says in the audit trail what proves it: the statement's SHA-256, or none.
            audited = {e.details.get("unit", e.subjects.get("unit")): e.details.get("evidence")
                       for e in await city.store.audit.events(doc_id=doc_id) if e.action == "recipient.signed_for"}
            assert audited == {UNITS[0]: hashlib.sha256(notices[0].evidence).hexdigest(),
                               UNITS[1]: hashlib.sha256(notices[1].evidence).hexdigest(), UNITS[2]: "none"}
            (tmp_path / "root.crt").write_bytes(pem(city.ctx.trust.roots[0]))
            for e in held:  # a third party with the root alone
                (tmp_path / "s.cms").write_bytes(e.statement)
                out = run_openssl("cms", "-verify", "-inform", "DER", "-in", tmp_path / "s.cms",
                                  "-CAfile", tmp_path / "root.crt")
                assert f'"unit":"{e.unit}"'.encode() in out.stdout and digest.encode() in out.stdout
        finally:
            await city.close()
    asyncio.run(run())


@pytest.mark.parametrize(("forgery", "cause"), [
    ("another unit's seal", "STATEMENT_WRONG_SIGNER"),
    ("another package", "STATEMENT_MISMATCH"),
    ("another reason", "STATEMENT_MISMATCH"),
    ("a changed byte", "STATEMENT_BAD_SIGNATURE"),
])
def test_a_forged_statement_is_refused_audited_and_moves_nothing(node_dir, tmp_path, forgery, cause):
    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS)
            digest = hashlib.sha256(b"the package").hexdigest()
            at = city.ctx.clock().replace(microsecond=0)
            unit = UNITS[1]
            if forgery == "another unit's seal":
                bad = _signed(node_dir, unit, doc_id, digest, at, seal_of=UNITS[0])
            elif forgery == "another package":
                bad = _signed(node_dir, unit, doc_id, digest, at, package_digest=hashlib.sha256(b"other").hexdigest())
            elif forgery == "another reason":
                bad = _signed(node_dir, unit, doc_id, digest, at, kind=MessageType.RETURN, reason="文不对题")
                bad = dataclasses.replace(bad, reason="不属本单位办理")  # the notice says another reason
            else:
                good = _signed(node_dir, unit, doc_id, digest, at)
                bad = dataclasses.replace(good, evidence=good.evidence.replace(b"\xe6\x94\xb6\xe5\x8f\x91",
                                                                                 b"\xe6\x94\xb6\xe5\x8f\x92"))
                assert bad.evidence != good.evidence
            kind = bad.type
            fine = _signed(node_dir, UNITS[0], doc_id, digest, at, kind=kind,
                           reason="不属本单位办理" if kind is MessageType.RETURN else None)

            # In a batch: the forged one is left out and audited, the other applies.
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, [fine, bad]))
            await city.processor._process(received)
            assert (await city.store.messages.get_received(received.message_id)).state == "done"
            rows = {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            done = "signed_for" if kind is MessageType.RECEIPT else "returned"
            assert rows[UNITS[0]] == done and rows[unit] == "delivered"
            [refused] = [e for e in await city.store.audit.events(doc_id=doc_id)
                         if e.action == f"notice.{kind.value}.refused"]
            assert refused.details["units"] == [unit] and refused.details["error"] == "NOTICE_EVIDENCE_REFUSED"
            assert cause in refused.details["reason"]
            assert [e.unit for e in await city.store.evidence.notice_evidence(doc_id)] == [UNITS[0]]

            # Alone: its message is refused (failed, audited) and nothing moves.
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, [bad]))
            await city.processor._process(received)
            failed = await city.store.messages.get_received(received.message_id)
            assert (failed.state, failed.error_code) == ("failed", "NOTICE_EVIDENCE_REFUSED")
            assert {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients} == rows
            assert [e.action for e in await city.store.audit.events(message_id=received.message_id)][-1] == \
                "envelope.failed"
        finally:
            await city.close()
    asyncio.run(run())


def test_the_statement_the_county_makes_verifies_and_names_the_package_it_received(node_dir, tmp_path):
    from node.federation.notice_evidence import make_statement
    from node.store.blobs import BlobStore
    county = node_context(node_dir / "county")
    row = InboxRow(doc_id="0193a5b2-0000-7000-8000-000000000001", unit=UNITS[0], role="main", from_unit=SENDER,
                   title="通知", kind="通知", status="pending", package_digest="ab" * 32, received_at=county.clock())
    at = county.clock().replace(microsecond=0)
    der = make_statement(county.seals[UNITS[0]], BlobStore(tmp_path), row, UNITS[0], MessageType.RETURN, "收发员", at, "文不对题")
    statement = verify_statement(der, county.trust, now=at).statement
    assert (statement.package_digest, statement.sender_unit, statement.reason, statement.unit_name) == \
        ("ab" * 32, SENDER, "文不对题", "第0社区居民委员会")
    assert statement.digest_field == "package_sha256"  # a P-256 seal: the package's blob name, read from nowhere


def test_a_statement_by_a_revoked_seal_is_refused_as_untrusted(node_dir, tmp_path):
    from pki.ca import CertificateAuthority
    from pki.crl import build_crl
    from pki.revocation import CrlChecker
    from tests.support import PASSPHRASE

    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS)
            digest = hashlib.sha256(b"the package").hexdigest()
            at = city.ctx.clock().replace(microsecond=0)
            unit = UNITS[3]
            notice = _signed(node_dir, unit, doc_id, digest, at)
            ca = CertificateAuthority.open(node_dir / "ca", PASSPHRASE)
            ca.revoke(node_context(node_dir / "county").seals[unit].certificate, "key_compromise")
            city.ctx.revocation = CrlChecker([build_crl(ca, city.ctx.clock())])  # the city's current CRL
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, [notice]))
            await city.processor._process(received)
            failed = await city.store.messages.get_received(received.message_id)
            assert (failed.state, failed.error_code) == ("failed", "NOTICE_EVIDENCE_REFUSED")
            assert "STATEMENT_UNTRUSTED" in failed.error_message and "was revoked" in failed.error_message
            rows = {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert rows[unit] == "delivered" and await city.store.evidence.notice_evidence(doc_id) == []
        finally:
            await city.close()
    asyncio.run(run())


def test_with_a_stale_crl_a_statement_waits_queued_and_is_not_refused(node_dir, tmp_path):
    from pki.ca import CertificateAuthority
    from pki.crl import build_crl
    from pki.revocation import CrlChecker
    from tests.support import PASSPHRASE

    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS)
            digest = hashlib.sha256(b"the package").hexdigest()
            at = city.ctx.clock().replace(microsecond=0)
            notice = _signed(node_dir, UNITS[0], doc_id, digest, at)
            received, _ = await _arrive(city, _batch_from_county(node_dir, answered, [notice]))
            ca = CertificateAuthority.open(node_dir / "ca", PASSPHRASE)
            stale = build_crl(ca, at - dt.timedelta(days=3), next_update_in=dt.timedelta(days=1))
            city.ctx.revocation = CrlChecker([stale])  # the CRL went stale after the envelope was accepted
            await city.processor._process(received)
            waiting = await city.store.messages.get_received(received.message_id)
            assert waiting.state == "new" and waiting.attempts == 1 and waiting.error_code.startswith("PKI_")
            rows = {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert rows[UNITS[0]] == "delivered"
            city.ctx.revocation = CrlChecker([build_crl(ca, city.ctx.clock())])  # a fresh one comes in
            await city.processor._process(await city.store.messages.get_received(received.message_id))
            assert (await city.store.messages.get_received(received.message_id)).state == "done"
            rows = {r.unit: r.status for r in (await city.store.messages.get_outbox(doc_id)).recipients}
            assert rows[UNITS[0]] == "signed_for"
        finally:
            await city.close()
    asyncio.run(run())


def test_a_statement_applied_on_this_node_is_verified_off_the_event_loop(node_dir, tmp_path):
    """A notice from a unit of the same node has no verdict from a worker thread (it comes in the
    clerk's request): its check (~1–2 ms) must not run on the loop, where a batch of local 签收 would
    stall every request for as long."""
    import threading

    async def run():
        city = await Node.open(node_dir, "city", tmp_path / "city")
        try:
            doc_id, answered = await _city_sent(city, UNITS)
            digest = hashlib.sha256(b"the package").hexdigest()
            notice = _signed(node_dir, UNITS[0], doc_id, digest, city.ctx.clock().replace(microsecond=0))
            checker, threads = city.processor.evidence, []
            verify = checker._verify

            def verify_noting_where(*args, **kwargs):  # the real check, noting the thread it runs in
                threads.append(threading.current_thread())
                return verify(*args, **kwargs)
            checker._verify = verify_noting_where
            link = await city.store.links.link(answered)
            async with city.store.transaction() as tx:
                assert await checker.accept(tx, notice, link, None) == hashlib.sha256(notice.evidence).hexdigest()
            assert threads and threading.main_thread() not in threads
        finally:
            await city.close()
    asyncio.run(run())
