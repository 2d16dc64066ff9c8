"""The audit log's hash chain as data: the one definition of an event's hash, and checking an excerpt.

The node's audit log (:mod:`node.store.sqlite.audit`) appends ``(seq, at, actor, action, subjects,
details, prev_hash, hash)`` with ``hash = SHA-256(canonical_json([prev_hash, seq, at, actor, action,
subjects, details]))``. An archive carries an *excerpt*: the events about one document in full, and
the hash of every event from the first of them to the last (``links``), so a third party recomputes
each included event's hash and sees its ``prev_hash`` is the recorded link before it: each included
event is intact and chained to its own recorded link, in this order. It does NOT prove that no event
was removed between them: the links of the events not included (other documents', whose content must
not leave the node) are recorded hashes, not recomputed, and could be replaced. The node's head (seq,
hash) when the excerpt was taken is kept too: the archive's time-stamp fixes it, so comparing it with
the live log (``verify_chain``) later is what anchors the whole range. Making every link recomputable
needs a new event-hash version (docs/architecture.md, "The audit excerpt").

Excerpt (JSON)::

    {"v": 1, "events": [{"seq", "at", "actor", "action", "subjects", "details", "prev_hash", "hash"}…],
     "first_seq": N, "links": ["<hash of seq N>", "<hash of N+1>", …], "head": [seq, hash]}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from .archive_errors import ArchiveAuditBroken
from .canonical import canonical_json

GENESIS_HASH = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_EVENT_FIELDS = {"seq", "at", "actor", "action", "subjects", "details", "prev_hash", "hash"}


def event_hash(prev_hash: str, seq: int, at: str, actor: str, action: str,
               subjects: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    payload = canonical_json([prev_hash, seq, at, actor, action, dict(subjects), dict(details)])
    return hashlib.sha256(payload).hexdigest()


def check_excerpt(excerpt: Any) -> int:
    """Check an excerpt (parsed JSON); the number of events, or :class:`ArchiveAuditBroken`."""
    if not isinstance(excerpt, dict) or excerpt.get("v") != 1:
        raise ArchiveAuditBroken("the audit excerpt is not a version 1 excerpt", reason="format")
    events, links, first = excerpt.get("events"), excerpt.get("links"), excerpt.get("first_seq")
    if not isinstance(events, list) or not isinstance(links, list) or not isinstance(first, int) \
            or isinstance(first, bool) or first < 1 or not all(isinstance(h, str) and _HEX64.match(h) for h in links):
        raise ArchiveAuditBroken("the audit excerpt's events, first_seq or links are malformed", reason="format")
    last_seq = first - 1
    for event in events:
        if not isinstance(event, dict) or set(event) != _EVENT_FIELDS or not isinstance(event["seq"], int) \
                or not all(isinstance(event[k], str) for k in ("at", "actor", "action", "prev_hash", "hash")) \
                or not isinstance(event["subjects"], dict) or not isinstance(event["details"], dict):
            raise ArchiveAuditBroken("an audit event in the excerpt is malformed", reason="format")
        seq = event["seq"]
        if seq <= last_seq or not first <= seq < first + len(links):
            raise ArchiveAuditBroken(f"the audit event at seq {seq} is out of order or outside the links",
                                     seq=seq, reason="order")
        try:
            digest = event_hash(event["prev_hash"], seq, event["at"], event["actor"], event["action"],
                                event["subjects"], event["details"])
        except Exception as exc:  # canonical JSON refuses floats and the like
            raise ArchiveAuditBroken(f"the audit event at seq {seq} does not encode", seq=seq,
                                     reason="unreadable", error=str(exc)) from None
        if digest != event["hash"] or links[seq - first] != digest:
            raise ArchiveAuditBroken(f"the audit event at seq {seq} does not match its hash", seq=seq, reason="hash")
        before = links[seq - first - 1] if seq > first else (GENESIS_HASH if seq == 1 else None)
        if before is not None and event["prev_hash"] != before:
            raise ArchiveAuditBroken(f"the audit event at seq {seq} does not link to the one before it",
                                     seq=seq, reason="link")
        last_seq = seq
    head = excerpt.get("head")
    if not (isinstance(head, list) and len(head) == 2 and isinstance(head[0], int) and isinstance(head[1], str)
            and head[0] >= first + len(links) - 1 and _HEX64.match(head[1])):
        raise ArchiveAuditBroken("the audit excerpt's head is malformed or before its last event", reason="head")
    if head[0] == first + len(links) - 1 and links and head[1] != links[-1]:
        raise ArchiveAuditBroken("the audit excerpt's head is not its last link", reason="head")
    return len(events)
