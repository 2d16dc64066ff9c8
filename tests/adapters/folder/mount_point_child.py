"""Subprocess of the mount-point test, run inside ``unshare -Urm`` (a mount namespace of its own, so it
may mount tmpfs without touching the machine's mounts).

Usage: python -m tests.adapters.folder.mount_point_child WORK_DIR
A watched folder whose ``path`` is a share's mount point (a tmpfs here): the watcher makes its
subfolders; the share is unmounted while it runs (the bare mount point stays, an empty directory);
then mounted again, empty. Prints one JSON line: what the bare mount point held after some rounds,
and what the share held once back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from adapters.folder.watcher import FolderWatchers
from node.config import FolderSettings
from node.ops.metrics import Registry
from tests.node.api.local_api_support import UNIT_A, make_env, template


async def main(work: Path) -> dict:
    mount_point = work / "share"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    env = make_env(work / "node")
    config = dataclasses.replace(env.config, folders=(FolderSettings(UNIT_A, mount_point, poll_seconds=0.05),))
    watchers = FolderWatchers(config, None, Registry(), lambda: template().now)  # type: ignore[arg-type]
    watchers.start()
    try:
        for _ in range(100):
            if (mount_point / "work").is_dir():
                break
            await asyncio.sleep(0.05)
        made = sorted(os.listdir(mount_point))
        subprocess.run(["umount", "-l", str(mount_point)], check=True)  # the share goes away
        await asyncio.sleep(0.5)  # ten rounds on the bare mount point
        bare = sorted(os.listdir(mount_point))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)  # back, empty
        for _ in range(100):
            if (mount_point / "work").is_dir():
                break
            await asyncio.sleep(0.05)
        back = sorted(os.listdir(mount_point))
        subprocess.run(["umount", "-l", str(mount_point)], check=True)
        under = sorted(os.listdir(mount_point))  # what was made on the bare mount point, hidden until now
        return {"made": made, "bare": bare, "back": back, "under": under}
    finally:
        await watchers.stop()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1])))))
