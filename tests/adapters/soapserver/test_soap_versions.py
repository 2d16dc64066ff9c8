"""An envelope that is not the SOAP version of the binding it came by is a VersionMismatch fault.

SOAP 1.1 §4.1.2 and §4.4.1: an Envelope in another namespace is a version error, answered with the
``VersionMismatch`` faultcode in a SOAP 1.1 envelope. SOAP 1.2 part 1 §5.4.6 and §5.4.7: a root that
is not the SOAP 1.2 Envelope is ``env:VersionMismatch``, with an ``Upgrade`` header block naming the
envelopes the node takes; appendix A: a SOAP 1.1 envelope is answered with a SOAP 1.1 fault. Part 2
(HTTP binding): a VersionMismatch or MustUnderstand fault is HTTP 500, only a Sender fault 400.
Checked with raw HTTP and with zeep, whose SOAP stack reads the fault code.
"""

from __future__ import annotations

import pytest
import zeep
from lxml import etree
from zeep.wsse.username import UsernameToken

from tests.adapters.soapserver.soap_support import (
    ENDPOINT,
    SOAP11,
    SOAP12,
    envelope,
    expect_fault,
    headers,
    nothing_stored,
    run_soap,
    soap_server,
)
from tests.node.api.local_api_support import make_env, still_serving

WRONG = "http://schemas.example.com/soap/envelope/"
SIGN_FOR = "<gwx:docId>no-such-document</gwx:docId>"


def upgrade_offers(body: bytes) -> list[str]:
    """The envelopes an Upgrade header block offers (namespace URIs of their qnames), in its order."""
    root = etree.fromstring(body)
    soap = etree.QName(root).namespace
    found = root.findall(f"{{{soap}}}Header/{{{SOAP12}}}Upgrade/{{{SOAP12}}}SupportedEnvelope")
    offers = []
    for supported in found:
        prefix, _, local = supported.get("qname").partition(":")
        assert local == "Envelope"
        offers.append(supported.nsmap[prefix])
    return offers


@pytest.mark.parametrize(("sent_as", "envelope_ns", "answered_in"), [
    ("1.1", WRONG, "1.1"),  # SOAP 1.1 §4.1.2
    ("1.2", WRONG, "1.2"),  # SOAP 1.2 part 1 §5.4.7
    ("1.1", SOAP12, "1.1"),  # a SOAP 1.2 envelope sent as text/xml: the SOAP 1.1 binding answers
    ("1.2", SOAP11, "1.1"),  # a SOAP 1.1 envelope sent as application/soap+xml: appendix A
], ids=["1.1-wrong-namespace", "1.2-wrong-namespace", "1.2-envelope-as-text-xml", "1.1-envelope-as-soap+xml"])
def test_an_envelope_of_another_version_is_a_version_mismatch_fault(tmp_path, sent_as, envelope_ns, answered_in):
    env = make_env(tmp_path)
    body = envelope("SignFor", SIGN_FOR, token=env.clerk_b, version="1.1").replace(SOAP11.encode(),
                                                                                  envelope_ns.encode())

    async def scenario(client):
        response = await client.post(ENDPOINT, data=body, headers=headers("SignFor", sent_as))
        await expect_fault(response, "SOAP_VERSION_MISMATCH", version=answered_in, soap_code="VersionMismatch")
        assert upgrade_offers(await response.read()) == [SOAP12, SOAP11]
        await still_serving(client)
        nothing_stored(env)
    run_soap(env, scenario)


def test_a_root_that_is_not_an_envelope_is_a_version_mismatch_fault(tmp_path):
    env = make_env(tmp_path)
    body = f'<soap:Body xmlns:soap="{SOAP12}"><x/></soap:Body>'.encode()

    async def scenario(client):
        response = await client.post(ENDPOINT, data=body, headers=headers("SignFor", "1.2"))
        await expect_fault(response, "SOAP_VERSION_MISMATCH", version="1.2", soap_code="VersionMismatch")
    run_soap(env, scenario)


def test_a_header_not_understood_is_a_must_understand_fault_in_both_versions(tmp_path):
    env = make_env(tmp_path)

    async def scenario(client):
        for version in ("1.1", "1.2"):
            soap = SOAP11 if version == "1.1" else SOAP12
            must = f'<x:Trace xmlns:x="urn:other" xmlns:s="{soap}" s:mustUnderstand="1"/>'
            response = await client.post(ENDPOINT, data=envelope("ListInbox", header=must, version=version),
                                         headers=headers("ListInbox", version))
            await expect_fault(response, "SOAP_MUST_UNDERSTAND", version=version, soap_code="MustUnderstand")
            assert upgrade_offers(await response.read()) == []
    run_soap(env, scenario)


