"""A real browser for the console's tests: Playwright for Python driving Debian's chromium.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium`` (the Makefile's
``system-deps`` installs it), started headless with nothing that reaches the network on its own.
:func:`add_user` creates a console user with the real ``gwx user add`` on a node directory.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
