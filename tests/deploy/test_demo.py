"""``make demo`` as a new user runs it, and ``GWX_PROFILE=sm make demo`` on a 国密 network: it succeeds,
quickly, and the files it says it kept are there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["international", "sm"])
def test_the_demo_keeps_the_directory_it_names(profile):
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(ROOT / "deploy" / "demo.py")], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, env={**os.environ, "GWX_PROFILE": profile})
    took = time.monotonic() - started
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "demo succeeded" in out.stdout and f"({profile} profile)" in out.stdout
    if profile == "sm":  # the SM2 signatures checked by openssl, the body an OFD with its GB/T 38540 seal
        assert "[ok] openssl dgst -sm3 -verify" in out.stdout and "OFD seal" in out.stdout
    assert "SMS gateway: 您有文件要处理: 关于做好2026年冬季安全生产工作的通知" in out.stdout  # the webhook step
    [kept] = re.findall(r"files kept in (\S+)", out.stdout)
    base = Path(kept)
    try:
        assert (base / "received.zip").is_file() and (base / "network").is_dir()
        # A clean run logs no error on any node (a CRL refused as a rollback every second did).
        errors = [line for log in (base / "network").glob("*/node.log") for line in log.read_text().splitlines()
                  if '"level": "error"' in line]
        assert errors == [], errors[:3]
    finally:
        subprocess.run(["rm", "-r", str(base)], check=False)
    assert took < 120, took  # about 15 s on a quiet machine; generous under a loaded one
