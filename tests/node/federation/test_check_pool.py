"""node.federation.check_pool: the package checks in processes beside the node give the node's verdicts.

A real county node (keys, SQLite store) accepts real envelopes from the city with its checks in a
spawned check process: a refused package is refused with the code the node's own process gives
(another unit's seal, a manifest changed after signing, a revoked seal); a child killed with -9
in the middle of a job is replaced and the envelope judged again — accepted once, never unchecked;
trust roots replaced and a CRL refreshed while the node runs are what the child judges by next;
closing the pool leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import io
import os
import signal
import struct
import termios
import time
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from exchange_protocol.envelope import MessageType
from exchange_protocol.manifest import Manifest, parse_manifest
from node.federation.acceptor import Acceptor
from node.federation.check_pool import CheckPool, Held
from node.ops.metrics import Registry
from pki import cms
from pki.ca import CertificateAuthority
from pki.certificates import load_certificate
from pki.crl import build_crl, crl_pem
from pki.errors import GwxError
from pki.trust import TrustStore, revocation_token
from tests.node.federation import processing_support
from tests.node.federation.federation_support import node_context, provision_county_and_city
from tests.node.federation.processing_support import (
    SENDER,
    A,
    city_envelope,
    city_package,
    close_processor,
    doc_id_in,
    open_processor,
)
from tests.support import PASSPHRASE

node_dir = processing_support.node_dir  # the county and city nodes (a module fixture)
PATIENCE_S = 120.0  # a loaded 2-core machine (load 10+); quiet, each wait ends in under a second


@contextlib.asynccontextmanager
async def _with_pool(node_dir, tmp_path, processes: int = 1):
    """A county node's processor judging with a pool of ``processes`` check processes, both closed after."""
    pool = CheckPool(processes)
    ctx, store, outbound, processor = await open_processor(node_dir, tmp_path, pool)
    try:
        yield pool, ctx, store, outbound, processor
    finally:
        pool.close()
        await close_processor(store, outbound)


def _rebuilt(package: bytes, *, manifest_digest_changed: bool = False, sign_with=None) -> bytes:
    """``package`` with its manifest changed after signing, or its manifest signed with another seal."""
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    if manifest_digest_changed:
        manifest = parse_manifest(members["META-INF/manifest.json"])
        entries = [dataclasses.replace(e, digest=hashlib.sha256(b"other").hexdigest()) if e.path == "body.pdf" else e
                   for e in manifest.entries]
        members["META-INF/manifest.json"] = Manifest.of(entries).to_bytes()
    if sign_with is not None:
        members["META-INF/signature.p7s"] = cms.sign_detached(members["META-INF/manifest.json"], sign_with.signer)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


async def _accept(node_dir, ctx, store, processor, package: bytes) -> str:
    """The city's document with ``package`` accepted by the county (checks where ``processor``'s judge
    has them); its message id."""
    sealed = await asyncio.to_thread(city_envelope, node_dir, MessageType.DOCUMENT, (A,), package)
    await Acceptor(ctx, store, Registry(), verdicts=processor.accepted).accept(sealed.data, "city")
    return sealed.header.message_id


async def _code(node_dir, ctx, store, processor, package: bytes) -> str | None:
    try:
        await _accept(node_dir, ctx, store, processor, package)
    except GwxError as exc:
        return exc.code
    return None


