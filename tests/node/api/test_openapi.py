"""The OpenAPI description stays true to the app: same routes both ways, the roles it states are the
roles enforced, every reference resolves, and real responses match the schemas it declares."""

from __future__ import annotations

import json
import re

import pytest

from node.api.local_api import roles_for
from tests.node.api.local_api_support import UNIT_B, make_env, meta, run, submission
from tests.node.api.openapi_check import DOC, check, resolve, response_schema


def app_routes(app) -> set[tuple[str, str]]:
    return {(route.method.lower(), route.resource.canonical) for route in app.router.routes()
            if route.method != "HEAD"}


def doc_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, ops in DOC["paths"].items() for method in ops}


@pytest.fixture
def env(tmp_path):
    return make_env(tmp_path)


def test_every_route_is_described_and_every_description_is_a_route(env):
    async def scenario(client):
        assert app_routes(client.server.app) == doc_routes()
    run(env, scenario)


def test_the_roles_stated_are_the_roles_enforced(env):
    async def scenario(client):
        for method, path in sorted(doc_routes()):
            roles = DOC["paths"][path][method]["x-gwx-roles"]
            assert tuple(roles) == roles_for(path), path
            url = path.replace("{doc_id}", "D1").replace("{message_id}", "M1").replace("{destination}", "peer-1")
            no_token = await client.request(method, url)
            if not roles:
                assert no_token.status == 200 and DOC["paths"][path][method]["security"] == []
                continue
            assert no_token.status == 401 and DOC["paths"][path][method]["security"] == [{"bearer": []}]
            for attr, role in (("clerk_a", "clerk"), ("operator", "operator")):
                response = await client.request(method, url, headers=env.auth(getattr(env, attr)))
                if role in roles:
                    assert response.status != 403, (path, role)
                else:
                    assert response.status == 403 and str(403) in DOC["paths"][path][method]["responses"]
    run(env, scenario)


def test_references_resolve_and_operation_ids_are_unique():
    text = json.dumps(DOC)
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        assert isinstance(resolve(ref), dict), ref
    ids = [op["operationId"] for ops in DOC["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in DOC["paths"].items():
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path
            assert op["responses"], path


def test_the_served_document_is_the_built_one_with_chinese_intact(env):
    async def scenario(client):
        response = await client.get("/api/v1/openapi.json")
        raw = await response.read()
        assert json.loads(raw) == json.loads(json.dumps(DOC))
        assert "主送".encode() in raw
    run(env, scenario)


def test_responses_match_the_declared_schemas(env):
    async def scenario(client):
        a, b, op = env.auth(env.clerk_a), env.auth(env.clerk_b), env.auth(env.operator)
        data, headers = submission(meta(urgency="特急"), attachments=(("附件.txt", b"x"),))
        response = await client.post("/api/v1/documents", data=data, headers={**headers, **a})
        result = await response.json()
        check(result, DOC["paths"]["/api/v1/documents"]["post"]["responses"]["201"]["content"]
              ["application/json"]["schema"])
        doc_id = result["doc_id"]
        for method, template, url, headers_, body in (
                ("get", "/healthz", "/healthz", {}, None),
                ("get", "/readyz", "/readyz", {}, None),
                ("get", "/api/v1/outbox", "/api/v1/outbox", a, None),
                ("get", "/api/v1/outbox/{doc_id}", f"/api/v1/outbox/{doc_id}", a, None),
                ("get", "/api/v1/outbox/{doc_id}", f"/api/v1/outbox/{doc_id}?recipients=false", a, None),
                ("post", "/api/v1/outbox/{doc_id}/urge", f"/api/v1/outbox/{doc_id}/urge", a, {"units": [UNIT_B]}),
                ("get", "/api/v1/inbox", "/api/v1/inbox", b, None),
                ("get", "/api/v1/inbox/{doc_id}", f"/api/v1/inbox/{doc_id}", b, None),
                ("post", "/api/v1/inbox/{doc_id}/sign-for", f"/api/v1/inbox/{doc_id}/sign-for", b, None),
                ("post", "/api/v1/inbox/{doc_id}/register", f"/api/v1/inbox/{doc_id}/register", b, None),
                ("get", "/api/v1/node/status", "/api/v1/node/status", op, None)):
            response = await client.request(method, url, headers=headers_, json=body)
            assert response.status == 200, (url, await response.text())
            check(await response.json(), response_schema(template, method, 200), template)
        # And the error shape, for a few refusals.
        for url, status in (("/api/v1/inbox?limit=0", 400), ("/api/v1/inbox/none", 404)):
            response = await client.get(url, headers=b)
            assert response.status == status
            check(await response.json(), response_schema("/api/v1/inbox/{doc_id}", "get", status))
    run(env, scenario)


def test_the_checker_itself_rejects_wrong_shapes():
    item = DOC["components"]["schemas"]["RecipientView"]
    good = {"unit": UNIT_B, "unit_name": None, "role": "主送", "node": None, "status": "queued",
            "status_label": "待发送", "who": None, "when": None, "reason": None, "urge_count": 0,
            "last_urged_at": None, "overdue": False}
    check(good, item)
    for bad in ({**good, "role": "cc"}, {**good, "urge_count": "1"}, {**good, "when": "yesterday"},
                {k: v for k, v in good.items() if k != "status"}, {**good, "overdue": 0}):
        with pytest.raises(AssertionError):
            check(bad, item)
