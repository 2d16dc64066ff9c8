"""Calling one OA over SOAP with zeep's async client: load its WSDL, check it offers what node.toml
and the mapping name, call an operation, and turn every way that can fail into a typed error.

zeep loads a WSDL synchronously (its AsyncTransport says so), so loading runs in a daemon thread
and the node's event loop never waits on the OA; one load per OA at a time: a call (or the check at
node start) that finds a load under way waits for that one instead of starting another, so an OA
whose WSDL answers slowly costs one worker thread however often its pushes time out. The WSDL is
loaded at node start if the OA answers then (:meth:`OaClient.check`), else at the first call, and
again after a failure. Loading checks the named service, port and operations and every mapped
parameter's type (:mod:`.signature`). Calls go through httpx's async client, the envelope sent by
:class:`~.streaming.StreamingTransport` with the document's files streamed into it; a call may take
``timeout_seconds`` plus the time to send its files at :data:`MIN_SEND_RATE`.

What a call ends in (the kinds decide retry or dead letter, see :mod:`.errors`):

- the OA's answer (any value): done — or, with the mapping's ``[answer]`` table, an answer among
  ``accepted``; one among ``busy`` is retried, any other is a refusal with the answer's text. A fault
  whose text contains ``duplicate_fault`` is an OA saying it already has this push: done too.
- a Client/Sender fault → :class:`OaFault` (dead at once) carrying the OA's faultstring;
  a Server/Receiver (or unnamed) fault → :class:`OaServerFault` (retried);
- no connection, a timeout, an HTTP error status or an answer that is not SOAP → :class:`OaUnavailable`,
  the status and an excerpt of the page in its message (an HTML error page says what went wrong);
  so is a WSDL's URL answered with a page that is not a WSDL (系统维护中): the OA is away, not wrong;
  HTTP 413, or IIS's 404.13 → :class:`OaTooLarge` (dead at once: the same bytes cannot pass);
- an operation or parameter a WSDL that parsed lacks, or a value whose type does not fit →
  :class:`OaWsdlMismatch` (retried: node.toml is fixed without the push changing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from zeep import AsyncClient, Settings
from zeep import exceptions as zeep_errors
from zeep.proxy import AsyncServiceProxy
from zeep.wsse.username import UsernameToken

from .errors import OaFault, OaServerFault, OaTooLarge, OaUnavailable, OaWsdlMismatch
from .settings import MIN_SEND_RATE, OaPushSettings
from .signature import check_parameters
from .streaming import HttpAnswerNotSoap, PackagePart, StreamingTransport, WsdlNotAWsdl, sending

log = logging.getLogger(__name__)
_CLIENT_FAULTS = ("client", "sender")
# A WSDL's fetch waits this long for each read at least: timeout_seconds bounds one call, and the load
# runs apart from the calls (each waiter keeps its own limit), so a slow WSDL is loaded once, not
# refetched at every push because one of its pieces came after a short call timeout.
WSDL_READ_SECONDS = 30.0
_SECURITY_FAULTS = ("failedauthentication", "invalidsecurity", "invalidsecuritytoken", "failedcheck")


def _local(code: str | None) -> str:
    """'soap11env:Client', '{ns}Sender', 'Client.Validation' → 'client' / 'sender' / …"""
    text = (code or "").rsplit("}", 1)[-1].rsplit(":", 1)[-1]
    return text.split(".", 1)[0].lower()


def _oa_hosts(s: OaPushSettings) -> frozenset[tuple[str, int | None]]:
    """The (host, port) pairs the operator named — the WSDL's URL and the endpoint — the only ones the
    OA's password is sent to."""
    named = [u for u in (s.wsdl, s.endpoint) if u and u.startswith(("http://", "https://"))]
    return frozenset((httpx.URL(u).host, httpx.URL(u).port) for u in named)


