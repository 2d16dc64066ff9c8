"""The PostgreSQL schema: the SQLite backend's migrations, each statement said in PostgreSQL's DDL.

One list of migrations (:data:`node.store.sqlite.migrations.MIGRATIONS`) says what the tables are;
this module translates each statement (:func:`ddl`) and records the applied versions in the same
``schema_version`` table, so both backends carry the same version numbers and a migration added there
reaches PostgreSQL with no second copy. The words that differ:

- ``INTEGER`` is ``BIGINT`` (SQLite's integers are 64-bit), ``BLOB`` is ``BYTEA``, ``REAL`` is
  ``DOUBLE PRECISION``; an ``INTEGER PRIMARY KEY`` (SQLite's rowid) is an identity column;
- ``WITHOUT ROWID`` goes; a ``VIRTUAL`` generated column is ``STORED`` (PostgreSQL 15 has no other);
- the audit log's triggers refusing UPDATE and DELETE become a PL/pgSQL function raising the same
  message;
- the store's incarnation (``randomblob``) comes from ``gen_random_uuid``.

:data:`COMPAT_FUNCTIONS` are created first (and again, harmlessly, at every open): the SQLite functions
the role modules' queries use (``json_extract``, ``json_each`` of an array, ``julianday``, ``date`` with its modifiers,
``group_concat``, ``round`` and two-argument ``max`` of floats, ``sum`` of a truth value), defined in
SQL so no query changes words.

The columns that only several workers need (:data:`.leases.LEASE_COLUMNS`) are added after the
migrations, idempotently (``ADD COLUMN IF NOT EXISTS``): they carry no version of their own.

Every migration runs in one transaction holding the writers' advisory lock, so two workers opening a
fresh database at once apply each step once.
"""

from __future__ import annotations

import re
from datetime import datetime

from node.store.postgresql.db import Database, safe_dsn
from node.store.postgresql.leases import LEASE_COLUMNS
from node.store.sql_common import Migration, apply_migrations
from node.store.sqlite.migrations import MIGRATIONS

COMPAT_FUNCTIONS = (
    # json_extract(text, '$.a.b') as SQLite gives it for the text values the store keeps.
    """CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
       $$ SELECT doc::jsonb #>> string_to_array(substr(path, 3), '.') $$""",
    # julianday of the store's UTC times ('2026-03-02T01:00:00.000000Z').
    """CREATE OR REPLACE FUNCTION julianday(t text) RETURNS double precision
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
       $$ SELECT extract(epoch FROM t::timestamptz)::double precision / 86400.0 + 2440587.5 $$""",
    """CREATE OR REPLACE FUNCTION round(v double precision, places integer) RETURNS double precision
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT round(v::numeric, places)::double precision $$""",
    # SUM over a truth value counts the true ones, as SQLite's SUM over 0/1 does.
    """CREATE OR REPLACE FUNCTION gwx_sum_true(acc bigint, v boolean) RETURNS bigint
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(acc, 0) + coalesce(v::int, 0) $$""",
    """DO $$ BEGIN
         CREATE AGGREGATE sum(boolean) (SFUNC = gwx_sum_true, STYPE = bigint);
       EXCEPTION WHEN duplicate_function THEN NULL; END $$""",
    """CREATE OR REPLACE FUNCTION gwx_concat(acc text, v anyelement) RETURNS text
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
       $$ SELECT CASE WHEN v IS NULL THEN acc WHEN acc IS NULL THEN v::text ELSE acc || ',' || v::text END $$""",
    """DO $$ BEGIN
         CREATE AGGREGATE group_concat(anyelement) (SFUNC = gwx_concat, STYPE = text);
       EXCEPTION WHEN duplicate_function THEN NULL; END $$""",
    # json_each over a JSON array kept as text (a message's units): its elements, as column value.
    """CREATE OR REPLACE FUNCTION json_each(doc text) RETURNS TABLE (value text)
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT jsonb_array_elements_text(doc::jsonb) $$""",
    # SQLite's scalar max of two numbers (PostgreSQL's GREATEST).
    """CREATE OR REPLACE FUNCTION max(a double precision, b double precision) RETURNS double precision
       LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT greatest(a, b) $$""",
    # date(time, modifier…) with the modifiers the 台账's statistics use (node.store.sqlite.ledger):
    # '+N minutes' / '-N days', 'weekday N' (forward to that weekday, 0 = Sunday), 'start of month'.
    """CREATE OR REPLACE FUNCTION date(t text, VARIADIC modifiers text[]) RETURNS text
       LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
       DECLARE
         ts timestamp := t::timestamptz AT TIME ZONE 'UTC';
         m text;
       BEGIN
         FOREACH m IN ARRAY modifiers LOOP
           IF m ~ '^[+-]?[0-9]+ minutes?$' THEN ts := ts + split_part(m, ' ', 1)::int * interval '1 minute';
           ELSIF m ~ '^[+-]?[0-9]+ days?$' THEN ts := ts + split_part(m, ' ', 1)::int * interval '1 day';
           ELSIF m = 'start of month' THEN ts := date_trunc('month', ts);
           ELSIF m ~ '^weekday [0-6]$' THEN
             ts := ts + ((split_part(m, ' ', 2)::int - extract(dow FROM ts)::int + 7) % 7) * interval '1 day';
           ELSE RAISE EXCEPTION 'date modifier % is not one gwx uses', m;
           END IF;
         END LOOP;
         RETURN to_char(ts, 'YYYY-MM-DD');
       END $$""",
    """CREATE OR REPLACE FUNCTION gwx_refuse_change() RETURNS trigger LANGUAGE plpgsql AS
       $$ BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$""",
)

