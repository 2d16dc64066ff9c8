"""The audit log's hash chain as data: the one definition of an event's hash, and checking an excerpt.

The node's audit log (:mod:`node.store.sqlite.audit`) appends ``(seq, at, actor, action, subjects,
details, prev_hash, hash)``. Two hash versions, told apart by seq (the log records the seq from which
version 2 applies; rows written before keep their version 1 hashes):

* v1: ``hash = SHA-256(canonical_json([prev_hash, seq, at, actor, action, subjects, details]))``;
* v2: ``hash = SHA-256(canonical_json([prev_hash, seq, content_hash]))`` with
  ``content_hash = SHA-256(canonical_json([at, actor, action, subjects, details]))``.

A v2 link can be recomputed from ``(prev_hash, seq, content_hash)`` without the event's content.
An archive carries an *excerpt*: the events about one document in full and, for every other event
from the first of them to the log's head when it was taken, its ``content_hash`` only (other
documents' titles, units and people do not leave the node). A third party recomputes every v2 link
from the first event to the head: an event removed, put in another order or replaced breaks the
chain. Events before the v2 seq have recorded hashes (``links``) that nobody can recompute without
their content: the included ones are recomputed, the others taken as recorded, and the check says
how many. What the excerpt cannot show by itself is that the head is the node's: the archive's
time-stamp fixes it, and the node's live log (``verify_chain``) holds the same hash at that seq. Nor
can it show that an in-between ``content_hash`` is not an event about this document put there in
place of the event: the live log's events of the document are what answer that.

Excerpt (JSON), version 2 (version 1, written before, had no ``v2_from_seq``/``content_hashes`` and
its links ended at the last event)::

    {"v": 2, "events": [{"seq", "at", "actor", "action", "subjects", "details", "prev_hash", "hash"}…],
     "first_seq": N, "v2_from_seq": S,
     "links": ["<v1 hash of seq N>", …],            # seqs N .. S-1 (N .. last event if the head is before S)
     "content_hashes": ["<content hash of max(N, S)>", …, "<of the head>"],
     "head": [seq, hash]}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .archive_errors import ArchiveAuditBroken
from .canonical import canonical_json

GENESIS_HASH = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EVENT_FIELDS = {"seq", "at", "actor", "action", "subjects", "details", "prev_hash", "hash"}


def event_hash(prev_hash: str, seq: int, at: str, actor: str, action: str,
               subjects: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """The version 1 hash (rows before the log's v2 seq)."""
    payload = canonical_json([prev_hash, seq, at, actor, action, dict(subjects), dict(details)])
    return hashlib.sha256(payload).hexdigest()


def content_hash(at: str, actor: str, action: str, subjects: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """What a version 2 link commits to of an event's content."""
    return hashlib.sha256(canonical_json([at, actor, action, dict(subjects), dict(details)])).hexdigest()


def link_hash(prev_hash: str, seq: int, content: str) -> str:
    """The version 2 hash of the event at ``seq``, from its content hash."""
    return hashlib.sha256(canonical_json([prev_hash, seq, content])).hexdigest()


def hash_at(v2_from_seq: int, prev_hash: str, seq: int, at: str, actor: str, action: str,
            subjects: Mapping[str, Any], details: Mapping[str, Any]) -> tuple[str, str | None]:
    """(hash, content hash or None) of an event, in the version its seq has."""
    if seq < v2_from_seq:
        return event_hash(prev_hash, seq, at, actor, action, subjects, details), None
    content = content_hash(at, actor, action, subjects, details)
    return link_hash(prev_hash, seq, content), content


@dataclass(frozen=True)
class ExcerptCheck:
    """What a passing excerpt showed: ``events`` in full; ``recomputed`` links (every v2 link to the
    head, and the v1 events given in full); ``not_recomputed`` v1 links taken as recorded."""
    events: int
    recomputed: int
    not_recomputed: int
    head_seq: int
    v2_from_seq: int | None


def _hashes(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(h, str) and _HEX64.match(h) for h in value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _event_shape(event: Any) -> None:
    if not isinstance(event, dict) or set(event) != _EVENT_FIELDS or not _int(event["seq"]) \
            or not all(isinstance(event[k], str) for k in ("at", "actor", "action", "prev_hash", "hash")) \
            or not isinstance(event["subjects"], dict) or not isinstance(event["details"], dict):
        raise ArchiveAuditBroken("an audit event in the excerpt is malformed", reason="format")


def _encode(seq: int, fn, *args) -> str:
    try:
        return fn(*args)
    except Exception as exc:  # canonical JSON refuses floats and the like
        raise ArchiveAuditBroken(f"the audit event at seq {seq} does not encode", seq=seq,
                                 reason="unreadable", error=str(exc)) from None


def check_excerpt(excerpt: Any) -> ExcerptCheck:
    """Check an excerpt (parsed JSON, version 1 or 2), or raise :class:`ArchiveAuditBroken`."""
    if not isinstance(excerpt, dict) or excerpt.get("v") not in (1, 2):
        raise ArchiveAuditBroken("the audit excerpt is not a version 1 or 2 excerpt", reason="format")
    events, links, first = excerpt.get("events"), excerpt.get("links"), excerpt.get("first_seq")
    if not isinstance(events, list) or not _hashes(links) or not _int(first) or first < 1:
        raise ArchiveAuditBroken("the audit excerpt's events, first_seq or links are malformed", reason="format")
    head = excerpt.get("head")
    if not (isinstance(head, list) and len(head) == 2 and _int(head[0]) and isinstance(head[1], str)
            and _HEX64.match(head[1])):
        raise ArchiveAuditBroken("the audit excerpt's head is malformed", reason="head")
    if excerpt["v"] == 1:
        v2_from, contents = max(head[0], first + len(links)) + 1, []  # all of it version 1
    else:
        v2_from, contents = excerpt.get("v2_from_seq"), excerpt.get("content_hashes")
        if not _int(v2_from) or v2_from < 1 or not _hashes(contents):
            raise ArchiveAuditBroken("the audit excerpt's v2_from_seq or content_hashes are malformed",
                                     reason="format")
    for event in events:
        _event_shape(event)
    # Where each list starts, and the chain of v2 links recomputed from its content hashes.
    v2_start = max(first, v2_from)
    if contents:
        if len(links) != v2_start - first or head[0] != v2_start + len(contents) - 1:
            raise ArchiveAuditBroken("the audit excerpt's links and content hashes do not cover its first event "
                                     "to its head", reason="order")
        if not events or events[0]["seq"] != first:
            raise ArchiveAuditBroken("the audit excerpt does not start with an event in full", reason="format")
    elif links and first + len(links) - 1 >= v2_from:
        raise ArchiveAuditBroken("the audit excerpt gives recorded hashes where its content hashes belong",
                                 reason="format")
    end = first + len(links) + len(contents) - 1  # the last seq covered
    if head[0] < end:
        raise ArchiveAuditBroken("the audit excerpt's head is before its last event", reason="head")
    if first == 1 and events and events[0]["seq"] == 1 and events[0]["prev_hash"] != GENESIS_HASH:
        raise ArchiveAuditBroken("the audit event at seq 1 does not start the chain", seq=1, reason="link")
    chain: list[str] = []
    if contents:
        prev = links[-1] if links else events[0]["prev_hash"]
        for offset, content in enumerate(contents):
            prev = link_hash(prev, v2_start + offset, content)
            chain.append(prev)

    def recorded(seq: int) -> str | None:
        """The hash the excerpt gives, or recomputes, for ``seq`` (None before the first)."""
        if seq < first:
            return None
        return links[seq - first] if seq < v2_start else chain[seq - v2_start]

    last_seq, v1_in_full = first - 1, 0
    for event in events:
        seq = event["seq"]
        if seq <= last_seq or not first <= seq <= end:
            raise ArchiveAuditBroken(f"the audit event at seq {seq} is out of order or outside the links",
                                     seq=seq, reason="order")
        fields = (event["at"], event["actor"], event["action"], event["subjects"], event["details"])
        if seq < v2_from:
            digest = _encode(seq, event_hash, event["prev_hash"], seq, *fields)
            v1_in_full += 1
        else:
            content = _encode(seq, content_hash, *fields)
            if content != contents[seq - v2_start]:
                raise ArchiveAuditBroken(f"the audit event at seq {seq} does not match its content hash",
                                         seq=seq, reason="hash")
            digest = link_hash(event["prev_hash"], seq, content)
        if digest != event["hash"] or recorded(seq) != digest:
            raise ArchiveAuditBroken(f"the audit event at seq {seq} does not match its hash", seq=seq, reason="hash")
        before = recorded(seq - 1) if seq > first else (GENESIS_HASH if seq == 1 else None)
        if before is not None and event["prev_hash"] != before:
            raise ArchiveAuditBroken(f"the audit event at seq {seq} does not link to the one before it",
                                     seq=seq, reason="link")
        last_seq = seq
    if contents and chain[-1] != head[1]:
        raise ArchiveAuditBroken("the audit excerpt's links, recomputed from its first event, do not reach its head: "
                                 "an event was removed, reordered or replaced", seq=head[0], reason="head")
    if not contents and head[0] == end and links and head[1] != links[-1]:
        raise ArchiveAuditBroken("the audit excerpt's head is not its last link", reason="head")
    return ExcerptCheck(events=len(events), recomputed=len(contents) + v1_in_full,
                        not_recomputed=len(links) - v1_in_full, head_seq=head[0],
                        v2_from_seq=v2_from if excerpt["v"] == 2 else None)
