"""Shared set-up for the local API and clerk CLI tests: a node config with small limits, tokens,
a service double, raw multipart bodies (built by hand so hostile parts can be written exactly), and
a way to run a scenario against the app with aiohttp's test server inside ``asyncio.run``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.auth import TokenStore
from node.config import HostedUnit, Limits, Listener, NodeConfig
from node.local_api import make_local_app
from node.metrics import Registry
from pki.unit_code import make_unit_code

from .service_double import ServiceDouble

UNIT_A = "91350100M000100Y43"
UNIT_B = "11100000000013127D"
UNIT_C = make_unit_code("11370000MB0000001")
UNIT_NAMES = {UNIT_A: "福州市人民政府办公厅", UNIT_B: "临沂市人民政府办公室"}
SMALL_LIMITS = Limits(max_request_bytes=4096, max_body_pdf_bytes=64 * 1024, max_envelope_bytes=256 * 1024)
PDF = b"%PDF-1.7\n" + b"0123456789abcdef" * 512 + b"\n%%EOF\n"


def meta(**overrides: Any) -> dict[str, Any]:
    base = {"kind": "通知", "title": "关于做好冬季安全生产工作的通知", "doc_number": "榕政办〔2026〕12号",
            "issuers": [UNIT_A], "to": [UNIT_B], "cc": [UNIT_C], "written_on": "2026-11-20",
            "deadline": "2026-11-23T17:00:00+08:00"}
    base.update(overrides)
    return base


@dataclass
class Env:
    tmp: Path
    config: NodeConfig
    tokens: TokenStore
    service: ServiceDouble
    registry: Registry
    clerk_a: str
    clerk_b: str
    operator: str

    def app(self) -> web.Application:
        return make_local_app(self.service, self.tokens, self.registry, self.config)

    @property
    def upload_dir(self) -> Path:
        return self.config.data_dir / "uploads"

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def make_env(tmp: Path, limits: Limits = SMALL_LIMITS) -> Env:
    config = NodeConfig(directory=tmp, node_id="county-a", peer_api=Listener(), local_api=Listener(),
                        units=tuple(HostedUnit(c, n, tmp / c) for c, n in UNIT_NAMES.items()), limits=limits)
    tokens = TokenStore(config.tokens_path)
    _, clerk_a = tokens.issue("张三", "clerk", UNIT_A)
    _, clerk_b = tokens.issue("李四", "clerk", UNIT_B)
    _, operator = tokens.issue("王五", "operator")
    work = tmp / "double"
    work.mkdir()
    return Env(tmp, config, tokens, ServiceDouble(dict(UNIT_NAMES), work), Registry(), clerk_a, clerk_b, operator)


def run(env: Env, scenario: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(env.app())) as client:
            await scenario(client)
    asyncio.run(main())


def part(name: str, data: bytes, *, filename: str | None = None, content_type: str | None = None,
         raw_disposition: str | None = None) -> bytes:
    disposition = raw_disposition or f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"Content-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data


def multipart(*parts: bytes, boundary: str = "XyZbOuNdArY", close: bool = True) -> tuple[bytes, dict[str, str]]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    if close:
        body += b"--" + boundary.encode() + b"--\r\n"
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def submission(doc_meta: dict[str, Any] | None = None, body: bytes = PDF,
               attachments: tuple[tuple[str, bytes], ...] = ()) -> tuple[bytes, dict[str, str]]:
    parts = [part("meta", json.dumps(doc_meta or meta(), ensure_ascii=False).encode(),
                  content_type="application/json"),
             part("body", body, filename="body.pdf", content_type="application/pdf")]
    parts += [part("attachment", data, filename=name, content_type="application/octet-stream")
              for name, data in attachments]
    return multipart(*parts)


class ThreadedServer:
    """The app on a real loopback port in a background thread (for the CLI subprocess tests)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(self.app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
