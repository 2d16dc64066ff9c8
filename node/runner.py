"""Running a node: build the components, serve both listeners, drain and stop on SIGTERM.

Start-up order: open the store (which recovers from a crash before anything else runs), load the
node's credentials and seals, start the inbound processor and the destination queues, then open
the peer listener (mutual TLS, our CA only) and the local listener. Shutdown runs in reverse: the
peer API stops taking envelopes (503, senders retry later); in-flight requests and the queues'
batches in flight get :data:`SHUTDOWN_TIMEOUT` seconds together (then they are cut); the adapters'
attempts in flight are abandoned, the processor finishes its message, the store closes. Whatever is
left is on disk and resumes at the next start. A process that serves one node owns SIGTERM and
exits within :data:`node.stopping.STOP_SECONDS` of it whatever it is doing
(:class:`node.stopping.StopDeadline`: a stuck thread or task ends with the process).

SIGHUP loads the node's credentials again (:mod:`node.credential_reload`): ``gwx node renew``
sends it after installing renewed ones, which the node then uses without a restart.

Only one process serves a node directory: :mod:`node.run_lock` is taken before anything else.
Several workers of one node (PostgreSQL) each have a directory of their own; with ``[peer_api]
reuse_port`` those on one host bind the same peer port (SO_REUSEPORT) and the kernel spreads the
peers' connections across them.
``NODE_DIR/run/ready.json`` (pid, peer and local URLs) is written once both listeners are up and
removed at exit: scripts and tests wait for it rather than for a log line. Just before it is written
the heap built while starting is settled (:func:`settle_heap`: frozen out of the cyclic garbage
collector's walks, which then see only what the node makes while it serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web

from adapters.folder.watcher import FolderWatchers
from adapters.oa_push.consumer import check_against_wsdls, oa_push_consumers
from adapters.outbox import Outbox
from adapters.soapserver.endpoint import mount_soap
from adapters.webhooks.service import Webhooks
from node.api.auth import TokenStore
from node.api.local_api import make_local_app
from node.config import NodeConfig
from node.console.accounts import Accounts
from node.console.app import mount_console
from node.console.security import allowed_hosts
from node.console.unit_tree import known_units
from node.context import NodeContext
from node.credential_reload import CredentialReloader
from node.documents.service import DocumentService
from node.federation.acceptor import Acceptor
from node.federation.check_pool import CheckPool
from node.federation.crl_fetch import CrlFetcher
from node.federation.directory_fetch import DirectoryFetcher
from node.federation.outbound import Outbound
from node.federation.peer_api import DRAINING, errors_middleware, make_peer_app
from node.federation.reroute import Rerouter
from node.federation.revocation_api import RevocationService, make_revocation_app
from node.federation.tls import node_contexts
from node.federation.transport import PeerClient
from node.ops.alert_gauges import register_alert_gauges
from node.ops.crl_state import crl_figures
from node.ops.directory_state import HeldDirectoryReader, directory_figures
from node.ops.housekeeping import housekeeping
from node.ops.metrics import Registry
from node.run_lock import NodeLock
from node.stopping import StopDeadline, cancel_all_and_wait
from node.store import NodeStore
from node.store.opener import open_store
from node.supervision.supervisors import supervised_by
from pki.keystore import write_public_file
from pki.trust import Purpose, verify_certificate

log = logging.getLogger("gwx.node")
SHUTDOWN_TIMEOUT = 5.0  # in-flight requests (every listener) and batches (every queue), all at once


def ready_path(config: NodeConfig) -> Path:
    return config.directory / "run" / "ready.json"


async def serve(config: NodeConfig, passphrase: bytes, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set; without ``stop``, until SIGTERM/SIGINT. A caller that passes ``stop``
    owns the process's signals: several nodes can then share one process and one event loop
    (:mod:`node.cohost`), each with its own keys, store and listeners. Raises
    :class:`NodeAlreadyRunning` when another process serves the directory — before the store, the
    listeners or ``run/ready.json`` are touched."""
    lock = NodeLock.acquire(config.directory)
    try:
        await _serve(config, passphrase, stop)
    finally:
        lock.release()


