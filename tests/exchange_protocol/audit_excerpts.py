"""Audit excerpts made by hand, as a node's log would give them (exchange_protocol.audit_chain)."""

from __future__ import annotations

from exchange_protocol.audit_chain import GENESIS_HASH, content_hash, event_hash, link_hash

PREV = "ab" * 32  # the hash of the event before the excerpt's first (not in it)


def log_events(first: int, last: int, v2_from: int | None, about=lambda seq: seq % 2 == 1) -> list[dict]:
    """Events ``first``..``last`` chained from :data:`PREV`; ``about(seq)`` says which are the document's
    (the others are another document's). ``v2_from``: the log's v2 seq (None: all version 1)."""
    events, prev = [], GENESIS_HASH if first == 1 else PREV
    for seq in range(first, last + 1):
        event = {"seq": seq, "at": f"2026-03-02T09:3{seq % 10}:00.000000Z", "actor": "node", "action": "outbox.sent",
                 "subjects": {"doc_id": "x" if about(seq) else "another"}, "details": {"n": seq}, "prev_hash": prev}
        fields = (event["at"], event["actor"], event["action"], event["subjects"], event["details"])
        if v2_from is None or seq < v2_from:
            event["hash"], event["content_hash"] = event_hash(prev, seq, *fields), None
        else:
            event["content_hash"] = content_hash(*fields)
            event["hash"] = link_hash(prev, seq, event["content_hash"])
        events.append(event)
        prev = event["hash"]
    return events


def excerpt_of(log: list[dict], v2_from: int | None) -> dict:
    """The excerpt a node gives of the document "x" from ``log`` (whose last event is the head); a
    version 1 excerpt (``v2_from`` None) starts at the log's first seq, as old archives may."""
    mine = [e for e in log if e["subjects"]["doc_id"] == "x"]
    first = mine[0]["seq"] if v2_from is not None else log[0]["seq"]
    events = [{k: v for k, v in e.items() if k != "content_hash"} for e in mine]
    head = [log[-1]["seq"], log[-1]["hash"]]
    if v2_from is None:  # a version 1 excerpt: links to the last event
        links = [e["hash"] for e in log if first <= e["seq"] <= mine[-1]["seq"]]
        return {"v": 1, "events": events, "first_seq": first, "links": links, "head": head}
    v1_last = v2_from - 1 if head[0] >= v2_from else mine[-1]["seq"]
    return {"v": 2, "events": events, "first_seq": first, "v2_from_seq": v2_from,
            "links": [e["hash"] for e in log if first <= e["seq"] <= v1_last],
            "content_hashes": [e["content_hash"] for e in log if e["seq"] >= max(first, v2_from)], "head": head}


def excerpt(n: int = 3, first: int = 5, v2_from: int | None = 1, after: int = 0) -> dict:
    """The document's events at odd seqs of ``first``..``first + n + 1``, ``after`` other events after
    them up to the head."""
    last_mine = first + n + 1
    log = log_events(first, last_mine + after, v2_from, about=lambda seq: seq % 2 == 1 and seq <= last_mine)
    return excerpt_of(log, v2_from)
