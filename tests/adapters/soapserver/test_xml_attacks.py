"""XML that attacks the SOAP endpoint (adapters issue §3): each is a fault with its own code,
nothing is stored (no document sent or acted on, no temp file left), no file or URL is read, the
node keeps serving, and memory is bounded by construction — the caps tested here (envelope size,
declared length, depth) — and, in ``test_soap_memory.py``, measured on a real node process."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.soapserver.endpoint import ENVELOPE_MAX
from node.config import Limits
from tests.adapters.soapserver.soap_support import (
    ENDPOINT,
    GWX,
    SOAP11,
    call,
    envelope,
    expect_fault,
    fault_of,
    headers,
    nothing_stored,
    ok,
    run_soap,
    submit_children,
)
from tests.node.api.local_api_support import make_env, outbox_of_a, still_serving


class Listener:
    """A web server on loopback that counts requests: an external DTD or entity fetched would show."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'<!ENTITY leak "leaked">')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def with_doctype(doctype: str, doc_id: str = "&e;", operation: str = "SignFor") -> bytes:
    return (f'<?xml version="1.0"?>\n{doctype}\n<soap:Envelope xmlns:soap="{SOAP11}" xmlns:gwx="{GWX}"><soap:Body>'
            f"<gwx:{operation}><gwx:docId>{doc_id}</gwx:docId></gwx:{operation}></soap:Body></soap:Envelope>").encode()


def laughs(levels: int = 10) -> str:
    entities = '<!ENTITY e0 "lol">' + "".join(
        f'<!ENTITY e{n} "{("&e" + str(n - 1) + ";") * 10}">' for n in range(1, levels))
    return f"<!DOCTYPE soap:Envelope [{entities}<!ENTITY e \"&e{levels - 1};\">]>"


def test_entities_and_dtds_are_refused_and_nothing_is_read_or_fetched(tmp_path, listener):
    env = make_env(tmp_path)
    attacks = {
        "xxe file": '<!DOCTYPE soap:Envelope [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
        "xxe url": f'<!DOCTYPE soap:Envelope [<!ENTITY e SYSTEM "{listener.url}/entity">]>',
        "external dtd": f'<!DOCTYPE soap:Envelope SYSTEM "{listener.url}/evil.dtd">',
        "parameter entity": f'<!DOCTYPE soap:Envelope [<!ENTITY % p SYSTEM "{listener.url}/p.dtd"> %p;]>',
        "billion laughs": laughs(),
        "quadratic blow-up": '<!DOCTYPE soap:Envelope [<!ENTITY e "' + "A" * 50_000 + '">]>',
    }

    async def scenario(client):
        doc_id = await sent_document(client, env)
        for name, doctype in attacks.items():
            refs = "&e;" * 2000 if name == "quadratic blow-up" else "&e;"
            started = time.monotonic()
            response = await client.post(ENDPOINT, data=with_doctype(doctype, refs), headers=headers("SignFor"))
            body = await response.read()
            assert b"root:" not in body and b"leaked" not in body and b"lol" not in body, name
            await expect_fault_bytes(response, body, "SOAP_DTD_FORBIDDEN")
            assert time.monotonic() - started < 5, name
        assert listener.hits == []
        await untouched(client, env, doc_id)
    run_soap(env, scenario)


async def expect_fault_bytes(response, body: bytes, code: str) -> None:
    assert response.status == 500
    assert fault_of(body)["gwx_code"] == code, body[:300]


async def sent_document(client, env) -> str:
    """A document clerk A sent to B, which the attacks aim at (each would 签收 or act on it)."""
    answer = await ok(await call(client, "SubmitDocument", submit_children(), token=env.clerk_a))
    return answer.findtext(f"{{{GWX}}}docId")


async def untouched(client, env, doc_id: str) -> None:
    """Nothing happened: the one document is still pending at B, no other was sent, no temp file is
    left, and the node answers."""
    inbox = await ok(await call(client, "ListInbox", token=env.clerk_b))
    assert [(i.findtext(f"{{{GWX}}}docId"), i.findtext(f"{{{GWX}}}status")) for i in inbox] == [(doc_id, "pending")]
    assert len(await outbox_of_a(client, env)) == 1
    nothing_stored(env)
    await still_serving(client)


