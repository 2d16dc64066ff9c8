"""zeep's async client against a real legacy OA (spyne on loopback, its own WSDL): a mapped document
arrives field by field; the OA's faults, slowness, absence and a WSDL that lacks what node.toml
names each end in the typed error whose kind makes the outbox retry or dead-letter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

import httpx
import pytest

from adapters.oa_push.errors import OaFault, OaServerFault, OaTooLarge, OaUnavailable, OaWsdlMismatch
from adapters.oa_push.mapping import StatusChange, load_mapping
from adapters.oa_push.settings import OaPushSettings
from adapters.oa_push.soap_call import OaClient
from adapters.oa_push.streaming import EXCERPT_CHARS, excerpt_of
from node.error_kinds import Disposition, disposition
from tests.adapters.oa_push.legacy_oa import LegacyOa
from tests.adapters.oa_push.test_mapping import EXAMPLE, RECEIVER, SENDER, document

logging.getLogger("spyne").setLevel(logging.CRITICAL)


@pytest.fixture
def oa():
    with LegacyOa() as server:
        yield server


def settings(oa: LegacyOa, **changes) -> OaPushSettings:
    base = OaPushSettings(unit=RECEIVER, wsdl=oa.wsdl_url, received_operation="ReceiveGongwen",
                          status_operation="UpdateZhuangtai", mapping_path=EXAMPLE, mapping=load_mapping(EXAMPLE),
                          timeout_seconds=30.0)  # a margin for a loaded machine (at load 16, 5 s was missed)
    return replace(base, **changes)


def push(client: OaClient, doc=None):
    doc = doc or document()
    return client.call("ReceiveGongwen", client.settings.mapping.received_arguments(doc))


def run(coro_fn):
    """Run ``coro_fn(client)`` and close the client."""
    async def main(client):
        try:
            return await coro_fn(client)
        finally:
            await client.close()
    return main


def test_a_document_arrives_field_by_field(oa):
    async def go(client):
        assert await push(client, document(kind="纪要", urgency="特急", classification="秘密★6个月")) == "成功"
        change = StatusChange(doc_id="gw.9", event_id="n:30", unit=SENDER, status="signed_for",
                              recipient_unit=RECEIVER, when="2026-11-30T01:00:00Z", who="李四")
        assert await client.call("UpdateZhuangtai", client.settings.mapping.status_arguments(change)) == "成功"
    asyncio.run(run(go)(OaClient(settings(oa))))
    got = oa.state.documents["gw.2026.0001"]
    assert (got["wz"], got["jjcd"], got["mj"], got["cwrq"], got["blsx"]) == ("06", "1", "1", "20261120",
                                                                              "2026-11-23 17:00:00")
    assert got["wjbt"] == "关于做好冬季防火工作的通知" and got["fwdw"] == f"{SENDER[8:16]}-{SENDER[16]}"
    assert got["zw"] == b"%PDF-1.7 body" and got["fj"] == [("附件1.pdf", b"one"), ("附件2.ofd", b"two")]
    assert got["sjbs"] == "node-a:17" and got["lyxt"] == "GWX"
    assert oa.state.statuses["n:30"] == {"gwbs": "gw.9", "zt": "QS", "jsdw": f"{RECEIVER[8:16]}-{RECEIVER[16]}",
                                         "czr": "李四", "czsj": "2026-11-30 09:00:00", "yy": ""}


def test_a_duplicate_is_answered_and_recorded_once(oa):
    async def go(client):
        return [await push(client), await push(client)]
    assert asyncio.run(run(go)(OaClient(settings(oa)))) == ["成功", "重复"]
    assert oa.state.keys_of("ReceiveGongwen") == ["gw.2026.0001"] * 2 and len(oa.state.documents) == 1


def test_an_oa_that_faults_on_a_duplicate_is_understood_when_told(oa):
    oa.state.duplicate_fault = "公文已存在,请勿重复发送"

    async def go(client):
        await push(client)
        return await push(client)
    assert asyncio.run(run(go)(OaClient(settings(oa, duplicate_fault="公文已存在")))) is None
    with pytest.raises(OaFault, match="公文已存在"):  # without duplicate_fault it is a refusal
        asyncio.run(run(go)(OaClient(settings(oa))))


def test_a_client_fault_is_final_with_the_oas_text(oa):
    oa.state.fault_next.append(("Client", "文种代码[06]不存在"))
    with pytest.raises(OaFault) as caught:
        asyncio.run(run(push)(OaClient(settings(oa))))
    assert caught.value.code == "OA_FAULT" and "文种代码[06]不存在" in caught.value.message
    assert caught.value.details["fault"] == "文种代码[06]不存在" and caught.value.details["operation"] == "ReceiveGongwen"
    assert disposition(caught.value) is Disposition.GIVE_UP


def test_a_server_fault_is_retried(oa):
    oa.state.fault_next.append(("Server", "数据库连接失败"))
    with pytest.raises(OaServerFault, match="数据库连接失败") as caught:
        asyncio.run(run(push)(OaClient(settings(oa))))
    assert disposition(caught.value) is Disposition.RETRY


def test_a_slow_oa_times_out_and_the_next_call_passes(oa):
    oa.state.slow_next.append(2.0)

    async def go(client):
        await client.check(30.0)  # the WSDL first, its reads not bound by the call's 0.5 s (a loaded machine)
        return await push(client)
    with pytest.raises(OaUnavailable) as caught:
        asyncio.run(run(go)(OaClient(settings(oa, timeout_seconds=0.5))))
    assert caught.value.code == "OA_TIMEOUT" and disposition(caught.value) is Disposition.RETRY
    # The retry (a client with time to wait, as a loaded test machine needs) is the same push.
    assert asyncio.run(run(push)(OaClient(settings(oa, timeout_seconds=10.0)))) in {"成功", "重复"}
    assert len(oa.state.documents) == 1 and oa.state.keys_of("ReceiveGongwen") == ["gw.2026.0001"] * 2


def test_a_wsdl_slower_than_a_calls_timeout_is_loaded_and_then_called(oa):
    # Each of the WSDL's 20 pieces takes 0.4 s, longer than the call's 0.25 s timeout: the load,
    # apart from the calls, waits for them, and a call after it has its own 0.25 s.
    oa.state.wsdl_delay = 8.0
    oa.state.slow_next.append(2.0)

    async def go(client):
        await client.check(60.0)
        assert oa.state.wsdl_fetches == 1
        with pytest.raises(OaUnavailable) as caught:
            await push(client)
        assert caught.value.code == "OA_TIMEOUT"
    asyncio.run(run(go)(OaClient(settings(oa, timeout_seconds=0.25))))


def test_an_oa_down_is_transient_and_is_reached_again_when_up(oa):
    async def go(client):
        await push(client, document())  # the WSDL is loaded while the OA is up
        oa.down()
        with pytest.raises(OaUnavailable, match="could not be reached") as caught:
            await push(client, replace(document(), doc_id="gw.2"))
        assert disposition(caught.value) is Disposition.RETRY
        oa.up()
        return await push(client, replace(document(), doc_id="gw.2"))
    assert asyncio.run(run(go)(OaClient(settings(oa)))) == "成功"
    assert sorted(oa.state.documents) == ["gw.2", "gw.2026.0001"]


def test_a_wsdl_that_cannot_be_fetched_is_fetched_at_the_next_call(oa):
    oa.down()

    async def go(client):
        with pytest.raises(OaUnavailable, match="WSDL"):
            await push(client)
        oa.up()
        return await push(client)
    assert asyncio.run(run(go)(OaClient(settings(oa)))) == "成功"


MAINTENANCE = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>维护</title></head>"
               "<body><h1>系统维护中</h1><p>预计22:00恢复<br></p></body></html>")


@pytest.mark.parametrize("page", [MAINTENANCE, MAINTENANCE.replace("<br>", "<br/>"),  # HTML, and XHTML
                                  "<html><body><h1>系统维护中</h1></body></html>"])
def test_a_maintenance_page_for_the_wsdl_lets_the_node_start_and_is_checked_again(oa, page, caplog):
    from adapters.oa_push.consumer import OaPushConsumer, check_against_wsdls

    oa.state.wsdl_page = page.encode()
    consumer = OaPushConsumer(settings(oa), service=None)

    async def go():
        try:
            with caplog.at_level(logging.WARNING):
                await check_against_wsdls([consumer])  # the node starts: the OA is away, not wrong
            with pytest.raises(OaUnavailable, match="not a WSDL: .*系统维护中") as caught:
                await push(consumer._client)
            assert disposition(caught.value) is Disposition.RETRY
            oa.state.wsdl_page = None  # the OA is back
            return await push(consumer._client)
        finally:
            await consumer.close()
    assert asyncio.run(go()) == "成功"
    assert "系统维护中" in caplog.text and "checked at the first push" in caplog.text


def test_a_wsdl_cut_short_is_fetched_again(oa):
    whole = httpx.get(oa.wsdl_url).content
    oa.state.wsdl_page = whole[:len(whole) // 2]

    async def go(client):
        with pytest.raises(OaUnavailable, match="could not be read"):
            await client.check()
        oa.state.wsdl_page = None
        return await push(client)
    assert asyncio.run(run(go)(OaClient(settings(oa)))) == "成功"


@pytest.mark.parametrize(("changes", "message"), [
    ({"received_operation": "ReceiveDocument"}, "no operation ReceiveDocument (it has ReceiveGongwen, UpdateZhuangtai)"),
    ({"service": "DocService"}, "no service DocService"),
    ({"port": "GongwenSoap12"}, "no port GongwenSoap12"),
])
def test_a_wsdl_without_what_node_toml_names(oa, changes, message):
    with pytest.raises(OaWsdlMismatch, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        asyncio.run(run(push)(OaClient(settings(oa, **changes))))
    assert disposition(caught.value) is Disposition.RETRY  # kept until node.toml is corrected
    assert oa.state.calls == []


def test_a_mapping_parameter_the_oa_does_not_take(oa):
    import tomllib

    from adapters.oa_push.mapping import parse_mapping
    raw = tomllib.loads(EXAMPLE.read_text("utf-8"))
    raw["received"]["wenjianbiaoti"] = "title"
    with pytest.raises(OaWsdlMismatch, match="takes no parameter wenjianbiaoti"):
        asyncio.run(run(push)(OaClient(settings(oa, mapping=parse_mapping(raw)))))


def test_the_endpoint_overrides_the_wsdls_address(oa):
    with LegacyOa() as other:
        asyncio.run(run(push)(OaClient(settings(oa, wsdl=oa.wsdl_url, endpoint=other.url))))
        assert list(other.state.documents) == ["gw.2026.0001"] and oa.state.documents == {}


def test_http_basic_authentication_to_the_oa(oa):
    oa.state.basic_auth = ("gwx", "口令-2009")
    with pytest.raises(OaUnavailable, match="refused our credentials") as caught:
        asyncio.run(run(push)(OaClient(settings(oa))))
    assert "HTTP 401" in caught.value.message
    with pytest.raises(OaUnavailable, match="refused our credentials"):
        asyncio.run(run(push)(OaClient(settings(oa, username="gwx", password="wrong"))))
    assert asyncio.run(run(push)(OaClient(settings(oa, username="gwx", password="口令-2009")))) == "成功"


def test_an_oa_that_answers_result_codes_instead_of_faults(oa):
    import tomllib

    from adapters.oa_push.mapping import parse_mapping
    raw = tomllib.loads(EXAMPLE.read_text("utf-8"))
    raw["answer"] = {"accepted": ["成功", "重复"], "busy": ["系统繁忙"]}
    mapping = parse_mapping(raw)
    oa.state.answer_next += ["系统繁忙", "-1:公文标识格式错误"]

    async def go(client):
        with pytest.raises(OaServerFault, match="系统繁忙") as busy:
            await push(client, replace(document(), doc_id="gw.busy"))
        assert disposition(busy.value) is Disposition.RETRY
        with pytest.raises(OaFault, match="-1:公文标识格式错误") as refused:
            await push(client, replace(document(), doc_id="gw.bad"))
        assert disposition(refused.value) is Disposition.GIVE_UP and refused.value.details["answer"] == "-1:公文标识格式错误"
        return await push(client)
    assert asyncio.run(run(go)(OaClient(settings(oa, mapping=mapping)))) == "成功"


def test_a_wsdl_kept_as_a_file_in_the_node_directory(oa, tmp_path):
    import httpx

    wsdl = tmp_path / "GongwenService.wsdl"
    wsdl.write_bytes(httpx.get(oa.wsdl_url).content)  # what an operator saves from the vendor
    assert asyncio.run(run(push)(OaClient(settings(oa, wsdl=str(wsdl))))) == "成功"
    assert [op for op, *_ in oa.state.calls] == ["ReceiveGongwen"]


def test_a_wsdl_with_a_dtd_is_refused_unread(oa, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("机密", "utf-8")
    wsdl = tmp_path / "evil.wsdl"
    wsdl.write_text(f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret}">]>'
                    '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" name="&x;"/>', "utf-8")
    with pytest.raises(OaWsdlMismatch, match="cannot be used"):
        asyncio.run(run(push)(OaClient(settings(oa, wsdl=str(wsdl)))))


def test_a_slow_wsdl_is_loaded_once_however_often_the_pushes_time_out(oa):
    # The OA's web server trickles its WSDL over 6 s (each piece well within the read timeout):
    # every push times out at 1 s, and each used to start a load of its own in a worker thread.
    oa.state.wsdl_delay = 6.0

    async def go(client):
        for _ in range(4):
            with pytest.raises(OaUnavailable) as caught:
                await push(client)
            assert caught.value.code == "OA_TIMEOUT"
        assert oa.state.wsdl_fetches == 1  # the others waited for that one load
        for _ in range(30):  # once the load is done, a push passes with it
            with contextlib.suppress(OaUnavailable):
                return await push(client)
        raise AssertionError("the WSDL never finished loading")
    # 重复 when a push that timed out on our side had reached the OA after the load (a loaded machine)
    assert asyncio.run(run(go)(OaClient(settings(oa, timeout_seconds=1.0)))) in {"成功", "重复"}
    assert oa.state.wsdl_fetches == 1 and list(oa.state.documents) == ["gw.2026.0001"]


def test_a_413_page_is_final_and_keeps_the_oas_status_and_text(oa):
    oa.state.max_request_bytes = 500  # nginx before the OA: client_max_body_size
    with pytest.raises(OaTooLarge) as caught:
        asyncio.run(run(push)(OaClient(settings(oa))))
    error = caught.value
    assert error.code == "OA_TOO_LARGE" and disposition(error) is Disposition.GIVE_UP  # the same bytes cannot pass
    assert "HTTP 413: 413 Request Entity Too Large 413 Request Entity Too Large nginx/1.0.15" in error.message
    assert error.details["http_status"] == 413 and oa.state.documents == {}


IIS_404_13 = ("<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"\">"
              "<html><head><title>IIS 8.5 详细错误 - 404.13 - Not Found</title></head><body><div id=\"content\">"
              "<h3>HTTP 错误 404.13 - Not Found</h3><h4>请求筛选模块被配置为拒绝超过请求内容长度的请求。</h4>"
              "</div></body></html>")


def test_iis_refusing_a_push_as_too_large_404_13_is_final(oa):
    # IIS's request filtering (maxAllowedContentLength) answers 404 with substatus 13 in its page.
    oa.state.page_next.append(("404 Not Found", "text/html; charset=utf-8", IIS_404_13.encode()))
    with pytest.raises(OaTooLarge) as caught:
        asyncio.run(run(push)(OaClient(settings(oa))))
    assert disposition(caught.value) is Disposition.GIVE_UP and caught.value.details["http_status"] == 404
    assert "404.13" in caught.value.message and "拒绝超过请求内容长度" in caught.value.message
    oa.state.page_next.append(("404 Not Found", "text/html", b"<html><body>404 - File or directory not found.</body></html>"))
    with pytest.raises(OaUnavailable):  # a plain 404 (a wrong endpoint, fixed in node.toml) is retried
        asyncio.run(run(push)(OaClient(settings(oa))))


def test_a_413_sent_before_the_body_is_read_is_final(oa):
    # nginx refuses on the Content-Length alone: it answers 413 at once, then reads and drops the rest.
    import socket
    import threading

    page = b"<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"
    listener = socket.create_server(("127.0.0.1", 0))

    def nginx() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(page), page))
            conn.shutdown(socket.SHUT_WR)  # its lingering close: the answer is out, the rest is drained
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                while conn.recv(1 << 16):
                    pass
    threading.Thread(target=nginx, daemon=True).start()
    big = replace(document(), body=b"%PDF" + b"x" * (8 << 20))
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}/gwjh/GongwenService"
    try:
        with pytest.raises(OaTooLarge, match="HTTP 413: 413 Request Entity Too Large nginx"):
            asyncio.run(run(lambda c: push(c, big))(OaClient(settings(oa, endpoint=endpoint))))
    finally:
        listener.close()


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_page_is_retried_with_its_status_and_text(oa, status):
    oa.state.html_error_next.append(status)

    async def go(client):
        with pytest.raises(OaUnavailable) as caught:
            await push(client)
        assert disposition(caught.value) is Disposition.RETRY and caught.value.details["http_status"] == status
        assert f"with HTTP {status}: {status} " in caught.value.message and "nginx/1.0.15" in caught.value.message
        return await push(client)  # the proxy's trouble passed
    assert asyncio.run(run(go)(OaClient(settings(oa)))) == "成功"


def test_a_page_that_is_not_soap_is_retried_with_its_text(oa):
    oa.state.html_error_next.append(200)  # a maintenance page answered 200, as some portals do
    with pytest.raises(OaUnavailable) as caught:
        asyncio.run(run(push)(OaClient(settings(oa))))
    assert "is not SOAP (HTTP 200, text/html): 200 OK 200 OK nginx/1.0.15" in caught.value.message
    assert disposition(caught.value) is Disposition.RETRY


def test_an_xml_page_that_quotes_an_envelope_is_not_taken_for_soap(oa):
    # An ESB before the OA answers its own error, quoting the request: an Envelope in the first
    # 2 KiB, but not the first element.
    page = ('<?xml version="1.0" encoding="UTF-8"?><esb:error xmlns:esb="urn:esb:2010"><esb:request>'
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>'
            '</esb:request><esb:reason>后端服务不可用</esb:reason></esb:error>')
    oa.state.page_next.append(("500 Internal Server Error", "text/xml; charset=utf-8", page.encode()))  # where a SOAP fault comes
    with pytest.raises(OaUnavailable) as caught:
        asyncio.run(run(push)(OaClient(settings(oa))))
    assert caught.value.details["http_status"] == 500 and "后端服务不可用" in caught.value.message
    assert disposition(caught.value) is Disposition.RETRY


def test_an_error_page_is_cut_to_its_text():
    page = ("<html><head><meta charset=gbk><title>系统错误</title><style>p{color:red}</style>"
            "<script>var x = '<b>';</script></head><body><p>上传文件超过限制&nbsp;(10MB)</p>"
            + "<p>详细信息</p>" * 200 + "</body></html>").encode("gbk")
    text = excerpt_of(page, "text/html", None)
    assert text.startswith("系统错误 上传文件超过限制 (10MB) 详细信息") and len(text) == EXCERPT_CHARS
    assert "color" not in text and "var x" not in text and text.endswith("…")


@pytest.mark.parametrize(("authentication", "kind"), [("ws_security", "PasswordText"),
                                                      ("ws_security_digest", "PasswordDigest")])
def test_ws_security_username_token_to_the_oa(oa, authentication, kind):
    oa.state.wsse = ("gwx", "口令-2009")
    with pytest.raises(OaServerFault, match="用户名或口令错误 \\(it refused our credentials") as caught:
        asyncio.run(run(push)(OaClient(settings(oa, username="gwx", password="wrong",
                                                authentication=authentication))))
    assert disposition(caught.value) is Disposition.RETRY  # as a 401: fixed in node.toml, then it passes
    assert oa.state.documents == {}
    ok = settings(oa, username="gwx", password="口令-2009", authentication=authentication)
    assert asyncio.run(run(push)(OaClient(ok))) == "成功"
    assert oa.state.wsse_seen == [kind, kind] and list(oa.state.documents) == ["gw.2026.0001"]


def test_a_password_digest_carries_a_utc_created_in_z_and_a_fresh_nonce_per_call(oa):
    # Legacy WS-Security stacks (WSS4J 1.5, WSE 3) read wsu:Created as xs:dateTime ending in Z only.
    oa.state.wsse = ("gwx", "口令-2009")
    ok = settings(oa, username="gwx", password="口令-2009", authentication="ws_security_digest")

    async def go(client):
        return [await push(client), await push(client)]
    assert asyncio.run(run(go)(OaClient(ok))) == ["成功", "重复"]
    (created_1, nonce_1), (created_2, nonce_2) = oa.state.wsse_digests
    assert created_1.endswith("Z") and created_2.endswith("Z") and "+00:00" not in created_1 + created_2
    assert nonce_1 and nonce_1 != nonce_2  # a replay of one token would be refused by such a stack


def test_an_oa_whose_wsdl_offers_only_soap_1_2():
    with LegacyOa(soap12=True) as oa12:
        import httpx
        from lxml import etree

        wsdl = etree.fromstring(httpx.get(oa12.wsdl_url).content)
        assert wsdl.findall(".//{http://schemas.xmlsoap.org/wsdl/soap12/}binding")
        assert not wsdl.findall(".//{http://schemas.xmlsoap.org/wsdl/soap/}binding")  # no SOAP 1.1 binding
        oa12.state.fault_next += [("Client", "文种代码[06]不存在"), ("Server", "数据库连接失败")]

        async def go(client):
            with pytest.raises(OaFault, match="文种代码") as sender:
                await push(client)
            with pytest.raises(OaServerFault, match="数据库连接失败") as receiver:
                await push(client)
            assert disposition(sender.value) is Disposition.GIVE_UP and disposition(receiver.value) is Disposition.RETRY
            return await push(client)
        assert asyncio.run(run(go)(OaClient(settings(oa12)))) == "成功"
        assert oa12.state.documents["gw.2026.0001"]["fj"] == [("附件1.pdf", b"one"), ("附件2.ofd", b"two")]
