"""A console supervisor who works for a supervising unit sees the units the network directory says it
supervises, on a running node that routes by the directory, and follows a new directory without the
operator touching the account (node.supervision.supervisors.supervised_by). Real processes: the node
is ``gwx node run``, the account made by ``gwx user add``, the console read over HTTP with its
session cookie and CSRF token as a browser sends them. The city, county-a's parent in the directory, is
provisioned but not started: nothing here reaches it."""

from __future__ import annotations

import http.client
import urllib.parse
from http.cookies import SimpleCookie

import pytest

from node.localnet import wait_for
from pki.keystore import write_public_file
from tests.node.console.console_support import PASSWORD, csrf_of
from tests.node.network.network_support import A1, A2, CITY, UNIT_NAMES, directory_network, signed_directory
from tests.support import run_gwx

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TREE = [("city", "city", None), ("county-a", "county", "city")]


def directory_units(a2_supervisor: str | None) -> list[dict]:
    a2 = {"code": A2, "name": UNIT_NAMES[A2], "level": "county", "node": "county-a", "parent": CITY}
    return [{"code": CITY, "name": UNIT_NAMES[CITY], "level": "city", "node": "city"},
            {"code": A1, "name": UNIT_NAMES[A1], "level": "county", "node": "county-a", "parent": CITY},
            {**a2, "supervisor": a2_supervisor} if a2_supervisor else a2]


class Console:
    """A browser's requests to a node's console: cookies kept, forms posted from the site itself."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        url = urllib.parse.urlsplit(self.base)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers |= {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.base}
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8")
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, response.headers.get("X-Gwx-Error", ""), text
        finally:
            conn.close()

    def sign_in(self, login: str) -> None:
        _, _, page = self.request("GET", "/console/sign-in")
        status, error, _ = self.request("POST", "/console/sign-in", {"csrf": csrf_of(page), "login": login,
                                                                      "password": PASSWORD, "next": "/console/"})
        assert status == 303, error


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    hosted = {"city": [{"code": CITY, "name": UNIT_NAMES[CITY]}],
              "county-a": [{"code": A1, "name": UNIT_NAMES[A1]}, {"code": A2, "name": UNIT_NAMES[A2]}]}
    with directory_network(tmp_path_factory.mktemp("supervisor-directory"), hosted, TREE,
                           directory_units(a2_supervisor=A1), running=("county-a",)) as net:
        yield net


def test_a_supervisors_units_come_from_the_directory_and_follow_a_new_one(net, tmp_path):
    county = net.nodes["county-a"]
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n", "utf-8")
    for login, supervising in (("city-office", CITY), ("lanshan-office", A1)):
        added = run_gwx("user", "add", "--dir", county.directory, "--login", login, "--name", "督查室",
                        "--role", "supervisor", "--supervising-unit", supervising, "--password-file", secret)
        assert added.returncode == 0, added.stderr
    city_office, lanshan_office = Console(county.ready["local_url"]), Console(county.ready["local_url"])
    city_office.sign_in("city-office")
    lanshan_office.sign_in("lanshan-office")

    def scope(console: Console) -> set[str]:
        _, _, home = console.request("GET", "/console/")
        return {code for code in (CITY, A1, A2) if f"（{code}）" in home}

    # Version 1: A1's parent is the city's office; A2's 业务主管单位 is A1 (its parent the city's too).
    assert scope(city_office) == {A1} and scope(lanshan_office) == {A2}
    for console, mine, other in ((city_office, A1, A2), (lanshan_office, A2, A1)):
        status, _, _ = console.request("GET", f"/console/stats?side=received&unit={mine}")
        assert status == 200
        status, error, _ = console.request("GET", f"/console/stats?side=received&unit={other}")
        assert (status, error) == (403, "API_FORBIDDEN")

    # Version 2 drops A2's supervisor: its parent, the city's office, supervises it now.
    write_public_file(county.directory / "directory.json", signed_directory(net, 2, TREE, directory_units(None)))
    wait_for(lambda: scope(city_office) == {A1, A2}, 30, what="the city's office supervising A2 too")
    assert scope(lanshan_office) == set()
    status, error, _ = lanshan_office.request("GET", f"/console/stats?side=received&unit={A2}")
    assert (status, error) == (403, "API_FORBIDDEN")
