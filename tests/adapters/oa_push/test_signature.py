"""The mapping checked against the types of the OA's operation signature when the WSDL is loaded —
at node start and by `gwx node check`, not only at the first push — with a typed error naming the
field: the body into a string, a title into base64Binary or xs:int, an attachment field the OA's
item lacks, a date pattern xs:date cannot read."""

from __future__ import annotations

import asyncio
import logging
import tomllib

import pytest

from adapters.oa_push.errors import OaParameterTypeMismatch
from adapters.oa_push.mapping import parse_mapping
from adapters.oa_push.soap_call import OaClient
from tests.adapters.oa_push.legacy_oa import LegacyOa
from tests.adapters.oa_push.test_mapping import EXAMPLE
from tests.adapters.oa_push.test_settings import example_node
from tests.adapters.oa_push.test_soap_call import run, settings
from tests.support import node_check_config_ok, run_gwx

logging.getLogger("spyne").setLevel(logging.CRITICAL)

# A 2012 OA whose WSDL types its fields: 紧急程度 as xs:int, 成文日期 as xs:date.
TYPED_WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
  xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:oa:typed" targetNamespace="urn:oa:typed">
 <types><xs:schema targetNamespace="urn:oa:typed" elementFormDefault="qualified">
  <xs:element name="ReceiveGongwen"><xs:complexType><xs:sequence>
   <xs:element name="gwbs" type="xs:string"/><xs:element name="wjbt" type="xs:string"/>
   <xs:element name="jjcd" type="xs:int"/><xs:element name="cwrq" type="xs:date"/>
   <xs:element name="zw" type="xs:base64Binary"/>
  </xs:sequence></xs:complexType></xs:element>
  <xs:element name="ReceiveGongwenResponse"><xs:complexType><xs:sequence>
   <xs:element name="jg" type="xs:string"/></xs:sequence></xs:complexType></xs:element>
 </xs:schema></types>
 <message name="In"><part name="p" element="tns:ReceiveGongwen"/></message>
 <message name="Out"><part name="p" element="tns:ReceiveGongwenResponse"/></message>
 <portType name="P"><operation name="ReceiveGongwen"><input message="tns:In"/><output message="tns:Out"/></operation></portType>
 <binding name="B" type="tns:P"><soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
  <operation name="ReceiveGongwen"><soap:operation soapAction="ReceiveGongwen"/>
   <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation></binding>
 <service name="S"><port name="SP" binding="tns:B"><soap:address location="http://127.0.0.1:9/oa"/></port></service>
