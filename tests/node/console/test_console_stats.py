"""The statistics page with its server-drawn SVG charts and the 台账 export button (node.console.stats_page,
node.console.charts), in process over the real document service; bad requests typed."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import urllib.parse
import xml.etree.ElementTree as ET

import openpyxl

from node.console import charts
from pki.unit_code import make_unit_code
from tests.node.api.local_api_support import UNIT_A, UNIT_B, UNIT_C, make_env, meta, send
from tests.node.console.console_support import PASSWORD, Browser, console, csrf_of

SVG = "{http://www.w3.org/2000/svg}"


def run(tmp_path, scenario):
    env = make_env(tmp_path)

    async def main():
        async with console(env) as (client, accounts):
            await accounts.add("zhang", "张三", "clerk", [UNIT_A], PASSWORD)
            await accounts.add("lisi", "李四", "clerk", [UNIT_B], PASSWORD)
            await accounts.add("zhao", "赵督查", "supervisor", [UNIT_B], PASSWORD)
            await accounts.add("ops", "王五", "operator", [], PASSWORD)
            await scenario(env, client)
    asyncio.run(main())


async def signed_in(client, login) -> Browser:
    browser = Browser(client)
    response, _ = await browser.sign_in(login)
    assert response.status == 303
    return browser


def svgs(page: str) -> list[ET.Element]:
    """Every chart in the page, parsed as XML (so each is well-formed SVG)."""
    return [ET.fromstring(s) for s in re.findall(r"<svg class=\"chart\".*?</svg>", page, re.S)]


def titles(svg: ET.Element) -> list[str]:
    return [t.text for t in svg.iter(SVG + "title")]


def test_the_statistics_page_draws_counts_times_and_rates_and_exports_the_ledger_with_its_filters(tmp_path):
    async def scenario(env, client):
        first = await send(client, env)  # 主送 UNIT_B, 抄送 UNIT_C
        await send(client, env, doc_meta=meta(kind="函", title="关于商请支持的函"))
        lisi = await signed_in(client, "lisi")
        path = f"/console/doc/{urllib.parse.quote(first, safe='')}"
        _, page = await lisi.get(path)
        await lisi.post(path + "/sign-for", {"csrf": csrf_of(page)})
        env.ctx.clock.advance(hours=2)  # the other recipients stay unsigned

        zhang = await signed_in(client, "zhang")
        response, page = await zhang.get("/console/stats?side=sent&period=month")
        assert response.status == 200 and "script" not in page.split("<main>")[1]
        counts, times, rates = svgs(page)
        assert [b.get("class") for b in counts.iter(SVG + "rect") if b.get("class")] == ["bar", "bar"]
        assert any(t.endswith("发文（单位次）：4") for t in titles(counts))
        assert any(t.endswith("已签收：1") for t in titles(counts))
        assert any("中位数：0小时" in t for t in titles(times))  # signed at once (the clock had not moved)
        assert any("90%分位：0小时" in t for t in titles(times))  # a percentile in words, not a bare "90%"
        assert any(t.endswith("退回率：0%") for t in titles(rates))
        assert re.search(r'id="export-xlsx"', page) and 'name="side" value="sent"' in page

        response, text = await zhang.get("/console/ledger?side=sent&format=csv")
        assert response.status == 200 and response.headers["X-Gwx-Ledger-Rows"] == "4"
        assert "attachment" in response.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
        assert len(rows) == 5 and any("关于商请支持的函" in cell for row in rows for cell in row)
        response, text = await zhang.get("/console/ledger?side=sent&kind=函&period=month&format=csv")
        assert response.headers["X-Gwx-Ledger-Rows"] == "2"
        response = await zhang.client.get("/console/ledger?side=sent&format=xlsx", headers=zhang.cookie_header())
        assert response.status == 200
        sheet = openpyxl.load_workbook(io.BytesIO(await response.read()), read_only=True).active
        assert sum(1 for _ in sheet.iter_rows()) == 5

        lisi = await signed_in(client, "lisi")  # two hours on: the first session idled out
        response, page = await lisi.get("/console/stats?side=received&period=day")
        [counts, _, _] = svgs(page)
        assert any(t.endswith("已签收：1") for t in titles(counts))
        ops = await signed_in(client, "ops")  # numbers for every hosted unit, no export button
        response, page = await ops.get("/console/stats?side=sent")
        assert response.status == 200 and f'id="stats-{UNIT_A}"' in page and "export-xlsx" not in page
    run(tmp_path, scenario)


def test_an_operator_pages_through_the_hosted_units_and_picks_one(tmp_path, monkeypatch):
    """An operator's statistics without a chosen unit are a page of the hosted units (three charts
    each), not every hosted unit on one page; the form offers the hosted units and the 对方单位."""
    monkeypatch.setattr("node.console.stats_page.PAGE_UNITS", 2, raising=False)

    async def scenario(env, client):
        await send(client, env)  # UNIT_A to UNIT_B and UNIT_C, all three hosted here
        hosted = sorted(u.code for u in env.config.units)
        assert len(hosted) == 3
        ops = await signed_in(client, "ops")
        response, page = await ops.get("/console/stats?side=received")
        assert response.status == 200
        shown = re.findall(r'<section class="card stats" id="stats-([0-9A-Z]{18})"', page)
        assert shown == hosted[:2] and len(svgs(page)) == 6
        assert all(f'<option value="{u}"' in page for u in hosted) and 'name="counterpart"' in page
        found = re.search(r'id="next-units" href="([^"]+)"', page)
        _, page = await ops.get(found.group(1).replace("&amp;", "&"))
        assert re.findall(r'id="stats-([0-9A-Z]{18})"', page) == hosted[2:] and 'id="next-units"' not in page
        assert "side=received" in found.group(1)  # the filters go with the next page
        response, page = await ops.get(f"/console/stats?side=received&unit={UNIT_B}")
        assert re.findall(r'id="stats-([0-9A-Z]{18})"', page) == [UNIT_B]
        assert f'<option value="{UNIT_B}" selected>' in page and 'id="next-units"' not in page
        response, page = await ops.get(f"/console/stats?side=received&counterpart={UNIT_A}&unit={UNIT_C}")
        [counts, _, _] = svgs(page)
        assert any(t.endswith("收文：1") for t in titles(counts))
        response, _ = await ops.get("/console/stats?after=nonsense")
        assert response.status == 400 and response.headers["X-Gwx-Error"] == "CONSOLE_BAD_FILTER"
    run(tmp_path, scenario)


def test_bad_requests_on_the_statistics_and_ledger_routes_are_typed(tmp_path):
    async def scenario(env, client):
        await send(client, env)
        zhang = await signed_in(client, "zhang")
        for path, code in (("/console/stats?side=both", "CONSOLE_BAD_FILTER"),
                           ("/console/stats?sort=x", "CONSOLE_BAD_FILTER"),
                           ("/console/stats?period=year", "LEDGER_BAD_PERIOD"),
                           ("/console/stats?from=2026-02-30", None),
                           ("/console/stats?status=pending", None),  # a received status on the sent side
                           ("/console/ledger?format=pdf", "CONSOLE_BAD_FILTER"),
                           ("/console/ledger?from=yesterday", None),
                           ("/console/ledger?side=sent&side=received", "CONSOLE_BAD_FILTER")):
            response, _ = await zhang.get(path)
            assert response.status == 400, path
            assert response.headers["X-Gwx-Error"] == code if code else response.headers["X-Gwx-Error"].startswith("LEDGER_BAD")
        for path in (f"/console/stats?unit={UNIT_B}", f"/console/ledger?unit={UNIT_B}"):  # another unit's
            response, _ = await zhang.get(path)
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "API_FORBIDDEN", path
        zhao = await signed_in(client, "zhao")  # a supervisor: its units' only (test_supervisor_scope)
        for path in (f"/console/stats?unit={UNIT_A}", f"/console/ledger?unit={UNIT_A}"):
            response, _ = await zhao.get(path)
            assert response.status == 403 and response.headers["X-Gwx-Error"] == "API_FORBIDDEN", path
        ops = await signed_in(client, "ops")
        response, _ = await ops.get("/console/ledger")
        assert response.status == 403 and response.headers["X-Gwx-Error"] == "CONSOLE_WRONG_ROLE"
        response, _ = await ops.get("/console/stats?unit=11100000000013127D")  # hosted: fine
        assert response.status == 200
        response, _ = await ops.get("/console/stats?unit=" + make_unit_code("11370000MB0000099"))  # not hosted
        assert response.status == 404 and response.headers["X-Gwx-Error"] == "LEDGER_UNIT_NOT_HOSTED"
    run(tmp_path, scenario)


def test_charts_escape_their_text_scale_to_a_round_top_and_leave_gaps_for_missing_values():
    svg = charts.lines("用时", ["2026-01", "<b>", "2026-03", "2026-04"],
                       [("中位数", "#123456", [1.0, 2.0, None, 7.0])], unit="h")
    tree = ET.fromstring(str(svg))  # well-formed: the label "<b>" was escaped
    assert "&lt;b&gt;" in str(svg)
    assert len(list(tree.iter(SVG + "circle"))) == 3
    assert len(list(tree.iter(SVG + "polyline"))) == 1  # 1 → 2, then a gap; 7 alone is a dot
    assert any(t.text == "10h" for t in tree.iter(SVG + "text"))  # 7 rounds the axis up to 10
    bars = ET.fromstring(str(charts.bars("数", ["a", "b"], [("收文", "#000", [0, 5])])))
    [bar] = [r for r in bars.iter(SVG + "rect") if r.get("class") == "bar"]  # no bar for 0
    assert float(bar.get("height")) == charts.HEIGHT - charts.TOP - charts.BOTTOM  # 5 of a top of 5
    assert "style=" not in str(svg) + str(bars)  # the CSP allows no inline style
