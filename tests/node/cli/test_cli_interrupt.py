"""Ctrl-C while ``gwx`` is still loading its modules ends it quietly (status 130), no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _loading(pid: int) -> bool:
    """The child has loaded node/ (it is in gwx's own imports now): cryptography's library is mapped."""
    try:
        return "cryptography" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_ctrl_c_while_loading_prints_no_traceback():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # --help loads every command module (pyHanko among them) and does nothing else.
    proc = subprocess.Popen([sys.executable, "-m", "node.cli.main", "doc", "verify", "--help"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not _loading(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()
    assert proc.returncode in (0, 130)  # 0 only if it had already finished
