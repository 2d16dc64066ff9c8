"""A real webhook receiver for the tests: aiohttp on loopback, in a thread of its own.

It verifies every delivery with :func:`adapters.webhooks.signing.verify` (the function a receiver
is told to use) and acts on each event id once: ``effects`` lists the events it acted on,
``requests`` every event id it was sent (duplicates included), ``refused`` the codes of deliveries
it refused. ``mode`` says how it answers: ``ok``; ``503`` / ``500`` / ``429`` / ``400`` that status;
``redirect`` a 302 elsewhere; ``huge`` a 500 declaring 32 MiB of answer, whose first MiB comes at once
and the rest never (a client that reads it all is still waiting when its timeout ends); ``slow`` an answer after ``slow_seconds``; ``hold`` records the
request and then never answers; ``act_then_hold`` acts on the event and then never answers (the
test kills the node meanwhile). :meth:`close` stops listening
(connections refused) and :meth:`reopen` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import web

from adapters.webhooks.signing import WebhookDuplicate, verify
from pki.errors import GwxError


class Receiver:
    def __init__(self, secret: str = "", *, mode: str = "ok", slow_seconds: float = 5.0) -> None:
        self.secret = secret
        self.mode = mode
        self.slow_seconds = slow_seconds
        self.effects: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.arrived_at: dict[str, float] = {}  # event id → time.time() of its first arrival
        self._seen: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._call(self._open())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/elsewhere", self._hook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        event_id = request.headers.get("X-Gwx-Event-Id", "?")
        self.requests.append(event_id)
        if self.mode == "redirect":
            raise web.HTTPFound("/elsewhere")
        if self.mode == "huge":  # 500 declaring 32 MiB of answer: the node reads 2 KiB of it and goes
            answer = web.StreamResponse(status=500)
            answer.content_length = 32 * 1024 * 1024
            await answer.prepare(request)
            await answer.write(b"x" * (1024 * 1024))
            await asyncio.sleep(3600)  # the rest never comes: only a client that stops reading gets an answer
        if self.mode.isdigit():
            return web.Response(status=int(self.mode), text=f"mode {self.mode}")
        if self.mode == "hold":
            await asyncio.sleep(3600)
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        try:
            event = verify(self.secret, request.headers, body, time.time(), seen=self._seen)
        except WebhookDuplicate:
            return web.Response(text="duplicate, already done")
        except GwxError as exc:
            self.refused.append(exc.code)
            return web.Response(status=401, text=exc.code)
        self.arrived_at.setdefault(event["event_id"], time.time())
        self.effects.append(event)
        self._seen.add(event["event_id"])  # acted on: a later delivery of it is a duplicate
        if self.mode == "act_then_hold":  # acted, and the answer never leaves: the node is killed meanwhile
            await asyncio.sleep(3600)
        return web.Response(text="ok")

    async def _cancel_held(self) -> None:
        """Handlers still holding an answer (``hold``, ``act_then_hold``) end with the receiver."""
        held = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)

    def close(self) -> None:
        if self._runner is not None:
            self._call(self._runner.cleanup())
            self._runner = None

    def reopen(self) -> None:
        self._call(self._open())

    def stop(self) -> None:
        self.close()
        self._call(self._cancel_held())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
