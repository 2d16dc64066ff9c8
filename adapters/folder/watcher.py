"""The watched folders of a running node: one polling task per ``[[folders]]`` entry.

Polling, not inotify: it works the same on every file system an OA may share (NFS and SMB mounts
included, where change notification is unreliable), needs no extra library, and a round costs one
directory listing. Every ``poll_seconds`` a unit's task finishes the claims left in ``work/`` and
sends each complete drop (:mod:`adapters.folder.outgoing`). The receiving side needs no task of
its own: each unit's :class:`~adapters.folder.inbox.FolderInbox` is a consumer of the adapters'
outbox, registered with :meth:`FolderWatchers.register` before the node starts that. A round that fails (the folder
unmounted, say) is logged and the next one tried: the watcher itself never stops while the node runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import datetime

from adapters.folder.drop import DropLimits
from adapters.folder.errors import FolderRootMissing
from adapters.folder.inbox import FolderInbox
from adapters.folder.layout import FolderLayout, clear_staging
from adapters.folder.outgoing import Outgoing
from adapters.outbox import Outbox
from node.config import FolderSettings, NodeConfig
from node.documents.contract import DocumentServiceApi
from node.ops.metrics import Registry

log = logging.getLogger("gwx.folder")


class FolderWatchers:
    def __init__(self, config: NodeConfig, service: DocumentServiceApi, registry: Registry,
                 clock: Callable[[], datetime]) -> None:
        self.config = config
        outcomes = registry.counter("gwx_folder_drops_total",
                                    "Drops taken from watched folders, by unit and outcome (sent, rejected, retried)",
                                    labels=("unit", "outcome"))
        for folder in config.folders:  # each watched unit's series exist from the start, at 0
            for outcome in ("sent", "rejected", "retried"):
                outcomes.declare(unit=folder.unit, outcome=outcome)
        limits = DropLimits(body=config.limits.max_body_pdf_bytes, total=config.limits.max_envelope_bytes)
        self.outgoing = {f.unit: Outgoing(FolderLayout(f.path), f.unit, service, limits, clock, f.poll_seconds,
                                          outcomes) for f in config.folders}
        self.inboxes = [FolderInbox(FolderLayout(f.path), f.unit, service) for f in config.folders]
        self._tasks: list[asyncio.Task] = []

    async def register(self, outbox: Outbox) -> None:
        """Each unit's inbox becomes a consumer of the adapters' outbox (``folder:<unit>``), after what
        a kill -9 left half-written there is cleared away."""
        for inbox in self.inboxes:
            try:
                await asyncio.to_thread(inbox.layout.create)
                await asyncio.to_thread(clear_staging, inbox.layout.inbox)
                await asyncio.to_thread(clear_staging, inbox.layout.events)
            except (OSError, FolderRootMissing) as exc:  # an unmounted share: the events wait in the outbox
                log.error("folder %s: cannot prepare %s: %s", inbox.unit, inbox.layout.inbox, exc)
            await outbox.add(inbox)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch(f), name=f"gwx-folder-{f.unit}") for f in self.config.folders]

    async def stop(self) -> None:
        """Cancel the watchers; a drop cut off mid-way stays claimed and is finished at the next start."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _watch(self, settings: FolderSettings) -> None:
        outgoing = self.outgoing[settings.unit]
        ready = False
        mounted = False  # the root was a mount point when its subfolders were made: it must be one again
        trouble = None  # what went wrong in the last round, said once until it changes or passes
        while True:
            try:
                if not ready:  # at start, and after the root was gone or unreadable: it may come back empty
                    # never the root itself (check_root), nor a bare mount point where a share was (mounted)
                    mounted = await asyncio.to_thread(functools.partial(outgoing.layout.create, mounted=mounted))
                    ready = True
                    log.info("folder %s: watching %s every %.1f s", settings.unit, settings.path,
                             settings.poll_seconds)
                await outgoing.tick()
                if trouble is not None:
                    log.info("folder %s: %s can be read again", settings.unit, settings.path)
                    trouble = None
            except (OSError, FolderRootMissing) as exc:  # gone, unmounted, unreadable: the operator's to fix
                ready = False  # once it is back, its subfolders are made again before the next round
                if str(exc) != trouble:
                    trouble = str(exc)
                    log.error("folder %s: cannot use %s (%s); trying every %.1f s", settings.unit, settings.path,
                              exc, settings.poll_seconds)
            except Exception:
                log.exception("folder %s: a round over %s failed; trying again in %.1f s", settings.unit,
                              settings.path, settings.poll_seconds)
            await asyncio.sleep(settings.poll_seconds)
