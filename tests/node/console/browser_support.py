"""A real browser for the console's tests: Playwright for Python driving Debian's chromium.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (the Makefile's
``system-deps`` installs it), started headless with nothing that reaches the network on its own.
:func:`add_user` creates a console user with the real ``gwx user add`` on a node directory;
:func:`city_and_county` starts the two real nodes most browser tests share (a module's ``net`` fixture)
with their users, and :func:`signed_in` is a new browser page signed in to a node's console.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.node.network.network_support import A1, A2, CITY, FAST_RETRY, connect_and_start, new_network, units

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse 42"
REPO = Path(__file__).resolve().parents[3]
PHONE = {"width": 375, "height": 740}
DESK = {"width": 1280, "height": 860}


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def add_user(node_dir: Path, login: str, name: str, role: str, units: list[str], tmp: Path) -> None:
    secret = tmp / f"{login}.password"
    secret.write_text(PASSWORD + "\n", "utf-8")
    command = [sys.executable, "-m", "node.cli.main", "user", "add", "--dir", str(node_dir), "--login", login,
               "--name", name, "--role", role, "--password-file", str(secret)]
    for unit in units:
        command += ["--unit", unit]
    subprocess.run(command, check=True, cwd=REPO, capture_output=True, timeout=60)


def sign_in(page, base_url: str, login: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/console/")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def signed_in(browser, base_url: str, login: str, viewport: dict = DESK):
    """A page of a new browser context (``viewport``, Chinese), signed in as ``login``, on the home page."""
    page = browser.new_context(viewport=viewport, locale="zh-CN").new_page()
    sign_in(page, base_url, login)
    page.wait_for_url(f"{base_url}/console/")
    return page


# Who a browser test signs in as: node → (login, name, role, units) of each console user to add.
Users = dict[str, list[tuple[str, str, str, list[str]]]]


@contextmanager
def city_and_county(base: Path, users: Users, *, city: list[dict] | None = None,
                    county: list[dict] | None = None) -> Iterator:
    """The city's node (its office, :data:`CITY`) and county-a (:data:`A1`, :data:`A2`) started and
    connected, with ``users`` added to their consoles; stopped at the end."""
    network = new_network(base)
    network.add_node("city", city or units(CITY), retry=FAST_RETRY)
    network.add_node("county-a", county or units(A1, A2), retry=FAST_RETRY)
    connect_and_start(network)
    try:
        for node, accounts in users.items():
            for login, name, role, its_units in accounts:
                add_user(network.nodes[node].directory, login, name, role, its_units, base)
        yield network
    finally:
        network.stop_all()
