"""The send page in process, over the real document service: a clerk seals and sends a document
with an attachment to units picked as 主送 and 抄送; the metadata is checked by the API's own rules,
and every refusal shows the form again (or a typed page) with nothing sent and no upload left behind."""

from __future__ import annotations

import asyncio
import datetime as dt
import zipfile

import aiohttp

from tests.node.api.local_api_support import PDF, UNIT_A, UNIT_B, UNIT_C, make_env, multipart, part
from tests.node.console.console_support import PASSWORD, Browser, console, csrf_of


def run(tmp_path, scenario):
    env = make_env(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("zhang", "张三", "clerk", [UNIT_A], PASSWORD)
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            zhang = Browser(client)
            await zhang.sign_in("zhang")
            await scenario(env, client, zhang)
            assert not [p for p in env.upload_dir.iterdir() if p.is_file()]  # no upload left behind
    asyncio.run(main())


def form(csrf: str, *, title="关于开展冬季消防检查的通知", to=(UNIT_B,), cc=(UNIT_C,), body=PDF,
         attachments=(("检查表.txt", "检查项目".encode()),), csrf_first=True, **fields) -> aiohttp.FormData:
    data = aiohttp.FormData()
    if csrf_first:
        data.add_field("csrf", csrf)
    for name, value in {"kind": "通知", "title": title, "doc_number": "榕政办〔2026〕88号", **fields}.items():
        data.add_field(name, value)
    for unit in to:
        data.add_field("to", unit)
    for unit in cc:
        data.add_field("cc", unit)
    if body is not None:
        data.add_field("body", body, filename="正文.pdf", content_type="application/pdf")
    for name, content in attachments:
        data.add_field("attachment", content, filename=name, content_type="application/octet-stream")
    if not csrf_first:
        data.add_field("csrf", csrf)
    return data


def test_a_clerk_sends_from_the_console_and_the_recipients_receive_it(tmp_path):
    async def scenario(env, client, zhang):
        _, page = await zhang.get("/console/send")
        assert "临沂市人民政府办公室" in page and 'name="to"' in page and 'name="cc"' in page
        response, _ = await zhang.post_multipart("/console/send", form(csrf_of(page)))
        assert response.status == 303, await response.text()
        assert response.headers["Location"].endswith("?done=sent")
        _, page = await zhang.get(response.headers["Location"])
        assert "已盖章发送。" in page and "各单位办理情况" in page
        lisi = Browser(client)
        await lisi.sign_in("lisi")
        _, home = await lisi.get("/console/")
        assert "关于开展冬季消防检查的通知" in home
        sent = (await env.service.outbox(_principal("张三", UNIT_A)))[0]
        assert (sent["title"], sent["doc_number"]) == ("关于开展冬季消防检查的通知", "榕政办〔2026〕88号")
        tracking = await env.service.track(_principal("张三", UNIT_A), sent["doc_id"])
        assert {(r["unit"], r["role"]) for r in tracking["recipients"]} == {(UNIT_B, "主送"), (UNIT_C, "抄送")}
    run(tmp_path, scenario)


def test_an_empty_written_on_is_the_nodes_today_in_beijing(tmp_path):
    """成文日期 left empty is the day the node's clock says (its only clock), not the machine's."""
    async def scenario(env, client, zhang):
        env.ctx.clock.advance(days=3)
        await zhang.sign_in("zhang")  # the session went idle meanwhile
        _, page = await zhang.get("/console/send")
        response, _ = await zhang.post_multipart("/console/send", form(csrf_of(page)))
        assert response.status == 303
        sent = (await env.service.outbox(_principal("张三", UNIT_A)))[0]
        shown = await env.service.show(_principal("张三", UNIT_A), sent["doc_id"])
        beijing = (env.ctx.clock() + dt.timedelta(hours=8)).date().isoformat()
        assert shown["metadata"]["written_on"] == beijing
    run(tmp_path, scenario)


def test_refused_sends_show_why_keep_what_was_typed_and_send_nothing(tmp_path):
    async def scenario(env, client, zhang):
        _, page = await zhang.get("/console/send")
        token = csrf_of(page)
        response, page = await zhang.post_multipart("/console/send", form(token, title=""))
        assert response.status in (400, 422) and 'id="send-error"' in page
        assert "榕政办〔2026〕88号" in page  # what was typed is still there
        response, page = await zhang.post_multipart("/console/send", form(token, to=(), cc=()))
        assert response.status in (400, 422) and 'id="send-error"' in page
        response, page = await zhang.post_multipart("/console/send", form(token, to=(UNIT_B,), cc=(UNIT_B,)))
        assert response.status in (400, 422) and 'id="send-error"' in page
        response, page = await zhang.post_multipart("/console/send", form(token, body=None))
        assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FORM"
        response, page = await zhang.post_multipart("/console/send", form(token, body=b"not a pdf"))
        assert response.status in (400, 422) and 'id="send-error"' in page
        for name in ("../../etc/passwd", "a/b.txt", "/abs.txt"):  # as a browser could send them
            body, headers = multipart(part("csrf", token.encode()), part("kind", "通知".encode()),
                                      part("title", "标题".encode()), part("to", UNIT_B.encode()),
                                      part("body", PDF, filename="b.pdf", content_type="application/pdf"),
                                      part("attachment", b"x", filename=name))
            response = await zhang.client.post("/console/send", data=body, allow_redirects=False,
                                               headers={**headers, **zhang.cookie_header(), "Origin": zhang.origin})
            assert response.status == 400 and response.headers["X-Gwx-Error"] == "API_BAD_FILENAME", name
        for forged in ("forged", "令牌"):  # a non-ASCII token is refused the same way, not a 500
            response, page = await zhang.post_multipart("/console/send", form(forged))
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        response, page = await zhang.post_multipart("/console/send", form(token, csrf_first=False))
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        response, page = await zhang.post_multipart("/console/send", form(token), origin="https://evil.example")
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_ORIGIN"
        assert await env.service.outbox(_principal("张三", UNIT_A)) == []  # nothing was sent
    run(tmp_path, scenario)


def _principal(name: str, unit: str):
    from node.api.auth import Principal
    return Principal("test", name, "clerk", unit)


def test_the_metadata_is_checked_as_typed_by_the_same_rules_and_needs_the_csrf_token(tmp_path):
    async def scenario(env, client, zhang):
        _, page = await zhang.get("/console/send")
        fields = {"csrf": csrf_of(page), "kind": "通知", "title": "关于开展冬季消防检查的通知",
                  "doc_number": "榕政办2026", "to": f"{UNIT_B},{UNIT_C}"}
        response, text = await zhang.post("/console/send/check", fields)
        assert response.status == 200 and response.content_type == "application/json"
        assert '"code": "DOC_INVALID_DOC_NUMBER"' in text and '"ok": false' in text
        response, text = await zhang.post("/console/send/check", {**fields, "doc_number": "榕政办〔2026〕9号"})
        assert text == '{"ok": true}'
        response, text = await zhang.post("/console/send/check", {**fields, "to": ""})
        assert '"ok": false' in text
        response, _ = await zhang.post("/console/send/check", {**fields, "csrf": "forged"})
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
        assert await env.service.outbox(_principal("张三", UNIT_A)) == []
    run(tmp_path, scenario)


def test_the_send_form_takes_an_ofd_body_and_seals_it_inside(tmp_path):
    from tests.exchange_protocol.ofd_fixtures import make_ofd, unzip

    async def scenario(env, client, zhang):
        _, page = await zhang.get("/console/send")
        assert 'accept="application/pdf,.pdf,application/ofd,.ofd"' in page and "正文（PDF 或 OFD）" in page
        response, _ = await zhang.post_multipart("/console/send", form(csrf_of(page), body=make_ofd()))
        assert response.status == 303, await response.text()
        _, page = await zhang.get(response.headers["Location"])
        assert 'id="body-ofd"' in page and "正文已按 GB/T 38540 加盖本单位电子印章" in page  # the sender's page too
        sent = (await env.service.outbox(_principal("张三", UNIT_A)))[0]
        with zipfile.ZipFile(await env.service.package_path(_principal("张三", UNIT_A), sent["doc_id"])) as z:
            assert "Doc_0/Signs/Sign_0/SignedValue.dat" in unzip(z.read("body.ofd"))
    run(tmp_path, scenario)
