"""The track page of a sent document (node.console.track) in process, over the real document service:
a document to 3,600 units read a page at a time with its counts on top, filtered by status; 催办 and
撤回 per unit and for every unit not yet signed, coming back to the page; bad input refused with a
typed page that changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse

from exchange_protocol.states import SenderStatus
from node.api.auth import Principal
from node.store.values import OutboxDocument, OutboxRecipient
from pki.unit_code import make_unit_code
from tests.node.api.local_api_support import UNIT_A, UNIT_B, UNIT_C, make_env, send
from tests.node.console.console_support import PASSWORD, Browser, console, csrf_of

MANY = 3600


def run(tmp_path, scenario):
    env = make_env(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("zhang", "张三", "clerk", [UNIT_A], PASSWORD)
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await accounts.add("zhao", "赵督查", "supervisor", [UNIT_B], PASSWORD)
            await scenario(env, client)
    asyncio.run(main())


def track_of(doc_id: str) -> str:
    return f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/track"


async def signed_in(client, login) -> Browser:
    browser = Browser(client)
    response, _ = await browser.sign_in(login)
    assert response.status == 303
    return browser


def rows_of(page: str) -> list[str]:
    return re.findall(r'<tr class="[^"]*" data-unit="([0-9A-Z]{18})">', page)


async def a_document_to_many(env, n: int = MANY) -> tuple[str, list[str]]:
    """A sent document with ``n`` recipient units, stored through the store's interface as the
    service stores one (its sending and 3,600 deliveries are the network tests' and bench's)."""
    now = env.ctx.clock()
    units = sorted(make_unit_code(f"11370000MB{i:07d}") for i in range(n))
    statuses = {0: SenderStatus.SIGNED_FOR, 1: SenderStatus.RETURNED, 2: SenderStatus.RECALLED}
    recipients = [OutboxRecipient(unit=u, role="主送" if i % 2 == 0 else "抄送",
                                  status=(statuses.get(i % 10, SenderStatus.DELIVERED)).value,
                                  destination_node="far-node",
                                  who="王芳" if i % 10 == 0 else None, when=now if i % 10 in (0, 1) else None,
                                  reason="请发至下属单位" if i % 10 == 1 else None)
                  for i, u in enumerate(units)]
    doc = OutboxDocument(doc_id="gwx-many-0001", from_unit=UNIT_A, title="关于开展安全生产大检查的通知",
                         kind="通知", package_digest="0" * 64, created_at=now - dt.timedelta(days=9),
                         doc_number="榕政办〔2026〕99号", deadline=now - dt.timedelta(days=5))
    await env.store.messages.add_outbox(doc, recipients, actor="test")
    return doc.doc_id, units


def test_a_document_to_3600_units_is_tracked_a_page_at_a_time_with_its_counts_and_filters(tmp_path):
    async def scenario(env, client):
        doc_id, units = await a_document_to_many(env)
        zhang = await signed_in(client, "zhang")
        response, page = await zhang.get(track_of(doc_id))
        assert response.status == 200
        assert "已签收 360/3600" in page
        assert re.search(r'id="count-delivered"[^>]*><span class="tile-count">2520<', page)
        assert re.search(r'id="count-returned"[^>]*><span class="tile-count">360<', page)
        assert re.search(r'id="count-overdue"[^>]*><span class="tile-count">2520<', page)  # delivered, past due
        assert rows_of(page) == units[:100]
        assert "超期" in page and "请发至下属单位" in page
        seen, url = [], track_of(doc_id)
        while url:  # every unit exactly once, in order, 100 a page
            response, page = await zhang.get(url)
            seen += rows_of(page)
            found = re.search(r'id="next-page" href="([^"]+)"', page)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert seen == units
        _, page = await zhang.get(track_of(doc_id) + "?status=returned")
        returned = rows_of(page)
        assert len(returned) == 100 and returned[0] == units[1] and "下一页" in page
        _, page = await zhang.get(track_of(doc_id) + "?status=signed_for&after=" + units[-20])
        assert rows_of(page) == [u for i, u in enumerate(units) if i % 10 == 0 and u > units[-20]]
        _, page = await zhang.get(track_of(doc_id) + "?status=overdue")  # delivered, unsigned, past the 办理时限
        assert rows_of(page)[:3] == [units[3], units[4], units[5]] and "超期" in page
        _, page = await zhang.get(track_of(doc_id) + "?status=unsigned")
        assert rows_of(page)[0] == units[3]
    run(tmp_path, scenario)


def test_urge_and_recall_from_the_track_page_per_unit_and_for_all_unsigned(tmp_path):
    async def scenario(env, client):
        doc_id = await send(client, env)  # 主送 UNIT_B, 抄送 UNIT_C
        second = await send(client, env)
        lisi = await signed_in(client, "lisi")
        _, page = await lisi.get(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}")
        await lisi.post(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/sign-for", {"csrf": csrf_of(page)})
        zhang = await signed_in(client, "zhang")
        _, page = await zhang.get(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}")
        assert f'href="{track_of(doc_id)}"' in page  # the document page links to it
        _, page = await zhang.get(track_of(doc_id))
        assert "已签收 1/2" in page and page.count(">催办</button>") == 1
        response, _ = await zhang.post(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/urge",
                                       {"csrf": csrf_of(page), "unit": UNIT_C, "back": "track"})
        assert response.status == 303 and response.headers["Location"] == track_of(doc_id) + "?done=urge"
        _, page = await zhang.get(response.headers["Location"])
        assert "已催办。" in page and "（已催办 1 次）" in page
        _, other = await zhang.get(track_of(doc_id) + "?done=xyz")  # no act of that name: no (empty) notice
        assert 'id="done"' not in other
        # 撤回 for every unit not yet signed: irreversible, so the track page's button only opens a page
        # that asks; a post of the old one-click form (no confirm) recalls nothing
        assert 'action="/console/doc/' in page and 'id="recall-all"' in page
        assert re.search(r'<form method="get" action="[^"]+/recall" class="inline"><button type="submit" '
                         r'id="recall-all">', page)
        recall = f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/recall"
        response, _ = await zhang.post(recall, {"csrf": csrf_of(page), "back": "track"})
        assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FORM"
        track = await env.service.track(Principal("t", "张三", "clerk", UNIT_A), doc_id)
        assert {r["unit"]: r["status"] for r in track["recipients"]} == {UNIT_B: "signed_for", UNIT_C: "delivered"}
        response, page = await zhang.get(recall)  # the confirmation page: UNIT_C only (UNIT_B has signed for it)
        assert response.status == 200 and "确认撤回 1 个未签收单位？" in page
        assert 'name="confirm" value="all"' in page and f'href="{track_of(doc_id)}"' in page  # 取消
        response, _ = await zhang.post(recall, {"csrf": csrf_of(page), "back": "track", "confirm": "all"})
        assert response.headers["Location"] == track_of(doc_id) + "?done=recall"
        track = await env.service.track(Principal("t", "张三", "clerk", UNIT_A), doc_id)
        assert {r["unit"]: r["status"] for r in track["recipients"]} == {UNIT_B: "signed_for", UNIT_C: "recalled"}
        _, page = await zhang.get(track_of(doc_id) + "?status=recalled")
        assert rows_of(page) == [UNIT_C]
        # a back= that is not "track" goes to the document page, never elsewhere
        response, _ = await zhang.post(f"/console/doc/{urllib.parse.quote(second, safe='')}/urge",
                                       {"csrf": csrf_of(page), "back": "https://evil.example/"})
        assert response.headers["Location"].startswith(f"/console/doc/{urllib.parse.quote(second, safe='')}?")
    run(tmp_path, scenario)


def test_bad_requests_on_the_track_page_are_typed_and_change_nothing(tmp_path):
    async def scenario(env, client):
        doc_id = await send(client, env)
        zhang = await signed_in(client, "zhang")
        for bad in ("status=lost", "sort=unit", "after=x", "status=sent&status=queued"):
            response, _ = await zhang.get(track_of(doc_id) + "?" + bad)
            assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FILTER", bad
        response, _ = await zhang.get(track_of("gwx-no-such-doc"))
        assert response.status == 404
        _, page = await zhang.get(track_of(doc_id))
        # without the CSRF token, or from another site: refused, nothing urged
        response, _ = await zhang.post(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/urge", {"back": "track"})
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        response, _ = await zhang.post(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/urge",
                                       {"csrf": csrf_of(page), "back": "track"}, origin="https://evil.example")
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_ORIGIN"
        lisi = await signed_in(client, "lisi")  # a recipient unit's clerk: not its sender — 404, as a guess
        response, _ = await lisi.get(track_of(doc_id))
        assert response.status == 404
        _, page = await lisi.get("/console/inbox")
        response, _ = await lisi.post(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/urge",
                                      {"csrf": csrf_of(page), "back": "track"})
        assert response.status == 404
        zhao = await signed_in(client, "zhao")  # a supervisor: not a clerk's page
        response, _ = await zhao.get(track_of(doc_id))
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_WRONG_ROLE"
        track = await env.service.track(Principal("t", "张三", "clerk", UNIT_A), doc_id)
        assert all(r["urge_count"] == 0 for r in track["recipients"])
    run(tmp_path, scenario)


def test_which_statuses_are_unsigned_is_decided_once_for_the_tile_filter_buttons_confirmation_and_recall(
        tmp_path, monkeypatch):
    """node.documents.track_page.UNSIGNED decides 未签收: the track page's tile and filter, its per-unit
    buttons, the 撤回 confirmation's count and the service's 撤回 of every unsigned unit all follow it."""
    async def scenario(env, client):
        doc_id = await send(client, env)  # 主送 UNIT_B, 抄送 UNIT_C: both delivered here
        zhang = await signed_in(client, "zhang")
        recall = f"/console/doc/{urllib.parse.quote(doc_id, safe='')}/recall"
        _, page = await zhang.get(track_of(doc_id))
        assert re.search(r'id="count-unsigned"[^>]*><span class="tile-count">2<', page)
        assert page.count(">催办</button>") == 2 and 'id="recall-all"' in page
        _, page = await zhang.get(recall)
        assert "确认撤回 2 个未签收单位？" in page
        # were a delivered document no longer "unsigned", every one of those would say so at once
        monkeypatch.setattr("node.documents.track_page.UNSIGNED", ("queued", "sent"))
        _, page = await zhang.get(track_of(doc_id))
        assert 'id="count-unsigned"' not in page and ">催办</button>" not in page and 'id="recall-all"' not in page
        _, page = await zhang.get(track_of(doc_id) + "?status=unsigned")
        assert rows_of(page) == []
        _, page = await zhang.get(recall)
        assert "没有未签收的单位" in page and 'name="confirm"' not in page
        response, _ = await zhang.post(recall, {"csrf": csrf_of(page), "back": "track", "confirm": "all"})
        assert response.status == 409 and response.headers["X-Gwx-Error"] == "DOC_NO_ELIGIBLE_RECIPIENT"
        track = await env.service.track(Principal("t", "张三", "clerk", UNIT_A), doc_id)
        assert {r["status"] for r in track["recipients"]} == {"delivered"}
    run(tmp_path, scenario)


def test_the_sent_list_counts_a_wide_document_and_links_its_track_instead_of_listing_every_unit(tmp_path):
    async def scenario(env, client):
        doc_id, units = await a_document_to_many(env)
        small = await send(client, env)  # to two units: still listed one by one
        zhang = await signed_in(client, "zhang")
        response, page = await zhang.get("/console/outbox")
        assert response.status == 200 and "已签收 360/3600" in page and "已签收 0/2" in page
        assert f'href="{track_of(doc_id)}"' in page and f'href="{track_of(small)}"' in page
        assert page.count('<li class="status-') == 2  # the small document's units; none of the 3,600
        assert units[0] not in page
    run(tmp_path, scenario)


def test_a_sent_documents_page_lists_its_first_units_and_sends_the_rest_to_the_track_page(tmp_path, monkeypatch):
    """The document page of a 通知 to 3,600 units does not render 3,600 rows: it lists the first
    (DOCUMENT_PAGE_RECIPIENTS; one here, for a document to two units) and says how many there are."""
    from node.console import pages

    monkeypatch.setattr(pages, "DOCUMENT_PAGE_RECIPIENTS", 1)

    async def scenario(env, client):
        doc_id = await send(client, env)  # to two units
        zhang = await signed_in(client, "zhang")
        response, page = await zhang.get(f"/console/doc/{urllib.parse.quote(doc_id, safe='')}")
        assert response.status == 200, page
        assert "共 2 个单位，此处列出前 1 个" in page and f'href="{track_of(doc_id)}"' in page
        section = page[page.index('id="track"'):page.index('id="archive"')]
        assert section.count('<td data-label="单位">') == 1
        _, track = await zhang.get(track_of(doc_id))
        assert len(rows_of(track)) == 2  # all of them on the track page
    run(tmp_path, scenario)
