"""`gwx node audit verify`'s walk over a log written partly before migration 18 (hash v1) and partly
after (v2): it verifies end to end, and a row changed on either side is named by its seq.
(tests/node/network/test_operator_tools.py runs the command against a real node's directory.)"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from node.cli.node_queue import audit_report
from node.store.sqlite.store import DB_NAME
from tests.node.store.conftest import open_store
from tests.node.store.test_audit import _v1_log


@pytest.mark.parametrize("victim", [None, 4, 13])  # untouched, a v1 row, a v2 row
def test_the_whole_chain_is_walked_across_both_hash_versions(tmp_path, victim):
    async def main():
        await _v1_log(tmp_path, 9)
        async with open_store(tmp_path) as store:  # migration 18: v2 from seq 10
            for n in range(6):
                async with store.transaction() as tx:
                    await store.audit.append(tx, "operator:张", "queue.hold", {"message_id": f"m{n}"}, {"n": n})
        if victim is not None:
            with sqlite3.connect(tmp_path / DB_NAME) as raw:
                raw.execute("DROP TRIGGER audit_no_update")
                raw.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = ?", (victim,))
        async with open_store(tmp_path) as store:
            return await audit_report(store)
    report = asyncio.run(main())
    if victim is None:
        assert report == {"ok": True, "events": 15}
    else:
        assert not report["ok"] and report["error"]["details"]["seq"] == victim
        assert report["event"]["seq"] == victim and report["event"]["actor"] == "someone-else"