def _job_in_pipe(pool: CheckPool) -> bool:
    """Whether a job was sent to the pool's first child and sits unread in its pipe (the bytes the
    child has not taken yet: the socket's send queue, TIOCOUTQ) — a stopped child's job reached it."""
    child = pool._children[0]
    try:
        if not child.lock.locked() or child.conn is None:
            return False
        queued = fcntl.ioctl(child.conn.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except (OSError, ValueError):  # the pipe closed meanwhile
        return False
    return struct.unpack("i", queued)[0] > 0


async def _until_in_pipe(pool: CheckPool) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not _job_in_pipe(pool):
        assert time.monotonic() < deadline, "the job never reached the check process"
        await asyncio.sleep(0.01)


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie that no one reaped yet)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_refused_package_gets_the_code_the_nodes_own_process_gives(node_dir, tmp_path):
    async def run():
        pool = CheckPool(1)
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path)
        try:
            good = await asyncio.to_thread(city_package, node_dir, [A])
            other_units_seal = node_context(node_dir / "county").seals[A]
            packages = {"another unit's seal": _rebuilt(good, sign_with=other_units_seal),
                        "manifest changed after signing": _rebuilt(good, manifest_digest_changed=True)}
            codes = {}
            for where in (None, pool):
                processor.judge.pool = where
                codes[where is not None] = {k: await _code(node_dir, ctx, store, processor, p)
                                            for k, p in packages.items()}
            assert codes[True] == codes[False] == {"another unit's seal": "SEAL_CERT_NOT_LISTED",
                                                   "manifest changed after signing": "CMS_DIGEST_MISMATCH"}
            assert len(pool.pids()) == 1  # the child judged them
            assert await store.messages.inbound_counts() == {}  # nothing accepted
        finally:
            pool.close()
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_child_killed_mid_job_is_replaced_and_the_envelope_judged_again(node_dir, tmp_path):
    async def run():
        async with _with_pool(node_dir, tmp_path) as (pool, ctx, store, outbound, processor):
            good = await asyncio.to_thread(city_package, node_dir, [A])
            await _accept(node_dir, ctx, store, processor, await asyncio.to_thread(city_package, node_dir, [A]))
            [first] = pool.pids()
            os.kill(first, signal.SIGSTOP)  # frozen: the next job waits in its pipe, unanswered
            accepting = asyncio.ensure_future(_accept(node_dir, ctx, store, processor, good))
            await _until_in_pipe(pool)
            assert not accepting.done()  # nothing is accepted while the check has not answered
            os.kill(first, signal.SIGKILL)
            message_id = await asyncio.wait_for(accepting, PATIENCE_S)
            assert pool.restarts == 1 and pool.pids() != [first] and len(pool.pids()) == 1
            received = await store.messages.get_received(message_id)
            assert received.state == "new"  # accepted once
            # The verdict died with the first child: the processor's judgement was held there only
            # if the second child took the job, and is the whole lean check otherwise.
            await processor._process(received)
            row = await store.messages.get_inbox(doc_id_in(store, received.payload_digest), A)
            assert row is not None and row.verification["ok"]
            # Killed again, between acceptance and processing: the held verdict is gone with it; the
            # package is sent to the new child for the whole lean check, and a bad one still refused.
            message_id = await _accept(node_dir, ctx, store, processor,
                                       await asyncio.to_thread(city_package, node_dir, [A], tamper_pdf=True))
            [second] = pool.pids()
            assert all(isinstance(e[0], Held) for e in processor.accepted._entries.values())
            os.kill(second, signal.SIGKILL)
            await processor._process(await store.messages.get_received(message_id))
            done = await store.messages.get_received(message_id)
            assert (done.state, done.error_code) == ("failed", "PKG_PDF_SEAL_INVALID")
            # And a package killed under stays refused with its code, not let through.
            [third] = pool.pids()
            os.kill(third, signal.SIGSTOP)
            refusing = asyncio.ensure_future(_code(node_dir, ctx, store, processor,
                                                   _rebuilt(good, manifest_digest_changed=True)))
            await _until_in_pipe(pool)
            os.kill(third, signal.SIGKILL)
            assert await asyncio.wait_for(refusing, PATIENCE_S) == "CMS_DIGEST_MISMATCH"
            assert pool.restarts == 3
    asyncio.run(run())