class _OaHostAuth(httpx.Auth):
    """HTTP Basic for the OA's own host only: a schema the WSDL imports from elsewhere, or a
    soap:address pointing to another host, never receives the OA's password."""

    def __init__(self, username: str, password: str, hosts: frozenset[tuple[str, int | None]]) -> None:
        self._basic = httpx.BasicAuth(username, password)
        self._hosts = hosts

    def auth_flow(self, request: httpx.Request):
        if (request.url.host, request.url.port) in self._hosts:
            yield from self._basic.auth_flow(request)
        else:
            yield request


class OaClient:
    """One OA system: the WSDL loaded once, the operations checked against it, calls made async."""

    def __init__(self, settings: OaPushSettings) -> None:
        self.settings = settings
        self._client: AsyncClient | None = None
        self._proxy: AsyncServiceProxy | None = None
        self._params: dict[str, set[str] | None] = {}
        self._loading: asyncio.Future | None = None  # the one WSDL load under way, shared by its waiters

    def _load(self) -> tuple[AsyncClient, AsyncServiceProxy, dict[str, set[str] | None]]:
        """In a worker thread: the blocking WSDL load and the checks of what the operator named."""
        s = self.settings
        basic = s.authentication == "http_basic" and s.username and s.password
        auth = _OaHostAuth(s.username, s.password, _oa_hosts(s)) if basic else None
        # WS-Security: a UsernameToken in every call's header (zeep adds it before the transport
        # serialises the envelope), nothing on the WSDL's fetch.
        wsse = (UsernameToken(s.username, s.password, use_digest=s.authentication == "ws_security_digest",
                              zulu_timestamp=True)  # wsu:Created in Z: legacy stacks refuse +00:00
                if s.authentication != "http_basic" and s.username and s.password else None)
        transport = StreamingTransport(client=httpx.AsyncClient(timeout=s.timeout_seconds, auth=auth),
                                       wsdl_client=httpx.Client(timeout=max(s.timeout_seconds, WSDL_READ_SECONDS),
                                                                auth=auth))
        try:
            client = AsyncClient(s.wsdl, transport=transport, settings=Settings(forbid_dtd=True), wsse=wsse)
        except zeep_errors.TransportError as exc:
            raise OaUnavailable(f"the OA's WSDL {s.wsdl} could not be fetched: HTTP {exc.status_code}"
                                + _refused_credentials(exc.status_code), unit=s.unit) from None
        except (httpx.HTTPError, OSError) as exc:
            raise OaUnavailable(f"the OA's WSDL {s.wsdl} could not be fetched: {exc}", unit=s.unit) from None
        except zeep_errors.XMLSyntaxError as exc:
            if not s.wsdl.startswith(("http://", "https://")):  # the operator's file: it stays as it is
                raise OaWsdlMismatch(f"the OA's WSDL {s.wsdl} cannot be used: {exc}", unit=s.unit) from None
            # fetched cut short, or a page that breaks XML's rules only past its first tag
            raise OaUnavailable(f"the OA's WSDL {s.wsdl} could not be read: {exc}", unit=s.unit) from None
        except WsdlNotAWsdl as exc:  # a maintenance page: checked again at the next push, the node runs on
            raise OaUnavailable(f"the OA answered its WSDL's URL {s.wsdl} with a page that is not a WSDL: "
                                f"{exc.excerpt or '(no text)'}", unit=s.unit, excerpt=exc.excerpt) from None
        except (zeep_errors.Error, ValueError) as exc:
            raise OaWsdlMismatch(f"the OA's WSDL {s.wsdl} cannot be used: {exc}", unit=s.unit) from None
        services = client.wsdl.services
        if not services or (s.service is not None and s.service not in services):
            raise OaWsdlMismatch(f"the OA's WSDL has no service {s.service or ''} (it has "
                                 f"{', '.join(services) or 'none'})", unit=s.unit)
        service = services[s.service] if s.service else next(iter(services.values()))
        if s.port is not None and s.port not in service.ports:
            raise OaWsdlMismatch(f"the OA's service {service.name} has no port {s.port} (it has "
                                 f"{', '.join(service.ports)})", unit=s.unit)
        port = service.ports[s.port] if s.port else next(iter(service.ports.values()))
        operations = port.binding.all()
        params: dict[str, set[str] | None] = {}
        wanted = [(s.received_operation, "received", s.mapping.received),
                  (s.status_operation, "status_change", s.mapping.status_change)]
        for name, section, arguments in wanted:
            if name is None:
                continue
            if name not in operations:
                raise OaWsdlMismatch(f"the OA's WSDL has no operation {name} (it has {', '.join(sorted(operations))})",
                                     unit=s.unit, operation=name)
            params[name] = _parameter_names(operations[name])
            unknown = sorted({a.param for a in arguments or ()} - params[name]) if params[name] is not None else []
            if unknown:
                raise OaWsdlMismatch(f"the OA's {name} takes no parameter {', '.join(unknown)} (it takes "
                                     f"{', '.join(sorted(params[name]))}); correct the mapping "
                                     f"{s.mapping_path}", unit=s.unit, operation=name)
            if params[name] is not None:
                check_parameters(name, section, arguments or (), dict(operations[name].input.body.type.elements),
                                 s.mapping, s.unit)
        address = s.endpoint or port.binding_options.get("address")
        return client, AsyncServiceProxy(client, port.binding, address=address), params

    def _loaded(self, loading: asyncio.Future) -> None:
        """The load ended (whoever still waits for it): keep what it loaded, or forget the failure."""
        self._loading = None
        if not loading.cancelled() and loading.exception() is None:
            self._client, self._proxy, self._params = loading.result()
            log.info("OA of %s: WSDL %s loaded", self.settings.unit, self.settings.wsdl)

    async def _ready(self) -> AsyncServiceProxy:
        if self._proxy is not None:
            return self._proxy
        if self._loading is None:
            self._loading = _in_daemon_thread(self._load, f"oa-wsdl-{self.settings.unit}")
            self._loading.add_done_callback(self._loaded)
        # A caller that gives up (its timeout) leaves the load running for the next one: shielded.
        _, proxy, _ = await asyncio.shield(self._loading)
        return proxy

    async def check(self, limit: float | None = None) -> None:
        """Load the WSDL and check the operations and the mapping's types against it (node start,
        ``gwx node check``), waiting at most ``limit`` seconds (default ``timeout_seconds``): a typed
        error if the OA cannot be reached or its WSDL does not fit. A load not done in time goes on
        for the first push."""
        seconds = self.settings.timeout_seconds if limit is None else limit
        try:
            async with asyncio.timeout(seconds):
                await self._ready()
        except TimeoutError:
            raise OaUnavailable(f"the OA's WSDL {self.settings.wsdl} did not arrive within {seconds:g} s",
                                code="OA_TIMEOUT", unit=self.settings.unit) from None

    async def call(self, operation: str, arguments: dict[str, Any], parts: Sequence[PackagePart] = ()) -> Any:
        """Call ``operation`` with ``arguments``, each part's content streamed in where its
        placeholder stands (:mod:`.streaming`); the OA's answer, or a typed error."""
        s = self.settings
        where = {"unit": s.unit, "operation": operation}
        seconds = s.timeout_seconds + sum(p.encoded_size for p in parts) / MIN_SEND_RATE
        try:
            async with asyncio.timeout(seconds):
                proxy = await self._ready()
                with sending(parts):
                    answer = await proxy[operation](**arguments)
        except zeep_errors.Fault as fault:
            text = (fault.message or "").strip() or "(no fault text)"
            if s.duplicate_fault and s.duplicate_fault in text:
                log.info("OA of %s already had this %s push: %s", s.unit, operation, text)
                return None
            codes = [fault.code, *map(str, getattr(fault, "subcodes", None) or ())]  # SOAP 1.2: a Subcode
            if any(_local(code) in _SECURITY_FAULTS for code in codes):  # WS-Security §12: as a 401, retried
                raise OaServerFault(f"the OA refused {operation}: {text} (it refused our credentials: check "
                                    "username, password_file and authentication in [[oa_push]])",
                                    fault_code=fault.code, fault=text, **where) from None
            error = OaFault if _local(fault.code) in _CLIENT_FAULTS else OaServerFault
            raise error(f"the OA refused {operation}: {text}", fault_code=fault.code, fault=text, **where) from None
        except TimeoutError:
            raise OaUnavailable(f"the OA did not answer {operation} within {seconds:g} s",
                                code="OA_TIMEOUT", **where) from None
        except HttpAnswerNotSoap as exc:
            raise _not_soap(operation, exc, where) from None
        except httpx.TimeoutException as exc:
            raise OaUnavailable(f"the OA did not answer {operation} in time: {exc or type(exc).__name__}",
                                code="OA_TIMEOUT", **where) from None
        except (httpx.HTTPError, OSError) as exc:
            raise OaUnavailable(f"the OA could not be reached for {operation}: {exc or type(exc).__name__}",
                                **where) from None
        except zeep_errors.TransportError as exc:
            raise OaUnavailable(f"the OA answered {operation} with HTTP {exc.status_code}"
                                + _refused_credentials(exc.status_code), **where) from None
        except (zeep_errors.XMLSyntaxError, zeep_errors.XMLParseError) as exc:
            raise OaUnavailable(f"the OA's answer to {operation} is not SOAP: {exc}", **where) from None
        except (TypeError, zeep_errors.ValidationError) as exc:
            raise OaWsdlMismatch(f"the OA's {operation} does not take these arguments: {exc}", **where) from None
        return self._judge(operation, answer)

    def _judge(self, operation: str, answer: Any) -> Any:
        """With an [answer] table, the OA's result code decides (done, busy, or a refusal)."""
        codes = self.settings.mapping.answer
        if codes is None:
            return answer
        text = codes.text_of(answer)
        where = {"unit": self.settings.unit, "operation": operation, "answer": text[:500]}
        if text in codes.accepted:
            return answer
        if text in codes.busy:
            raise OaServerFault(f"the OA answered {operation} with {text!r}: busy, try later", **where)
        raise OaFault(f"the OA refused {operation}: it answered {text[:500]!r}", **where)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.transport.aclose()
            self._client.transport.wsdl_client.close()
            self._client = self._proxy = None


