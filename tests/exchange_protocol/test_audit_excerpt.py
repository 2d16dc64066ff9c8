"""exchange_protocol.audit_chain: a version 2 excerpt is recomputed from its first event to the head, so
an event removed, reordered or replaced between the document's events is caught — without the other
documents' content; across the v1/v2 boundary the v1 links are taken as recorded and counted."""

from __future__ import annotations

import pytest

from exchange_protocol.archive_errors import ArchiveAuditBroken
from exchange_protocol.audit_chain import GENESIS_HASH, check_excerpt, content_hash, link_hash
from tests.exchange_protocol.audit_excerpts import PREV, excerpt, excerpt_of, log_events


def _recompute_head(given: dict) -> None:
    """What a forger does after changing the in-between list: recompute the chain to a new head."""
    prev = given["links"][-1] if given["links"] else given["events"][0]["prev_hash"]
    start = max(given["first_seq"], given["v2_from_seq"])
    for offset, content in enumerate(given["content_hashes"]):
        prev = link_hash(prev, start + offset, content)
    given["head"] = [start + len(given["content_hashes"]) - 1, prev]


def test_every_link_to_the_head_is_recomputed_without_the_other_documents_events():
    given = excerpt(n=5, first=5, after=4)  # seqs 5..15: the document's at 5, 7, 9, 11; the head at 15
    assert [e["seq"] for e in given["events"]] == [5, 7, 9, 11]
    assert all(e["subjects"]["doc_id"] == "x" for e in given["events"])  # nothing of "another" in full
    checked = check_excerpt(given)
    assert (checked.events, checked.recomputed, checked.not_recomputed, checked.head_seq) == (4, 11, 0, 15)


def _remove_between(given):  # seq 8 (another document's) left out, the head kept
    del given["content_hashes"][3]


def _remove_between_and_forge_head(given):
    del given["content_hashes"][3]
    _recompute_head(given)


def _replace_between(given):
    given["content_hashes"][3] = content_hash("2026-03-02T09:38:00.000000Z", "node", "outbox.sent",
                                              {"doc_id": "another"}, {"n": "伪造"})


def _reorder_between(given):  # seqs 12 and 13 swapped
    given["content_hashes"][7], given["content_hashes"][8] = given["content_hashes"][8], given["content_hashes"][7]


def _hide_own_event_and_forge_head(given):  # the document's seq 9 removed with its content hash
    given["events"] = [e for e in given["events"] if e["seq"] != 9]
    del given["content_hashes"][4]
    _recompute_head(given)


@pytest.mark.parametrize("tamper, reason", [
    (_remove_between, "order"), (_remove_between_and_forge_head, "hash"),
    (_replace_between, "hash"), (_reorder_between, "head"), (_hide_own_event_and_forge_head, "hash"),
])
def test_an_event_removed_reordered_or_replaced_is_a_typed_failure(tamper, reason):
    given = excerpt(n=5, first=5, after=4)
    tamper(given)
    with pytest.raises(ArchiveAuditBroken) as info:
        check_excerpt(given)
    assert info.value.code == "ARCHIVE_AUDIT_CHAIN_BROKEN"
    assert info.value.details["reason"] == reason


def test_after_the_documents_last_event_the_time_stamped_head_is_what_holds_the_chain():
    """An event after the document's last one, removed and the head recomputed, leaves an excerpt
    consistent in itself: what catches it is the head — fixed by the archive's time-stamp when it was
    made, and the live log's hash at that seq (verify_chain). v1 could not say even that much: its
    in-between links were not chained to one another, so a head matching the live log proved nothing
    about them; in v2 a matching head proves every link between."""
    true = excerpt(n=5, first=5, after=4)
    forged = excerpt(n=5, first=5, after=4)
    del forged["content_hashes"][-2]
    _recompute_head(forged)
    check_excerpt(forged)  # consistent in itself ...
    assert forged["head"] != true["head"]  # ... but not the head the node's log had at that moment
    forged["head"][1] = true["head"][1]
    forged["head"][0] = true["head"][0] - 1
    with pytest.raises(ArchiveAuditBroken):  # nor can it claim the true head hash
        check_excerpt(forged)


def test_an_excerpt_across_the_v1_v2_boundary():
    """The log turned v2 at seq 10 (migration 18 on a running node): 5..9 are v1, 10..15 v2. The v1
    events in full are recomputed, the v1 links between them taken as recorded and counted; every v2
    link is recomputed to the head."""
    log = log_events(5, 15, v2_from=10, about=lambda seq: seq in (5, 7, 11))
    given = excerpt_of(log, v2_from=10)
    assert len(given["links"]) == 5 and len(given["content_hashes"]) == 6
    checked = check_excerpt(given)
    assert (checked.events, checked.recomputed, checked.not_recomputed, checked.v2_from_seq) == (3, 8, 3, 10)

    v1_replaced = excerpt_of(log, v2_from=10)
    v1_replaced["links"][1] = "cd" * 32  # seq 6, a v1 link not in full: cannot be recomputed, so not caught
    v1_replaced["events"][1]["prev_hash"] = "cd" * 32  # (the v1 event after it names it, consistently)
    with pytest.raises(ArchiveAuditBroken):  # but seq 7's own v1 hash covers its prev_hash
        check_excerpt(v1_replaced)
    v1_unseen = excerpt_of(log, v2_from=10)
    v1_unseen["links"][3] = "cd" * 32  # seq 8: taken as recorded — and the v2 link at 10 built on seq 9 still holds
    assert check_excerpt(v1_unseen).not_recomputed == 3

    v2_replaced = excerpt_of(log, v2_from=10)
    v2_replaced["content_hashes"][2] = "ef" * 32  # seq 12
    with pytest.raises(ArchiveAuditBroken) as info:
        check_excerpt(v2_replaced)
    assert info.value.details["reason"] == "head"
    last_v1 = excerpt_of(log, v2_from=10)
    last_v1["links"][-1] = "ef" * 32  # seq 9, the link the first v2 link is built on: seq 11 no longer matches
    with pytest.raises(ArchiveAuditBroken) as info:
        check_excerpt(last_v1)
    assert info.value.details["reason"] == "hash"


def test_a_log_that_was_v2_from_its_start_and_a_v1_excerpt():
    log = log_events(1, 6, v2_from=1, about=lambda seq: seq in (1, 4))
    given = excerpt_of(log, v2_from=1)
    assert check_excerpt(given).recomputed == 6
    log[0]["prev_hash"] = PREV
    given["events"][0]["prev_hash"] = PREV  # seq 1 must start from the genesis hash
    with pytest.raises(ArchiveAuditBroken):
        check_excerpt(given)
    assert GENESIS_HASH == "0" * 64
    old = excerpt(n=3, first=5, v2_from=None)  # an archive made before the log's v2 still verifies
    assert check_excerpt(old).not_recomputed == 2


@pytest.mark.parametrize("change", [
    lambda e: e.update(v2_from_seq=0), lambda e: e.update(content_hashes=["xy"]), lambda e: e.update(v=3),
    lambda e: e.update(content_hashes=e["content_hashes"] + ["ab" * 32]),  # past the head
    lambda e: e.update(links=["ab" * 32]),  # a recorded hash where a recomputable one belongs
    lambda e: e.update(events=e["events"][1:]),  # not starting with an event in full
])
def test_a_malformed_version_2_excerpt_is_a_typed_failure(change):
    given = excerpt(n=3, first=5, after=2)
    change(given)
    with pytest.raises(ArchiveAuditBroken):
        check_excerpt(given)