def test_trust_replaced_and_a_crl_refreshed_while_running_are_what_the_child_judges_by(tmp_path):
    base = provision_county_and_city(tmp_path / "net", "检查进程CA", {A: "甲单位"}, {SENDER: "市政府办公室"})
    other = CertificateAuthority.init_root(tmp_path / "other-ca", "另一个CA", PASSPHRASE)

    async def run():
        pool = CheckPool(1)
        ctx, store, outbound, processor = await open_processor(base, tmp_path, pool)
        try:
            package = lambda: asyncio.to_thread(city_package, base, [A])  # noqa: E731
            assert await _code(base, ctx, store, processor, await package()) is None
            root = ctx.trust.roots[0]
            ctx.trust = TrustStore.of([other.root_certificate])  # the trust directory swapped
            assert await _code(base, ctx, store, processor, await package()) == "ENV_SIGNER_UNTRUSTED"
            # (the envelope's signer is refused first; the package asked of the child alone:)
            data = await package()
            generation = pool.generation(ctx.trust, revocation_token(ctx.revocation))
            answer = await asyncio.to_thread(pool.accept, generation, hashlib.sha256(data).hexdigest(), data,
                                             ctx.clock())
            assert answer.first_failure[0] == "PKI_CERT_UNTRUSTED" and answer.held is None
            ctx.trust = TrustStore.of([load_certificate(root.public_bytes(Encoding.PEM))])  # and back: another object
            assert await _code(base, ctx, store, processor, await package()) is None
            waiting = await _accept(base, ctx, store, processor, await package())  # accepted, not yet processed
            ca = CertificateAuthority.open(base / "ca", PASSPHRASE)
            ca.revoke(node_context(base / "city").seals[SENDER].certificate, "key_compromise")
            (base / "county" / "crl.pem").write_bytes(crl_pem(build_crl(ca, ctx.clock())))
            ctx.revocation.reload()  # as the CRL fetcher does once it installed a fresh one
            assert await _code(base, ctx, store, processor, await package()) == "PKI_CERT_REVOKED"
            processor.judge.pool = None  # the node's own process refuses it with the same code
            assert await _code(base, ctx, store, processor, await package()) == "PKI_CERT_REVOKED"
            processor.judge.pool = pool
            await processor._process(await store.messages.get_received(waiting))
            done = await store.messages.get_received(waiting)
            assert (done.state, done.error_code) == ("failed", "PKI_CERT_REVOKED")
            assert len(pool.pids()) == 1 and pool.restarts == 0  # one child judged all of it
        finally:
            pool.close()
            await close_processor(store, outbound)
    asyncio.run(run())


def test_closing_the_pool_leaves_no_process_and_refuses_later_jobs(node_dir, tmp_path):
    async def run():
        pool = CheckPool(2)
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path, pool)
        try:
            for _ in range(2):  # round robin: both children started
                await _accept(node_dir, ctx, store, processor, await asyncio.to_thread(city_package, node_dir, [A]))
            pids = pool.pids()
            assert len(pids) == 2
            pool.close()
            deadline = time.monotonic() + PATIENCE_S
            while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert all(_gone(p) for p in pids) and pool.pids() == []
            # A closed pool is not asked: the check runs in the node's process instead.
            assert await _code(node_dir, ctx, store, processor,
                               await asyncio.to_thread(city_package, node_dir, [A])) is None
            assert pool.pids() == []
        finally:
            pool.close()
            await close_processor(store, outbound)
    asyncio.run(run())