def test_deep_nesting_huge_text_and_wrong_namespaces(tmp_path):
    env = make_env(tmp_path)

    async def scenario(client):
        doc_id = await sent_document(client, env)
        deep = "<a>" * 100_000 + "</a>" * 100_000
        await expect_fault(await call(client, "SignFor", f"<gwx:docId>{doc_id}</gwx:docId>{deep}",
                                      token=env.clerk_b), "SOAP_TOO_DEEP")
        huge = "x" * (ENVELOPE_MAX + 1024)
        await expect_fault(await call(client, "SignFor", f"<gwx:docId>{huge}</gwx:docId>", token=env.clerk_b),
                           "SOAP_TOO_LARGE")
        big_but_allowed = "x" * (ENVELOPE_MAX // 2)  # under the cap: the schema's 128 characters refuse it
        await expect_fault(await call(client, "SignFor", f"<gwx:docId>{big_but_allowed}</gwx:docId>",
                                      token=env.clerk_b), "SOAP_INVALID_MESSAGE")
        wrong_envelope = envelope("SignFor", f"<gwx:docId>{doc_id}</gwx:docId>", token=env.clerk_b).replace(
            SOAP11.encode(), b"http://schemas.example.com/soap/envelope/")
        await expect_fault(await client.post(ENDPOINT, data=wrong_envelope, headers=headers("SignFor")),
                           "SOAP_VERSION_MISMATCH", soap_code="VersionMismatch")  # more in test_soap_versions.py
        wrong_operation = envelope("SignFor", f"<gwx:docId>{doc_id}</gwx:docId>", token=env.clerk_b).replace(
            f'xmlns:gwx="{GWX}"'.encode(), b'xmlns:gwx="urn:gwx:oa:v0"')
        await expect_fault(await client.post(ENDPOINT, data=wrong_operation, headers={
            "Content-Type": "text/xml"}), "SOAP_UNKNOWN_OPERATION")
        unqualified = envelope("SignFor", f"<docId>{doc_id}</docId>", token=env.clerk_b)
        await expect_fault(await client.post(ENDPOINT, data=unqualified, headers=headers("SignFor")),
                           "SOAP_INVALID_MESSAGE")
        await untouched(client, env, doc_id)
    run_soap(env, scenario)


def test_a_soap_action_that_lies_is_refused(tmp_path):
    env = make_env(tmp_path)

    async def scenario(client):
        doc_id = await sent_document(client, env)
        body = envelope("SignFor", f"<gwx:docId>{doc_id}</gwx:docId>", token=env.clerk_b)
        response = await client.post(ENDPOINT, data=body, headers=headers("SignFor", action=f"{GWX}#ListInbox"))
        await expect_fault(response, "SOAP_ACTION_MISMATCH")
        body12 = envelope("SignFor", f"<gwx:docId>{doc_id}</gwx:docId>", token=env.clerk_b, version="1.2")
        response = await client.post(ENDPOINT, data=body12, headers=headers("SignFor", "1.2", action="urn:other#SignFor"))
        await expect_fault(response, "SOAP_ACTION_MISMATCH", version="1.2", soap_code="Sender")
        await untouched(client, env, doc_id)
        # An empty action is no lie (WS-I: the Body says what is asked).
        response = await client.post(ENDPOINT, data=body, headers=headers("SignFor", action=""))
        assert (await ok(response)).findtext(f"{{{GWX}}}item/{{{GWX}}}status") == "signed_for"
    run_soap(env, scenario)


async def raw_request(client, head: str, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``) over a bare socket, never the rest; the whole answer (a fault)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head.encode() + body)
    await writer.drain()
    answer = b""
    while b"</soap:Envelope>" not in answer:  # aiohttp lingers before closing: the answer is what counts
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, answer
        answer += chunk
    writer.close()
    return answer


def test_a_declared_length_of_2_gb_is_refused_before_anything_is_read(tmp_path):
    env = make_env(tmp_path, limits=Limits())  # the default limits: 2 GiB + 64 MiB envelopes

    async def scenario(client):
        doc_id = await sent_document(client, env)
        started = time.monotonic()
        head = (f"POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
                f'SOAPAction: "{GWX}#SignFor"\r\nContent-Length: 2000000000\r\n\r\n')
        answer = await raw_request(client, head, b"<soap:Envelope")
        assert answer.startswith(b"HTTP/1.1 500") and b"SOAP_TOO_LARGE" in answer
        assert b"Connection: close" in answer
        assert time.monotonic() - started < 5
        # As MTOM the same claim fits the limits; the sender then stops after 1 MiB and hangs up.
        xml = envelope("SubmitDocument", submit_children(), token=env.clerk_a)
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Type: application/xop+xml; type=\"text/xml\"\r\nContent-ID: <r>\r\n\r\n"
                ).encode() + xml_with_include(xml) + (f"\r\n--{boundary}\r\nContent-ID: <p1>\r\n\r\n").encode() \
            + b"\0" * (1 << 20)
        head = (f"POST {ENDPOINT} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/related; type=\"application/xop+xml\"; "
                f"boundary={boundary}\r\nContent-Length: 2000000000\r\n\r\n")
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(head.encode() + body)
        await writer.drain()
        for _ in range(100):  # the node has the envelope and is writing the part to a temp file
            if list(env.upload_dir.glob("upload-*.part")):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the node never started writing the MTOM part")
        writer.close()
        for _ in range(200):  # the node sees the connection end and removes what it wrote
            if not list(env.upload_dir.glob("*")):
                break
            await asyncio.sleep(0.05)
        await untouched(client, env, doc_id)
    run_soap(env, scenario)


def xml_with_include(xml: bytes) -> bytes:
    """A SubmitDocument envelope whose body is the MTOM part <p1>."""
    start = xml.index(b"<gwx:body>") + len(b"<gwx:body>")
    end = xml.index(b"</gwx:body>")
    return (xml[:start] + b'<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:p1"/>'
            + xml[end:])


def test_envelopes_held_in_memory_by_all_requests_together_are_bounded(tmp_path):
    """Past the budget a request is refused as transient (a Server fault: send again later), and the
    bytes of a finished request are given back."""
    env = make_env(tmp_path)

    async def scenario(client):
        doc_id = await sent_document(client, env)
        padding = f"<!-- {'x' * (2 * 1024 * 1024)} -->"
        response = await client.post(ENDPOINT, data=envelope("ListInbox", padding, token=env.clerk_b),
                                     headers=headers("ListInbox"))
        await expect_fault(response, "NODE_UNAVAILABLE", soap_code="Server")
        for _ in range(20):  # each well under the budget, one after the other: all taken
            await ok(await call(client, "ListInbox", f"<!-- {'x' * 500_000} -->", token=env.clerk_b))
        await untouched(client, env, doc_id)
    run_soap(env, scenario, envelopes_in_memory=1024 * 1024)
