"""Stopping in bounded time (node.stopping): a task that swallows a cancel is cancelled again, one
that ignores every cancel is left behind and named, and a process whose stop overruns
STOP_SECONDS ends anyway — a thread stuck in a read does not hold it."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.stopping import EXIT_STOP_OVERDUE, cancel_and_wait

ROOT = Path(__file__).resolve().parents[2]


def test_cancel_and_wait_cancels_again_a_task_that_swallowed_the_first_cancel(caplog):
    async def main():
        swallowed = []

        async def stubborn():
            while True:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed.append(1)  # the first cancel lost, as wait_for or a library may lose it

        task = asyncio.create_task(stubborn(), name="stubborn")
        await asyncio.sleep(0)
        assert await asyncio.wait_for(cancel_and_wait(task, 3.0), 4.0)
        assert swallowed == [1] and task.cancelled()

        async def deaf():
            while True:
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.sleep(30)

        task = asyncio.create_task(deaf(), name="deaf")
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await cancel_and_wait(task, 0.5)  # given up on, said so, within the bound
        assert loop.time() - started < 1.5
        task.get_coro().close()

    with caplog.at_level(logging.ERROR, logger="gwx.node"):
        asyncio.run(main())
    assert "task deaf did not stop within 0.5 s" in caplog.text


STUCK = """
import logging, threading, time
from node.stopping import StopDeadline
logging.basicConfig(level=logging.INFO)
threading.Thread(target=time.sleep, args=(600,), name="stuck-read").start()  # not a daemon: it holds the exit
StopDeadline(1.0).arm()
"""


def test_a_process_whose_stop_overruns_its_deadline_ends_anyway_and_says_what_held_it():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_STOP_OVERDUE
    assert time.monotonic() - started < 20  # 1 s, and the interpreter's start under load
    assert "did not stop within 1 s" in done.stderr and "stuck-read" in done.stderr
