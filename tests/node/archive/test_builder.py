"""node.archive.builder's housekeeping: a half-built archive a crash left is removed, one being built is not."""

from __future__ import annotations

import os
import time

from node.archive.builder import LEFTOVER_AGE, _clear_leftovers


def test_a_half_built_archive_a_crash_left_is_removed_once_a_day_old(tmp_path):
    old, fresh, other = tmp_path / ".building-a.gwxa", tmp_path / ".building-b.gwxa", tmp_path / "kept.txt"
    for path in (old, fresh, other):
        path.write_bytes(b"x")
    past = time.time() - LEFTOVER_AGE - 60
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    _clear_leftovers(tmp_path)
    assert not old.exists() and fresh.exists() and other.exists()  # a build under way is not touched