class WrongNamespace(zeep.Transport):
    """zeep's transport, as an OA stack that writes the Envelope in a namespace of its own."""

    def post_xml(self, address, envelope, headers):
        message = etree.tostring(envelope)
        for namespace in (SOAP11, SOAP12):
            message = message.replace(namespace.encode(), WRONG.encode())
        return self.post(address, message, headers)


@pytest.mark.parametrize("port", [None, ("GwxOaService", "ClerkSoap12")], ids=["soap11", "soap12"])
def test_zeep_reads_a_version_mismatch_fault(tmp_path, port):
    env = make_env(tmp_path)
    with soap_server(env) as server:
        client = zeep.Client(server.url + ENDPOINT + "?wsdl", transport=WrongNamespace(),
                             wsse=UsernameToken("clerk", env.clerk_b))
        service = client.bind(*port) if port else client.service
        with pytest.raises(zeep.exceptions.Fault) as fault:
            service.SignFor(docId="no-such-document")
        assert fault.value.code == "soap:VersionMismatch"
        assert "SOAP 1.1" in fault.value.message and "1.2" in fault.value.message


NEXT = {"1.1": "http://schemas.xmlsoap.org/soap/actor/next", "1.2": f"{SOAP12}/role/next"}


def with_block(body: bytes, block: str) -> bytes:
    return body.replace(b"</soap:Header>", block.encode() + b"</soap:Header>", 1)


@pytest.mark.parametrize(("version", "target", "ours"), [
    ("1.1", None, True), ("1.1", NEXT["1.1"], True), ("1.1", "urn:the-oa-gateway", False),
    ("1.2", None, True), ("1.2", NEXT["1.2"], True), ("1.2", f"{SOAP12}/role/ultimateReceiver", True),
    ("1.2", f"{SOAP12}/role/none", False), ("1.2", "urn:the-oa-gateway", False),
], ids=["1.1-no-actor", "1.1-next", "1.1-other-actor", "1.2-no-role", "1.2-next", "1.2-ultimate-receiver",
        "1.2-none", "1.2-other-role"])
def test_must_understand_binds_only_blocks_aimed_at_this_node(tmp_path, version, target, ours):
    """SOAP 1.1 §4.2.2–4.2.3, SOAP 1.2 part 1 §2.2, §5.2.2–5.2.3: a block whose actor/role is another
    node (or 'none') is not this node's to understand, mustUnderstand or not; the request is served."""
    env = make_env(tmp_path)
    soap = SOAP11 if version == "1.1" else SOAP12
    aim = "" if target is None else f' s:{"actor" if version == "1.1" else "role"}="{target}"'
    block = f'<x:Trace xmlns:x="urn:other" xmlns:s="{soap}" s:mustUnderstand="1"{aim}/>'
    body = with_block(envelope("ListInbox", token=env.clerk_b, version=version), block)

    async def scenario(client):
        response = await client.post(ENDPOINT, data=body, headers=headers("ListInbox", version))
        if ours:
            await expect_fault(response, "SOAP_MUST_UNDERSTAND", version=version, soap_code="MustUnderstand")
        else:
            assert response.status == 200, await response.text()
    run_soap(env, scenario)


def test_a_must_understand_fault_names_the_blocks_and_keeps_soap_11_detail_for_the_body(tmp_path):
    """SOAP 1.2 part 1 §5.4.8: a NotUnderstood header block per block not understood, its qname
    resolving to the block's name. SOAP 1.1 §4.4: detail is for errors of the Body only, so a header's
    fault carries its code in a header entry of the fault instead."""
    env = make_env(tmp_path)
    blocks = {"1.1": f'<x:Trace xmlns:x="urn:other" xmlns:s="{SOAP11}" s:mustUnderstand="1"/>',
              "1.2": f'<x:Trace xmlns:x="urn:other" xmlns:s="{SOAP12}" s:mustUnderstand="true"/>'
                     f'<y:Audit xmlns:y="urn:another" xmlns:s="{SOAP12}" s:mustUnderstand="1"/>'}

    async def scenario(client):
        for version in ("1.1", "1.2"):
            body = with_block(envelope("ListInbox", token=env.clerk_b, version=version), blocks[version])
            response = await client.post(ENDPOINT, data=body, headers=headers("ListInbox", version))
            await expect_fault(response, "SOAP_MUST_UNDERSTAND", version=version, soap_code="MustUnderstand")
            root = etree.fromstring(await response.read())
            if version == "1.1":
                assert root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault/detail") is None
                continue
            named = []
            for block in root.findall(f"{{{SOAP12}}}Header/{{{SOAP12}}}NotUnderstood"):
                prefix, _, local = block.get("qname").partition(":")
                named.append(f"{{{block.nsmap[prefix]}}}{local}")
            assert named == ["{urn:other}Trace", "{urn:another}Audit"]
    run_soap(env, scenario)
