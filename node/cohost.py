"""Several nodes in one OS process: ``python -m node.cohost NODE_DIR…`` (benches and tests).

A whole city of nodes (bench/network.py: 163 of them) does not fit on a small machine as one process
per node. Here each node is :func:`node.runner.serve` as it runs under ``gwx node run`` — its own
keys, store, peer listener (mutual TLS) and local API, its own ``run/ready.json`` and lock — and
they share one event loop. The process's SIGTERM/SIGINT stops them all (each drains as it would
alone); a node that cannot start stops the others and the process exits non-zero, so a caller
waiting for ready files sees the exit rather than a hang.

Operators run one node per process (``gwx node run``); this is the test bench's way to run many,
so it has no ``gwx`` command. The passphrase comes from ``GWX_PASSPHRASE`` (all nodes share it).
Log lines carry the node they come from (a context variable per node, copied into its tasks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import os
import resource
import signal
import sys
from pathlib import Path

from node.config import NodeConfig, ProcessingSettings, load_config
from node.ops import logs
from node.runner import serve
from pki.errors import GwxError

log = logging.getLogger("gwx.node.cohost")
NODE = contextvars.ContextVar("gwx_node", default=None)


class _NodeField(logging.Filter):
    """Puts the node whose task logs into the record (the JSON formatter lifts ``node``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        node = NODE.get()
        if node is not None:
            record.node = node
        return True


async def serve_all(configs: list[NodeConfig], passphrase: bytes, stop: asyncio.Event | None = None) -> None:
    """Serve every node until ``stop`` is set (or SIGTERM/SIGINT); re-raise the first node's failure."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    tasks = []
    if len(configs) > 1:  # a check process per node would be the process per node this module avoids
        configs = [dataclasses.replace(c, processing=ProcessingSettings(check_processes=0)) for c in configs]
    for config in configs:
        context = contextvars.copy_context()
        context.run(NODE.set, config.node_id)
        tasks.append(loop.create_task(serve(config, passphrase, stop), name=f"gwx-node-{config.node_id}",
                                      context=context))
    failure: BaseException | None = None
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and failure is None:
                failure = exc
                log.error("node %s failed, stopping the %d nodes of this process: %s",
                          task.get_name().removeprefix("gwx-node-"), len(tasks), exc)
            stop.set()  # a node returns only once stopped, or when it failed: the others follow
    if failure is not None:
        raise failure


def _raise_open_files_limit() -> None:
    """Every node holds listeners, SQLite files and peer connections: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.cohost", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, metavar="NODE_DIR", help="the node directories to serve")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    passphrase = os.environ.pop("GWX_PASSPHRASE", "").encode()  # not inherited by the processes it starts
    if not passphrase:
        print("python -m node.cohost: set GWX_PASSPHRASE (the nodes' key passphrase)", file=sys.stderr)
        return 2
    logs.configure(f"cohost-{os.getpid()}", args.log_level)
    for handler in logging.getLogger("gwx").handlers:
        handler.addFilter(_NodeField())
    _raise_open_files_limit()
    try:
        asyncio.run(serve_all([load_config(d) for d in args.dirs], passphrase))
    except GwxError as exc:
        print(f"python -m node.cohost: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
