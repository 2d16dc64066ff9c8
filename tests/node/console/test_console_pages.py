"""The clerk's pages in process, over the real document service: folders with counts and filters,
the document page with its acts, and every kind of bad request answered with a typed page that
changes nothing. (tests/node/console/test_browser_pages.py does a clerk's task in a real browser
between two real nodes.)"""

from __future__ import annotations

import asyncio
import re
import struct
import urllib.parse

from node.console.body_pages import MAX_PAGES, MAX_PIXELS
from tests.node.api.local_api_support import UNIT_A, UNIT_B, UNIT_C, make_env, meta, send
from tests.node.console.console_support import PASSWORD, Browser, console, csrf_of


def run(tmp_path, scenario):
    env = make_env(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await accounts.add("zhang", "张三", "clerk", [UNIT_A], PASSWORD)
            await accounts.add("chen", "陈六", "clerk", [UNIT_C], PASSWORD)
            await accounts.add("ops", "王五", "operator", [], PASSWORD)
            await scenario(env, client)
    asyncio.run(main())


def path_of(doc_id: str) -> str:
    return f"/console/doc/{urllib.parse.quote(doc_id, safe='')}"


def tile(page: str, key: str) -> int:
    return int(re.search(rf'id="tile-{key}".*?class="tile-count">(\d+)<', page, re.S).group(1))


async def signed_in(client, login) -> Browser:
    browser = Browser(client)
    response, _ = await browser.sign_in(login)
    assert response.status == 303
    return browser


def test_folders_count_filter_and_search(tmp_path):
    async def scenario(env, client):
        await send(client, env, doc_meta=meta(title="关于防汛工作的通知", doc_number="榕政办〔2026〕31号"))
        await send(client, env, doc_meta=meta(kind="函", title="关于商请支持的函", doc_number="榕政办函〔2026〕7号",
                                               urgency="加急"))
        lisi = await signed_in(client, "lisi")
        _, home = await lisi.get("/console/")
        assert (tile(home, "pending"), tile(home, "signed_for"), tile(home, "overdue"), tile(home, "outbox")) == (2, 0, 0, 0)
        _, page = await lisi.get("/console/inbox?folder=pending&kind=函")
        assert "关于商请支持的函" in page and "关于防汛工作的通知" not in page
        _, page = await lisi.get("/console/inbox?folder=all&urgency=加急")
        assert "关于商请支持的函" in page and "关于防汛工作的通知" not in page
        _, page = await lisi.get("/console/inbox?folder=all&q=" + urllib.parse.quote("〔2026〕31号"))
        assert "关于防汛工作的通知" in page and "关于商请支持的函" not in page  # found by its 发文字号
        _, page = await lisi.get("/console/inbox?folder=all&q=" + urllib.parse.quote("支持"))
        assert "关于商请支持的函" in page and "关于防汛工作的通知" not in page  # by its title
        _, page = await lisi.get(f"/console/inbox?folder=all&from={UNIT_C}")
        assert "没有符合条件的公文" in page
        _, page = await lisi.get(f"/console/inbox?folder=all&from={UNIT_A}&since=2000-01-01&until=2099-12-31")
        assert "关于商请支持的函" in page and "关于防汛工作的通知" in page
        _, page = await lisi.get("/console/inbox?folder=all&until=2000-01-01")
        assert "没有符合条件的公文" in page
        for bad in ("folder=trash", "kind=报表", "since=2026-02-30", "from=123", "sort=title", "q=" + "x" * 101,
                    "folder=all&folder=pending"):
            response, page = await lisi.get("/console/inbox?" + bad)
            assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FILTER", bad
        zhang = await signed_in(client, "zhang")
        _, page = await zhang.get("/console/outbox")
        assert tile(page, "outbox") == 2 and "已签收 0/2" in page and "临沂市人民政府办公室" in page
        _, page = await zhang.get("/console/outbox?q=" + urllib.parse.quote("防汛"))
        assert "关于防汛工作的通知" in page and "关于商请支持的函" not in page
    run(tmp_path, scenario)


def test_the_document_page_shows_the_report_and_the_body_and_takes_the_clerks_acts(tmp_path):
    async def scenario(env, client):
        doc_id = await send(client, env, attachments=(("附件1.txt", "值班表".encode()),))
        lisi = await signed_in(client, "lisi")
        response, page = await lisi.get(path_of(doc_id))
        assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
        assert "验证通过" in page and "福州市人民政府办公厅" in page and "内容自盖章后未被改动" in page
        assert 'src="' + path_of(doc_id) + '/page/1.png"' in page
        response = await lisi.client.get(path_of(doc_id) + "/page/1.png", headers=lisi.cookie_header())
        assert response.status == 200 and response.content_type == "image/png"
        assert (await response.read()).startswith(b"\x89PNG")
        response, text = await lisi.get(path_of(doc_id) + "/attachment?name=" + urllib.parse.quote("附件1.txt"))
        assert response.status == 200 and text == "值班表"
        # A streamed download carries the same headers as a page (set before its first byte goes out).
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Request-Id"]
        token = csrf_of(page)
        response, page = await lisi.post(path_of(doc_id) + "/return", {"csrf": token, "reason": "  "})
        assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FORM"
        response, _ = await lisi.post(path_of(doc_id) + "/sign-for", {"csrf": token})
        assert response.status == 303 and response.headers["Location"] == path_of(doc_id) + "?done=sign_for"
        _, page = await lisi.get(response.headers["Location"])
        assert "已签收。" in page and "签收人 李四" in page and 'id="register"' in page
        response, page = await lisi.post(path_of(doc_id) + "/return", {"csrf": token, "reason": "不属于本单位职责"})
        assert response.status == 409 and "CONSOLE" not in response.headers["X-Gwx-Error"]  # 签收 came first
        item = await env.service.show(principal("李四", UNIT_B), doc_id)
        assert item["status"] == "signed_for" and item["signed_by"] == "李四"
        # The audit log says which login acted, not only a display name two users may share.
        signed = [e for e in await env.store.audit.events(doc_id=doc_id, limit=100)
                  if e.actor.startswith("clerk:") and "李四" in e.actor]
        assert signed and all("console:lisi" in e.actor for e in signed)
        zhang = await signed_in(client, "zhang")
        _, page = await zhang.get(path_of(doc_id))
        assert "各单位办理情况" in page and "李四" in page
        # The sender's page lists the attachments too, and they download.
        assert 'id="attachments"' in page and "附件1.txt" in page
        response, text = await zhang.get(path_of(doc_id) + "/attachment?name=" + urllib.parse.quote("附件1.txt"))
        assert response.status == 200 and text == "值班表"
    run(tmp_path, scenario)


def test_bad_requests_on_the_document_routes_get_typed_pages_and_lose_nothing(tmp_path):
    async def scenario(env, client):
        doc_id = await send(client, env, attachments=(("附件1.txt", b"x"),))
        lisi = await signed_in(client, "lisi")
        _, page = await lisi.get(path_of(doc_id))
        token = csrf_of(page)
        other = await send(client, env, doc_meta=meta(to=[UNIT_C], cc=[]))  # not for lisi's unit
        for path in (path_of(other), path_of(other) + "/page/1.png", path_of(other) + "/attachment?name=x"):
            response, page = await lisi.get(path)
            assert response.status == 404 and "未找到" in page, path  # 404, not 403: nothing leaks
        response, _ = await lisi.post(path_of(other) + "/sign-for", {"csrf": token})
        assert response.status == 404
        for name in ("../../metadata.json", "../body.pdf", "附件2.txt", "/etc/passwd"):
            response, page = await lisi.get(path_of(doc_id) + "/attachment?name=" + urllib.parse.quote(name))
            assert response.status == 404 and response.headers["X-Gwx-Error"] == "CONSOLE_NO_SUCH_ATTACHMENT", name
        response, _ = await lisi.get(path_of(doc_id) + "/page/9.png")
        assert response.status == 404
        response, _ = await lisi.get("/console/doc/" + urllib.parse.quote("../../etc", safe=""))
        assert response.status == 404
        response, _ = await lisi.post(path_of(doc_id) + "/sign-for", {"csrf": "forged"})
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        response, _ = await lisi.post(path_of(doc_id) + "/return", {"csrf": token, "reason": "x" * 20000})
        assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_FORM_TOO_LARGE"
        response, _ = await lisi.post(path_of(doc_id) + "/sign-for", {"csrf": token}, origin="https://evil.example")
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_ORIGIN"
        ops = await signed_in(client, "ops")
        response, _ = await ops.get(path_of(doc_id))
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_WRONG_ROLE"
        # Nothing of the above changed the document, for lisi, for the 抄送 unit or at the sender.
        for who in (principal("李四", UNIT_B), principal("陈六", UNIT_C)):
            assert (await env.service.show(who, doc_id))["status"] == "pending"
        track = await env.service.track(principal("张三", UNIT_A), doc_id)
        assert {r["status"] for r in track["recipients"]} == {"delivered"}
    run(tmp_path, scenario)


def blank_pages_pdf(count: int) -> bytes:
    """A long body under the test node's 64 KiB body limit: ``count`` A4 pages sharing one empty
    content stream, written by hand (reportlab spends 400 bytes a page)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % (4 + n) for n in range(count))
               + b"] /Count %d >>" % count,
               b"<< /Length 0 >>\nstream\n\nendstream"]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 3 0 R /Resources << >> >>"] * count
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def huge_page_pdf(size: float = 5000.0) -> bytes:
    import io

    from reportlab.pdfgen import canvas
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(size, size))
    c.drawString(100, 100, "a page 5000 pt square")
    c.showPage()
    c.save()
    return buf.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG")
    return struct.unpack(">II", png[16:24])


def test_a_huge_page_is_drawn_no_larger_than_a_desk_needs_and_an_a4_page_as_before(tmp_path):
    async def scenario(env, client):
        lisi = await signed_in(client, "lisi")
        for body, biggest in ((huge_page_pdf(), MAX_PIXELS), (None, None)):
            doc_id = await send(client, env, **({"body": body} if body else {}))
            response = await lisi.client.get(path_of(doc_id) + "/page/1.png", headers=lisi.cookie_header())
            assert response.status == 200
            width, height = png_size(await response.read())
            if biggest:  # 5000 pt at 110 dpi would be 7639 px a side, 175 MB in memory
                assert max(width, height) <= MAX_PIXELS
            else:
                assert (width, height) == (910, 1287)  # A4 at 110 dpi, as before
    run(tmp_path, scenario)


def test_a_body_longer_than_the_page_shows_says_so(tmp_path):
    async def scenario(env, client):
        lisi = await signed_in(client, "lisi")
        doc_id = await send(client, env, body=blank_pages_pdf(MAX_PAGES + 3))
        _, page = await lisi.get(path_of(doc_id))
        assert page.count('class="page"') == MAX_PAGES
        assert f"正文共 {MAX_PAGES + 3} 页，此处只显示前 {MAX_PAGES} 页" in page
    run(tmp_path, scenario)


def test_bodies_being_shown_are_copied_under_the_nodes_directory_and_leftovers_cleared_at_start(tmp_path):
    env = make_env(tmp_path)
    leftover = env.config.data_dir / "uploads" / "console" / "gwx-console-crashed"
    leftover.mkdir(parents=True)
    (leftover / "body.pdf").write_bytes(b"%PDF left by a crash")

    async def main():
        async with console(env):
            assert not leftover.exists()
    asyncio.run(main())


def principal(name: str, unit: str):
    from node.api.auth import Principal
    return Principal("test", name, "clerk", unit)


def test_the_sender_urges_and_recalls_per_unit_from_the_document_page(tmp_path):
    async def scenario(env, client):
        doc_id = await send(client, env)  # 主送 UNIT_B, 抄送 UNIT_C
        lisi = await signed_in(client, "lisi")
        _, page = await lisi.get(path_of(doc_id))
        await lisi.post(path_of(doc_id) + "/sign-for", {"csrf": csrf_of(page)})
        zhang = await signed_in(client, "zhang")
        _, page = await zhang.get(path_of(doc_id))
        token = csrf_of(page)
        assert page.count(">催办</button>") == 1  # only the unit that has not signed for it
        response, _ = await zhang.post(path_of(doc_id) + "/urge", {"csrf": token, "unit": UNIT_C})
        assert response.status == 303 and response.headers["Location"].endswith("?done=urge")
        response, _ = await zhang.post(path_of(doc_id) + "/recall", {"csrf": token, "unit": UNIT_B})
        assert response.status == 409 and response.headers["X-Gwx-Error"] == "DOC_NO_ELIGIBLE_RECIPIENT"
        response, _ = await zhang.post(path_of(doc_id) + "/recall", {"csrf": token, "unit": "not-a-unit"})
        assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FORM"
        response, _ = await zhang.post(path_of(doc_id) + "/recall", {"csrf": token, "unit": UNIT_C})
        _, page = await zhang.get(response.headers["Location"])
        assert "已撤回。" in page
        by_unit = {r["unit"]: r for r in (await env.service.track(principal("张三", UNIT_A), doc_id))["recipients"]}
        assert (by_unit[UNIT_B]["status"], by_unit[UNIT_C]["status"], by_unit[UNIT_C]["urge_count"]) == \
            ("signed_for", "recalled", 1)
        chen = await signed_in(client, "chen")  # the recalled unit keeps the record, not the body
        response, page = await chen.get(path_of(doc_id))
        assert response.status == 200 and "已撤回" in page and "正文不再提供" in page
        response, _ = await chen.get(path_of(doc_id) + "/page/1.png")
        assert response.status == 409 and response.headers["X-Gwx-Error"] == "DOC_RECALLED"
    run(tmp_path, scenario)


def test_an_ofd_body_is_offered_as_a_download_beside_its_seals_verdict(tmp_path):
    from cryptography import x509

    from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
    from tests.exchange_protocol.ofd_fixtures import make_ofd

    async def scenario(env, client):
        doc_id = await send(client, env, body=make_ofd())
        lisi = await signed_in(client, "lisi")
        response, page = await lisi.get(path_of(doc_id))
        assert response.status == 200 and "验证通过" in page
        assert 'id="body-ofd"' in page and f'href="{path_of(doc_id)}/body.ofd"' in page and 'class="page"' not in page
        assert "正文 OFD 中的电子签章（GB/T 38540）" in page and "有效，正文盖章后未被改动" in page
        response = await lisi.client.get(path_of(doc_id) + "/body.ofd", headers=lisi.cookie_header())
        assert response.status == 200 and response.content_type == "application/ofd"
        assert "attachment;" in response.headers["Content-Disposition"]
        body = await response.read()
        root = x509.load_pem_x509_certificate(env.config.trust_root_path.read_bytes())
        assert verify_sealed_ofd(body, revocation=NO_REVOCATION_CHECK, trust_roots=[root]).first.verification.signature.seal.unit_code == UNIT_A
        response = await lisi.client.get(path_of(doc_id) + "/page/1.png", headers=lisi.cookie_header())
        assert response.status == 404  # not drawn: there is no page image of an OFD
        pdf_doc = await send(client, env)
        response = await lisi.client.get(path_of(pdf_doc) + "/body.ofd", headers=lisi.cookie_header())
        assert response.status == 404
    run(tmp_path, scenario)