</definitions>
"""


class LegacyOaStub:
    """settings() wants an OA for its URLs; the typed WSDL is a file and never called."""

    wsdl_url = "http://127.0.0.1:9/oa?wsdl"


@pytest.fixture
def oa():
    with LegacyOa() as server:
        yield server


def mapping_with(received: dict | None = None, whole: dict | None = None):
    raw = tomllib.loads(EXAMPLE.read_text("utf-8"))
    raw["received"].update(received or {})
    raw.update(whole or {})
    return parse_mapping(raw)


def check(client: OaClient):
    return asyncio.run(run(lambda c: c.check())(client))


@pytest.mark.parametrize(("received", "field", "says"), [
    ({"wjbt": "body"}, "wjbt", "sends it 'body' (bytes), which needs xs:base64Binary"),
    ({"zw": "title"}, "zw", "types zw as base64Binary, but the mapping's [received] sends it 'title' (free text)"),
    ({"fj": {"attachments": {"fjmc": "name", "fjnr": "name"}, "item": "Fujian"}}, "fj.Fujian.fjnr",
     "types fj.Fujian.fjnr as base64Binary"),
    ({"fj": {"attachments": {"fjmc": "name", "nr": "content"}, "item": "Fujian"}}, "fj.Fujian.nr",
     "which needs a field nr (it has fjmc, fjnr)"),
    ({"fj": {"attachments": {"fjmc": "name", "fjnr": "content"}}}, "fj",
     "which needs a repeated element of a complex type (or item = its array's element)"),
])
def test_a_value_that_does_not_fit_the_oas_type_is_named(oa, received, field, says):
    with pytest.raises(OaParameterTypeMismatch) as caught:
        check(OaClient(settings(oa, mapping=mapping_with(received))))
    assert caught.value.code == "OA_PARAMETER_TYPE" and caught.value.details["field"] == field
    assert says in caught.value.message and caught.value.details["key"] == f"received.{field.split('.')[0]}"
    assert oa.state.calls == []  # found before any push


def test_the_body_as_base64_text_fits_a_base64binary_parameter(oa):
    from tests.adapters.oa_push.test_mapping import document
    from tests.adapters.oa_push.test_soap_call import push

    async def go(client):
        await client.check()  # zw is xs:base64Binary: base64 text is what zeep writes there anyway
        return await push(client)
    assert asyncio.run(run(go)(OaClient(settings(oa, mapping=mapping_with({"zw": "body_base64"}))))) == "成功"
    assert oa.state.documents["gw.2026.0001"]["zw"] == document().body


def test_the_example_mapping_fits_the_legacy_oa(oa):
    check(OaClient(settings(oa)))  # no error
    assert oa.state.wsdl_fetches == 1 and oa.state.calls == []


def test_codes_and_dates_must_parse_as_the_oas_simple_types(tmp_path):
    wsdl = tmp_path / "typed.wsdl"
    wsdl.write_text(TYPED_WSDL, "utf-8")
    fields = {"gwbs": "doc_id", "wjbt": "title", "jjcd": "urgency", "cwrq": "written_on", "zw": "body"}
    good = {"received": fields, "dates": {"date": "%Y-%m-%d"}}
    base = {"mapping": None, "wsdl": str(wsdl), "status_operation": None}

    def client(whole: dict):
        raw = tomllib.loads(EXAMPLE.read_text("utf-8"))
        for key in ("status_change", "status"):
            raw.pop(key)
        raw.update(whole)
        return OaClient(settings(LegacyOaStub, **{**base, "mapping": parse_mapping(raw)}))
    check(client(good))  # "1" "2" "3" are xs:int; 2026-11-20 is an xs:date
    with pytest.raises(OaParameterTypeMismatch, match="cwrq as date.*'written_on' \\(such as '20261120'\\)"):
        check(client({**good, "dates": {"date": "%Y%m%d"}}))
    with pytest.raises(OaParameterTypeMismatch, match="jjcd as int.*'urgency' \\(such as 'T'\\)") as caught:
        check(client({**good, "urgency": {"特提": "T", "急件": "2", "平件": "3"}}))
    assert caught.value.details["field"] == "jjcd"
    with pytest.raises(OaParameterTypeMismatch, match="jjcd as int.*the constant 'x'"):
        check(client({**good, "received": {**fields, "jjcd": {"const": "x"}}}))
    with pytest.raises(OaParameterTypeMismatch, match="jjcd as int.*'body_base64' \\(base64 text\\), which needs "
                       "xs:base64Binary or a string type"):
        check(client({**good, "received": {**fields, "jjcd": "body_base64"}}))
    check(client({**good, "received": {**fields, "zw": "body_base64"}}))  # base64 text into xs:base64Binary


def test_gwx_node_check_checks_the_mapping_against_the_oas_wsdl(oa, tmp_path):
    node = example_node(tmp_path, ('wsdl = "http://10.1.9.20:8080/gwjh/GongwenService?wsdl"',
                                   f'wsdl = "{oa.wsdl_url}"'))
    text = (node / "node.toml").read_text("utf-8")
    (node / "node.toml").write_text(text.replace('port = "GongwenServiceSoap"', ""), "utf-8")
    out = run_gwx("node", "check", "--dir", node, text=True)
    assert node_check_config_ok(out), out.stdout + out.stderr
    assert "WSDL checked: the operations and every mapped parameter's type fit" in out.stdout
    mapping = node / "oa-mapping.toml"
    mapping.write_text(mapping.read_text("utf-8").replace('wjbt = "title"', 'wjbt = "body"'), "utf-8")
    out = run_gwx("node", "check", "--dir", node, text=True)
    assert out.returncode == 5 and "OA_PARAMETER_TYPE" in out.stderr and "types wjbt as string" in out.stderr
    assert "Traceback" not in out.stderr
    oa.down()  # an OA that cannot be reached is reported, not a failure of the configuration
    out = run_gwx("node", "check", "--dir", node, text=True)
    assert node_check_config_ok(out) and "WSDL not checked" in out.stdout, out.stderr


def test_gwx_node_check_keeps_its_limit_on_a_wsdl_that_trickles_in(oa, tmp_path):
    import time

    node = example_node(tmp_path, ('wsdl = "http://10.1.9.20:8080/gwjh/GongwenService?wsdl"',
                                   f'wsdl = "{oa.wsdl_url}"'))
    oa.state.wsdl_delay = 60.0  # each piece well within the read timeout: only the check's 10 s ends it
    started = time.monotonic()
    out = run_gwx("node", "check", "--dir", node, text=True)
    took = time.monotonic() - started
    assert node_check_config_ok(out) and "WSDL not checked" in out.stdout and "within 10 s" in out.stdout, out.stderr
    assert took < 30.0, f"gwx node check took {took:.1f} s on a WSDL that trickles in over 60 s (limit 10 s)"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_node_whose_mapping_does_not_fit_the_oa_refuses_to_start(oa, tmp_path):
    from tests.adapters.oa_push.test_network import add_oa_push
    from tests.node.network.network_support import A1, connect_and_start, new_network, units

    net = new_network(tmp_path)
    node = net.add_node("county-a", units(A1))
    add_oa_push(node.directory, A1, oa, status=False)
    mapping = node.directory / "oa-mapping.toml"
    mapping.write_text(mapping.read_text("utf-8").replace('zw = "body"', 'zw = "title"'), "utf-8")
    try:
        with pytest.raises(RuntimeError, match="OA_PARAMETER_TYPE") as caught:
            connect_and_start(net)
        assert "types zw as base64Binary" in str(caught.value)
    finally:
        net.stop_all()
