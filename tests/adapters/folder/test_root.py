"""A watched folder's root is the operator's: the node never creates it, and says when it is missing.

With the share not mounted, ``[[folders]] path`` is missing (or only the bare mount point is there):
creating it would put outgoing/, results/, inbox/ … on the wrong disk, where the OA never looks and
where drops written meanwhile would be sent from. So the node creates only the subfolders under a
root that is there, reports a missing root in readiness and ``gwx node status``
(``FOLDER_ROOT_MISSING``), and starts watching once the operator mounts the share.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.folder.errors import FolderRootMissing
from adapters.folder.layout import FolderLayout
from adapters.folder.watcher import FolderWatchers
from node.config import FolderSettings
from node.ops import readiness
from node.ops.metrics import Registry
from tests.node.api.local_api_support import UNIT_A, make_env, template

SUBFOLDERS = ["inbox", "outgoing", "rejects", "results", "work"]
ROOT = Path(__file__).resolve().parents[3]


def test_create_makes_the_subfolders_under_a_root_that_is_there(tmp_path):
    FolderLayout(tmp_path).create()
    assert sorted(os.listdir(tmp_path)) == SUBFOLDERS
    assert os.listdir(tmp_path / "inbox") == ["events"]
    FolderLayout(tmp_path).create()  # again at the next start: nothing changes
    assert sorted(os.listdir(tmp_path)) == SUBFOLDERS


@pytest.mark.parametrize("depth", [1, 3], ids=["root-missing", "share-and-root-missing"])
def test_create_never_makes_the_root_or_anything_above_it(tmp_path, depth):
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()  # the bare mount point of a share that is not mounted
    root = mount_point.joinpath(*["oa", "city", "unit"][:depth])
    with pytest.raises(FolderRootMissing) as err:
        FolderLayout(root).create()
    assert err.value.code == "FOLDER_ROOT_MISSING" and str(root) in err.value.message
    assert os.listdir(mount_point) == []


def folder_config(tmp_path, root):
    env = make_env(tmp_path / "node")
    return dataclasses.replace(env.config, folders=(FolderSettings(UNIT_A, root, poll_seconds=0.05),))


def folders_check(config) -> readiness.Check:
    [check] = [c for c in readiness.file_checks(config, template().now) if c.name == "folders"]
    return check


def test_readiness_names_a_missing_root_and_is_ok_once_it_is_there(tmp_path):
    root = tmp_path / "mnt" / "oa"
    config = folder_config(tmp_path, root)
    check = folders_check(config)
    assert (check.verdict, check.code) == (readiness.FAIL, "FOLDER_ROOT_MISSING")
    assert UNIT_A in check.message and str(root) in check.message
    assert readiness.report(readiness.file_checks(config, template().now))["ready"] is False
    root.mkdir(parents=True)
    check = folders_check(config)  # there, but the node has not made its subfolders yet
    assert (check.verdict, check.code) == (readiness.FAIL, "FOLDER_SUBFOLDERS_MISSING")
    FolderLayout(root).create()
    assert folders_check(config).verdict == readiness.OK
    assert not [c for c in readiness.file_checks(dataclasses.replace(config, folders=()), template().now)
                if c.name == "folders"]  # no [[folders]]: no check


def test_the_watcher_waits_for_the_root_and_then_makes_its_subfolders(tmp_path):
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    root = mount_point / "oa"
    config = folder_config(tmp_path, root)

    async def scenario() -> None:
        watchers = FolderWatchers(config, None, Registry(), lambda: template().now)  # type: ignore[arg-type]
        watchers.start()
        try:
            await asyncio.sleep(0.5)  # ten rounds with the share unmounted
            assert os.listdir(mount_point) == []
            root.mkdir()  # the share is mounted
            for _ in range(100):
                if sorted(os.listdir(root)) == SUBFOLDERS:
                    break
                await asyncio.sleep(0.05)
            assert sorted(os.listdir(root)) == SUBFOLDERS
        finally:
            await watchers.stop()
    asyncio.run(scenario())


def test_a_root_that_comes_back_empty_gets_its_subfolders_again_and_readiness_says_so_meanwhile(tmp_path):
    """The share is unmounted while the node runs and mounted again empty (or the operator recreates
    the root): the watcher makes the subfolders again, and until it has, readiness is not ok."""
    root = tmp_path / "mnt" / "oa"
    root.mkdir(parents=True)
    config = folder_config(tmp_path, root)

    async def until(condition, what: str) -> None:
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.025)
        raise AssertionError(what)

    async def scenario() -> None:
        watchers = FolderWatchers(config, None, Registry(), lambda: template().now)  # type: ignore[arg-type]
        watchers.start()
        try:
            await until(lambda: sorted(os.listdir(root)) == SUBFOLDERS, "subfolders made at start")
            assert folders_check(config).verdict == readiness.OK
            shutil.rmtree(root)  # the share goes away…
            await asyncio.sleep(0.3)  # …for a few rounds
            root.mkdir()  # …and comes back empty
            check = folders_check(config)
            assert (check.verdict, check.code) == (readiness.FAIL, "FOLDER_SUBFOLDERS_MISSING")
            await until(lambda: sorted(os.listdir(root)) == SUBFOLDERS, "subfolders made again")
            await until(lambda: folders_check(config).verdict == readiness.OK, "readiness ok again")
        finally:
            await watchers.stop()
    asyncio.run(scenario())


def test_readiness_reports_a_root_it_cannot_look_at_instead_of_raising(tmp_path):
    """An OSError other than 'not there' when the root is looked at (EACCES on a folder above it, a
    stale NFS handle, EIO) is a failed check with a code, never a traceback in ``gwx node status`` or a
    500 from /readyz. ENAMETOOLONG is the one such error a test can make as any user on any disk; it
    takes the same path."""
    root = tmp_path / ("共享" * 50) / "oa"  # a component of 300 bytes: stat fails with ENAMETOOLONG
    config = folder_config(tmp_path, root)
    check = folders_check(config)
    assert (check.verdict, check.code) == (readiness.FAIL, "FOLDER_ROOT_UNREADABLE")
    assert UNIT_A in check.message and "cannot be read" in check.message
    with pytest.raises(FolderRootMissing):  # what the watcher catches, so it retries each round
        FolderLayout(root).create()


def test_a_share_mounted_at_path_itself_is_waited_for_not_filled_in_at_its_bare_mount_point(tmp_path):
    """``path`` is the share's mount point (README advises against it, but it is done): unmounted while
    the node runs, the bare mount point is an empty directory — the subfolders are not made there
    (they would be hidden, with whatever the node wrote, once the share is back), only on the share."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-Urm", "true"]).returncode != 0:
        pytest.skip("needs unshare -Urm (user and mount namespaces) to mount a tmpfs")
    run = subprocess.run(["unshare", "-Urm", sys.executable, "-m", "tests.adapters.folder.mount_point_child",
                          str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"made": SUBFOLDERS, "bare": [], "back": SUBFOLDERS, "under": []}, result
