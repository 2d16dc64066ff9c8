"""The county and city nodes the document service's tests open (tests.node.documents.service_support).

Provisioned once per test process and shared: every test opens the county's service over a store of
its own (``County.open(node_dir, tmp_path / ...)``) and changes only its in-memory context, never the
provisioned files, so four modules need not make the same CA, keys and sixteen seals four times.
"""

from __future__ import annotations

import pytest

from tests.node.documents.service_support import provision


@pytest.fixture(scope="session")
def node_dir(tmp_path_factory):
    return provision(tmp_path_factory.mktemp("county-and-city"))