async def _serve(config: NodeConfig, passphrase: bytes, stop: asyncio.Event | None) -> None:
    loop = asyncio.get_running_loop()
    reload_requested = asyncio.Event()  # gwx node renew: pick up the new set
    deadline = StopDeadline() if stop is None else None  # the process is ours: it exits in bounded time
    if stop is None:  # the process is this node's alone: its signals stop it, and SIGHUP reloads it
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError):  # before anything is loaded: a SIGHUP
            loop.add_signal_handler(signal.SIGHUP, reload_requested.set)  # must never kill a starting node

    ctx = NodeContext.load(config, passphrase)
    registry = Registry()
    creds = config.credentials_dir
    store = await open_store(config.data_dir, node_id=config.node_id, clock=ctx.clock,
                             max_blob_size=config.limits.max_envelope_bytes, settings=config.store)
    client_tls, server_tls = node_contexts(creds / "tls.crt", creds / "tls.key", config.tls_root_path, passphrase)
    client = PeerClient(client_tls,
                        judge=lambda cert, chain: verify_certificate(cert, ctx.tls_roots, ctx.clock(),
                                                                     (*chain, *ctx.intermediates),
                                                                     Purpose.TLS_SERVER, ctx.revocation),
                        registry=registry)
    # Fetching CRLs judges the parent by revoked_only (a stale CRL must not stop the fetch that cures
    # it): a client of its own, so no connection judged that way carries anything else. It shares
    # the TLS context, so a renewal's reload reaches it too.
    crl_client = PeerClient(client_tls, judge=lambda cert, chain: verify_certificate(
        cert, ctx.tls_roots, ctx.clock(), (*chain, *ctx.intermediates), Purpose.TLS_SERVER,
        ctx.revocation.revoked_only))
    revocation = RevocationService(ctx)
    if revocation.configured:
        revocation.load()  # a missing OCSP signer or a wrong passphrase stops the start, not the first request
    outbound = Outbound(ctx, store, client, registry)
    service = DocumentService(ctx, store, outbound, registry)
    folders = FolderWatchers(config, service, registry, ctx.clock)  # [[folders]]: OA drops, adapters.folder
    # [processing] check_processes: the package checks needing no key in processes beside this one
    # (node.federation.check_pool; spawned at the first package, stopped below after the processor).
    pool = (CheckPool(config.processing.check_processes, config.classified_network)
            if config.processing.check_processes > 0 else None)
    service.processor.judge.pool = pool
    acceptor = Acceptor(ctx, store, registry, on_accepted=service.processor.wake, on_relayed=outbound.wake_hop,
                        verdicts=service.processor.accepted)  # the processor judges only the PDF seal again
    if service.tsa.configured:
        service.tsa.load()  # [archive] tsa_signer: a wrong passphrase or a missing directory stops the start
    peer_app = make_peer_app(ctx, acceptor, service.whereabouts, revocation, service.tsa)
    tokens = TokenStore(config.tokens_path)
    local_app = make_local_app(service, tokens, registry, config)
    mount_soap(local_app, service, tokens, config)  # SOAP for OA systems, beside the JSON API
    # The clerks' web console at /console/ (node.console): users sign in with a password, not a token.
    held_directory = HeldDirectoryReader(config)  # the send page's unit tree
    accounts = Accounts(store.accounts, ctx.clock, [u.code for u in config.units],
                        supervised_by=lambda unit: supervised_by(ctx, unit))  # a supervisor's scope, read now
    mount_console(local_app, service, accounts,
                  node_id=config.node_id, unit_name=lambda code: ctx.router.unit_name(code), clock=ctx.clock,
                  units=lambda: known_units(config, held_directory.read), hosts=allowed_hosts(config.local_api))
    # Adapters (issue 9): consumers of the audit log, each with its durable outbox (adapters.outbox).
    adapters = Outbox(store, ctx.node_id, ctx.clock, registry=registry)
    webhooks = Webhooks(config, store, adapters, ctx.clock)
    _gauges(config, ctx.clock, store, outbound, registry)
    register_alert_gauges(config, ctx.clock, store, registry)  # build, process, expiry, oldest queued
    local_app.cleanup_ctx.append(housekeeping(store, ctx.clock))
    local_app.cleanup_ctx.append(service.processor.escalator.running)  # 督办 sweep (node.supervision)
    fetchers = ([DirectoryFetcher(ctx, client, registry), CrlFetcher(ctx, crl_client, registry)]
                if config.parent is not None else [])
    fetching: list[asyncio.Task] = []
    reloader = CredentialReloader(ctx, [server_tls, client_tls], client, reload_requested)
    reloading: asyncio.Task | None = None
    rerouting: asyncio.Task | None = None

    peer_runner = web.AppRunner(peer_app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    local_runner = web.AppRunner(local_app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    revocation_runner = (web.AppRunner(make_revocation_app(revocation, errors_middleware), access_log=None,
                                       shutdown_timeout=SHUTDOWN_TIMEOUT) if config.revocation is not None else None)
    revocation_site: web.TCPSite | None = None
    try:
        service.processor.start()
        await outbound.start()
        await webhooks.start()
        await folders.register(adapters)  # each unit's inbox folder: a consumer of the adapters' outbox
        oa_pushes = list(oa_push_consumers(config, service))  # [[oa_push]]: oa:<unit>
        await check_against_wsdls([consumer for consumer, _, _ in oa_pushes])  # a misfit stops the start
        for consumer, policy, timeout in oa_pushes:
            await adapters.add(consumer, policy, attempt_timeout=timeout)
        await adapters.start()
        reloading = loop.create_task(reloader.run(), name="gwx-credential-reload")
        rerouting = loop.create_task(Rerouter(outbound).run(), name="gwx-reroute")
        await peer_runner.setup()
        await local_runner.setup()
        # [peer_api] reuse_port (PostgreSQL): SO_REUSEPORT, several workers of the node on this port
        peer_site = web.TCPSite(peer_runner, config.peer_api.host, config.peer_api.port,
                                ssl_context=server_tls, reuse_port=config.peer_api.reuse_port)
        local_site = web.TCPSite(local_runner, config.local_api.host, config.local_api.port)
        await peer_site.start()
        await local_site.start()
        if revocation_runner is not None and config.revocation is not None:
            await revocation_runner.setup()
            revocation_site = web.TCPSite(revocation_runner, config.revocation.host, config.revocation.port)
            await revocation_site.start()
        # Once our own listener is up: our children may ask us at once.
        fetching = [loop.create_task(f.run(), name=f"gwx-{type(f).__name__}") for f in fetchers]
        folders.start()
        settle_heap()
        _write_ready(config, peer_site, local_site, revocation_site)
        log.info("node %s serving: peers on %s, local API on %s", ctx.node_id, peer_site.name, local_site.name)
        await stop.wait()
        log.info("node %s draining", ctx.node_id)
    finally:
        if deadline is not None:
            deadline.arm()
        peer_app[DRAINING].set()
        await folders.stop()
        await cancel_all_and_wait((*fetching, reloading, rerouting))
        with contextlib.suppress(FileNotFoundError):
            ready_path(config).unlink()
        # Side by side, not one after the other: each may take SHUTDOWN_TIMEOUT (three in a row took 30 s,
        # the revocation listener after the others 10 s).
        await asyncio.gather(peer_runner.cleanup(), outbound.stop(SHUTDOWN_TIMEOUT), local_runner.cleanup(),
                             *([revocation_runner.cleanup()] if revocation_runner is not None else []))
        await adapters.stop()
        await webhooks.stop()
        await service.processor.stop()
        if pool is not None:
            await asyncio.to_thread(pool.close)  # after the drain and the processor: no job is cut short
        await client.close()
        await crl_client.close()
        await store.close()
        log.info("node %s stopped", ctx.node_id)


# Container objects allocated (net of those freed) before a young collection; CPython's 700 makes
# a busy node collect hundreds of times a second and promote what is merely in flight.
YOUNG_GC_THRESHOLD = 10_000


def settle_heap() -> None:
    """What a node keeps while it serves — its certificates, directory, routes, seals, compiled
    code: 50,000–100,000 objects a node, half a million in a process of 54 (:mod:`node.cohost`) —
    moved out of the cyclic collector's walks (:func:`gc.freeze`), and young collections made
    rarer. Before, every full collection walked all of it: 0.3–0.45 s of CPU each, the loop
    stalled meanwhile, two or three of them during the medium city's exchange (docs/performance.md).
    Once per node at ready (cheap: a list splice). What is frozen and later dropped is still
    freed by reference counting; only a reference cycle among it stays until the process ends —
    a structure of start-up replaced while serving (a renewed credential, a newer directory),
    rare and once each, against a full walk of everything every few seconds. The young generations
    are collected first (cheap: what was made since the last collection): cyclic garbage pending at
    that moment — in a process of several nodes, what the nodes already serving are dropping — is
    freed rather than frozen with the rest."""
    gc.collect(1)
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_GC_THRESHOLD), middle, old)


