"""The router reads the held network directory without a look at the file on every decision.

A process hosting dozens of nodes routes several times per message; a stat of the directory file on
each decision, from the event loop, waited for the GIL (2 s of loop time in a 1,200-unit run). The
file is now looked at once per :data:`~node.federation.routing.RECHECK_SECONDS`; a directory the
node's own fetcher installs is used at once (:meth:`DirectoryRouter.reload`), one another process
installs (``gwx net install``) within that interval.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from node.config import load_config
from node.federation.routing import RECHECK_SECONDS, DirectoryRouter
from pki.keystore import write_public_file
from tests.exchange_protocol.directory_support import VILLAGE, directory, signed
from tests.node.federation.federation_support import provision_county_and_city


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    base = provision_county_and_city(tmp_path_factory.mktemp("routing-reload"), "路由测试CA", {}, {})
    return load_config(base / "county")


def moved(version: int) -> bytes:
    """The directory with the village hosted by node c instead of b."""
    units = tuple(dataclasses.replace(u, node="c") if u.code == VILLAGE else u for u in directory().units)
    return signed(version, units=units)


def test_many_decisions_look_at_the_directory_file_once(config, monkeypatch):
    write_public_file(config.network_directory_path, signed(1))
    clock = Clock()
    router = DirectoryRouter(config, clock=clock)
    looks: list[str] = []
    real = os.stat

    def counting(path, *args, **kwargs):
        if str(path) == str(config.network_directory_path):
            looks.append(str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, "stat", counting)

    for _ in range(500):
        assert router.node_for(VILLAGE) == "b"
        assert router.next_hop("c") in ("a", "c")
    assert len(looks) == 1


def test_a_directory_installed_by_the_fetcher_is_used_at_once_another_process_s_within_the_interval(config):
    write_public_file(config.network_directory_path, signed(1))
    clock = Clock()
    router = DirectoryRouter(config, clock=clock)
    assert router.node_for(VILLAGE) == "b"

    write_public_file(config.network_directory_path, moved(2))  # as `gwx net install` writes it
    clock.now += RECHECK_SECONDS / 2
    assert router.node_for(VILLAGE) == "b"  # not looked at yet
    clock.now += RECHECK_SECONDS / 2
    assert router.node_for(VILLAGE) == "c"

    write_public_file(config.network_directory_path, signed(3))  # as the node's fetcher installs it
    router.reload()
    assert router.node_for(VILLAGE) == "b"


def test_a_directory_removed_is_no_longer_routed_on(config):
    write_public_file(config.network_directory_path, signed(1))
    clock = Clock()
    router = DirectoryRouter(config, clock=clock)
    assert router.directory().version == 1
    config.network_directory_path.unlink()
    clock.now += RECHECK_SECONDS
    assert router.directory() is None


def test_a_unit_in_a_directory_installed_a_moment_ago_is_never_refused_as_unknown(config):
    """Within the interval, a unit the held copy does not name is looked up in the file at once
    (an operator who installs a directory and sends right away is not told ROUTE_UNKNOWN_UNIT)."""
    without = tuple(u for u in directory().units if u.code != VILLAGE)
    write_public_file(config.network_directory_path, signed(1, units=without))
    clock = Clock()
    router = DirectoryRouter(config, clock=clock)
    assert not router.hosts("b", VILLAGE)
    write_public_file(config.network_directory_path, signed(2))
    assert router.node_for(VILLAGE) == "b"
    write_public_file(config.network_directory_path, moved(3))
    assert router.hosts("c", VILLAGE)