_TYPES = ((re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b"),
           "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
          (re.compile(r"\bINTEGER\b"), "BIGINT"),
          (re.compile(r"\bBLOB\b"), "BYTEA"),
          (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
          (re.compile(r"\)\s*WITHOUT\s+ROWID\s*$"), ")"),
          (re.compile(r"\)\s*VIRTUAL\b"), ") STORED"),
          (re.compile(r"lower\(hex\(randomblob\(4\)\)\)"), "substr(replace(gen_random_uuid()::text, '-', ''), 1, 8)"))
_TRIGGER = re.compile(r"CREATE TRIGGER (\w+) BEFORE (UPDATE|DELETE) ON (\w+)\s+BEGIN SELECT RAISE\(ABORT, "
                      r"'([^']*)'\); END", re.IGNORECASE)


def ddl(statement: str) -> str:
    """One of SQLite's schema statements as PostgreSQL's."""
    trigger = _TRIGGER.search(statement)
    if trigger:
        name, event, table, message = trigger.groups()
        return (f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW"
                f" EXECUTE FUNCTION gwx_refuse_change('{message}')")
    for pattern, replacement in _TYPES:
        statement = pattern.sub(replacement, statement)
    return statement


async def current_version(db: Database) -> int:
    row = await db.fetchone("SELECT to_regclass('schema_version') IS NOT NULL")
    if row is None or not row[0]:
        return 0
    row = await db.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(row[0]) if row else 0


async def migrate(db: Database, now: datetime, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the database to the newest schema; as :func:`node.store.sqlite.migrations.migrate` (the
    same loop, :func:`node.store.sql_common.apply_migrations`), each statement said by :func:`ddl`."""
    applied = await apply_migrations(
        db, now, migrations, where=safe_dsn(db.dsn), current_version=lambda: current_version(db), ddl=ddl,
        prepare=(*COMPAT_FUNCTIONS, """CREATE TABLE IF NOT EXISTS schema_version (
            version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"""))
    async with db.transaction() as tx:  # PostgreSQL's own columns (several workers), whatever the version
        for statement in LEASE_COLUMNS:
            await tx.execute(statement)
    return applied
