"""The console's users and sessions in SQLite (tables of migration 9).

What the rules are — how many failures lock an account and for how long, when a session has been
idle too long — is :mod:`node.console.accounts`'s to decide; this module keeps the rows and writes
the audit event of every change in the same transaction: a user added, disabled, enabled or given
a new password, a sign-in (``console.signed_in``), a refused one (``console.sign_in_refused``, with
the reason, also for a login nobody has), an account locked (``console.locked``), a session ended
(``console.signed_out``, by the user or by a timeout). A session is kept under the SHA-256 of its
id: whoever reads the database cannot sign in with what is there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from node.errors import StoreDuplicate, StoreNotFound
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.values import ConsoleSession, ConsoleUser

_USER_COLUMNS = ("id, login, name, role, units, password_hash, disabled, failed_sign_ins, locked_until, "
                 "created_at, supervising_unit")


class ConsoleAccounts:
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    # ---- users -----------------------------------------------------------------------------------
    async def add_user(self, login: str, name: str, role: str, units: Sequence[str], password_hash: str,
                       *, actor: str, supervising_unit: str | None = None) -> ConsoleUser:
        now = to_db_time(self._clock())
        async with self._db.transaction() as t:
            if await t.fetchone("SELECT 1 FROM console_users WHERE login = ?", (login,)):
                raise StoreDuplicate(f"there is already a user {login}", login=login)
            await t.execute("INSERT INTO console_users (login, name, role, units, password_hash, created_at,"
                            " updated_at, supervising_unit) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (login, name, role, json.dumps(list(units)), password_hash, now, now, supervising_unit))
            details = {"name": name, "role": role, "units": list(units)}
            if supervising_unit is not None:
                details["supervising_unit"] = supervising_unit
            await self._audit.append(t, actor, "user.added", {"user": login}, details)
            return await self._user(t, login)

    async def get_user(self, login: str) -> ConsoleUser | None:
        row = await self._db.lookup_one(f"SELECT {_USER_COLUMNS} FROM console_users WHERE login = ?", (login,))
        return _user(row) if row else None

    async def list_users(self) -> list[ConsoleUser]:
        rows = await self._db.fetchall(f"SELECT {_USER_COLUMNS} FROM console_users ORDER BY login")
        return [_user(r) for r in rows]

    async def set_password(self, login: str, password_hash: str, *, actor: str) -> ConsoleUser:
        """A new password also unlocks the account and ends its sessions (a stolen one among them)."""
        async with self._db.transaction() as t:
            await self._change(t, login, "password_hash = ?, failed_sign_ins = 0, locked_until = NULL",
                               (password_hash,))
            ended = await self._end_sessions(t, login)
            await self._audit.append(t, actor, "user.password_changed", {"user": login}, {"sessions_ended": ended})
            return await self._user(t, login)

    async def set_disabled(self, login: str, disabled: bool, *, actor: str) -> ConsoleUser:
        async with self._db.transaction() as t:
            await self._change(t, login, "disabled = ?", (int(disabled),))
            ended = await self._end_sessions(t, login) if disabled else 0
            await self._audit.append(t, actor, "user.disabled" if disabled else "user.enabled", {"user": login},
                                     {"sessions_ended": ended})
            return await self._user(t, login)

    async def refuse_sign_in(self, login: str, user: ConsoleUser | None, reason: str, *, now: datetime,
                             lock_after: int | None = None, lock_until: datetime | None = None) -> ConsoleUser | None:
        """Audit a refused sign-in; with ``lock_after``, count it against ``user`` and lock the account
        until ``lock_until`` when the count reaches ``lock_after`` (one statement: two failures at once
        cannot both miss the threshold)."""
        async with self._db.transaction() as t:
            details: dict[str, Any] = {"reason": reason}
            if user is not None and lock_after is not None and lock_until is not None:
                # A lock that has run out starts the count again at this failure.
                count = ("CASE WHEN locked_until IS NOT NULL AND locked_until <= :now THEN 1"
                         " ELSE failed_sign_ins + 1 END")
                row = await t.fetchone(
                    f"UPDATE console_users SET failed_sign_ins = {count},"
                    f" locked_until = CASE WHEN {count} >= :lock_after THEN :until"
                    " WHEN locked_until <= :now THEN NULL ELSE locked_until END,"
                    " updated_at = :now WHERE id = :id RETURNING failed_sign_ins, locked_until",
                    {"now": to_db_time(now), "lock_after": lock_after, "until": to_db_time(lock_until),
                     "id": user.id})
                details["failures"] = row["failed_sign_ins"]
                await self._audit.append(t, "console", "console.sign_in_refused", {"user": login}, details)
                if row["failed_sign_ins"] == lock_after:
                    await self._audit.append(t, "console", "console.locked", {"user": login},
                                             {"until": row["locked_until"], "failures": row["failed_sign_ins"]})
                return await self._user(t, login)
            await self._audit.append(t, "console", "console.sign_in_refused", {"user": login}, details)
            return user

    # ---- sessions --------------------------------------------------------------------------------
    async def open_session(self, user: ConsoleUser, id_hash: str, csrf_token: str, now: datetime,
                           expires_at: datetime, details: Mapping[str, Any]) -> ConsoleSession | None:
        """A good sign-in: the failure count starts again, sessions long expired are cleared away.

        ``None`` (audited as refused, ``locked``) when the account is locked at ``now``: failures that
        came in while this password was being checked may have locked it, and a good password must
        not lift a lock."""
        async with self._db.transaction() as t:
            unlocked = await t.fetchone(
                "UPDATE console_users SET failed_sign_ins = 0, locked_until = NULL"
                " WHERE id = ? AND (locked_until IS NULL OR locked_until <= ?) RETURNING id",
                (user.id, to_db_time(now)))
            if unlocked is None:
                await self._audit.append(t, "console", "console.sign_in_refused", {"user": user.login},
                                         {"reason": "locked"})
                return None
            await t.execute("DELETE FROM console_sessions WHERE expires_at < ?", (to_db_time(now),))
            await t.execute("INSERT INTO console_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at,"
                            " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                            (id_hash, user.id, csrf_token, to_db_time(now), to_db_time(now), to_db_time(expires_at)))
            await self._audit.append(t, f"user:{user.login}", "console.signed_in", {"user": user.login}, dict(details))
            fresh = await self._user(t, user.login)
        return ConsoleSession(id_hash, fresh, csrf_token, now, now, expires_at)

    async def get_session(self, id_hash: str) -> ConsoleSession | None:
        row = await self._db.lookup_one(
            "SELECT s.id_hash, s.csrf_token, s.created_at AS s_created, s.last_seen_at, s.expires_at,"
            f" {', '.join('u.' + c.strip() for c in _USER_COLUMNS.split(','))}"
            " FROM console_sessions s JOIN console_users u ON u.id = s.user_id WHERE s.id_hash = ?", (id_hash,))
        if row is None:
            return None
        return ConsoleSession(row["id_hash"], _user(row), row["csrf_token"], from_db_time(row["s_created"]),
                              from_db_time(row["last_seen_at"]), from_db_time(row["expires_at"]))

    async def touch_session(self, id_hash: str, now: datetime) -> None:
        async with self._db.transaction() as t:
            await t.execute("UPDATE console_sessions SET last_seen_at = ? WHERE id_hash = ?", (to_db_time(now), id_hash))

    async def close_session(self, session: ConsoleSession, reason: str) -> None:
        async with self._db.transaction() as t:
            gone = await t.execute("DELETE FROM console_sessions WHERE id_hash = ?", (session.id_hash,))
            if gone:
                await self._audit.append(t, f"user:{session.user.login}", "console.signed_out",
                                         {"user": session.user.login}, {"reason": reason})

    # ---- helpers ---------------------------------------------------------------------------------
    async def _change(self, t: SqliteTransaction, login: str, assignments: str, params: Sequence[Any]) -> None:
        changed = await t.execute(f"UPDATE console_users SET {assignments}, updated_at = ? WHERE login = ?",
                                  (*params, to_db_time(self._clock()), login))
        if not changed:
            raise StoreNotFound(f"there is no user {login}", login=login)

    async def _end_sessions(self, t: SqliteTransaction, login: str) -> int:
        return await t.execute("DELETE FROM console_sessions WHERE user_id = (SELECT id FROM console_users"
                               " WHERE login = ?)", (login,))

    async def _user(self, t: SqliteTransaction, login: str) -> ConsoleUser:
        row = await t.fetchone(f"SELECT {_USER_COLUMNS} FROM console_users WHERE login = ?", (login,))
        return _user(row)


def _user(row: Any) -> ConsoleUser:
    return ConsoleUser(id=row["id"], login=row["login"], name=row["name"], role=row["role"],
                       units=tuple(json.loads(row["units"])), password_hash=row["password_hash"],
                       disabled=bool(row["disabled"]), failed_sign_ins=row["failed_sign_ins"],
                       locked_until=from_db_time(row["locked_until"]), created_at=from_db_time(row["created_at"]),
                       supervising_unit=row["supervising_unit"])
