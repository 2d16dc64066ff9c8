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
import os

import pytest

from adapters.folder.errors import FolderRootMissing
from adapters.folder.layout import FolderLayout
from adapters.folder.watcher import FolderWatchers
from node.config import FolderSettings
from node.ops import readiness
from node.ops.metrics import Registry
from tests.node.api.local_api_support import UNIT_A, make_env, template

SUBFOLDERS = ["inbox", "outgoing", "rejects", "results", "work"]


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
