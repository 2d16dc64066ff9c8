"""The network profile a scenario runs on (tests.node.network.network_support.every_profile)."""

from __future__ import annotations

import pytest


@pytest.fixture
def profile() -> str:
    """International unless the test is parametrised with :data:`network_support.every_profile`."""
    return "international"