def _in_daemon_thread(load: Callable[[], Any], name: str) -> asyncio.Future:
    """``load()`` in a daemon thread of its own, its outcome in the returned future. Not the loop's
    default executor: asyncio.run waits for that one's threads at exit, so a WSDL trickling in would
    hold ``gwx node check`` (and a node's stop) past every limit until the OA finished sending it."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def run() -> None:
        try:
            outcome = (future.set_result, load())
        except Exception as exc:  # handed to the waiters as it is
            outcome = (future.set_exception, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this load any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def _not_soap(operation: str, answer: HttpAnswerNotSoap, where: dict) -> OaUnavailable | OaTooLarge:
    """An answer that is not SOAP, with its status and the page's text as the OA wrote it."""
    page = f": {answer.excerpt}" if answer.excerpt else " (no text)"
    details = {**where, "http_status": answer.status, "excerpt": answer.excerpt}
    if answer.status == 413 or (answer.status == 404 and _IIS_TOO_LARGE.search(answer.excerpt)):
        return OaTooLarge(f"the OA refused {operation} as too large: HTTP 413{page}", **details)
    if answer.status in (200, 201, 202):
        return OaUnavailable(f"the OA's answer to {operation} is not SOAP (HTTP {answer.status}, "
                             f"{answer.media_type or 'no type'}){page}", **details)
    return OaUnavailable(f"the OA answered {operation} with HTTP {answer.status}"
                         f"{_refused_credentials(answer.status)}{page}", **details)


# IIS's request filtering refuses a request over maxAllowedContentLength as 404 with substatus 13,
# which only its page names ("HTTP Error 404.13 - Not Found"): the same case as a 413.
_IIS_TOO_LARGE = re.compile(r"\b404\.13\b")


def _refused_credentials(status: int) -> str:
    return (" (it refused our credentials: check username and password_file in [[oa_push]])"
            if status in (401, 403) else "")


def _parameter_names(operation: Any) -> set[str] | None:
    """The parameters of a document/literal (wrapped) or rpc operation; None when zeep cannot say."""
    try:
        return {name for name, _ in operation.input.body.type.elements}
    except AttributeError:
        return None
