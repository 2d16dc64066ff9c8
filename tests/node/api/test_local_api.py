"""The local API over real HTTP (aiohttp's test server) in front of the real document service.

What a clerk, an adapter or an operator would notice: who gets in, what each hostile request gets
back (always the one error shape, a typed code and the right status), that submissions end up in
the sealed package byte for byte through temp files that are gone afterwards, and that the server
keeps serving after every refusal. The node hosts units A, B and C, so a document A sends is
delivered at once to B and C on the same node.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random

import pytest
import yarl
from cryptography import x509

from exchange_protocol.package_verify import verify_package
from node.api.auth import RELOAD_INTERVAL, TokenStore
from node.config import Limits
from node.ops.logs import JsonFormatter
from tests.node.api.local_api_support import (
    PDF,
    UNIT_A,
    UNIT_B,
    UNIT_C,
    expect_error,
    make_env,
    meta,
    multipart,
    outbox_of_a,
    package_members,
    part,
    run,
    send,
    still_serving,
    submission,
    template,
)
from tests.support import FakeClock

DOC_ROUTES = [
    ("GET", "/api/v1/outbox"), ("GET", "/api/v1/outbox/D1"), ("POST", "/api/v1/outbox/D1/recall"),
    ("POST", "/api/v1/outbox/D1/urge"), ("GET", "/api/v1/inbox"), ("GET", "/api/v1/inbox/D1"),
    ("GET", "/api/v1/inbox/D1/package"), ("POST", "/api/v1/inbox/D1/sign-for"),
    ("POST", "/api/v1/inbox/D1/return"), ("POST", "/api/v1/inbox/D1/register"), ("POST", "/api/v1/documents"),
]
OPERATOR_ROUTES = [("GET", "/metrics"), ("GET", "/api/v1/node/status")]


async def received_package(client, env, doc_id: str) -> dict[str, bytes]:
    """The package as clerk B downloads it, checked by the package verifier against the CA root."""
    response = await client.get(f"/api/v1/inbox/{doc_id}/package", headers=env.auth(env.clerk_b))
    assert response.status == 200 and response.content_type == "application/zip"
    data = await response.read()
    roots = [x509.load_pem_x509_certificate(template().config.trust_root_path.read_bytes())]
    # pyHanko runs its own event loop: off this one, as the node does it
    report = await asyncio.to_thread(verify_package, io.BytesIO(data), roots, template().now)
    assert report.ok, [c for c in report.checks if c.status == "fail"]
    return package_members(data)


@pytest.fixture
def env(tmp_path):
    return make_env(tmp_path)


def test_open_routes_need_no_token(env):
    async def scenario(client):
        await still_serving(client)
        response = await client.get("/api/v1/openapi.json")
        assert response.status == 200 and (await response.json())["openapi"] == "3.1.0"
    run(env, scenario)


def test_every_protected_route_refuses_missing_malformed_and_unknown_tokens(env):
    async def scenario(client):
        for method, path in DOC_ROUTES + OPERATOR_ROUTES:
            for headers in ({}, {"Authorization": env.clerk_a}, {"Authorization": "Basic dXNlcjpwYXNz"},
                            {"Authorization": "Bearer not-a-token"}):
                response = await client.request(method, path, headers=headers)
                await expect_error(response, 401, "API_UNAUTHENTICATED")
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        # A revoked token stops working at once.
        token_id = next(p.token_id for p in env.tokens.principals() if p.name == "李四")
        env.tokens.revoke(token_id)
        await expect_error(await client.get("/api/v1/inbox", headers=env.auth(env.clerk_b)), 401,
                           "API_UNAUTHENTICATED")
        await still_serving(client)
    run(env, scenario)


def test_tokens_added_or_revoked_by_gwx_node_take_effect_without_a_restart(env):
    clock = FakeClock.monotonic()
    env.tokens = TokenStore(env.config.tokens_path, clock=clock)  # what the node loaded at start

    async def scenario(client):
        admin = TokenStore(env.config.tokens_path)  # what `gwx node add-token` / `revoke-token` open
        newcomer, token = admin.issue("赵六", "clerk", UNIT_C)
        clock.advance(seconds=RELOAD_INTERVAL)
        response = await client.get("/api/v1/inbox", headers=env.auth(token))
        assert response.status == 200, await response.text()
        assert admin.revoke(newcomer.token_id)
        clock.advance(seconds=RELOAD_INTERVAL)
        await expect_error(await client.get("/api/v1/inbox", headers=env.auth(token)), 401, "API_UNAUTHENTICATED")
        assert (await client.get("/api/v1/inbox", headers=env.auth(env.clerk_b))).status == 200
    run(env, scenario)


def test_roles_operator_cannot_touch_documents_and_clerk_cannot_see_operations(env):
    async def scenario(client):
        for method, path in DOC_ROUTES:
            await expect_error(await client.request(method, path, headers=env.auth(env.operator)), 403,
                               "API_FORBIDDEN")
        for method, path in OPERATOR_ROUTES:
            await expect_error(await client.request(method, path, headers=env.auth(env.clerk_a)), 403,
                               "API_FORBIDDEN")
        status = await client.get("/api/v1/node/status", headers=env.auth(env.operator))
        assert status.status == 200
        assert [u["code"] for u in (await status.json())["units"]] == [UNIT_A, UNIT_B, UNIT_C]
        metrics = await client.get("/metrics", headers=env.auth(env.operator))
        text = await metrics.text()
        assert metrics.status == 200 and metrics.content_type == "text/plain"
        # Requests are counted by route template (ids never become label values), 403s included.
        assert 'gwx_local_api_requests_total{method="GET",route="/api/v1/outbox/{doc_id}",status="403"} 1' in text
        assert "D1" not in text
    run(env, scenario)


def test_submit_streams_files_into_the_sealed_package_exactly_and_removes_them(env):
    attachment = bytes(range(256)) * 300
    chinese = "附件1：冬季安全检查表.xlsx"

    async def scenario(client):
        data, headers = submission(attachments=(("plan.docx", attachment),))
        # A Chinese name as RFC 7578 filename*, the way the CLI sends it.
        data, headers = multipart(
            part("meta", json.dumps(meta(), ensure_ascii=False).encode(), content_type="application/json"),
            part("body", PDF, filename="body.pdf", content_type="application/pdf"),
            part("attachment", attachment, content_type="application/octet-stream",
                 raw_disposition="form-data; name=\"attachment\"; filename=\"x.xlsx\"; "
                                 "filename*=UTF-8''%E9%99%84%E4%BB%B61%EF%BC%9A%E5%86%AC%E5%AD%A3%E5%AE%89%E5"
                                 "%85%A8%E6%A3%80%E6%9F%A5%E8%A1%A8.xlsx"),
            part("attachment", b"second", filename="说明.txt", content_type="text/plain"))
        response = await client.post("/api/v1/documents", data=data, headers={**headers, **env.auth(env.clerk_a)})
        assert response.status == 201, await response.text()
        result = await response.json()
        assert [r["unit"] for r in result["recipients"]] == [UNIT_B, UNIT_C]
        assert [r["role"] for r in result["recipients"]] == ["主送", "抄送"]
        assert list(env.upload_dir.iterdir()) == []
        members = await received_package(client, env, result["doc_id"])
        assert members["body.pdf"].startswith(PDF)  # the seal is an incremental update after the clerk's bytes
        assert members[f"attachments/{chinese}"] == attachment and members["attachments/说明.txt"] == b"second"
        # Clerk B sees it arrive; the response keeps Chinese as UTF-8 text.
        inbox = await client.get("/api/v1/inbox", headers=env.auth(env.clerk_b))
        raw = await inbox.read()
        assert "关于做好冬季安全生产工作的通知".encode() in raw
        assert [i["doc_id"] for i in json.loads(raw)] == [result["doc_id"]]
    run(env, scenario)


def test_an_ofd_body_is_sealed_inside_and_arrives_verified(env):
    from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
    from tests.exchange_protocol.ofd_fixtures import make_ofd, unzip

    async def scenario(client):
        data, headers = multipart(
            part("meta", json.dumps(meta(), ensure_ascii=False).encode(), content_type="application/json"),
            part("body", make_ofd(), filename="正文.ofd", content_type="application/ofd"))
        response = await client.post("/api/v1/documents", data=data, headers={**headers, **env.auth(env.clerk_a)})
        assert response.status == 201, await response.text()
        members = await received_package(client, env, (await response.json())["doc_id"])  # report.ok
        assert "body.pdf" not in members
        sealed = unzip(members["body.ofd"])
        assert "Doc_0/Signs/Sign_0/SignedValue.dat" in sealed
        roots = [x509.load_pem_x509_certificate(template().config.trust_root_path.read_bytes())]
        assert verify_sealed_ofd(members["body.ofd"], revocation=NO_REVOCATION_CHECK, trust_roots=roots, at=template().now).first.page_id == 10
        shown = await client.get("/api/v1/inbox", headers=env.auth(env.clerk_b))
        item = (await client.get(f"/api/v1/inbox/{(await shown.json())[0]['doc_id']}",
                                 headers=env.auth(env.clerk_b)))
        report = (await item.json())["verification"]
        assert {c["name"]: c["status"] for c in report["checks"]}["ofd_seal"] == "pass"
    run(env, scenario)


HOSTILE_SUBMISSIONS = {
    "not multipart": (b'{"meta": {}}', {"Content-Type": "application/json"}, 400, "API_BAD_MULTIPART"),
    "no body part": (*multipart(part("meta", json.dumps(meta()).encode())), 400, "API_BAD_MULTIPART"),
    "no meta part": (*multipart(part("body", PDF, filename="b.pdf", content_type="application/pdf")),
                     400, "API_BAD_MULTIPART"),
    "body not a pdf type": (*multipart(part("meta", json.dumps(meta()).encode()),
                                       part("body", PDF, filename="b.pdf", content_type="text/html")),
                            400, "API_BAD_MULTIPART"),
    "meta not json": (*multipart(part("meta", b"{kind: 1"), part("body", PDF, content_type="application/pdf")),
                      400, "API_BAD_JSON"),
    "meta an array": (*multipart(part("meta", b"[1, 2]"), part("body", PDF, content_type="application/pdf")),
                      400, "API_BAD_JSON"),
    "meta duplicate key": (*multipart(part("meta", b'{"title": "a", "title": "b"}'),
                                      part("body", PDF, content_type="application/pdf")), 400, "API_BAD_JSON"),
    "two body parts": (*multipart(part("meta", json.dumps(meta()).encode()),
                                  part("body", PDF, content_type="application/pdf"),
                                  part("body", PDF, content_type="application/pdf")), 400, "API_BAD_MULTIPART"),
    "unknown part": (*multipart(part("meta", json.dumps(meta()).encode()), part("evil", b"x")),
                     400, "API_BAD_MULTIPART"),
    "truncated (no closing boundary)": (*multipart(part("meta", json.dumps(meta()).encode()),
                                                   part("body", PDF, content_type="application/pdf"), close=False),
                                        400, "API_BAD_MULTIPART"),
    "attachment without filename": (*submission(attachments=(("", b"x"),)), 400, "API_BAD_FILENAME"),
    "duplicate attachment names": (*submission(attachments=(("a.txt", b"1"), ("A.TXT", b"2"))),
                                   400, "API_BAD_FILENAME"),
    "invalid META.json content": (*submission(meta(to=["12345"])), 400, "DOC_INVALID_UNIT_CODE"),
    "issuer is not the clerk's unit": (*submission(meta(issuers=[UNIT_B], to=[UNIT_A], cc=[])), 403, "API_FORBIDDEN"),
    "body is not a PDF": (*submission(body=b"<html>"), 400, "PKG_NOT_PDF"),
}


@pytest.mark.parametrize("name", HOSTILE_SUBMISSIONS)
def test_hostile_submissions_get_typed_errors_and_leave_no_files(env, name):
    data, headers, status, code = HOSTILE_SUBMISSIONS[name]

    async def scenario(client):
        response = await client.post("/api/v1/documents", data=data, headers={**headers, **env.auth(env.clerk_a)})
        error = await expect_error(response, status, code or (await response.json())["error"]["code"])
        if name == "invalid META.json content":
            assert error["code"].startswith("DOC_") and error["details"]["field"] == "to[0]"
        if name == "body is not a PDF":
            assert error["code"].startswith(("DOC_", "PKG_", "SEAL_")), error
        await still_serving(client)
        assert list(env.upload_dir.iterdir()) == []
        assert await outbox_of_a(client, env) == []  # nothing was sent
        assert await (await client.get("/api/v1/inbox", headers=env.auth(env.clerk_b))).json() == []
    run(env, scenario)


# Backslashes are escaped in the quoted-string (RFC 7230), so "..\\\\evil" on the wire is ..\\evil.
@pytest.mark.parametrize("filename", ["../../etc/passwd", "a/b.txt", "..\\evil.txt", "..", "/abs.txt",
                                      "C:\\x.txt", "\\\\server\\share.txt", "colon:name.txt", ".", "a\u202etxt.exe"])
def test_attachment_names_with_paths_or_traversal_are_refused(env, filename):
    async def scenario(client):
        quoted = filename.replace("\\", "\\\\")
        data, headers = submission(attachments=((quoted, b"payload"),))
        response = await client.post("/api/v1/documents", data=data, headers={**headers, **env.auth(env.clerk_a)})
        error = await expect_error(response, 400, "API_BAD_FILENAME")
        assert error["details"]["name"] == filename
        assert list(env.upload_dir.iterdir()) == []
        assert not (env.tmp / "etc").exists() and not (env.tmp / "evil.txt").exists()
        await still_serving(client)
    run(env, scenario)


def test_size_caps_give_413_for_announced_streamed_and_json_bodies(env):
    big_pdf = b"%PDF-1.7\n" + b"x" * (65 * 1024)
    big_attachment = b"y" * (257 * 1024)

    async def chunked(data: bytes):
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]

    async def scenario(client):
        auth = env.auth(env.clerk_a)
        # Announced Content-Length past the total cap: refused before reading.
        data, headers = submission(attachments=(("big.bin", big_attachment),))
        await expect_error(await client.post("/api/v1/documents", data=data, headers={**headers, **auth}),
                           413, "API_TOO_LARGE")
        # Chunked (no Content-Length): the body part cap is found while streaming.
        data, headers = submission(body=big_pdf)
        response = await client.post("/api/v1/documents", data=chunked(data), headers={**headers, **auth})
        error = await expect_error(response, 413, "API_TOO_LARGE")
        assert error["details"] == {"part": "body", "limit": 64 * 1024}
        # Chunked, attachment over the total.
        data, headers = submission(attachments=(("big.bin", big_attachment),))
        response = await client.post("/api/v1/documents", data=chunked(data), headers={**headers, **auth})
        await expect_error(response, 413, "API_TOO_LARGE")
        # The meta part has the JSON cap.
        data, headers = submission(meta(note="注" * 3000))
        await expect_error(await client.post("/api/v1/documents", data=chunked(data), headers={**headers, **auth}),
                           413, "API_TOO_LARGE")
        # JSON bodies: client_max_size.
        response = await client.post("/api/v1/inbox/D1/return", data=json.dumps({"reason": "x" * 5000}),
                                     headers=auth)
        await expect_error(response, 413, "API_TOO_LARGE")
        assert list(env.upload_dir.iterdir()) == []
        await still_serving(client)
        await send(client, env)  # a proper submission still goes through
    run(env, scenario)


def test_control_characters_in_a_filename_are_refused_raw_or_encoded(env):
    async def scenario(client):
        auth = env.auth(env.clerk_a)
        for disposition, code in (('form-data; name="attachment"; filename="bad\x01name.txt"', "API_BAD_MULTIPART"),
                                  ("form-data; name=\"attachment\"; filename*=UTF-8''bad%01name.txt",
                                   "API_BAD_FILENAME"),
                                  ("form-data; name=\"attachment\"; filename*=UTF-8''..%2F..%2Fx", "API_BAD_FILENAME")):
            data, headers = multipart(part("meta", json.dumps(meta()).encode()),
                                      part("body", PDF, content_type="application/pdf"),
                                      part("attachment", b"x", raw_disposition=disposition))
            await expect_error(await client.post("/api/v1/documents", data=data, headers={**headers, **auth}),
                               400, code)
        assert list(env.upload_dir.iterdir()) == []
        await still_serving(client)
    run(env, scenario)


@pytest.mark.parametrize("path", ["/api/v1/outbox", "/api/v1/inbox"])
@pytest.mark.parametrize("query, parameter", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
    ("limit=1.5", "limit"), ("limit=", "limit"), ("overdue=yes", "overdue"), ("overdue=1", "overdue"),
    ("status=bogus", "status"), ("kind=指示", "kind"), ("kind=memo", "kind"), ("unit=91350100M000100Y44", "unit"),
    ("unit=x", "unit"), ("after=../x", "after"), ("after=a/b", "after"), ("stauts=queued", "stauts"),
    ("limit=5&limit=6", "limit"),
])
def test_list_query_parameters_are_validated(env, path, query, parameter):
    async def scenario(client):
        response = await client.get(f"{path}?{query}", headers=env.auth(env.clerk_a))
        error = await expect_error(response, 400, "API_BAD_PARAMETER")
        assert error["details"]["parameter"] == parameter
    run(env, scenario)


def test_list_filters_are_normalised_and_applied(env):
    async def scenario(client):
        auth = env.auth(env.clerk_a)
        first = await send(client, env)
        second = await send(client, env, doc_meta=meta(kind="函", to=[UNIT_C], cc=[]))

        async def outbox(**params) -> list[str]:
            response = await client.get("/api/v1/outbox", headers=auth, params=params)
            assert response.status == 200, await response.text()
            return [i["doc_id"] for i in await response.json()]

        assert await outbox() == [second, first]  # newest first
        assert await outbox(unit=UNIT_B.lower()) == [first]  # a unit code in lower case is the same unit
        assert await outbox(kind="令") == []  # 令 is the short form of 命令, not a prefix of anything sent
        assert await outbox(kind="函", status="delivered", limit="500") == [second]
        assert await outbox(overdue="true") == []  # both are due in two days
        # Paging: the cursor is the last item's id.
        page = await (await client.get("/api/v1/outbox?limit=1", headers=auth)).json()
        assert [i["doc_id"] for i in page] == [second]
        assert await outbox(after=str(page[-1]["id"])) == [first]
        # A sender status is not an inbox status.
        await expect_error(await client.get("/api/v1/inbox?status=queued", headers=auth), 400, "API_BAD_PARAMETER")
        response = await client.get("/api/v1/inbox?status=pending&overdue=false", headers=env.auth(env.clerk_b))
        assert response.status == 200 and [i["doc_id"] for i in await response.json()] == [first]
        # A cursor the API lets through but the service cannot read is still a typed 400.
        response = await client.get("/api/v1/outbox?after=0190-abc", headers=auth)
        assert response.status == 400 and (await response.json())["error"]["code"].startswith("API_")
    run(env, scenario)


def test_document_ids_unknown_and_unsafe(env):
    async def scenario(client):
        auth = env.auth(env.clerk_a)
        for path in ("/api/v1/outbox/nope", "/api/v1/inbox/nope", "/api/v1/inbox/nope/package"):
            error = await expect_error(await client.get(path, headers=auth), 404, "API_NOT_FOUND")
            assert error["details"]["doc_id"] == "nope"
        for action in ("sign-for", "register"):
            await expect_error(await client.post(f"/api/v1/inbox/nope/{action}", headers=auth), 404, "API_NOT_FOUND")
        for bad in ("a%20b", "%2E%2E", "..a", ".hidden", "x" * 129, "a%00b", "a%2Fb", "%E2%80%AEx"):
            url = yarl.URL(f"/api/v1/outbox/{bad}", encoded=True)
            await expect_error(await client.get(url, headers=auth), 400, "API_BAD_DOC_ID")
        # Another unit's document is simply not there for this clerk.
        doc_id = await send(client, env)
        await expect_error(await client.get(f"/api/v1/outbox/{doc_id}", headers=env.auth(env.clerk_b)),
                           404, "API_NOT_FOUND")
        await still_serving(client)
    run(env, scenario)


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", "API_BAD_JSON"), (b"[1]", "API_BAD_JSON"), (b'"x"', "API_BAD_JSON"),
    (b'{"units": ["a"], "units": ["b"]}', "API_BAD_JSON"), (b"\xff\xfe", "API_BAD_JSON"),
    (b'{"unit": "91350100M000100Y43"}', "API_UNKNOWN_FIELD"), (b'{"units": "11100000000013127D"}', "API_BAD_FIELD"),
    (b'{"units": []}', "API_BAD_FIELD"), (b'{"units": [1]}', "API_BAD_FIELD"), (b'{"units": ["bogus"]}', "API_BAD_FIELD"),
    (b'{"units": ["11100000000013127D", "11100000000013127d"]}', "API_BAD_FIELD"),
    (b'{"units": NaN}', "API_BAD_JSON"),
])
def test_recall_and_urge_bodies_are_validated(env, body, code):
    async def scenario(client):
        doc_id = await send(client, env)
        for action in ("recall", "urge"):
            response = await client.post(f"/api/v1/outbox/{doc_id}/{action}", data=body,
                                         headers={**env.auth(env.clerk_a), "Content-Type": "application/json"})
            await expect_error(response, 400, code)
        tracking = await (await client.get(f"/api/v1/outbox/{doc_id}", headers=env.auth(env.clerk_a))).json()
        assert [(r["status"], r["urge_count"]) for r in tracking["recipients"]] == [("delivered", 0)] * 2
    run(env, scenario)


def test_tracking_without_recipients_gives_the_counts_alone(env):
    async def scenario(client):
        a = env.auth(env.clerk_a)
        doc_id = await send(client, env)
        full = await (await client.get(f"/api/v1/outbox/{doc_id}", headers=a)).json()
        brief = await (await client.get(f"/api/v1/outbox/{doc_id}?recipients=false", headers=a)).json()
        assert brief == {"doc": full["doc"]} and brief["doc"]["counts"] == {"delivered": 2}
        await expect_error(await client.get(f"/api/v1/outbox/{doc_id}?recipients=no", headers=a), 400,
                           "API_BAD_PARAMETER")
        await expect_error(await client.get(f"/api/v1/outbox/{doc_id}?recipients=false",
                                            headers=env.auth(env.clerk_b)), 404, "API_NOT_FOUND")
    run(env, scenario)


def test_outbox_actions_and_inbox_lifecycle(env):
    async def scenario(client):
        a, b = env.auth(env.clerk_a), env.auth(env.clerk_b)
        doc_id = await send(client, env)
        urged = await client.post(f"/api/v1/outbox/{doc_id}/urge", json={"units": [UNIT_B.lower()]}, headers=a)
        assert urged.status == 200
        assert [r["urge_count"] for r in (await urged.json())["recipients"]] == [1, 0]
        # 签收 with an unexpected body field is refused, then done properly.
        await expect_error(await client.post(f"/api/v1/inbox/{doc_id}/sign-for", json={"who": "x"}, headers=b),
                           400, "API_UNKNOWN_FIELD")
        signed = await client.post(f"/api/v1/inbox/{doc_id}/sign-for", headers=b)
        assert signed.status == 200
        assert (await signed.json())["signed_by"] == "李四"
        registered = await client.post(f"/api/v1/inbox/{doc_id}/register", json={}, headers=b)
        assert (await registered.json())["status_label"] == "已登记"
        # Returning after registering is a state conflict, not a crash.
        await expect_error(await client.post(f"/api/v1/inbox/{doc_id}/return", json={"reason": "错发"}, headers=b),
                           409, "STATE_ILLEGAL_TRANSITION")
        tracking = await (await client.get(f"/api/v1/outbox/{doc_id}", headers=a)).json()
        assert tracking["recipients"][0]["status_label"] == "已签收" and tracking["recipients"][0]["who"] == "李四"
        # Recalling a signed-for recipient is refused by the state tables: nothing was done, so the
        # answer is a typed error that says which recipients refused and why.
        recalled = await client.post(f"/api/v1/outbox/{doc_id}/recall", json={"units": [UNIT_B]}, headers=a)
        error = await expect_error(recalled, 409, "DOC_NO_ELIGIBLE_RECIPIENT")
        assert UNIT_B in error["message"] and "STATE_ILLEGAL_TRANSITION" in error["details"]["refused"]
        tracking = await (await client.get(f"/api/v1/outbox/{doc_id}", headers=a)).json()
        assert tracking["recipients"][0]["status"] == "signed_for"
        # Recalling one signed-for and one still pending: done for the one, refused for the other.
        recalled = await client.post(f"/api/v1/outbox/{doc_id}/recall", json={"units": [UNIT_B, UNIT_C]}, headers=a)
        assert recalled.status == 200
        result = await recalled.json()
        assert [(r["unit"], r["code"]) for r in result["refused"]] == [(UNIT_B, "STATE_ILLEGAL_TRANSITION")]
        # Nobody left to urge: a typed error, not an empty success.
        await expect_error(await client.post(f"/api/v1/outbox/{doc_id}/urge", headers=a), 409,
                           "DOC_NO_ELIGIBLE_RECIPIENT")
        package = await client.get(f"/api/v1/inbox/{doc_id}/package", headers=b)
        assert package.headers["Content-Disposition"] == f'attachment; filename="{doc_id}.zip"'
        members = await received_package(client, env, doc_id)
        assert members["body.pdf"].startswith(PDF) and "META-INF/signature.p7s" in members
    run(env, scenario)


def test_return_needs_a_reason(env):
    async def scenario(client):
        b = env.auth(env.clerk_b)
        doc_id = await send(client, env)
        for body, status, code in (({}, 400, "API_BAD_FIELD"), ({"reason": 12}, 400, "API_BAD_FIELD"),
                                   ({"reason": None}, 400, "API_BAD_FIELD"), ({"reason": "  "}, 400, "API_BAD_REQUEST"),
                                   ({"reason": "ok", "extra": 1}, 400, "API_UNKNOWN_FIELD")):
            await expect_error(await client.post(f"/api/v1/inbox/{doc_id}/return", json=body, headers=b), status, code)
        returned = await client.post(f"/api/v1/inbox/{doc_id}/return", json={"reason": "非本单位职责范围"}, headers=b)
        assert (await returned.json())["return_reason"] == "非本单位职责范围"
    run(env, scenario)


def test_unknown_routes_and_methods(env):
    async def scenario(client):
        a = env.auth(env.clerk_a)
        await expect_error(await client.get("/api/v1/nothing", headers=a), 404, "API_NOT_FOUND")
        await expect_error(await client.delete("/api/v1/inbox", headers=a), 405, "API_METHOD_NOT_ALLOWED")
        await expect_error(await client.get("/api/v1/documents", headers=a), 405, "API_METHOD_NOT_ALLOWED")
        # Without a token the API does not say which routes exist.
        await expect_error(await client.get("/api/v1/nothing"), 401, "API_UNAUTHENTICATED")
    run(env, scenario)


def test_unexpected_failure_is_a_logged_500_without_a_traceback(env, caplog):
    async def scenario(client):
        await env.store.close()  # the database goes away under the service: not a typed error
        response = await client.get("/api/v1/inbox", headers={**env.auth(env.clerk_a), "X-Request-Id": "req-42"})
        error = await expect_error(response, 500, "INTERNAL")
        assert error["details"] == {"request_id": "req-42"} and response.headers["X-Request-Id"] == "req-42"
        assert "Traceback" not in await response.text() and str(env.tmp) not in await response.text()
        await still_serving(client)

    with caplog.at_level(logging.INFO, logger="gwx.local_api"):
        run(env, scenario)
    failure = next(r for r in caplog.records if r.name == "gwx.local_api" and r.levelno == logging.ERROR)
    assert failure.request_id == "req-42" and failure.exc_info is not None


def test_access_log_lines_are_json_with_request_context(env, caplog):
    async def scenario(client):
        await client.get("/api/v1/inbox?limit=0", headers={**env.auth(env.clerk_a), "X-Request-Id": "bad id!"})

    with caplog.at_level(logging.INFO, logger="gwx.local_api"):
        run(env, scenario)
    record = next(r for r in caplog.records if r.name == "gwx.local_api" and getattr(r, "path", None))
    line = json.loads(JsonFormatter("county-a").format(record))
    assert line["status"] == 400 and line["code"] == "API_BAD_PARAMETER" and line["method"] == "GET"
    assert line["path"] == "/api/v1/inbox" and line["who"] is not None
    assert line["request_id"] != "bad id!" and len(line["request_id"]) == 16  # unsafe ids are replaced
    assert env.clerk_a not in json.dumps(line)


def test_stale_uploads_from_a_crash_are_removed_at_start(env):
    env.upload_dir.mkdir(parents=True)
    (env.upload_dir / "upload-abc.part").write_bytes(b"half a file")
    (env.upload_dir / "keep.txt").write_bytes(b"not ours")

    async def scenario(client):
        assert sorted(p.name for p in env.upload_dir.iterdir()) == ["keep.txt"]
    run(env, scenario)


def test_larger_limits_accept_a_multi_megabyte_attachment(tmp_path):
    env = make_env(tmp_path, Limits())
    # 12 MiB that does not compress: a repeating pattern deflates past the readers' 200:1 zip-bomb
    # ratio, and the node refuses to send it (PKG_ZIP_BOMB) — see the report on the service.
    blob = random.Random(12).randbytes(12 * 1024 * 1024)

    async def scenario(client):
        doc_id = await send(client, env, attachments=(("数据.bin", blob),))
        assert (await received_package(client, env, doc_id))["attachments/数据.bin"] == blob
    run(env, scenario)
