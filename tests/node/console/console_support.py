"""Helpers of the console tests: the console mounted on the local API over a real document service
(tests.node.api.local_api_support's node, store and service), signing in through the real form, and
cookies kept by hand (aiohttp's client keeps no Secure cookie over http; browsers do on loopback)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie

from aiohttp.test_utils import TestClient, TestServer

from node.console.accounts import Accounts
from node.console.app import mount_console
from node.console.security import allowed_hosts
from node.console.unit_tree import known_units
from tests.node.api.local_api_support import UNIT_NAMES, Env

PASSWORD = "correct horse 42"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """One browser's cookies against the test server; every POST says it comes from the site."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.cookies: dict[str, str] = {}
        self.origin = str(client.make_url("/")).rstrip("/")

    def _keep(self, response) -> None:
        for header in response.headers.getall("Set-Cookie", []):
            for name, morsel in SimpleCookie(header).items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    async def get(self, path: str, *, headers: dict[str, str] | None = None):
        response = await self.client.get(path, headers={**self.cookie_header(), **(headers or {})},
                                         allow_redirects=False)
        self._keep(response)
        return response, await response.text()

    async def post(self, path: str, form: dict[str, str], *, origin: str | None = "same", **kw):
        headers = {**self.cookie_header(), **kw.pop("headers", {})}
        if origin is not None:
            headers["Origin"] = self.origin if origin == "same" else origin
        response = await self.client.post(path, data=form, headers=headers, allow_redirects=False, **kw)
        self._keep(response)
        return response, await response.text()

    async def post_multipart(self, path: str, data, *, origin: str | None = "same"):
        headers = self.cookie_header()
        if origin is not None:
            headers["Origin"] = self.origin if origin == "same" else origin
        response = await self.client.post(path, data=data, headers=headers, allow_redirects=False)
        self._keep(response)
        return response, await response.text()

    async def sign_in(self, login: str, password: str = PASSWORD):
        _, page = await self.get("/console/sign-in")
        return await self.post("/console/sign-in", {"csrf": csrf_of(page), "login": login, "password": password,
                                                    "next": "/console/"})


def csrf_of(page: str) -> str:
    return _CSRF.search(page).group(1)


@contextlib.asynccontextmanager
async def console(env: Env, clock=None) -> AsyncIterator[tuple[TestClient, Accounts]]:
    """The local API with the console mounted, as node.runner mounts it; ``clock`` is the accounts'."""
    async with env.serve() as app:
        accounts = Accounts(env.store.accounts, clock or env.ctx.clock, [u.code for u in env.config.units])
        mount_console(app, env.service, accounts, node_id=env.config.node_id, unit_name=UNIT_NAMES.get,
                      clock=env.ctx.clock, units=lambda: known_units(env.config, lambda: None),
                      hosts=allowed_hosts(env.config.local_api))
        async with TestClient(TestServer(app)) as client:
            yield client, accounts