def _children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = (Path("/proc") / entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_running_node_checks_in_its_child_and_leaves_none_behind_when_it_stops(tmp_path):
    """Real node processes (``gwx node run``): the county's checks run in its one check process,
    which does not inherit the node's key passphrase and is gone once the node has stopped."""
    from node.localnet import send_document
    from tests.node.network.network_support import A1, CITY, inbox_item, notice_meta, start_network

    net = start_network(tmp_path, {"city": ([CITY], {"processing": {"check_processes": 0}}),
                                   "county-a": ([A1], {"processing": {"check_processes": 1}})})
    county = net.nodes["county-a"]
    try:
        assert _children_of(net.nodes["city"].process.pid) == []  # none before a package, none with 0
        doc_id = send_document(net.nodes["city"], CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
        item = inbox_item(county, A1, doc_id, timeout=PATIENCE_S)
        assert item["verified"] is True
        children = _children_of(county.process.pid)  # its check process and multiprocessing's resource tracker
        assert [b"spawn_main" in (Path("/proc") / str(c) / "cmdline").read_bytes() for c in children].count(True) == 1
        for c in children:  # they parse hostile input: the node's key passphrase is not theirs to read
            assert b"GWX_PASSPHRASE=" not in (Path("/proc") / str(c) / "environ").read_bytes()
    finally:
        net.stop_all()
    assert county.process.poll() == 0  # stopped cleanly
    deadline = time.monotonic() + PATIENCE_S
    while not all(_gone(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(c) for c in children)


def _ask(pool: CheckPool, ctx, data: bytes):
    """The acceptor's check of ``data`` asked of ``pool`` directly (in the calling thread)."""
    generation = pool.generation(ctx.trust, revocation_token(ctx.revocation))
    return pool.accept(generation, hashlib.sha256(data).hexdigest(), data, ctx.clock())


def test_a_hung_child_is_stopped_after_the_jobs_bound_and_the_job_fails_transient(node_dir, tmp_path):
    async def run():
        async with _with_pool(node_dir, tmp_path) as (pool, ctx, store, outbound, processor):
            data = await asyncio.to_thread(city_package, node_dir, [A])
            assert (await asyncio.to_thread(_ask, pool, ctx, data)).first_failure is None  # started (imports: slow)
            pool.job_seconds = 1.0
            [hung] = pool.pids()
            os.kill(hung, signal.SIGSTOP)  # alive, answering nothing
            started = time.monotonic()
            try:
                await asyncio.wait_for(asyncio.to_thread(_ask, pool, ctx, data), PATIENCE_S)
            except GwxError as exc:
                assert (exc.code, exc.kind.value) == ("NODE_CHECK_TIMEOUT", "transient")
            else:
                raise AssertionError("a hung child's job answered")
            assert time.monotonic() - started < PATIENCE_S / 2
            assert _gone(hung) and pool.pids() == []  # killed, not sent the job again
            pool.job_seconds = PATIENCE_S  # another child, started under a loaded machine's pace
            assert (await asyncio.to_thread(_ask, pool, ctx, data)).first_failure is None
            assert len(pool.pids()) == 1
    asyncio.run(run())


def test_close_returns_while_a_job_waits_on_a_hung_child_and_leaves_no_process(node_dir, tmp_path):
    async def run():
        pool = CheckPool(1, job_seconds=PATIENCE_S * 10)  # the job's own bound never comes
        ctx, store, outbound, processor = await open_processor(node_dir, tmp_path, pool)
        try:
            data = await asyncio.to_thread(city_package, node_dir, [A])
            await asyncio.to_thread(_ask, pool, ctx, data)
            [hung] = pool.pids()
            os.kill(hung, signal.SIGSTOP)
            waiting = asyncio.ensure_future(asyncio.to_thread(_ask, pool, ctx, data))
            await _until_in_pipe(pool)
            await asyncio.wait_for(asyncio.to_thread(pool.close), PATIENCE_S)
            try:
                await asyncio.wait_for(waiting, PATIENCE_S)
            except GwxError as exc:
                assert exc.code == "NODE_SHUTTING_DOWN"
            else:
                raise AssertionError("a job answered by a stopped child")
            assert _gone(hung) and pool.pids() == []
        finally:
            pool.close()
            await close_processor(store, outbound)
    asyncio.run(run())


def test_a_child_whose_trust_did_not_load_is_sent_it_again_not_left_failing(node_dir, tmp_path):
    async def run():
        async with _with_pool(node_dir, tmp_path) as (pool, ctx, store, outbound, processor):
            data = await asyncio.to_thread(city_package, node_dir, [A])
            generation = pool.generation(ctx.trust, revocation_token(ctx.revocation))
            good = pool._materials[generation]
            pool._materials[generation] = ((b"not a certificate",), good[1])  # what the child cannot load
            try:
                await asyncio.to_thread(_ask, pool, ctx, data)
            except RuntimeError as exc:
                assert "did not load" in str(exc)
            else:
                raise AssertionError("judged without trust")
            pool._materials[generation] = good  # the same generation, loadable now
            answer = await asyncio.to_thread(_ask, pool, ctx, data)
            assert answer.first_failure is None and answer.held is not None
            assert pool.restarts == 0  # the same child, sent the trust again
    asyncio.run(run())


async def _killed_under(pool: CheckPool, ctx, data: bytes):
    """``data`` asked of the pool's one child, which is killed with -9 while the job is its own."""
    [child] = pool.pids()
    os.kill(child, signal.SIGSTOP)
    asking = asyncio.ensure_future(asyncio.to_thread(_ask, pool, ctx, data))
    await _until_in_pipe(pool)
    os.kill(child, signal.SIGKILL)
    return await asyncio.wait_for(asking, PATIENCE_S)


def test_a_package_a_child_died_under_twice_is_refused_for_good_and_sigterm_kills_no_child(node_dir, tmp_path):
    async def run():
        async with _with_pool(node_dir, tmp_path) as (pool, ctx, store, outbound, processor):
            data = await asyncio.to_thread(city_package, node_dir, [A])
            await asyncio.to_thread(_ask, pool, ctx, data)
            [child] = pool.pids()
            os.kill(child, signal.SIGTERM)  # e.g. `kill` of the node's process group: the node drains first
            assert (await asyncio.to_thread(_ask, pool, ctx, data)).first_failure is None
            assert pool.pids() == [child] and pool.restarts == 0
            assert (await _killed_under(pool, ctx, data)).first_failure is None  # once: judged again
            assert pool.restarts == 1
            try:
                await _killed_under(pool, ctx, data)
            except GwxError as exc:
                assert (exc.code, exc.kind.value) == ("NODE_CHECK_CRASHED", "invalid_input")
            else:
                raise AssertionError("a package a child died under twice was judged a third time")
            assert pool.restarts == 2 and pool.pids() == []  # no third process for it
    asyncio.run(run())


def test_the_processor_does_not_judge_again_after_the_pool_gave_up(node_dir, tmp_path):
    async def run():
        async with _with_pool(node_dir, tmp_path) as (pool, ctx, store, outbound, processor):
            message_id = await _accept(node_dir, ctx, store, processor,
                                       await asyncio.to_thread(city_package, node_dir, [A]))
            [child] = pool.pids()  # holds the acceptor's verdict
            os.kill(child, signal.SIGSTOP)
            pool.job_seconds = 1.0
            await processor._process(await store.messages.get_received(message_id))
            row = await store.messages.get_received(message_id)
            assert (row.state, row.error_code) == ("new", "NODE_CHECK_TIMEOUT")  # deferred, retried later
            assert pool.restarts == 1 and pool.pids() == []  # the hung child stopped; no second judgement
    asyncio.run(run())


def test_the_nodes_held_verdicts_count_the_bodies_the_child_holds_under_its_limits(node_dir, tmp_path):
    async def run():
        async with _with_pool(node_dir, tmp_path) as (pool, ctx, store, outbound, processor):
            for _ in range(2):
                await _accept(node_dir, ctx, store, processor, await asyncio.to_thread(city_package, node_dir, [A]))
            held = [e[0] for e in processor.accepted._entries.values()]
            assert len(held) == 2 and all(isinstance(h, Held) and h.size > 1000 for h in held)  # a PDF body each
            assert processor.accepted._bytes == sum(h.size for h in held)  # pushed out by the child's budget
    asyncio.run(run())


_ORPHAN_SCRIPT = """
import multiprocessing, os, time
from node.federation import check_child

def hold(conn):  # keeps the node's end of the pipe open: the check process sees no end of file
    time.sleep(600)

if __name__ == "__main__":
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    child = spawn.Process(target=check_child.main, args=(theirs, os.getpid()))  # as the pool starts one
    child.start()
    holder = spawn.Process(target=hold, args=(ours,))
    holder.start()
    print(child.pid, holder.pid, flush=True)
    time.sleep(600)
"""


def test_a_check_process_ends_when_the_node_process_is_killed(tmp_path):
    """The node killed with -9 while its check process's pipe stays open elsewhere (a job it is stuck
    in looks the same to it) — here even before the check process has finished starting: the check
    process does not outlive it."""
    import subprocess
    import sys

    script = tmp_path / "node_like.py"
    script.write_text(_ORPHAN_SCRIPT)
    repo = Path(__file__).resolve().parents[3]
    node = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=repo,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    child, holder = map(int, node.stdout.readline().split())
    try:
        node.kill()
        node.wait(PATIENCE_S)
        deadline = time.monotonic() + PATIENCE_S
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child)
    finally:
        node.stdout.close()
        for pid in (child, holder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
