"""The document page's 归档 button, in process over the real document service with a TSA signer of its
own: refused (with words) while the document is not finished, a download that verifies offline once a
reason is given or the handling is done, and bad forms typed pages that build nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import urllib.parse

from exchange_protocol.archive_verify import verify_archive
from node.archive.settings import ArchiveSettings
from pki.ca import CertificateAuthority
from pki.tsa_signer import issue as issue_tsa_signer
from tests.node.api.local_api_support import UNIT_A, UNIT_B, UNIT_C, make_env, send, template
from tests.node.console.console_support import PASSWORD, Browser, console, csrf_of
from tests.support import PASSPHRASE


def path_of(doc_id: str) -> str:
    return f"/console/doc/{urllib.parse.quote(doc_id, safe='')}"


def _env_with_tsa(tmp_path):
    env = make_env(tmp_path)
    ca = CertificateAuthority.open(template().config.directory.parent / "ca", PASSPHRASE)
    issue_tsa_signer(ca, tmp_path / "tsa", PASSPHRASE, now=template().now)
    env.config = dataclasses.replace(env.config, archive=ArchiveSettings(tsa_signer=tmp_path / "tsa"))
    env.ctx = dataclasses.replace(env.ctx, config=env.config)
    return env, ca.root_certificate


async def _signed_in(client, login) -> Browser:
    browser = Browser(client)
    response, _ = await browser.sign_in(login)
    assert response.status == 303
    return browser


def test_the_archive_button_refuses_an_unfinished_document_then_downloads_a_package_that_verifies(tmp_path):
    env, root = _env_with_tsa(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await accounts.add("zhang", "张三", "clerk", [UNIT_A], PASSWORD)
            await accounts.add("chen", "陈六", "clerk", [UNIT_C], PASSWORD)
            doc_id = await send(client, env)  # 主送 UNIT_B, 抄送 UNIT_C
            zhang = await _signed_in(client, "zhang")
            _, page = await zhang.get(path_of(doc_id))
            assert 'id="archive-button"' in page and 'name="side" value="outbox"' in page
            token = csrf_of(page)
            response, page = await zhang.post(path_of(doc_id) + "/archive", {"csrf": token, "side": "outbox"})
            assert response.status == 409 and response.headers["X-Gwx-Error"] == "ARCHIVE_DOC_NOT_FINISHED"
            assert "尚未办结" in page
            response = await zhang.client.post(path_of(doc_id) + "/archive", data={
                "csrf": token, "side": "outbox", "reason": "收文单位撤并，提前归档"},
                headers={**zhang.cookie_header(), "Origin": zhang.origin}, allow_redirects=False)
            assert response.status == 200 and response.content_type == "application/zip"
            assert ".gwxa" in response.headers["Content-Disposition"]
            data = await response.read()
            report = await asyncio.to_thread(verify_archive, io.BytesIO(data), [root], env.ctx.clock())
            assert report.ok, report.to_dict()
            # The receiving clerk signs for it and archives it from the received side without a reason.
            lisi = await _signed_in(client, "lisi")
            _, page = await lisi.get(path_of(doc_id))
            await lisi.post(path_of(doc_id) + "/sign-for", {"csrf": csrf_of(page)})
            _, page = await lisi.get(path_of(doc_id))
            assert 'name="side" value="inbox"' in page
            response = await lisi.client.post(path_of(doc_id) + "/archive", data={
                "csrf": csrf_of(page), "side": "inbox"}, headers={**lisi.cookie_header(), "Origin": lisi.origin},
                allow_redirects=False)
            assert response.status == 200
            report = await asyncio.to_thread(verify_archive, io.BytesIO(await response.read()), [root],
                                             env.ctx.clock())
            assert report.ok and report.doc_id == doc_id
            # Bad forms: a side that is none, no CSRF token, another unit's sent document.
            response, _ = await lisi.post(path_of(doc_id) + "/archive", {"csrf": csrf_of(page), "side": "x"})
            assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FORM"
            response, _ = await lisi.post(path_of(doc_id) + "/archive", {"side": "inbox"})
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_CSRF"
            response, _ = await lisi.post(path_of(doc_id) + "/archive", {"csrf": csrf_of(page), "side": "outbox"})
            assert response.status == 404
            assert not list((env.config.data_dir / "archives").glob("*"))  # nothing left behind
            archived = [e for e in await env.store.audit.events(doc_id=doc_id, limit=200)
                        if e.action == "document.archived"]
            assert [e.details["side"] for e in archived] == ["outbox", "inbox"]
            assert archived[0].details["reason"] == "收文单位撤并，提前归档"
    asyncio.run(main())
