"""Malformed requests on every route of a running node, peer API and local API alike.

Whatever arrives — garbage, the wrong content type, a frame cut short, broken JSON, bad query
values, ids that do not exist, no token or a made-up one — the node answers with a 4xx JSON error
carrying a stable UPPER_SNAKE code and a message, never a 500 or a dropped connection, and keeps
serving: every case is followed by a health check, and the module ends with a real exchange.
"""

from __future__ import annotations

import http.client
import json
import re
import struct

import pytest

from exchange_protocol.frame import MAGIC
from node.localnet import send_document
from tests.node.network.network_support import (
    A1,
    CITY,
    ENVELOPE_TYPE,
    RawPeer,
    db_value,
    forge_envelope,
    inbox_item,
    notice_meta,
    start_network,
    tls_context_of,
)

# Real node processes on loopback: `make test` runs them, `make test-fast` leaves them out.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
CODE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("malformed")
    network = start_network(base, {"city": ([CITY], {}), "county-a": ([A1], {})})
    yield network
    # After everything below, the two nodes still exchange a document.
    city, county = network.nodes["city"], network.nodes["county-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), network.body)["doc_id"]
    assert inbox_item(county, A1, doc_id)["verified"] is True
    network.stop_all()


def assert_typed_4xx(status: int, body: bytes, ctype: str, expected: str | set[str] | None = None,
                     http_status: int | None = None) -> str:
    assert 400 <= status < 500, (status, body[:300])
    if http_status is not None:
        assert status == http_status, (status, body[:300])
    assert ctype.startswith("application/json"), (ctype, body[:300])
    error = json.loads(body)["error"]
    assert CODE.fullmatch(error["code"]) and error["message"], error
    if expected is not None:
        allowed = {expected} if isinstance(expected, str) else expected
        assert error["code"] in allowed, error
    return error["code"]


# --- the peer API (mutual TLS) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def peer(net):
    return RawPeer(net.nodes["county-a"], tls_context_of(net.nodes["city"]))


def peer_call(peer: RawPeer, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    conn = http.client.HTTPSConnection(peer.host, peer.port, context=peer.context, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type", "")
    finally:
        conn.close()


def prefix(header_len: int, sig_len: int, payload_len: int, magic: bytes = MAGIC, version: int = 2,
           headers: int = 1) -> bytes:
    return struct.pack(">4sBBHQ", magic, version, 0, headers, payload_len) + struct.pack(">II", header_len, sig_len)


PEER_CASES = [
    ("garbage body", "POST", "/peer/v1/envelopes", b"\x00garbage" * 40, ENVELOPE_TYPE, "ENV_BAD_MAGIC", None),
    ("wrong content type", "POST", "/peer/v1/envelopes", b'{"envelopes": []}', "application/json",
     "API_UNSUPPORTED_MEDIA_TYPE", 415),
    ("no content type", "POST", "/peer/v1/envelopes", b"GWXE", None, "API_UNSUPPORTED_MEDIA_TYPE", 415),
    ("prefix cut short", "POST", "/peer/v1/envelopes", MAGIC + b"\x01\x00", ENVELOPE_TYPE, "ENV_TRUNCATED", None),
    ("frame cut short", "POST", "/peer/v1/envelopes", prefix(50, 50, 100) + b"{" * 60, ENVELOPE_TYPE,
     "ENV_TRUNCATED", None),
    ("unknown frame version", "POST", "/peer/v1/envelopes", prefix(10, 10, 10, version=9) + b"x" * 30,
     ENVELOPE_TYPE, None, None),
    ("no header", "POST", "/peer/v1/envelopes", prefix(10, 10, 10, headers=0) + b"x" * 30,
     ENVELOPE_TYPE, "ENV_MALFORMED_FRAME", None),
    ("too many headers", "POST", "/peer/v1/envelopes", prefix(10, 10, 10, headers=60000) + b"x" * 30,
     ENVELOPE_TYPE, "ENV_TOO_MANY_HEADERS", None),
    ("header table cut short", "POST", "/peer/v1/envelopes", prefix(10, 10, 10, headers=3) + b"x" * 4,
     ENVELOPE_TYPE, "ENV_TRUNCATED", None),
    ("header too large", "POST", "/peer/v1/envelopes", prefix(1 << 30, 10, 10) + b"x" * 30, ENVELOPE_TYPE,
     None, None),
    ("unknown route", "GET", "/peer/v1/nothing-here", None, None, None, 404),
    ("wrong method", "GET", "/peer/v1/envelopes", None, None, None, 405),
    ("wrong method on health", "POST", "/peer/v1/health", b"", ENVELOPE_TYPE, None, 405),
]


@pytest.mark.parametrize("name,method,path,body,ctype,code,http_status", PEER_CASES, ids=[c[0] for c in PEER_CASES])
def test_peer_api_refuses_malformed_requests_with_a_typed_error(peer, name, method, path, body, ctype, code,
                                                               http_status):
    headers = {"Content-Type": ctype} if ctype else {}
    status, data, rtype = peer_call(peer, method, path, body, headers)
    assert_typed_4xx(status, data, rtype, code, http_status)
    assert peer.health()["ok"] is True


def test_peer_api_requires_a_content_length(peer):
    def chunks():
        yield b"GWXE"
        yield b"\x01" * 30
    conn = http.client.HTTPSConnection(peer.host, peer.port, context=peer.context, timeout=30)
    try:
        conn.request("POST", "/peer/v1/envelopes", body=chunks(), headers={"Content-Type": ENVELOPE_TYPE},
                     encode_chunked=True)
        resp = conn.getresponse()
        assert_typed_4xx(resp.status, resp.read(), resp.getheader("Content-Type", ""), "API_LENGTH_REQUIRED")
    finally:
        conn.close()
    assert peer.health()["ok"] is True


def test_a_frame_with_a_broken_header_is_refused_alone_in_its_batch(net, peer):
    """Frames that delimit correctly but do not verify get a per-frame error; their neighbours in
    the same request are judged on their own."""
    city, county = net.nodes["city"], net.nodes["county-a"]
    good_id, good = forge_envelope(city, county, from_unit=CITY, to_units=[A1])
    header = b'{"not": "a header"}'
    bad = prefix(len(header), 4, 3) + header + b"sig!" + b"abc"
    status, parsed, raw = peer.post_envelopes(bad + good)
    assert status == 200, raw[:300]
    first, second = parsed["results"]
    assert first["message_id"] is None and CODE.fullmatch(first["error"]["code"])
    assert second["message_id"] == good_id and "receipt" in second
    assert peer.health()["ok"] is True


def test_frames_accepted_before_a_break_in_the_stream_keep_their_receipts(net, peer):
    """A stream that breaks after a good frame: the good frame was committed, so its receipt comes
    back with the error — the sender retries (and gets it again) instead of bouncing a delivered
    document."""
    city, county = net.nodes["city"], net.nodes["county-a"]
    good_id, good = forge_envelope(city, county, from_unit=CITY, to_units=[A1])
    status, parsed, raw = peer.post_envelopes(good + b"NOT A FRAME AT ALL, NOT EVEN A PREFIX")
    assert 400 <= status < 500, raw[:300]
    first, broken = parsed["results"]
    assert first["message_id"] == good_id and "receipt" in first
    assert broken["message_id"] is None and broken["error"]["code"] == "ENV_BAD_MAGIC"
    assert db_value(county, "SELECT COUNT(*) FROM received WHERE message_id = ?", [good_id]) == 1
    assert peer.health()["ok"] is True


def test_the_peer_api_refuses_a_client_without_a_certificate(net):
    import ssl

    county = net.nodes["county-a"]
    ctx = ssl.create_default_context(cafile=str(county.directory / "credentials" / "root.crt"))
    raw = RawPeer(county, ctx)
    try:
        status, parsed, _ = raw.request("GET", "/peer/v1/health")
    except (ssl.SSLError, ConnectionError):
        pass  # refused in the handshake: the certificate is required
    else:
        assert status == 401 and parsed["error"]["code"] == "PEER_IDENTITY"
    assert RawPeer(county, tls_context_of(net.nodes["city"])).health()["ok"] is True


# --- the local API --------------------------------------------------------------------------------
class Local:
    def __init__(self, node) -> None:
        self.node = node
        url = node.ready["local_url"].removeprefix("http://")
        self.host, port = url.rsplit(":", 1)
        self.port = int(port)

    def call(self, method: str, path: str, body: bytes | None = None, *, token: str | None = "clerk",
             ctype: str | None = None) -> tuple[int, bytes, str]:
        headers = {}
        if token == "clerk":
            unit = self.node.units[0]["code"]
            headers["Authorization"] = f"Bearer {self.node.tokens['clerk-' + unit]}"
        elif token == "operator":
            headers["Authorization"] = f"Bearer {self.node.tokens['operator']}"
        elif token is not None:
            headers["Authorization"] = token
        if ctype:
            headers["Content-Type"] = ctype
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type", "")
        finally:
            conn.close()

    def healthy(self) -> bool:
        status, body, _ = self.call("GET", "/healthz", token=None)
        return status == 200 and json.loads(body)["ok"] is True


@pytest.fixture(scope="module")
def local(net):
    return Local(net.nodes["county-a"])


@pytest.fixture(scope="module")
def received_doc(net):
    """A real document in county-a's inbox (for the cases that need an id that exists)."""
    city, county = net.nodes["city"], net.nodes["county-a"]
    doc_id = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
    inbox_item(county, A1, doc_id)
    return doc_id


JSON = "application/json"
LOCAL_CASES = [
    # authentication and roles
    ("no token", "GET", "/api/v1/inbox", None, None, None, "API_UNAUTHENTICATED", 401),
    ("unknown token", "GET", "/api/v1/inbox", None, None, "Bearer gwx_not_a_real_token", "API_UNAUTHENTICATED", 401),
    ("not a bearer token", "GET", "/api/v1/inbox", None, None, "Basic dXNlcjpwdw==", "API_UNAUTHENTICATED", 401),
    ("operator on a clerk route", "GET", "/api/v1/inbox", None, None, "operator", "API_FORBIDDEN", 403),
    ("clerk on an operator route", "GET", "/api/v1/node/status", None, None, "clerk", "API_FORBIDDEN", 403),
    ("clerk on metrics", "GET", "/metrics", None, None, "clerk", "API_FORBIDDEN", 403),
    # routes and methods
    ("unknown route", "GET", "/api/v1/nothing", None, None, "clerk", "API_NOT_FOUND", 404),
    ("wrong method", "DELETE", "/api/v1/inbox", None, None, "clerk", "API_METHOD_NOT_ALLOWED", 405),
    # query values
    ("limit zero", "GET", "/api/v1/inbox?limit=0", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("limit not a number", "GET", "/api/v1/outbox?limit=ten", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("limit too large", "GET", "/api/v1/inbox?limit=100000", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("unknown status", "GET", "/api/v1/inbox?status=lost", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("sender status on the inbox", "GET", "/api/v1/inbox?status=delivered", None, None, "clerk",
     "API_BAD_PARAMETER", 400),
    ("unknown kind", "GET", "/api/v1/inbox?kind=%E5%B0%8F%E8%AF%B4", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("bad unit code", "GET", "/api/v1/inbox?unit=11371302MB00000010", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("bad overdue", "GET", "/api/v1/outbox?overdue=maybe", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("unknown parameter", "GET", "/api/v1/inbox?sort=desc", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("repeated parameter", "GET", "/api/v1/inbox?limit=1&limit=2", None, None, "clerk", "API_BAD_PARAMETER", 400),
    ("bad paging cursor", "GET", "/api/v1/inbox?after=..%2Fetc", None, None, "clerk", "API_BAD_PARAMETER", 400),
    # ids
    ("unknown inbox id", "GET", "/api/v1/inbox/no-such-document", None, None, "clerk", "API_NOT_FOUND", 404),
    ("unknown outbox id", "GET", "/api/v1/outbox/no-such-document", None, None, "clerk", "API_NOT_FOUND", 404),
    ("unknown package", "GET", "/api/v1/inbox/no-such-document/package", None, None, "clerk", "API_NOT_FOUND", 404),
    ("sign for an unknown id", "POST", "/api/v1/inbox/no-such-document/sign-for", b"", JSON, "clerk",
     "API_NOT_FOUND", 404),
    ("recall an unknown id", "POST", "/api/v1/outbox/no-such-document/recall", b"{}", JSON, "clerk",
     "API_NOT_FOUND", 404),
    ("id with a dot-dot", "GET", "/api/v1/inbox/a..b", None, None, "clerk", "API_BAD_DOC_ID", 400),
    ("id with odd characters", "GET", "/api/v1/inbox/%3Cscript%3E", None, None, "clerk", "API_BAD_DOC_ID", 400),
    # bodies
    ("bad JSON", "POST", "/api/v1/inbox/{doc}/return", b'{"reason": ', JSON, "clerk", "API_BAD_JSON", 400),
    ("JSON not an object", "POST", "/api/v1/inbox/{doc}/return", b'["reason"]', JSON, "clerk", "API_BAD_JSON", 400),
    ("duplicate keys", "POST", "/api/v1/inbox/{doc}/return", b'{"reason": "a", "reason": "b"}', JSON, "clerk",
     "API_BAD_JSON", 400),
    ("not UTF-8", "POST", "/api/v1/inbox/{doc}/return", b'{"reason": "\xff\xfe"}', JSON, "clerk", "API_BAD_JSON",
     400),
    ("unknown field", "POST", "/api/v1/inbox/{doc}/sign-for", b'{"force": true}', JSON, "clerk",
     "API_UNKNOWN_FIELD", 400),
    ("reason missing", "POST", "/api/v1/inbox/{doc}/return", b"{}", JSON, "clerk", "API_BAD_FIELD", 400),
    ("reason blank", "POST", "/api/v1/inbox/{doc}/return", b'{"reason": "   "}', JSON, "clerk", None, 400),
    ("reason not a string", "POST", "/api/v1/inbox/{doc}/return", b'{"reason": 5}', JSON, "clerk",
     "API_BAD_FIELD", 400),
    ("wrong content type", "POST", "/api/v1/inbox/{doc}/return", b'{"reason": "x"}', "text/plain", "clerk",
     "API_UNSUPPORTED_MEDIA_TYPE", 415),
    ("units not a list", "POST", "/api/v1/outbox/{doc}/urge", b'{"units": "all"}', JSON, "clerk", "API_BAD_FIELD",
     400),
    ("too large a body", "POST", "/api/v1/inbox/{doc}/return", b'{"reason": "' + b"x" * (2 << 20) + b'"}', JSON,
     "clerk", "API_TOO_LARGE", 413),
    # submissions
    ("submission as JSON", "POST", "/api/v1/documents", b'{"meta": {}}', JSON, "clerk", "API_BAD_MULTIPART", 400),
    ("garbage multipart", "POST", "/api/v1/documents", b"--x\r\ngarbage\r\n", "multipart/form-data; boundary=x",
     "clerk", "API_BAD_MULTIPART", 400),
    ("multipart without parts", "POST", "/api/v1/documents", b"--x--\r\n", "multipart/form-data; boundary=x",
     "clerk", "API_BAD_MULTIPART", 400),
    ("multipart cut short", "POST", "/api/v1/documents",
     b'--x\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n{"kind"',
     "multipart/form-data; boundary=x", "clerk", None, 400),
]


@pytest.mark.parametrize("name,method,path,body,ctype,token,code,http_status", LOCAL_CASES,
                         ids=[c[0] for c in LOCAL_CASES])
def test_local_api_refuses_malformed_requests_with_a_typed_error(local, received_doc, name, method, path, body,
                                                                ctype, token, code, http_status):
    status, data, rtype = local.call(method, path.replace("{doc}", received_doc), body, token=token, ctype=ctype)
    assert_typed_4xx(status, data, rtype, code, http_status)
    assert local.healthy()


def test_refused_requests_left_the_document_untouched(local, received_doc, net):
    """After every malformed 退回/签收/催办 above, the document is still 待签收 and never urged."""
    item = net.nodes["county-a"].clerk(A1).get(f"/api/v1/inbox/{received_doc}")
    assert item["status"] == "pending" and item["urge_count"] == 0 and item["return_reason"] is None
