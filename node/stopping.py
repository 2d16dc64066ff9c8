"""Stopping a node in bounded time, whatever it is doing.

Two tools, used by :mod:`node.runner` (and the adapters' outbox) when SIGTERM asks a node to stop:

- :func:`cancel_and_wait` cancels a background task and waits for it, cancelling it again until it
  ends or ``within`` seconds pass (:func:`cancel_all_and_wait`: several side by side). A single ``task.cancel()`` and ``await task`` is not enough: a
  cancellation can be lost on the way — Python 3.11's ``asyncio.wait_for`` returns the inner
  result when the cancel meets a wake-up in the same loop turn, and a library may answer a
  cancelled connect with its own error (httpx, through anyio, raised ``ConnectError('All
  connection attempts failed')`` for a cancelled push to an OA that was down; the outbox took it
  for a failed attempt and its loop went on) — and the ``await`` then waits for ever.
- :class:`StopDeadline` is the last resort of a process that serves nodes: armed when the stop
  begins, it ends the process :data:`STOP_SECONDS` later if it has not exited by then (a worker
  thread stuck in a read, a task that ignores every cancel, an executor that asyncio.run waits for
  at exit). It logs what was still running first. Nothing is lost: the store is built to survive
  a kill -9 (SQLite WAL), every queue and outbox row stays pending, and the next start resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import traceback

log = logging.getLogger("gwx.node")

STOP_SECONDS = 10.0  # from SIGTERM to the process's exit, at the most
RECANCEL_SECONDS = 0.2  # a task still running this long after a cancel is cancelled again
EXIT_STOP_OVERDUE = 70  # the exit status of a process ended by its StopDeadline (EX_SOFTWARE)


async def cancel_and_wait(task: asyncio.Task | None, within: float = 2.0) -> bool:
    """Cancel ``task`` and wait until it has ended, cancelling it again every
    :data:`RECANCEL_SECONDS` (a cancel it swallowed is not the last); True once it ended, False
    (logged, with where it is) when it still runs after ``within`` seconds."""
    if task is None or task.done():
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.error("task %s did not stop within %g s of being cancelled; left behind: %s",
                      task.get_name(), within, _where(task))
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, left))
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s ended with an error while stopping: %r", task.get_name(), task.exception())
    return True


async def cancel_all_and_wait(tasks, within: float = 2.0) -> bool:
    """:func:`cancel_and_wait` for every task at once: a few that will not stop cost ``within``
    together, not ``within`` each one after the other (which took a stop past :data:`STOP_SECONDS`).
    True when all ended."""
    return all(await asyncio.gather(*(cancel_and_wait(t, within) for t in tasks if t is not None)))


def _where(task: asyncio.Task) -> str:
    frames = task.get_stack(limit=3)
    return " < ".join(f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno} {f.f_code.co_name}"
                      for f in reversed(frames)) or "(no frame)"


class StopDeadline:
    """Ends the process ``seconds`` after :meth:`arm` unless it exited before (a daemon timer: it
    never keeps the process alive itself)."""

    def __init__(self, seconds: float = STOP_SECONDS) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._overdue)
            self._timer.name, self._timer.daemon = "gwx-stop-deadline", True
            self._timer.start()

    def _overdue(self) -> None:
        stacks = sys._current_frames()
        busy = [f"{t.name}: {''.join(traceback.format_stack(stacks[t.ident], limit=4)).strip()}"
                for t in threading.enumerate() if t.ident in stacks and t is not threading.current_thread()]
        log.error("the node did not stop within %g s of SIGTERM: ending the process (the store and every "
                  "pending row are resumed at the next start); still running: %s", self.seconds,
                  " | ".join(busy))
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_STOP_OVERDUE)
