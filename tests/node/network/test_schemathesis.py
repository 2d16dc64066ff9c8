"""Schemathesis against a real running node: the OpenAPI description and the server agree.

One ``gwx node run`` process (two units, one document already sent so list and tracking routes
return data); the schemathesis CLI loads /api/v1/openapi.json from it and runs every check
(status codes, content types, response schemas, negative and positive data, Allow headers on
405, …) with a clerk's token. Examples are bounded so the run takes seconds. The one allowance is
written down in schemathesis.toml beside this file; unit codes are generated whole (check
character included) by schemathesis_hooks.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from node.localnet import send_document
from tests.node.network.network_support import A1, CITY, REPO, notice_meta, start_network

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
HERE = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    base = tmp_path_factory.mktemp("schemathesis")
    net = start_network(base, {"city": ([CITY, A1], {})})
    node = net.nodes["city"]
    send_document(node, CITY, notice_meta(CITY, [A1]), net.body)
    yield node
    net.stop_all()


def test_schemathesis_finds_no_failure_against_a_running_node(node, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONPATH": str(REPO),
           "SCHEMATHESIS_HOOKS": "tests.node.network.schemathesis_hooks", "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(SCHEMATHESIS), "--no-color", "--config-file", str(HERE / "schemathesis.toml"), "run",
         node.ready["local_url"] + "/api/v1/openapi.json",
         "-H", f"Authorization: Bearer {node.tokens['clerk-' + CITY]}",
         "--checks", "all", "--phases", "examples,coverage,fuzzing", "--max-examples", "8", "--workers", "1",
         "--seed", "1", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=200, cwd=tmp_path, env=env)
    report = result.stdout[-20000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "31 selected / 31 total" in result.stdout, report  # every route of the local API, /readyz included
    counted = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counted and counted[1] == counted[2] and int(counted[1]) > 100, report
