"""A serving node's start-up heap is out of the cyclic garbage collector's walks (node.runner).

What a node keeps for its lifetime — certificates, directory, routes, seals — was walked by every
full collection: 0.3–0.45 s of CPU each in a process of 54 nodes, the event loop stalled meanwhile
(docs/performance.md, bench/network.py). ``settle_heap`` runs once the node is ready: what exists
then is frozen, what the node makes while serving is still collected, cycles included.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from node.runner import YOUNG_GC_THRESHOLD, settle_heap


class _Node:
    """A stand-in for what a node keeps: objects in reference cycles, as parsed structures are."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # the test process's heap goes back to the collector
    gc.set_threshold(*threshold)


def test_what_exists_at_ready_is_no_longer_walked_and_what_comes_after_is_still_collected(restored_gc):
    kept = [_Node() for _ in range(1000)]
    settle_heap()
    walked = {id(o) for o in gc.get_objects()}
    assert not any(id(o) in walked for o in kept), "the start-up heap is still walked by every collection"
    assert gc.get_freeze_count() >= len(kept)

    later = _Node()  # garbage in a cycle, made while serving: the collector still frees it, by itself
    gone = weakref.ref(later)
    del later
    assert gc.isenabled()
    for _ in range(3 * YOUNG_GC_THRESHOLD):  # more cyclic garbage: young collections run unasked
        _Node()
    assert gone() is None, "cyclic garbage made after ready is not collected without an explicit gc.collect()"


def test_cyclic_garbage_pending_at_ready_is_freed_not_frozen(restored_gc):
    """In a process of several nodes each node's ready settles the heap while the others serve: what
    they are dropping at that moment must not be frozen for the process's life."""
    gc.collect()
    pending = _Node()  # a dropped cycle no collection has seen yet
    gone = weakref.ref(pending)
    del pending
    settle_heap()
    assert gone() is None


def test_young_collections_are_made_rarer_never_more_frequent(restored_gc):
    gc.set_threshold(700, 10, 10)
    settle_heap()
    assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, 10, 10)
    gc.set_threshold(50_000, 10, 10)  # an operator's own, higher setting is kept
    settle_heap()
    assert gc.get_threshold()[0] == 50_000
