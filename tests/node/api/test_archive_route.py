"""The local API's archive routes in process: a node with no TSA to ask refuses before building
anything (409 ARCHIVE_NO_TSA, not a 503 to retry), and a reason that is not a string is refused."""

from __future__ import annotations

from tests.node.api.local_api_support import expect_error, make_env, run, send


def test_no_tsa_and_a_reason_that_is_no_string(tmp_path):
    env = make_env(tmp_path)  # no [archive], no directory: nobody to ask for a time-stamp

    async def scenario(client):
        doc_id = await send(client, env)
        url = f"/api/v1/outbox/{doc_id}/archive"
        await expect_error(await client.post(url, json={"reason": None}, headers=env.auth(env.clerk_a)),
                           400, "API_BAD_FIELD")
        await expect_error(await client.post(url, headers=env.auth(env.clerk_a)), 409, "ARCHIVE_DOC_NOT_FINISHED")
        error = await expect_error(await client.post(url, json={"reason": "提前归档"}, headers=env.auth(env.clerk_a)),
                                   409, "ARCHIVE_NO_TSA")
        assert "tsa_node" in error["message"]
        await expect_error(await client.post(f"/api/v1/inbox/{doc_id}/archive", headers=env.auth(env.clerk_a)),
                           404, "API_NOT_FOUND")  # clerk A sent it, received nothing
        assert not (env.config.data_dir / "archives").exists() or not list((env.config.data_dir / "archives").iterdir())
    run(env, scenario)
