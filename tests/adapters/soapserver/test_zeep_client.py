"""A client we did not write: zeep builds itself from the WSDL a running node publishes (fetched
over HTTP, nothing else given) and runs every operation, SOAP 1.1 and 1.2, with WS-Security and
with a bearer header, inline and MTOM; every message that travelled validates against the schema
the node publishes (checked by xmlschema, not by the node's own validator)."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
import xmlschema
import zeep
from lxml import etree
from zeep.wsse.username import UsernameToken

from tests.adapters.soapserver.zeep_support import WireTransport, mtom_parts, wire_envelope
from tests.node.network.network_support import (
    CITY,
    CITY_LOCAL,
    clerk_name,
    notice_meta,
    start_network,
    stop_network,
)

pytestmark = pytest.mark.slow
SOAP12_PORT = ("GwxOaService", "ClerkSoap12")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    net = start_network(tmp_path_factory.mktemp("soap-zeep"), {"city": ([CITY, CITY_LOCAL], {})})
    yield net, net.nodes["city"]
    stop_network(net)


def wsdl_url(node) -> str:
    return node.ready["local_url"] + "/soap/v1/documents?wsdl"


def client(node, unit: str, **transport) -> zeep.Client:
    """A zeep client from the published WSDL alone; the clerk's token in a UsernameToken (default)
    or, with bearer=True, in the Authorization header."""
    token = node.tokens[f"clerk-{unit}"]
    if transport.pop("bearer", False):
        return zeep.Client(wsdl_url(node), transport=WireTransport(bearer=token, **transport))
    return zeep.Client(wsdl_url(node), transport=WireTransport(**transport),
                       wsse=UsernameToken(clerk_name(unit), token))


def published_schema(node) -> xmlschema.XMLSchema:
    url = node.ready["local_url"] + "/soap/v1/gwx-oa.xsd"
    with urllib.request.urlopen(url) as answer:
        return xmlschema.XMLSchema(answer.read().decode())


def check_wire(schema: xmlschema.XMLSchema, *clients: zeep.Client) -> int:
    """Every request and answer the clients exchanged: the Body's element valid per the schema."""
    checked = 0
    for c in clients:
        for exchange in c.transport.wire:
            for content_type, data in ((exchange.request_type, exchange.request),
                                       (exchange.answer_type, exchange.answer)):
                root = wire_envelope(content_type, data)
                soap = etree.QName(root).namespace
                element = next(e for e in root.find(f"{{{soap}}}Body") if isinstance(e.tag, str))
                if etree.QName(element).localname == "Fault":
                    element = next(element.iter("{urn:gwx:oa:v1}GwxFault"))
                schema.validate(etree.tostring(element).decode())
                checked += 1
    return checked


def test_zeep_runs_every_operation_from_the_published_wsdl(node, tmp_path):
    net, city = node
    sender = client(city, CITY)
    receiver = client(city, CITY_LOCAL, bearer=True)
    pdf = net.body.read_bytes()

    # 发文, inline base64 (SOAP 1.1, UsernameToken)
    sent = sender.service.SubmitDocument(metaJson=json.dumps(notice_meta(CITY, [CITY_LOCAL]), ensure_ascii=False),
                                         body=pdf, attachment=[{"name": "附件1.txt", "content": "说明".encode()}])
    assert [r.unit for r in sent.recipient] == [CITY_LOCAL]
    doc1 = sent.docId

    # 发文 as MTOM: a 3 MiB attachment travels as a binary part
    big = os.urandom(3 * 1024 * 1024)
    mtom_sender = client(city, CITY, mtom=True)
    doc2 = mtom_sender.service.SubmitDocument(metaJson=json.dumps(notice_meta(CITY, [CITY_LOCAL]), ensure_ascii=False),
                                              body=pdf, attachment=[{"name": "监控录像.bin", "content": big}]).docId
    assert mtom_parts(mtom_sender.transport.wire[-1].request_type)

    # 收文列表 (bearer header)
    inbox = receiver.service.ListInbox(limit=10)
    assert {doc1, doc2} <= {item.docId for item in inbox}
    assert all(item.verified for item in inbox)
    assert receiver.service.ListInbox(status="signed_for") == []

    # 取文: inline, then MTOM answered to a client that accepts it
    fetched = receiver.service.FetchDocument(docId=doc1)
    assert fetched.body.startswith(b"%PDF") and fetched.attachment[0].content == "说明".encode()
    assert json.loads(fetched.verificationJson)["ok"] is True
    assert json.loads(fetched.metaJson)["title"] == fetched.item.title
    mtom_receiver = client(city, CITY_LOCAL, accept_mtom=True)
    fetched2 = mtom_receiver.service.FetchDocument(docId=doc2)
    assert fetched2.attachment[0].name == "监控录像.bin" and fetched2.attachment[0].content == big
    assert mtom_parts(mtom_receiver.transport.wire[-1].answer_type)
    assert receiver.service.FetchDocument(docId=doc2, withContent=False).body is None

    # 签收, 登记, 退回
    assert receiver.service.SignFor(docId=doc1).status == "signed_for"
    registered = receiver.service.RegisterDocument(docId=doc1)
    assert registered.status == "registered" and registered.signedBy == clerk_name(CITY_LOCAL)
    returned = receiver.service.ReturnDocument(docId=doc2, reason="附件格式不符，请重新发送")
    assert returned.status == "returned" and returned.returnReason == "附件格式不符，请重新发送"

    # 跟踪 (SOAP 1.2), 催办, 撤回
    tracking = sender.bind(*SOAP12_PORT).TrackDocument(docId=doc1)
    assert [(r.unit, r.status) for r in tracking.recipient] == [(CITY_LOCAL, "signed_for")]
    assert tracking.document.docId == doc1
    doc3 = sender.service.SubmitDocument(metaJson=json.dumps(notice_meta(CITY, [CITY_LOCAL]), ensure_ascii=False),
                                         body=pdf).docId
    urged = sender.service.UrgeDocument(docId=doc3)
    assert urged.recipient[0].urgeCount == 1
    recalled = sender.bind(*SOAP12_PORT).RecallDocument(docId=doc3, unit=[CITY_LOCAL])
    assert recalled.recipient[0].status == "recalled"

    # A refusal is a fault whose detail carries the code, in both SOAP versions
    for service, soap_code in ((receiver.service, "soap:Client"), (receiver.bind(*SOAP12_PORT), "soap:Sender")):
        with pytest.raises(zeep.exceptions.Fault) as fault:
            service.SignFor(docId=doc3)  # recalled: 签收 no longer applies
        assert fault.value.code == soap_code and "已撤回" in fault.value.message
        assert fault.value.detail.find(".//{urn:gwx:oa:v1}code").text == "STATE_ILLEGAL_TRANSITION"
    with pytest.raises(zeep.exceptions.Fault) as fault:
        sender.service.FetchDocument(docId=doc1)  # the sender did not receive it
    assert fault.value.detail.find(".//{urn:gwx:oa:v1}code").text == "API_NOT_FOUND"

    clients = (sender, receiver, mtom_sender, mtom_receiver)
    assert check_wire(published_schema(city), *clients) >= 30
