"""A node that needed its stop deadline fails the test (or demo) that stopped it.

The deadline (:class:`node.stopping.StopDeadline`, exit status 70) keeps an operator's stop
bounded; the test harness (:class:`node.localnet.LocalNetwork`) must not let it hide a stop that
hangs — CI would pass while every stop quietly took 10 s. The process here is a stand-in for a
node's: a thread that will not stop, and the real deadline armed by SIGTERM, as ``gwx node run``
arms it; what is under test is what the harness does with such a process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.localnet import LocalNetwork, LocalNode, StopOverdue

ROOT = Path(__file__).resolve().parents[2]

HANGS_ON_STOP = """
import logging, signal, threading, time
from node.stopping import StopDeadline
logging.basicConfig(level=logging.INFO)
threading.Thread(target=time.sleep, args=(600,), name="stuck-read").start()  # holds the exit
signal.signal(signal.SIGTERM, lambda *_: StopDeadline(0.5).arm())
print("ready", flush=True)
"""

STOPS = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", flush=True)
time.sleep(600)
"""


def _started(net: LocalNetwork, node_id: str, script: str) -> LocalNode:
    node = LocalNode(node_id, net.base / node_id, [], {}, log_path=net.base / f"{node_id}.log")
    with open(node.log_path, "wb") as log:
        node.process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=log, text=True)
    assert node.process.stdout.readline().strip() == "ready"
    net.nodes[node_id] = node
    return node


def test_a_node_ended_by_its_stop_deadline_fails_the_stop_naming_it(tmp_path):
    net = LocalNetwork(tmp_path)
    county = _started(net, "county", HANGS_ON_STOP)
    with pytest.raises(StopOverdue) as overdue:
        net.stop(county)
    assert "node county did not stop by itself" in str(overdue.value)
    assert "stuck-read" in str(overdue.value)  # the deadline's own account of what held it
    assert net.stop(county) == 70  # asked again, it is stopped: the failure was said once


def test_stop_all_stops_every_node_and_then_names_the_ones_the_deadline_ended(tmp_path):
    net = LocalNetwork(tmp_path)
    city, county, town = (_started(net, n, s) for n, s in (("city", STOPS), ("county", HANGS_ON_STOP),
                                                            ("town", STOPS)))
    with pytest.raises(StopOverdue) as overdue:
        net.stop_all()
    assert "node county did not stop by itself" in str(overdue.value)
    assert "city" not in str(overdue.value) and "town" not in str(overdue.value)
    assert [n.process.returncode for n in (city, county, town)] == [0, 70, 0]
