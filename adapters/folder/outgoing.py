"""Sending what an OA system dropped: claim a drop, submit it exactly once, write its result or reject.

One drop at a time per unit, in four durable steps (a kill -9 may land between any two):

1. **claim** — ``outgoing/NAME`` is renamed to ``work/NAME/NAME`` (one atomic rename: the OA can no
   longer change it, and a second watcher could not take it too); a drop that cannot be moved (another
   user's folder: EACCES) is left where it is, logged once, and the other drops go on;
2. **key** — before anything is sent, ``work/NAME/.claim.json`` records the drop's 公文标识 (META.json's
   ``id`` if the OA gave one, else a new one): the idempotency key of this drop. A 公文标识 the unit
   has already sent is refused here (``DROP_ALREADY_SENT``), and so is one another claimed drop, not yet
   sent, holds (``DROP_DUPLICATE_ID``), so any document found under the key later can only be this drop's;
3. **submit** — the document service's ``submit`` (:mod:`node.documents.contract`) as a clerk
   principal of the unit, with the key as the document's id: the outbox rows and the messages to
   every recipient commit in one transaction, so the key is sent completely or not at all;
4. **outcome** — ``results/NAME.json`` (公文标识, status, recipients) or ``rejects/NAME/`` (the drop
   as it was and ``error.json`` with the GwxError's code and message), then the claim is removed.

At every start (and every round) claims left in ``work/`` are finished first: a claim with a key
asks the service whether the key was sent (``track``) — if so, and what was sent under it is this
drop (same content digest, :mod:`adapters.folder.content`), only the result is written; sent with
other content (a clerk used the id through the API meanwhile) the drop is refused (``DROP_ID_TAKEN``);
not sent, the drop is submitted again under the same key. A drop found sent that can no longer be
read as a drop (``[limits]`` lowered since) is neither adopted nor refused: its claim stays
(``DROP_SENT_UNREADABLE`` in the log) until it can be compared. Hence never lost (the drop stays in ``work/``
until its outcome is durable) and never sent twice (one key, looked up before each submission).
An error the document service would retry (a busy or full store) leaves the claim for later, with
backoff; every other refusal is the drop's and moves it to ``rejects/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.folder.content import drop_digest, sent_digest
from adapters.folder.drop import (
    DropContents,
    DropLimits,
    check_drop_name,
    copy_folder,
    in_progress,
    is_complete,
    printable,
    read_folder,
    refuse_if_symlink,
    regular_file,
)
from adapters.folder.errors import DropAlreadySent, DropDuplicateId, DropIdTaken, DropSentUnreadable
from adapters.folder.layout import (
    DONE_PREFIX,
    FolderLayout,
    free_name,
    move,
    read_json,
    remove_tree,
    write_json,
)
from adapters.folder.unzip import unpack
from exchange_protocol.ids import new_id
from node.api.auth import Principal
from node.documents.contract import DocumentServiceApi
from node.error_kinds import Disposition, disposition
from node.errors import NotFound
from node.ops.metrics import Counter
from pki.errors import GwxError
from pki.keystore import fsync_dir

log = logging.getLogger("gwx.folder")  # every drop or file name it is given goes through printable() (drop.py)
# The node's own files in a claim start with '.', a name no drop has (drop.in_progress): a drop called
# claim.json or unpacked cannot be mistaken for them. error.json takes its public name as the reject moves.
CLAIM = ".claim.json"
PENDING_ERROR = ".error.json"
ERROR = "error.json"
UNPACKED = ".unpacked"
RETRY_MAX_SECONDS = 300.0
MAX_OUTCOME_NAME = 200  # bytes of a drop's name kept in results/ and rejects/ (file names stop at 255)


def folder_principal(unit: str) -> Principal:
    """Who the watched folder acts as: a clerk of its unit (recorded as ``clerk:folder:<unit>``)."""
    return Principal(token_id=f"folder:{unit}", name=f"folder:{unit}", role="clerk", unit=unit)


class Outgoing:
    def __init__(self, layout: FolderLayout, unit: str, service: DocumentServiceApi, limits: DropLimits,
                 clock: Callable[[], datetime], poll_seconds: float, outcomes: Counter | None = None) -> None:
        self.layout = layout
        self.unit = unit
        self.service = service
        self.limits = limits
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.outcomes = outcomes
        self.principal = folder_principal(unit)
        self._retry: dict[str, tuple[int, float]] = {}  # claim → (failures, monotonic time it is due)
        self._ignored: set[str] = set()
        self._unclaimable: set[str] = set()  # drops in outgoing/ the node could not move (said once)

    async def tick(self) -> int:
        """Finish the claims in ``work/`` that are due, then claim and send each complete drop.
        Returns how many drops reached an outcome."""
        done = 0
        for name in await asyncio.to_thread(self._claims):
            if self._due(name):
                done += await self._handle(name)
        for name in await asyncio.to_thread(self._complete_drops):
            if os.path.lexists(self.layout.work / name):
                continue  # an earlier drop of this name is still waiting to be retried
            if await asyncio.to_thread(self._claim, name):
                self._ignored.discard(name)
                log.info("folder %s: took drop %s", self.unit, printable(name))
                done += await self._handle(name)
        return done

    # ---- one drop -------------------------------------------------------------------------------------
    async def _handle(self, name: str) -> int:
        try:
            await self._process(name)
        except GwxError as exc:
            if disposition(exc) is Disposition.GIVE_UP:
                try:
                    await asyncio.to_thread(self._reject, name, exc)
                except Exception as failed:  # our disk (or a bug): the reject is finished next time
                    log.exception("folder %s: the reject of drop %s could not be written", self.unit, printable(name))
                    self._later(name, failed)
                    return 0
                self._retry.pop(name, None)
                return 1
            self._later(name, exc)
        except OSError as exc:  # the node's disk (full, unwritable): the drop stays claimed
            self._later(name, exc)
        except Exception as exc:  # a bug: logged whole, the drop stays claimed, the watcher goes on
            log.exception("folder %s: drop %s failed unexpectedly", self.unit, printable(name))
            self._later(name, exc)
        else:
            self._retry.pop(name, None)
            return 1
        return 0

    async def _process(self, name: str) -> None:
        claim_dir = self.layout.work / name
        if os.path.lexists(claim_dir / PENDING_ERROR) or os.path.lexists(claim_dir / ERROR):  # a reject cut off
            await asyncio.to_thread(self._finish_reject, name)
            return
        if not os.path.lexists(claim_dir / name):  # cut off between making the claim and taking the drop
            await asyncio.to_thread(shutil.rmtree, claim_dir)
            return
        record = await asyncio.to_thread(_read_record, claim_dir / CLAIM)
        tracking = await self._sent(record["doc_id"]) if record is not None else None
        try:
            contents = await asyncio.to_thread(self._read, name)
        except GwxError as exc:
            if tracking is None or disposition(exc) is not Disposition.GIVE_UP:
                raise
            # Sent under its key: a refusal now (limits lowered since) must not move it to rejects.
            raise DropSentUnreadable(f"drop {printable(name)} was sent as {record['doc_id']} but cannot be read "
                                     f"again to compare it with what was sent ({exc.code}: {exc.message}); its "
                                     "claim stays in work/", doc_id=record["doc_id"], cause=exc.code) from exc
        if tracking is not None:
            await self._adopt(name, record["doc_id"], contents, tracking)
            return
        if record is None:
            record = await self._key(name, contents)
        meta = {**contents.meta, "id": record["doc_id"]}
        result = await self.service.submit(self.principal, meta, contents.body, contents.attachments)
        await asyncio.to_thread(self._succeed, name, result["doc_id"], result["recipients"],
                                result.get("warnings", []))

    async def _adopt(self, name: str, doc_id: str, contents: DropContents, tracking: dict[str, Any]) -> None:
        """``doc_id``, the drop's key, is found sent: the drop's result is written only if what was sent
        under it is this drop (:mod:`adapters.folder.content`), else the drop is refused."""
        package = await self.service.sent_package_path(self.principal, doc_id)  # not one received under the id
        mine = await asyncio.to_thread(drop_digest, contents, doc_id)
        sent = await asyncio.to_thread(sent_digest, package, contents.body.stat().st_size)
        if mine != sent:
            raise DropIdTaken(f"a document with other content was sent as {doc_id} (META.json id or this drop's "
                              "key) while this drop waited; this drop was not sent: give it another id",
                              doc_id=doc_id)
        log.info("folder %s: drop %s was sent as %s before the node stopped (same content); writing its result",
                 self.unit, printable(name), doc_id, extra={"doc_id": doc_id})
        await asyncio.to_thread(self._succeed, name, doc_id, tracking["recipients"], [])

    async def _key(self, name: str, contents: DropContents) -> dict[str, Any]:
        """The drop's idempotency key, durable before it is submitted under it."""
        doc_id = contents.meta.get("id")
        if isinstance(doc_id, str):
            holder = await asyncio.to_thread(self._claim_holding, doc_id, name)
            if holder is not None:
                raise DropDuplicateId(f"the drop {holder!r}, not sent yet, already has the id {doc_id} (META.json "
                                      "id); nothing was sent for this one", doc_id=doc_id, drop=holder)
            if await self._sent(doc_id) is not None:
                raise DropAlreadySent(f"this unit has already sent a document {doc_id} (META.json id); nothing "
                                      "was sent again", doc_id=doc_id)
        elif doc_id is None:
            doc_id = new_id(self.clock())
        record = {"drop": name, "doc_id": doc_id, "claimed_at": self.clock().isoformat()}
        await asyncio.to_thread(write_json, self.layout.work / name / CLAIM, record)
        return record

    def _claim_holding(self, doc_id: str, name: str) -> str | None:
        """The other claim in ``work/`` keyed with ``doc_id``, if any: a key identifies one drop only."""
        for other in self._claims():
            if other != name:
                with contextlib.suppress(OSError, ValueError):
                    record = _read_record(self.layout.work / other / CLAIM)
                    if isinstance(record, dict) and record.get("doc_id") == doc_id:
                        return other
        return None

    async def _sent(self, doc_id: str) -> dict[str, Any] | None:
        try:
            return await self.service.track(self.principal, doc_id)
        except NotFound:
            return None

    def _read(self, name: str) -> DropContents:
        claim_dir = self.layout.work / name
        drop = claim_dir / name
        refuse_if_symlink(drop)
        check_drop_name(name)
        unpacked = claim_dir / UNPACKED  # the private copy that is checked and sent (drop.copy_folder)
        if os.path.lexists(unpacked):
            shutil.rmtree(unpacked)  # half unpacked before a crash
        if drop.is_dir():
            return read_folder(copy_folder(drop, unpacked, self.limits), self.limits)
        regular_file(drop, name)
        return read_folder(unpack(drop, unpacked, self.limits), self.limits)

    # ---- outcomes (blocking: run in a thread) ----------------------------------------------------------
    def _succeed(self, name: str, doc_id: str, recipients: list[dict[str, Any]], warnings: list[str]) -> None:
        path = free_name(self.layout.results, _outcome_name(name), ".json",
                         same=lambda p: _doc_id_in(p) == doc_id)
        write_json(path, {"drop": name, "doc_id": doc_id, "status": "sent", "recipients": recipients,
                          "warnings": warnings, "written_at": self.clock().isoformat()})
        remove_tree(self.layout.work / name)
        log.info("folder %s: drop %s sent as %s to %d units; result in %s", self.unit, printable(name), doc_id,
                 len(recipients), printable(path.name), extra={"doc_id": doc_id})
        if self.outcomes is not None:
            self.outcomes.inc(unit=self.unit, outcome="sent")

    def _reject(self, name: str, error: GwxError) -> None:
        claim_dir = self.layout.work / name
        write_json(claim_dir / PENDING_ERROR, {"drop": name, **error.to_dict(),
                                               "rejected_at": self.clock().isoformat()})
        log.warning("folder %s: drop %s refused: %s %s", self.unit, printable(name), error.code, error.message)
        self._finish_reject(name)
        if self.outcomes is not None:
            self.outcomes.inc(unit=self.unit, outcome="rejected")

    def _finish_reject(self, name: str) -> None:
        claim_dir = self.layout.work / name
        for derived in (claim_dir / UNPACKED, claim_dir / CLAIM):
            if derived.is_dir() and not derived.is_symlink():
                shutil.rmtree(derived)
            elif os.path.lexists(derived):
                derived.unlink()
        if os.path.lexists(claim_dir / PENDING_ERROR):
            os.rename(claim_dir / PENDING_ERROR, claim_dir / ERROR)
        target = free_name(self.layout.rejects, _outcome_name(name))
        os.chmod(claim_dir, 0o755)
        move(claim_dir, target)
        log.info("folder %s: drop %s moved to rejects/%s", self.unit, printable(name), printable(target.name))

    def _later(self, name: str, error: BaseException) -> None:
        failures = self._retry.get(name, (0, 0.0))[0] + 1
        delay = min(RETRY_MAX_SECONDS, self.poll_seconds * 2 ** failures)
        self._retry[name] = (failures, time.monotonic() + delay)
        # Not "not sent": the failure may come after the submission (the result not written), and the
        # key finds that out next time, so an operator is not told a sent document was not.
        log.warning("folder %s: drop %s not finished (%s); it stays claimed and is tried again in %.0f s (sent "
                    "at most once: its key is looked up first)", self.unit, printable(name), error, delay)
        if self.outcomes is not None:
            self.outcomes.inc(unit=self.unit, outcome="retried")

    def _due(self, name: str) -> bool:
        entry = self._retry.get(name)
        return entry is None or time.monotonic() >= entry[1]

    # ---- the folders (blocking) ------------------------------------------------------------------------
    def _claims(self) -> list[str]:
        names = []
        with os.scandir(self.layout.work) as it:
            entries = list(it)
        for entry in entries:
            if entry.name.startswith(DONE_PREFIX):
                shutil.rmtree(entry.path, ignore_errors=True)  # an outcome written, its claim half removed
            elif not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                names.append(entry.name)
        return sorted(names)

    def _complete_drops(self) -> list[str]:
        ready = []
        with os.scandir(self.layout.outgoing) as it:
            entries = list(it)
        present = {entry.name for entry in entries}
        self._ignored &= present  # names the OA has removed are forgotten: the sets stay as small as the folder
        self._unclaimable &= present
        for entry in entries:
            verdict = is_complete(Path(entry.path))
            if not verdict and entry.name not in self._ignored and not in_progress(entry.name):
                self._ignored.add(entry.name)  # said once per name: an OA that forgot .ready is visible
                if verdict is None:
                    log.info("folder %s: leaving outgoing/%s alone: a drop is NAME.zip or a folder NAME/ with "
                             ".ready", self.unit, printable(entry.name))
                else:
                    log.info("folder %s: outgoing/%s/ has no .ready yet: waiting for it", self.unit,
                             printable(entry.name))
            if verdict:
                try:
                    ready.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
                except FileNotFoundError:
                    pass
        return [name for _, name in sorted(ready)]

    def _claim(self, name: str) -> bool:
        claim_dir = self.layout.work / name
        try:
            os.mkdir(claim_dir, 0o700)
        except FileExistsError:
            return False
        try:
            os.rename(self.layout.outgoing / name, claim_dir / name)
        except FileNotFoundError:  # the OA took it back
            os.rmdir(claim_dir)
            return False
        except OSError as exc:  # this drop's trouble (EACCES: another user's folder), not the unit's
            os.rmdir(claim_dir)
            if name not in self._unclaimable:  # said once; tried again each round in case it is fixed
                self._unclaimable.add(name)
                log.error("folder %s: cannot take outgoing/%s (%s); it is left there and the other drops go "
                          "on", self.unit, printable(name), exc.strerror or exc)
            return False
        self._unclaimable.discard(name)
        fsync_dir(claim_dir)
        fsync_dir(self.layout.outgoing)
        fsync_dir(self.layout.work)
        return True


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return read_json(path)
    except FileNotFoundError:
        return None


def _doc_id_in(path: Path) -> str | None:
    try:
        return read_json(path).get("doc_id")
    except (OSError, ValueError, AttributeError):
        return None


def _outcome_name(name: str) -> str:
    while len(os.fsencode(name)) > MAX_OUTCOME_NAME:
        name = name[:-1]
    return name