def _write_ready(config: NodeConfig, peer_site: web.TCPSite, local_site: web.TCPSite,
                 revocation_site: web.TCPSite | None) -> None:
    def port(site: web.TCPSite) -> int:
        return site._server.sockets[0].getsockname()[1]  # the real port when the config says 0

    host = config.peer_api.host
    info = {"pid": os.getpid(), "node_id": config.node_id,
            "peer_url": f"https://{host}:{port(peer_site)}",
            "local_url": f"http://{config.local_api.host}:{port(local_site)}"}
    if revocation_site is not None and config.revocation is not None:
        info["revocation_url"] = f"http://{config.revocation.host}:{port(revocation_site)}"
    write_public_file(ready_path(config), json.dumps(info).encode())


def _gauges(config: NodeConfig, clock, store: NodeStore, outbound: Outbound, registry: Registry):
    depth = registry.gauge("gwx_queue_depth", "Outbound envelopes by destination and state")
    peers = registry.gauge("gwx_peer_up", "1 when the peer is up, 0 when backing off or dead")
    inbound = registry.gauge("gwx_inbound_messages", "Received envelopes by processing state")
    adapter_rows = registry.gauge("gwx_adapter_outbox", "Adapter outbox rows by consumer and state (pending, done, dead)")
    directory = {name: registry.gauge(f"gwx_directory_{name}", text) for name, text in (
        ("version", "Version of the network directory this node holds (absent: it holds none)"),
        ("age", "Seconds since the held network directory was issued"),
        ("expires_in", "Seconds until the held network directory expires (negative: expired, still used)"),
        ("expired", "1 when the held network directory has expired (routing goes on; publish a new one)"))}
    crl = {name: registry.gauge(f"gwx_crl_{name}", text) for name, text in (
        ("number", "CRL number of each CA's CRL held (crl.pem), by issuer"),
        ("next_update_in", "Seconds until the held CRL's next update, by issuer (negative: stale, envelopes "
                           "are refused with ENV_REVOCATION_UNKNOWN until a fresh one arrives)"),
        ("stale", "1 when the held CRL of an issuer is past its next update"))}

    # The router's parsed copy of the held directory (it is the one routing uses): parsing the file a
    # second time per node for its gauges cost 0.1 s of CPU and 2 MiB per node of a city.
    routers = getattr(outbound.ctx.router, "directory", None)
    held = SimpleNamespace(read=routers) if routers is not None else HeldDirectoryReader(config)

    async def refresh() -> None:  # when /metrics is fetched (Registry.collect), not on a timer
        series = {}
        for dest, states in (await store.queue.depth()).items():
            for state, n in states.items():
                series[(("destination", dest), ("state", state))] = float(n)
        for dest, n in (await store.drafts.draft_counts()).items():
            series[(("destination", dest), ("state", "draft"))] = float(n)
        depth.replace(series)
        peers.replace({(("peer", p.node_id),): 1.0 if p.state == "up" else 0.0
                       for p in await store.peers.list_peers()})
        inbound.replace({(("state", state),): float(n)
                         for state, n in (await store.messages.inbound_counts()).items()})
        adapter_rows.replace({(("consumer", consumer), ("state", state)): float(n)
                              for consumer, states in (await store.adapter_outbox.counts()).items()
                              for state, n in states.items()})
        figures = directory_figures(config, clock(), held)  # type: ignore[arg-type]
        for name, gauge in directory.items():
            gauge.replace({(): figures[name]} if name in figures else {})
        by_issuer = await asyncio.to_thread(crl_figures, config, clock())
        for name, gauge in crl.items():
            gauge.replace({(("issuer", issuer),): values[name] for issuer, values in by_issuer.items()})

    registry.on_collect(refresh)
