"""The 台账 queries on PostgreSQL: the SQLite backend's :class:`~node.store.sqlite.ledger.Ledger`, with
its query plan said by PostgreSQL.

The pages, counts and statistics run unchanged (their SQL is translated like every role module's);
only :meth:`PgLedger.plan` differs: SQLite's ``EXPLAIN QUERY PLAN`` has no PostgreSQL equivalent in
words, so the plan is PostgreSQL's ``EXPLAIN (FORMAT JSON)`` of the same page query, flattened to one
line per plan node, outermost first, indented by depth:

    Limit
      Nested Loop
        Index Scan using outbox_ledger on outbox o [Index Cond: ((from_unit = '…') AND …)]
        Index Scan using outbox_recipients_pkey on outbox_recipients r [Index Cond: …] [Filter: …]

A line names the node type, its index and table, and its conditions, so a test or the benchmark can
tell a seek in the ledger index from a sequential scan or a sort. The plan is the planner's for the
table's present statistics: on a nearly empty table it may rightly prefer a sequential scan.
"""

from __future__ import annotations

from typing import Any

from node.store.sqlite.ledger import Ledger, _query
from node.store.values import LedgerQuery

_CONDITIONS = ("Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter")


class PgLedger(Ledger):
    async def plan(self, query: LedgerQuery) -> list[str]:
        """PostgreSQL's plan of one page of ``query`` (``EXPLAIN (FORMAT JSON)``), one line per node."""
        sql, params = _query(query)
        row = await self._db.fetchone(f"EXPLAIN (FORMAT JSON) {sql}", params)
        document = row[0]  # psycopg gives the json column parsed: [{"Plan": {...}}]
        lines: list[str] = []
        _flatten(document[0]["Plan"], 0, lines)
        return lines


def _flatten(node: dict[str, Any], depth: int, lines: list[str]) -> None:
    words = [node["Node Type"]]
    if "Index Name" in node:
        words.append(f"using {node['Index Name']}")
    if "Relation Name" in node:
        words.append(f"on {node['Relation Name']}")
        if node.get("Alias") and node["Alias"] != node["Relation Name"]:
            words.append(node["Alias"])
    if "Sort Key" in node:
        words.append(f"by {', '.join(node['Sort Key'])}")
    if "Presorted Key" in node:
        words.append(f"(presorted {', '.join(node['Presorted Key'])})")
    words += [f"[{name}: {node[name]}]" for name in _CONDITIONS if name in node]
    lines.append("  " * depth + " ".join(words))
    for child in node.get("Plans", ()):
        _flatten(child, depth + 1, lines)
