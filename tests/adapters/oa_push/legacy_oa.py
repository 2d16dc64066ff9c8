"""A legacy OA system that wants documents pushed to it: a real SOAP server (spyne, used only in the
tests) on loopback with its OWN WSDL, in the style of a 2009 vendor — service GongwenService,
operations ReceiveGongwen and UpdateZhuangtai, pinyin parameter names (gwbs 公文标识, wjbt 文件标题,
fwdw 发文单位, jjcd 紧急程度 …).

It behaves as such an OA does: it records each document once by its 公文标识 (a second push with the
same gwbs is answered "重复" and not recorded again) and each status change once by its event id
(sjbs), while logging every call it gets. The tests steer it: ``down()``/``up()`` stop and restart
it on the same port, ``fault_next`` answers the next calls with a SOAP fault of the given code and
text, ``slow_next`` delays the next answers, ``on_receive`` runs a hook as a document is recorded
(before the answer leaves) and ``after_answer`` once an answer is on the socket (the kill -9 test
uses both). Its web server can misbehave too: ``wsdl_delay`` trickles WSDL answers over that many seconds
(counted in ``wsdl_fetches``), ``wsdl_page`` answers them with an HTML page instead, ``max_request_bytes`` refuses larger requests with nginx's 413 page, and
``html_error_next`` answers the next calls with an HTML error page of the given status,
``page_next`` with a page of its own (status, Content-Type, bytes). With
``streamed`` it reads ReceiveGongwen as a stream (:mod:`.digest_receiver`), keeping the digests of
the body and attachments instead of their bytes, for pushes far larger than spyne can take; it
reads them at ``read_rate`` bytes/s if set, counting what it read in ``bytes_read``.
With ``wsse`` it wants a WS-Security UsernameToken (text or digest) and faults
wsse:FailedAuthentication without one; ``LegacyOa(soap12=True)`` serves SOAP 1.2 alone.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from spyne import Application, ComplexModel, ServiceBase, Unicode, rpc
from spyne.model.binary import ByteArray
from spyne.model.complex import Array
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

NAMESPACE = "http://gwjh.oa-vendor.example/2009/"


class Fujian(ComplexModel):
    """附件: 附件名称, 附件内容."""

    __namespace__ = NAMESPACE
    fjmc = Unicode
    fjnr = ByteArray


@dataclass
class OaState:
    """What the OA has recorded, every call it got, and how the tests want it to misbehave."""

    documents: dict[str, dict] = field(default_factory=dict)  # gwbs → the fields of the first push
    statuses: dict[str, dict] = field(default_factory=dict)  # sjbs → the fields
    calls: list[tuple[str, str, str, float]] = field(default_factory=list)  # (operation, gwbs, sjbs, when)
    fault_next: list[tuple[str, str]] = field(default_factory=list)  # (faultcode, faultstring) per call
    slow_next: list[float] = field(default_factory=list)  # seconds to wait before answering, per call
    duplicate_fault: str | None = None  # fault (Client) on a duplicate instead of answering 重复
    on_receive: object = None  # callable(gwbs) run once a document is recorded, before the answer
    after_answer: object = None  # callable() run once an answer has been written to the socket
    answer_next: list[str] = field(default_factory=list)  # result texts instead of 成功, per recorded call
    basic_auth: tuple[str, str] | None = None  # (user, password) the OA's web server demands, if any
    wsdl_delay: float = 0.0  # seconds before a WSDL request is answered
    wsdl_fetches: int = 0
    wsdl_page: bytes | None = None  # answered (200, text/html) instead of the WSDL: a maintenance page
    max_request_bytes: int | None = None  # a larger request is answered 413 (nginx's page)
    html_error_next: list[int] = field(default_factory=list)  # HTTP statuses answered with an HTML page
    page_next: list[tuple[str, str, bytes]] = field(default_factory=list)  # (status, type, page) per call
    streamed: bool = False  # ReceiveGongwen read by digest_receiver: digests, not bytes
    read_rate: float | None = None  # bytes/s a streamed push is read at (an OA on a slow line)
    bytes_read: int = 0  # of streamed pushes, so far (a push mid-way shows here)
    wsse: tuple[str, str] | None = None  # (user, password) a WS-Security UsernameToken must carry
    wsse_seen: list[str] = field(default_factory=list)  # the password Type of each token checked
    wsse_digests: list[tuple[str, str]] = field(default_factory=list)  # (Created, Nonce) of each digest token
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys_of(self, operation: str) -> list[str]:
        return [gwbs for op, gwbs, _, _ in self.calls if op == operation]


STATE_KEY = "legacy_oa_state"


def _misbehave(ctx, operation: str, gwbs: str, sjbs: str) -> OaState:
    state: OaState = ctx.app.user_data[STATE_KEY]
    with state.lock:
        state.calls.append((operation, gwbs or "", sjbs or "", time.time()))
        delay = state.slow_next.pop(0) if state.slow_next else 0.0
        fault = state.fault_next.pop(0) if state.fault_next else None
    if delay:
        time.sleep(delay)
    if fault is not None:
        raise Fault(faultcode=fault[0], faultstring=fault[1])
    return state


class GongwenService(ServiceBase):
    @rpc(Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, Unicode,
         Unicode, Unicode, ByteArray, Array(Fujian), Unicode,
         _returns=Unicode, _args=(
             "gwbs", "sjbs", "wjbt", "wz", "jjcd", "mj", "fwzh", "fwdw", "fwdwmc", "swdw", "cwrq", "blsx",
             "sdsj", "zw", "fj", "lyxt"))
    def ReceiveGongwen(ctx, gwbs, sjbs, wjbt, wz, jjcd, mj, fwzh, fwdw, fwdwmc, swdw, cwrq, blsx, sdsj, zw, fj,
                       lyxt):
        state = _misbehave(ctx, "ReceiveGongwen", gwbs, sjbs)
        if not gwbs:
            raise Fault(faultcode="Client", faultstring="公文标识(gwbs)不能为空")
        with state.lock:
            if gwbs in state.documents:
                if state.duplicate_fault:
                    raise Fault(faultcode="Client", faultstring=state.duplicate_fault)
                return "重复"
            state.documents[gwbs] = {
                "sjbs": sjbs, "wjbt": wjbt, "wz": wz, "jjcd": jjcd, "mj": mj, "fwzh": fwzh, "fwdw": fwdw,
                "fwdwmc": fwdwmc, "swdw": swdw, "cwrq": cwrq, "blsx": blsx, "sdsj": sdsj,
                "zw": b"".join(zw) if zw else b"", "lyxt": lyxt, "received": time.time(),
                "fj": [(f.fjmc, b"".join(f.fjnr) if f.fjnr else b"") for f in (fj or [])]}
        if callable(state.on_receive):
            state.on_receive(gwbs)
        with state.lock:
            return state.answer_next.pop(0) if state.answer_next else "成功"

    @rpc(Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, _returns=Unicode,
         _args=("gwbs", "sjbs", "zt", "jsdw", "czr", "czsj", "yy"))
    def UpdateZhuangtai(ctx, gwbs, sjbs, zt, jsdw, czr, czsj, yy):
        state = _misbehave(ctx, "UpdateZhuangtai", gwbs, sjbs)
        with state.lock:
            if sjbs in state.statuses:
                return "重复"
            state.statuses[sjbs] = {"gwbs": gwbs, "zt": zt, "jsdw": jsdw, "czr": czr, "czsj": czsj, "yy": yy}
        return "成功"


class _AfterAnswer:
    """WSGI middleware: the web server's HTTP Basic authentication (``state.basic_auth``), and
    ``state.after_answer`` run once the whole answer is on the socket (wsgiref closes the result
    after writing it), so a test can act between the OA's answer and what the caller does with it."""

    def __init__(self, app, state: OaState) -> None:
        self.app, self.state = app, state

    def __call__(self, environ, start_response):
        state = self.state
        wsdl = environ.get("QUERY_STRING", "").lower() == "wsdl"
        if wsdl:
            with state.lock:
                state.wsdl_fetches += 1
        if wsdl and state.wsdl_page is not None:
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return _Answer(state.wsdl_page, state)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if environ["REQUEST_METHOD"] == "POST" and state.page_next:  # an ESB, a gateway, IIS before the OA
            environ["wsgi.input"].read(length)
            status, media_type, page = state.page_next.pop(0)
            start_response(status, [("Content-Type", media_type)])
            return _Answer(page, state)
        if environ["REQUEST_METHOD"] == "POST":
            refusal = self._refusal(environ, length)
            if refusal is not None:
                start_response(refusal[0], [("Content-Type", "text/html")])
                return _Answer(refusal[1].encode(), state)
            if state.streamed:
                return self._streamed(environ, length, start_response)
            if state.wsse is not None:
                environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))
                if not _username_token_ok(environ["wsgi.input"].getvalue(), state):
                    start_response("500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")])
                    return _Answer(WSSE_FAULT.encode(), state)
        if self.state.basic_auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.state.basic_auth).encode()).decode()
            if environ.get("HTTP_AUTHORIZATION") != expected:
                start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="gwjh"'),
                                                    ("Content-Type", "text/html; charset=utf-8")])
                return _Answer("<html><body>401 未授权</body></html>".encode(), self.state)
        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if wsdl and state.wsdl_delay:
            return _Trickle(body, state.wsdl_delay)
        return _Answer(body, self.state)

    def _refusal(self, environ, length: int) -> tuple[str, str] | None:
        """What a web server or proxy before the OA answers instead of it (the body read first)."""
        state = self.state
        with state.lock:
            status = state.html_error_next.pop(0) if state.html_error_next else None
        if status is None and state.max_request_bytes is not None and length > state.max_request_bytes:
            status = 413
        if status is None:
            return None
        left = length
        while left > 0 and (piece := environ["wsgi.input"].read(min(left, 1 << 20))):
            left -= len(piece)
        with state.lock:
            state.calls.append(("HTTP", str(status), "", time.time()))
        reason = {200: "OK", 413: "Request Entity Too Large", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
                  504: "Gateway Time-out"}.get(status, "Error")
        return f"{status} {reason}", (
            f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}"
            "</h1></center>\r\n<hr><center>nginx/1.0.15</center>\r\n</body>\r\n</html>\r\n")

    def _streamed(self, environ, length: int, start_response):
        from tests.adapters.oa_push.digest_receiver import ANSWER, read_push

        state = self.state
        fields = read_push(_Metered(environ["wsgi.input"], state), length)
        gwbs = fields.get("gwbs", "")
        with state.lock:
            state.calls.append(("ReceiveGongwen", gwbs, fields.get("sjbs", ""), time.time()))
            answer = "重复" if gwbs in state.documents else "成功"
            state.documents.setdefault(gwbs, {**fields, "received": time.time()})
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
        return _Answer(ANSWER.format(answer).encode(), state)


WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSSE_FAULT = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
              f'<faultcode xmlns:wsse="{WSSE_NS}">wsse:FailedAuthentication</faultcode>'
              "<faultstring>用户名或口令错误</faultstring></soap:Fault></soap:Body></soap:Envelope>")


def _username_token_ok(request: bytes, state: OaState) -> bool:
    """A WS-Security 1.0 UsernameToken with the OA's user and password, as text or as a digest
    (Base64(SHA-1(nonce + created + password)))."""
    from lxml import etree

    token = etree.fromstring(request).find(f".//{{{WSSE_NS}}}UsernameToken")
    if token is None:
        return False
    password = token.find(f"{{{WSSE_NS}}}Password")
    kind = (password.get("Type") or "#PasswordText").rsplit("#", 1)[-1] if password is not None else ""
    state.wsse_seen.append(kind)
    user, secret = state.wsse
    if token.findtext(f"{{{WSSE_NS}}}Username") != user or password is None:
        return False
    if kind == "PasswordText":
        return password.text == secret
    state.wsse_digests.append((token.findtext(f"{{{WSU_NS}}}Created") or "", token.findtext(f"{{{WSSE_NS}}}Nonce") or ""))
    nonce = base64.b64decode(token.findtext(f"{{{WSSE_NS}}}Nonce") or "")
    created = (token.findtext(f"{{{WSU_NS}}}Created") or "").encode()
    return password.text == base64.b64encode(hashlib.sha1(nonce + created + secret.encode()).digest()).decode()


