"""The network profile a scenario runs on (tests.node.network.network_support.every_profile), and the
module's network on it (``net``, from the module's ``networks`` fixture, a :class:`ByProfile`)."""

from __future__ import annotations

import pytest


@pytest.fixture
def profile() -> str:
    """International unless the test is parametrised with :data:`network_support.every_profile`."""
    return "international"


@pytest.fixture
def net(networks, profile):
    """The module's network (its ``networks`` fixture) on the test's profile; a module that makes its
    network otherwise defines its own ``net``."""
    return networks(profile)
