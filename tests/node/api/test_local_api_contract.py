"""What an OA integrator relies on: ids every route can address, the schema the API publishes,
and answers that say what is allowed (405 with ``Allow``, strict bodies and queries).
"""

from __future__ import annotations

import urllib.parse

import pytest

from exchange_protocol.meta_schema import meta_schema
from node.api.openapi import build_openapi
from tests.node.api.local_api_support import UNIT_B, expect_error, make_env, meta, run, send, submission

UNADDRESSABLE = ["../../etc/passwd", "..", "a?b=1#c", "<script>", ".hidden", "a b"]


@pytest.fixture
def env(tmp_path):
    return make_env(tmp_path)


def test_a_submission_with_an_id_no_route_could_address_is_refused_and_nothing_is_sent(env):
    async def scenario(client):
        a = env.auth(env.clerk_a)
        for doc_id in UNADDRESSABLE:
            data, headers = submission(meta(id=doc_id))
            error = await expect_error(await client.post("/api/v1/documents", data=data, headers={**headers, **a}),
                                       400, "DOC_INVALID_ID")
            assert error["details"]["field"] == "id"
        assert await (await client.get("/api/v1/outbox", headers=a)).json() == []
        assert await (await client.get("/api/v1/inbox", headers=env.auth(env.clerk_b))).json() == []
        # Every id the model admits can be used on every route, by sender and recipient alike.
        doc_id = await send(client, env, doc_meta=meta(id="临政发〔2026〕12号.(补发)"))
        path = urllib.parse.quote(doc_id, safe="")
        assert (await client.get(f"/api/v1/outbox/{path}", headers=a)).status == 200
        b = env.auth(env.clerk_b)
        assert (await client.get(f"/api/v1/inbox/{path}", headers=b)).status == 200
        assert (await client.get(f"/api/v1/inbox/{path}/package", headers=b)).status == 200
        assert (await client.post(f"/api/v1/inbox/{path}/sign-for", headers=b)).status == 200
    run(env, scenario)


def test_a_deadline_already_past_is_refused_at_submission(env):
    async def scenario(client):
        data, headers = submission(meta(deadline="2020-01-01T17:00:00+08:00"))
        error = await expect_error(await client.post("/api/v1/documents", data=data,
                                                     headers={**headers, **env.auth(env.clerk_a)}),
                                   400, "DOC_DEADLINE_PASSED")
        assert error["details"]["field"] == "deadline"
    run(env, scenario)


def test_every_405_names_the_allowed_methods(env):
    async def scenario(client):
        a = env.auth(env.clerk_a)
        for method, path, allowed in (("DELETE", "/api/v1/inbox", {"GET"}), ("GET", "/api/v1/documents", {"POST"}),
                                      ("PUT", "/api/v1/outbox/D1/recall", {"POST"}),
                                      ("POST", "/api/v1/openapi.json", {"GET"}), ("POST", "/healthz", {"GET"})):
            response = await client.request(method, path, headers=a)
            await expect_error(response, 405, "API_METHOD_NOT_ALLOWED")
            assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed, (method, path)
    run(env, scenario)


@pytest.mark.parametrize("action", ["recall", "urge"])
def test_units_null_is_refused_not_taken_as_every_recipient(env, action):
    async def scenario(client):
        a = env.auth(env.clerk_a)
        doc_id = await send(client, env)
        await expect_error(await client.post(f"/api/v1/outbox/{doc_id}/{action}", json={"units": None}, headers=a),
                           400, "API_BAD_FIELD")
        tracking = await (await client.get(f"/api/v1/outbox/{doc_id}", headers=a)).json()
        assert [(r["status"], r["urge_count"]) for r in tracking["recipients"]] == [("delivered", 0)] * 2
        # Left out, it still means every recipient the action applies to.
        done = await client.post(f"/api/v1/outbox/{doc_id}/{action}", json={"units": [UNIT_B]}, headers=a)
        assert done.status == 200
    run(env, scenario)


def test_paging_after_takes_ids_beyond_four_digits(env):
    async def scenario(client):
        a = env.auth(env.clerk_a)
        await send(client, env)
        for after, count in (("123456", 1), ("9999999999", 1), ("1", 0)):
            response = await client.get("/api/v1/outbox", params={"after": after}, headers=a)
            assert response.status == 200, await response.text()
            assert len(await response.json()) == count
        await expect_error(await client.get("/api/v1/outbox", params={"after": "x1"}, headers=a), 400,
                           "API_BAD_PARAMETER")
    run(env, scenario)


def test_the_meta_schema_is_served_openly_and_in_the_openapi_components(env):
    async def scenario(client):
        response = await client.get("/api/v1/schema/meta.json")
        assert response.status == 200 and response.content_type == "application/schema+json"
        assert await response.json() == meta_schema()
        spec = await (await client.get("/api/v1/openapi.json")).json()
        assert spec["components"]["schemas"]["Meta"]["$id"] == meta_schema()["$id"]
        submission_meta = spec["components"]["schemas"]["Submission"]["properties"]["meta"]
        assert submission_meta == {"$ref": "#/components/schemas/Meta"}
    run(env, scenario)


def test_the_openapi_description_is_as_strict_as_the_server():
    spec = build_openapi()
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/outbox"]["get"]["parameters"]}
    assert params["after"]["type"] == "integer"
    assert "pattern" in params["unit"]
    doc_id = spec["paths"]["/api/v1/outbox/{doc_id}"]["get"]["parameters"][0]["schema"]
    assert doc_id["pattern"] == meta_schema()["properties"]["id"]["anyOf"][0]["pattern"]
    units = spec["components"]["schemas"]["UnitsRequest"]["properties"]["units"]
    assert units["type"] == "array" and "pattern" in units["items"]
