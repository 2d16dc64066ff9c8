"""SQLite's SQL as the backend's modules write it, said in PostgreSQL's dialect.

The role modules of :mod:`node.store.sqlite` (queue, messages, audit, …) are the one statement of
what each role stores and how; the PostgreSQL backend runs the same modules over its own connections
and translates each statement once (cached), rather than keeping a second copy of every query that
would drift from the first. What differs between the two dialects, and how it is said here:

- placeholders: ``?`` becomes ``%s``, and a literal ``%`` doubles (psycopg's paramstyle);
- ``INSERT OR IGNORE INTO …`` becomes ``INSERT INTO … ON CONFLICT DO NOTHING``;
- ``x IS ?`` / ``x IS NOT ?`` (SQLite's NULL-safe comparison) become ``IS [NOT] DISTINCT FROM``;
- a unary ``+`` before a column (SQLite's way of keeping an index out of a plan) is dropped;
- ``LIKE`` is ``ILIKE``: SQLite's LIKE ignores ASCII case, PostgreSQL's does not;
- a subquery in FROM without a name gets one (PostgreSQL 15 requires it).

The functions SQLite has and PostgreSQL lacks (``json_extract``, ``julianday``, ``group_concat``,
``sum`` of a truth value) are created in the database instead (:mod:`.schema`), so a query keeps its
words. String literals are never touched.
"""

from __future__ import annotations

import re
from functools import lru_cache

_LITERAL = re.compile(r"'(?:[^']|'')*'")
_MASK = re.compile(r"\x00(\d+)\x00")
_OR_IGNORE = re.compile(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_IS_NOT_PARAM = re.compile(r"\bIS\s+NOT\s+\?", re.IGNORECASE)
_IS_PARAM = re.compile(r"\bIS\s+\?", re.IGNORECASE)
_UNARY_PLUS = re.compile(r"(?<=[\s(,])\+(?=[A-Za-z_])")
_LIKE = re.compile(r"(?<![\w.])LIKE\b", re.IGNORECASE)
_FROM_PAREN = re.compile(r"\bFROM\s*\(", re.IGNORECASE)
# What may follow a subquery in FROM when it has no name.
_AFTER_UNNAMED = re.compile(r"\s*($|\)|WHERE\b|GROUP\b|ORDER\b|LIMIT\b|UNION\b|JOIN\b|LEFT\b|INNER\b|CROSS\b|,)",
                            re.IGNORECASE)


@lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """``sql`` (SQLite's dialect, ``?`` placeholders) as PostgreSQL runs it through psycopg."""
    literals: list[str] = []

    def mask(match: re.Match[str]) -> str:
        literals.append(match.group(0))
        return f"\x00{len(literals) - 1}\x00"

    code = _LITERAL.sub(mask, sql)
    ignore = bool(_OR_IGNORE.search(code))
    if ignore:
        code = _OR_IGNORE.sub("INSERT INTO", code)
        returning = _RETURNING.search(code)
        if returning:
            code = f"{code[:returning.start()]}ON CONFLICT DO NOTHING {code[returning.start():]}"
        else:
            code = f"{code} ON CONFLICT DO NOTHING"
    code = _IS_NOT_PARAM.sub("IS DISTINCT FROM ?", code)
    code = _IS_PARAM.sub("IS NOT DISTINCT FROM ?", code)
    code = _UNARY_PLUS.sub("", code)
    code = _LIKE.sub("ILIKE", code)
    code = _name_subqueries(code)
    code = code.replace("%", "%%").replace("?", "%s")
    return _MASK.sub(lambda m: literals[int(m.group(1))].replace("%", "%%"), code)


def _name_subqueries(code: str, count: list[int] | None = None) -> str:
    """``FROM (SELECT …)`` with nothing naming it gets ``AS _q1`` (``_q2`` …) after its parenthesis,
    subqueries inside it first."""
    count = [0] if count is None else count
    out: list[str] = []
    pos = 0
    while (match := _FROM_PAREN.search(code, pos)) is not None:
        start = match.end() - 1
        end = _closing(code, start)
        if end is None:
            break
        out += [code[pos:start + 1], _name_subqueries(code[start + 1:end], count), ")"]
        pos = end + 1
        if _AFTER_UNNAMED.match(code, pos):
            count[0] += 1
            out.append(f" AS _q{count[0]}")
    out.append(code[pos:])
    return "".join(out)


def _closing(code: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == "(":
            depth += 1
        elif code[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None
