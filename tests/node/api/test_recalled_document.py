"""撤回 withdraws a document from the recipient: its record stays (已撤回), its content is not served."""

from __future__ import annotations

from tests.node.api.local_api_support import UNIT_B, UNIT_C, make_env, run, submission


async def _send(client, env) -> str:
    data, headers = submission()
    response = await client.post("/api/v1/documents", data=data, headers={**headers, **env.auth(env.clerk_a)})
    assert response.status == 201, await response.text()
    return (await response.json())["doc_id"]


def test_a_recalled_document_shows_as_recalled_and_its_package_is_gone(tmp_path):
    env = make_env(tmp_path)

    async def scenario(client):
        a, b = env.auth(env.clerk_a), env.auth(env.clerk_b)
        doc_id = await _send(client, env)
        assert (await client.get(f"/api/v1/inbox/{doc_id}/package", headers=b)).status == 200
        recalled = await client.post(f"/api/v1/outbox/{doc_id}/recall", json={"units": [UNIT_B]}, headers=a)
        assert recalled.status == 200, await recalled.text()
        shown = await client.get(f"/api/v1/inbox/{doc_id}", headers=b)
        assert shown.status == 200 and (await shown.json())["status_label"] == "已撤回"
        package = await client.get(f"/api/v1/inbox/{doc_id}/package", headers=b)
        assert package.status == 409
        error = (await package.json())["error"]
        assert error["code"] == "DOC_RECALLED" and "撤回" in error["message"]
        # The sender keeps its own document.
        assert (await client.get(f"/api/v1/inbox/{doc_id}/package", headers=a)).status == 200

    run(env, scenario)


def test_a_clerk_asking_for_an_unknown_document_is_told_it_was_neither_received_nor_sent(tmp_path):
    env = make_env(tmp_path)

    async def scenario(client):
        for path in ("/api/v1/inbox/nope", "/api/v1/inbox/nope/package"):
            error = (await (await client.get(path, headers=env.auth(env.clerk_b))).json())["error"]
            assert error["code"] == "API_NOT_FOUND"
            assert "neither received nor sent" in error["message"] and "has sent no" not in error["message"]

    run(env, scenario)


def test_urging_a_unit_that_signed_for_is_a_typed_refusal(tmp_path):
    env = make_env(tmp_path)

    async def scenario(client):
        a, b = env.auth(env.clerk_a), env.auth(env.clerk_b)
        doc_id = await _send(client, env)
        assert (await client.post(f"/api/v1/inbox/{doc_id}/sign-for", headers=b)).status == 200
        urged = await client.post(f"/api/v1/outbox/{doc_id}/urge", json={"units": [UNIT_B]}, headers=a)
        assert urged.status == 409
        error = (await urged.json())["error"]
        assert error["code"] == "DOC_NO_ELIGIBLE_RECIPIENT" and UNIT_B in error["message"]
        urged = await client.post(f"/api/v1/outbox/{doc_id}/urge", json={"units": [UNIT_C]}, headers=a)
        assert urged.status == 200 and (await urged.json())["refused"] == []

    run(env, scenario)
