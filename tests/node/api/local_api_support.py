"""Shared set-up for the local API and clerk CLI tests: the real document service behind the app.

One node directory is provisioned per test process (a root CA, ``init_node`` hosting three units,
so sending is local delivery and needs no peer) and its credentials loaded once; each test then
gets its own data directory with a fresh :class:`~node.store.NodeStore` (SQLite), a real
:class:`~node.documents.service.DocumentService` and :class:`~node.federation.outbound.Outbound` wired as
:mod:`node.runner` wires them, and its own tokens. The only fake is the clock, frozen at the moment
the node was provisioned, so times in tables can be predicted. Also: raw multipart bodies (built by
hand so hostile parts can be written exactly), and ways to run a scenario against the app with
aiohttp's test server inside ``asyncio.run`` or on a loopback port in a thread; :func:`send` (clerk A
sends a valid document), :func:`expect_error` (the error body every refusal carries),
:func:`still_serving` and :func:`outbox_of_a`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import datetime as dt
import io
import json
import shutil
import tempfile
import threading
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.api.auth import TokenStore
from node.api.local_api import make_local_app
from node.config import Limits, NodeConfig
from node.context import NodeContext
from node.documents.service import DocumentService
from node.federation.outbound import Outbound
from node.federation.tls import client_context
from node.federation.transport import PeerClient
from node.localnet import notice_pdf
from node.ops.metrics import Registry
from node.provision import init_node
from node.store import NodeStore
from node.store.opener import open_store
from pki.ca import CertificateAuthority
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, FakeClock

UNIT_A = "91350100M000100Y43"
UNIT_B = "11100000000013127D"
UNIT_C = make_unit_code("11370000MB0000001")
UNIT_NAMES = {UNIT_A: "福州市人民政府办公厅", UNIT_B: "临沂市人民政府办公室", UNIT_C: "临沂市应急管理局"}
SMALL_LIMITS = Limits(max_request_bytes=4096, max_body_pdf_bytes=64 * 1024, max_envelope_bytes=256 * 1024)
PDF = notice_pdf()
BEIJING = dt.timezone(dt.timedelta(hours=8))
_TODAY = dt.datetime.now(BEIJING)


def meta(**overrides: Any) -> dict[str, Any]:
    # Dates around the day the tests run: written yesterday, due in two days (Beijing time).
    base = {"kind": "通知", "title": "关于做好冬季安全生产工作的通知", "doc_number": "榕政办〔2026〕12号",
            "issuers": [UNIT_A], "to": [UNIT_B], "cc": [UNIT_C],
            "written_on": (_TODAY - dt.timedelta(days=1)).date().isoformat(),
            "deadline": (_TODAY + dt.timedelta(days=2)).replace(hour=17, minute=0, second=0, microsecond=0).isoformat()}
    base.update(overrides)
    return base


@dataclass(frozen=True)
class Template:
    """The provisioned node: its config and loaded credentials, shared by every test."""

    config: NodeConfig
    ctx: NodeContext
    now: dt.datetime  # what the node's clock says in these tests


_template: Template | None = None
_template_lock = threading.Lock()


def template() -> Template:
    global _template
    with _template_lock:
        if _template is None:
            base = Path(tempfile.mkdtemp(prefix="gwx-local-api-"))
            atexit.register(shutil.rmtree, base, True)
            ca = CertificateAuthority.init_root(base / "ca", "本地接口测试CA", PASSPHRASE)
            units = [{"code": c, "name": n} for c, n in UNIT_NAMES.items()]
            config, _ = init_node(base / "node", "county-a", ca, units, PASSPHRASE, peer_port=0, local_port=0)
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)  # after every certificate's notBefore
            _template = Template(config, NodeContext.load(config, PASSPHRASE, clock=FakeClock(now)), now)
        return _template


def now_local() -> str:
    """The node's (frozen) time as the clerks' CLI prints it."""
    return template().now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M +08:00")


@dataclass
class Env:
    tmp: Path
    config: NodeConfig
    ctx: NodeContext
    tokens: TokenStore
    registry: Registry
    clerk_a: str
    clerk_b: str
    operator: str
    store: NodeStore | None = None  # while serving
    service: DocumentService | None = None

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[web.Application]:
        """The app over a real service, wired as node.runner wires it; everything closed afterwards."""
        shared = template().config
        store = await open_store(self.config.data_dir, node_id=self.ctx.node_id, clock=self.ctx.clock,
                                 max_blob_size=self.config.limits.max_envelope_bytes)
        client = PeerClient(client_context(shared.credentials_dir / "tls.crt", shared.credentials_dir / "tls.key",
                                           shared.trust_root_path, PASSPHRASE))
        outbound = Outbound(self.ctx, store, client, self.registry)
        service = DocumentService(self.ctx, store, outbound, self.registry)
        service.processor.start()
        await outbound.start()
        self.store, self.service = store, service
        try:
            yield make_local_app(service, self.tokens, self.registry, self.config)
        finally:
            await outbound.stop(5)
            await service.processor.stop()
            await client.close()
            with contextlib.suppress(Exception):  # a test may have broken the store on purpose
                await store.close()
            self.store = self.service = None

    @property
    def upload_dir(self) -> Path:
        return self.config.data_dir / "uploads"

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def make_env(tmp: Path, limits: Limits = SMALL_LIMITS) -> Env:
    shared = template()
    config = dataclasses.replace(shared.config, directory=tmp, limits=limits)
    # The node directory's credentials and CRL, so the node's readiness judges real files.
    shutil.copytree(shared.config.credentials_dir, config.credentials_dir, dirs_exist_ok=True)
    shutil.copy(shared.config.crl_path, config.crl_path)
    # A clock of its own, at the template's time: a test that moves it (a session left idle, days
    # passing) must not move the time of the tests that run after it in the same process.
    ctx = dataclasses.replace(shared.ctx, config=config, clock=FakeClock(shared.now))
    tokens = TokenStore(config.tokens_path)
    _, clerk_a = tokens.issue("张三", "clerk", UNIT_A)
    _, clerk_b = tokens.issue("李四", "clerk", UNIT_B)
    _, operator = tokens.issue("王五", "operator")
    return Env(tmp, config, ctx, tokens, Registry(), clerk_a, clerk_b, operator)


def run(env: Env, scenario: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with env.serve() as app, TestClient(TestServer(app)) as client:
            await scenario(client)
    asyncio.run(main())


def package_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


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
    """The env's app on a real loopback port in a background thread (for the CLI subprocess tests)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        serving = self.env.serve()
        app = self.loop.run_until_complete(serving.__aenter__())
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.run_until_complete(serving.__aexit__(None, None, None))
        self.loop.close()

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def expect_error(response, status: int, code: str) -> dict:
    """``response`` is the refusal ``status`` with ``code``, in the one error shape; returns the error."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


async def send(client, env, **kwargs) -> str:
    """Clerk A sends a document (``submission``'s keywords); returns its 公文标识."""
    data, headers = submission(**kwargs)
    response = await client.post("/api/v1/documents", data=data, headers={**headers, **env.auth(env.clerk_a)})
    assert response.status == 201, await response.text()
    return (await response.json())["doc_id"]


async def still_serving(client) -> None:
    """The node still answers its health check (a refusal broke nothing)."""
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json()) == {"ok": True, "node_id": "county-a"}


async def outbox_of_a(client, env) -> list:
    """Clerk A's outbox as the API lists it."""
    response = await client.get("/api/v1/outbox", headers=env.auth(env.clerk_a))
    assert response.status == 200
    return await response.json()
