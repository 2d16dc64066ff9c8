"""The SQLite backend implements every storage protocol of node.store.interfaces, method by method, with
the same parameter names and kinds, so callers written against the protocols run on it unchanged (and a
second backend can be checked the same way)."""

from __future__ import annotations

import inspect

import pytest

from node.store import interfaces
from node.store.blobs import BlobStore
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.exchange import Drafts, OutgoingLinks
from node.store.sqlite.group_commit import GroupCommitter
from node.store.sqlite.messages import Messages
from node.store.sqlite.peers import PeerCredentials, Peers
from node.store.sqlite.queue import OutboundQueue
from node.store.sqlite.store import Store

IMPLEMENTATIONS = [
    (interfaces.BlobStorage, BlobStore), (interfaces.AuditTrail, AuditLog), (interfaces.QueueStore, OutboundQueue),
    (interfaces.PeerStore, Peers), (interfaces.MessageStore, Messages), (interfaces.DraftStore, Drafts),
    (interfaces.OutgoingLinkStore, OutgoingLinks), (interfaces.PeerCredentialStore, PeerCredentials),
    (interfaces.GroupCommit, GroupCommitter), (interfaces.NodeStore, Store),
]


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    own = [c for c in protocol.__mro__ if getattr(c, "__module__", "") == interfaces.__name__]
    return {name: inspect.signature(member) for c in reversed(own) for name, member in vars(c).items()
            if callable(member) and not name.startswith("_")}


def shape(signature: inspect.Signature) -> list[tuple[str, inspect._ParameterKind, bool]]:
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in signature.parameters.values()]


@pytest.mark.parametrize(("protocol", "implementation"), IMPLEMENTATIONS, ids=lambda x: x.__name__)
def test_every_method_of_the_protocol_is_implemented_alike(protocol, implementation) -> None:
    methods = protocol_methods(protocol)
    assert methods, f"{protocol.__name__} names no methods"
    for name, wanted in methods.items():
        got = getattr(implementation, name, None)
        assert got is not None, f"{implementation.__name__} lacks {name}"
        assert shape(inspect.signature(got)) == shape(wanted), f"{implementation.__name__}.{name}"
        assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(getattr(protocol, name)) or \
            inspect.isasyncgenfunction(got), f"{implementation.__name__}.{name} async-ness differs"


def test_the_node_store_names_every_role() -> None:
    roles = {"blobs", "audit", "queue", "peers", "messages", "drafts", "links", "peer_credentials"}
    assert roles <= set(interfaces.NodeStore.__annotations__)