class _Trickle:
    """A slow web server: the answer in 20 pieces over ``seconds``, each well within a read timeout."""

    def __init__(self, body: bytes, seconds: float) -> None:
        self.body, self.seconds = body, seconds

    def __iter__(self):
        step = -(-len(self.body) // 20)
        for at in range(0, len(self.body), step):
            time.sleep(self.seconds / 20)
            yield self.body[at:at + step]


class _Answer:
    def __init__(self, body: bytes, state: OaState) -> None:
        self.body, self.state = body, state

    def __iter__(self):
        yield self.body

    def close(self) -> None:
        hook = self.state.after_answer
        if callable(hook):
            hook()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class LegacyOa:
    """The OA on 127.0.0.1: ``url`` is its endpoint, ``wsdl_url`` its WSDL."""

    def __init__(self, port: int = 0, *, soap12: bool = False) -> None:
        self.state = OaState()
        app = Application([GongwenService], tns=NAMESPACE, name="GongwenService",
                          in_protocol=(Soap12 if soap12 else Soap11)(validator="lxml"),
                          out_protocol=Soap12() if soap12 else Soap11())
        app.user_data = {STATE_KEY: self.state}
        self._wsgi = _AfterAnswer(WsgiApplication(app, max_content_length=32 * 1024 * 1024), self.state)
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gwjh/GongwenService"

    @property
    def wsdl_url(self) -> str:
        return self.url + "?wsdl"

    def up(self) -> None:
        self._server = make_server("127.0.0.1", self.port, self._wsgi, server_class=_ThreadingServer,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="legacy-oa")
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self) -> LegacyOa:
        return self

    def __exit__(self, *exc) -> None:
        self.down()


class _Metered:
    """A request body read at the OA's ``read_rate``, counted in ``bytes_read`` as it goes."""

    def __init__(self, stream, state: OaState) -> None:
        self._stream, self._state = stream, state

    def read(self, size: int) -> bytes:
        rate = self._state.read_rate
        piece = self._stream.read(size if rate is None else min(size, max(1, int(rate / 10))))
        with self._state.lock:
            self._state.bytes_read += len(piece)
        if rate is not None:
            time.sleep(len(piece) / rate)
        return piece
