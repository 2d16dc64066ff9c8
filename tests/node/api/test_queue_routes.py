"""The operator's send-queue routes: operators only, every parameter checked, typed errors."""

from __future__ import annotations

from exchange_protocol.ids import new_id
from tests.node.api.local_api_support import make_env, run
from tests.support import FakeClock


def test_the_queue_routes_check_who_asks_and_what_they_give(tmp_path):
    env = make_env(tmp_path)
    unknown = new_id(FakeClock()())

    async def scenario(client):
        op = env.auth(env.operator)

        async def call(method, path, status, **kwargs):
            response = await client.request(method, path, **kwargs)
            body = await response.json()
            assert response.status == status, body
            return body
        assert await call("GET", "/api/v1/node/queue", 200, headers=op) == []
        await call("GET", "/api/v1/node/queue", 403, headers=env.auth(env.clerk_a))
        bad = await call("GET", "/api/v1/node/queue?state=lost", 400, headers=op)
        assert bad["error"]["code"] == "API_BAD_PARAMETER"
        bad = await call("POST", "/api/v1/node/queue/not-an-id/hold", 400, headers=op)
        assert bad["error"]["code"] == "API_BAD_MESSAGE_ID"
        missing = await call("POST", f"/api/v1/node/queue/{unknown}/hold", 404, headers=op)
        assert missing["error"]["code"] == "STORE_NOT_FOUND"
        no_reason = await call("POST", f"/api/v1/node/queue/{unknown}/purge", 400, headers=op, json={})
        assert no_reason["error"]["code"] == "API_BAD_FIELD"
        extra = await call("POST", f"/api/v1/node/queue/{unknown}/release", 400, headers=op, json={"reason": "x"})
        assert extra["error"]["code"] == "API_UNKNOWN_FIELD"
        assert await call("POST", "/api/v1/node/queues/peer-1/retry", 200, headers=op) == {
            "destination": "peer-1", "retried": []}
    run(env, scenario)
