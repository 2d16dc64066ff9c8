"""Defects a review found in the SOAP endpoint, each shown as a user meets it: an action that names
another operation on the MTOM path, a package that breaks for a reason other than its bytes once
an MTOM answer has started, an inline body past the body limit, and an unauthenticated sender
holding the memory budget (in-process server over the real document service)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import aiohttp
import pypdf
import pytest
from lxml import etree

from tests.adapters.soapserver.soap_support import (
    ENDPOINT,
    GWX,
    envelope,
    expect_fault,
    headers,
    nothing_stored,
    ok,
    run_soap,
    submit_children,
)
from tests.adapters.soapserver.zeep_support import to_mtom
from tests.node.api.local_api_support import PDF, SMALL_LIMITS, make_env, outbox_of_a, still_serving


def untyped_mtom(env, version: str, **extra: str) -> tuple[bytes, dict[str, str]]:
    """A SubmitDocument as MTOM whose multipart says nothing of its SOAP version: no start-info on
    the request, no type on the root part (what some OA toolkits send)."""
    xml = envelope("SubmitDocument", submit_children(attachments=(("a.bin", b"x" * 5000),)), token=env.clerk_a,
                   version=version)
    data, content_type = to_mtom(etree.fromstring(xml), headers("SubmitDocument", version)["Content-Type"])
    content_type = content_type.replace(f'; start-info="{"text/xml" if version == "1.1" else "application/soap+xml"}"',
                                        "")
    data = data.replace(b'; type="text/xml"', b"").replace(b'; type="application/soap+xml"', b"")
    assert b"type=" not in data.split(b"\r\n\r\n")[0] and "start-info" not in content_type
    return data, {"Content-Type": content_type, **extra}


def test_an_untyped_mtom_request_whose_action_names_another_operation_is_refused(tmp_path):
    env = make_env(tmp_path)
    recall = f'"{GWX}#RecallDocument"'

    async def scenario(client):
        data, hdrs = untyped_mtom(env, "1.1", SOAPAction=recall)
        await expect_fault(await client.post(ENDPOINT, data=data, headers=hdrs), "SOAP_ACTION_MISMATCH")
        # SOAP 1.2: the action rides on the root part's (or the request's) content type.
        data, hdrs = untyped_mtom(env, "1.2")
        hdrs["Content-Type"] += f"; action={recall}"
        await expect_fault(await client.post(ENDPOINT, data=data, headers=hdrs), "SOAP_ACTION_MISMATCH",
                           version="1.2", soap_code="Sender")
        # A 1.2 envelope does not escape the check by carrying its lie in a SOAPAction header.
        data, hdrs = untyped_mtom(env, "1.2", SOAPAction=recall)
        await expect_fault(await client.post(ENDPOINT, data=data, headers=hdrs), "SOAP_ACTION_MISMATCH",
                           version="1.2", soap_code="Sender")
        assert await outbox_of_a(client, env) == []
        nothing_stored(env)
        # Told the truth (or nothing), the same requests are sent; the answer is in the envelope's version.
        data, hdrs = untyped_mtom(env, "1.1", SOAPAction=f'"{GWX}#SubmitDocument"')
        await ok(await client.post(ENDPOINT, data=data, headers=hdrs))
        data, hdrs = untyped_mtom(env, "1.2")
        response = await client.post(ENDPOINT, data=data, headers=hdrs)
        assert response.content_type == "application/soap+xml"
        await ok(response)
        assert len(await outbox_of_a(client, env)) == 2
    run_soap(env, scenario)


@pytest.mark.timeout(90)
def test_a_package_that_loses_a_member_while_an_answer_streams_ends_it_by_hanging_up(tmp_path):
    """The package is replaced, while the first attachment streams, by one that lacks the second
    (a KeyError inside zipfile, not one of the errors of a bad read): the MTOM answer's status line
    is sent, so the node hangs up instead of writing a fault after it, and serves on."""
    env = make_env(tmp_path, dataclasses.replace(SMALL_LIMITS, max_envelope_bytes=64 * 1024 * 1024))
    big = os.urandom(24 * 1024 * 1024)  # more than the sockets buffer: the node waits for the asker to read

    async def scenario(client):
        stand_in = os.urandom(1000)  # the big part is put in after to_mtom: lxml would not parse its base64
        xml = envelope("SubmitDocument", submit_children(attachments=(("大.bin", stand_in), ("录像.bin", b"v" * 1000))),
                       token=env.clerk_a)
        data, content_type = to_mtom(etree.fromstring(xml), headers("SubmitDocument")["Content-Type"])
        data = data.replace(stand_in, big)
        answer = await ok(await client.post(ENDPOINT, data=data, headers={
            "Content-Type": content_type, "SOAPAction": f'"{GWX}#SubmitDocument"'}))
        doc_id = answer.findtext(f"{{{GWX}}}docId")
        package = await env.service.package_path(env.tokens.authenticate(f"Bearer {env.clerk_b}"), doc_id)
        response = await client.post(ENDPOINT, data=envelope("FetchDocument", f"<gwx:docId>{doc_id}</gwx:docId>",
                                                             token=env.clerk_b),
                                     headers={**headers("FetchDocument"), "Accept": "multipart/related"})
        assert response.status == 200 and response.content_type == "multipart/related"
        await response.content.readexactly(1024 * 1024)  # the answer has started
        without = package.with_name("without.zip")
        with zipfile.ZipFile(package) as old, zipfile.ZipFile(without, "w") as new:
            for info in old.infolist():
                if not info.filename.endswith("录像.bin"):
                    new.writestr(info, old.read(info))
        os.replace(without, package)
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.read(), 30)
        await still_serving(client)
    run_soap(env, scenario)


def test_an_inline_body_past_the_body_limit_is_refused_as_an_mtom_one_is(tmp_path):
    env = make_env(tmp_path)  # small limits: the body PDF up to 64 KiB

    async def scenario(client):
        writer = pypdf.PdfWriter(clone_from=io.BytesIO(PDF))  # a good PDF, just too large
        writer.add_metadata({"/Padding": "z" * env.config.limits.max_body_pdf_bytes})
        padded = io.BytesIO()
        writer.write(padded)
        body = padded.getvalue()
        response = await client.post(ENDPOINT, data=envelope("SubmitDocument", submit_children(body=body),
                                                             token=env.clerk_a), headers=headers("SubmitDocument"))
        await expect_fault(response, "SOAP_TOO_LARGE")
        assert await outbox_of_a(client, env) == []
        nothing_stored(env)
    run_soap(env, scenario)


def test_a_chunked_mtom_upload_that_fills_the_disk_is_the_typed_disk_full_refusal(tmp_path):
    """Without a Content-Length the endpoint cannot check free space first: the disk filling while a
    part is written is the same transient refusal as the checked path (send again later), not an
    internal error, and leaves no file. A 2 MiB tmpfs on the upload directory, in a mount namespace
    of the child's own."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-Urm", "true"]).returncode != 0:
        pytest.skip("needs unshare -Urm (user and mount namespaces) to mount a small tmpfs")
    run = subprocess.run(["unshare", "-Urm", sys.executable, "-m", "tests.adapters.soapserver.disk_full_child",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"status": 500, "code": "NODE_UNAVAILABLE", "soap": "soap:Server",
                      "message": "not enough disk space for this request", "left": [], "sent": 0,
                      "serving": True}, result


def test_an_unknown_bearer_is_refused_before_it_may_hold_envelope_memory(tmp_path):
    """With the budget for envelopes in memory smaller than the request, a caller with a good token
    is told to come back later; one whose bearer token is unknown is told who it is not, and holds
    nothing while sending."""
    env = make_env(tmp_path)

    async def scenario(client):
        data = envelope("ListInbox", "<gwx:limit>5</gwx:limit>" + " " * 4000)
        good = {**headers("ListInbox"), "Authorization": f"Bearer {env.clerk_b}"}
        await expect_fault(await client.post(ENDPOINT, data=data, headers=good), "NODE_UNAVAILABLE",
                           soap_code="Server")
        bad = {**headers("ListInbox"), "Authorization": "Bearer not-a-token"}
        await expect_fault(await client.post(ENDPOINT, data=data, headers=bad), "API_UNAUTHENTICATED")
    run_soap(env, scenario, envelopes_in_memory=2048)
