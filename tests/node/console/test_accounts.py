"""Console accounts on a real SQLite store: users, password hashes, lockout, sessions and their audit.

The clock is the only fake (a FakeClock the test moves); the store, the scrypt hashes and the
audit log are the node's own.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from node.console.accounts import (
    ABSOLUTE_SECONDS,
    IDLE_SECONDS,
    LOCK_AFTER,
    LOCK_SECONDS,
    MAX_WAITING,
    Accounts,
    SignedIn,
    principal_of,
)
from node.console.errors import (
    AccountDisabled,
    AccountLocked,
    BadUser,
    NoSuchUser,
    NotSignedIn,
    SignInBusy,
    SignInRefused,
    UserExists,
)
from node.console.passwords import AT_ONCE
from node.error_kinds import http_status_for
from node.store.sqlite.store import Store
from pki.unit_code import make_unit_code
from tests.support import T0, FakeClock

UNIT = make_unit_code("11371302MB0000001")
OTHER = make_unit_code("11371302MB0000002")
PASSWORD = "correct horse 42"


def scenario(tmp_path, body):
    async def main():
        clock = FakeClock(T0)
        store = await Store.open(tmp_path / "data", clock=clock)
        try:
            accounts = Accounts(store.accounts, clock, [UNIT])
            await body(store, accounts, clock)
        finally:
            await store.close()
    asyncio.run(main())


async def audit_actions(store, login):
    return [(e.action, e.details) for e in await store.audit.events(limit=1000) if e.subjects.get("user") == login]


def test_a_user_is_added_with_a_scrypt_hash_never_the_password(tmp_path):
    async def body(store, accounts, clock):
        user = await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        assert (user.role, user.units, user.name) == ("clerk", (UNIT,), "张三")
        row = await store.db.fetchone("SELECT password_hash FROM console_users WHERE login = 'zhangsan'")
        assert row[0].startswith("scrypt$15$8$1$") and PASSWORD not in row[0]
        assert principal_of(user).name == "张三" and principal_of(user).unit == UNIT
        assert ("user.added", {"name": "张三", "role": "clerk", "units": [UNIT]}) in await audit_actions(store, "zhangsan")
        with pytest.raises(UserExists):
            await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
    scenario(tmp_path, body)


@pytest.mark.parametrize(("login", "role", "units", "password", "field"), [
    ("Zhang San", "clerk", [UNIT], PASSWORD, "login"),
    ("zhangsan", "clerk", [OTHER], PASSWORD, "unit"),          # a unit this node does not host
    ("zhangsan", "clerk", [UNIT, OTHER], PASSWORD, "unit"),    # a clerk has one unit
    ("zhangsan", "operator", [UNIT], PASSWORD, "unit"),
    ("zhangsan", "supervisor", [], PASSWORD, "unit"),
    ("zhangsan", "admin", [], PASSWORD, "role"),
    ("zhangsan", "clerk", [UNIT], "short", None),
    ("zhangsan", "clerk", [UNIT], "aaaaaaaaaaaa", None),
])
def test_bad_users_are_refused_with_a_typed_error(tmp_path, login, role, units, password, field):
    async def body(store, accounts, clock):
        with pytest.raises(BadUser) as caught:
            await accounts.add(login, "张三", role, units, password)
        if field:
            assert caught.value.details["field"] == field
        else:
            assert caught.value.code == "CONSOLE_WEAK_PASSWORD"
        assert await accounts.users() == []
    scenario(tmp_path, body)


def test_wrong_passwords_are_audited_and_lock_the_account_until_it_unlocks_by_itself(tmp_path):
    async def body(store, accounts, clock):
        await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        with pytest.raises(SignInRefused):
            await accounts.sign_in("nobody", PASSWORD, client="127.0.0.1")
        for _ in range(1, LOCK_AFTER):
            with pytest.raises(SignInRefused) as caught:
                await accounts.sign_in("zhangsan", "wrong password", client="127.0.0.1")
            assert "attempts_left" not in caught.value.details  # it would tell that the login exists
        with pytest.raises(AccountLocked):
            await accounts.sign_in("zhangsan", "wrong password")
        with pytest.raises(AccountLocked):  # the right password too, while it is locked
            await accounts.sign_in("zhangsan", PASSWORD)
        actions = await audit_actions(store, "zhangsan")
        refused = [d for a, d in actions if a == "console.sign_in_refused"]
        assert [d["reason"] for d in refused] == ["wrong_password"] * LOCK_AFTER + ["locked"]
        assert [a for a, _ in actions].count("console.locked") == 1
        assert ("console.sign_in_refused", {"reason": "unknown_login"}) in await audit_actions(store, "nobody")

        clock.advance(seconds=LOCK_SECONDS + 1)
        signed = await accounts.sign_in("zhangsan", PASSWORD)
        assert signed.session.user.failed_sign_ins == 0
        # After a timed unlock the count starts again: one more wrong password does not lock.
        with pytest.raises(SignInRefused):
            await accounts.sign_in("zhangsan", "wrong password")
    scenario(tmp_path, body)


def test_a_burst_of_sign_ins_cannot_pass_the_lock(tmp_path):
    """12 wrong passwords and then the right one, all at once: the account locks after LOCK_AFTER
    failures, the attempts still waiting are refused unchecked, and the right password gets no session."""
    async def body(store, accounts, clock):
        await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        attempts = ["wrong password"] * 12 + [PASSWORD]
        results = await asyncio.gather(*(accounts.sign_in("zhangsan", p) for p in attempts), return_exceptions=True)
        assert isinstance(results[-1], AccountLocked)
        assert all(isinstance(r, SignInRefused | AccountLocked) for r in results)
        refused = [d["reason"] for a, d in await audit_actions(store, "zhangsan") if a == "console.sign_in_refused"]
        # Only the hashes already running when the lock fell are checked past the limit.
        assert LOCK_AFTER <= refused.count("wrong_password") <= LOCK_AFTER + AT_ONCE - 1
        assert len(refused) == len(attempts)
        assert (await store.db.fetchone("SELECT COUNT(*) FROM console_sessions"))[0] == 0
    scenario(tmp_path, body)


def test_sign_ins_beyond_what_may_wait_for_a_hash_are_turned_away_at_once(tmp_path):
    """A flood of sign-ins cannot queue unbounded scrypt work: past MAX_WAITING they get a 503 error."""
    async def body(store, accounts, clock):
        await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        flood = AT_ONCE + MAX_WAITING + 6
        results = await asyncio.gather(*(accounts.sign_in(f"nobody{i}", "wrong password") for i in range(flood)),
                                       return_exceptions=True)
        busy = [r for r in results if isinstance(r, SignInBusy)]
        assert len(busy) == 6 and all(http_status_for(r) == 503 for r in busy)
        assert all(isinstance(r, SignInRefused) for r in results if not isinstance(r, SignInBusy))
        assert isinstance(await accounts.sign_in("zhangsan", PASSWORD), SignedIn)  # the flood is over
    scenario(tmp_path, body)


def test_a_good_password_checked_while_the_account_was_being_locked_opens_no_session(tmp_path):
    async def body(store, accounts, clock):
        user = await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        # The account locks between the moment the user was read and the moment a session would open.
        for _ in range(LOCK_AFTER):
            await store.accounts.refuse_sign_in("zhangsan", user, "wrong_password", now=T0, lock_after=LOCK_AFTER,
                                                lock_until=T0 + dt.timedelta(seconds=LOCK_SECONDS))
        opened = await store.accounts.open_session(user, "0" * 64, "token", T0, T0 + dt.timedelta(hours=1), {})
        assert opened is None
        assert (await store.accounts.get_user("zhangsan")).locked_until is not None  # the lock stays
        assert (await store.db.fetchone("SELECT COUNT(*) FROM console_sessions"))[0] == 0
    scenario(tmp_path, body)


def test_a_new_password_unlocks_and_ends_the_sessions(tmp_path):
    async def body(store, accounts, clock):
        await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        before = await accounts.sign_in("zhangsan", PASSWORD)
        for _ in range(LOCK_AFTER):
            with pytest.raises((SignInRefused, AccountLocked)):
                await accounts.sign_in("zhangsan", "wrong password")
        await accounts.set_password("zhangsan", "another good one 7")
        with pytest.raises(NotSignedIn):
            await accounts.session(before.cookie)
        assert (await accounts.sign_in("zhangsan", "another good one 7")).session.user.login == "zhangsan"
        with pytest.raises(NoSuchUser):
            await accounts.set_password("lisi", "another good one 7")
    scenario(tmp_path, body)


def test_sessions_end_when_idle_after_their_absolute_time_and_at_sign_out(tmp_path):
    async def body(store, accounts, clock):
        await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        signed = await accounts.sign_in("zhangsan", PASSWORD)
        # The store keeps the cookie's hash, never the cookie.
        rows = await store.db.fetchall("SELECT id_hash FROM console_sessions")
        assert len(rows) == 1 and rows[0][0] != signed.cookie and signed.cookie not in rows[0][0]
        clock.advance(seconds=IDLE_SECONDS - 60)
        assert (await accounts.session(signed.cookie)).user.login == "zhangsan"
        clock.advance(seconds=IDLE_SECONDS + 1)
        with pytest.raises(NotSignedIn) as caught:
            await accounts.session(signed.cookie)
        assert caught.value.code == "CONSOLE_SESSION_EXPIRED"

        busy = await accounts.sign_in("zhangsan", PASSWORD)
        for _ in range(ABSOLUTE_SECONDS // (IDLE_SECONDS // 2)):  # active all along
            clock.advance(seconds=IDLE_SECONDS // 2)
            try:
                await accounts.session(busy.cookie)
            except NotSignedIn as exc:
                assert exc.code == "CONSOLE_SESSION_EXPIRED"
                break
        else:
            pytest.fail("a session outlived its absolute timeout")

        third = await accounts.sign_in("zhangsan", PASSWORD)
        await accounts.sign_out(await accounts.session(third.cookie))
        with pytest.raises(NotSignedIn):
            await accounts.session(third.cookie)
        ended = [d["reason"] for a, d in await audit_actions(store, "zhangsan") if a == "console.signed_out"]
        assert ended == ["idle", "expired", "signed_out"]
        assert [a for a, _ in await audit_actions(store, "zhangsan")].count("console.signed_in") == 3
    scenario(tmp_path, body)


def test_a_disabled_user_cannot_sign_in_and_their_sessions_end(tmp_path):
    async def body(store, accounts, clock):
        await accounts.add("zhangsan", "张三", "clerk", [UNIT], PASSWORD)
        signed = await accounts.sign_in("zhangsan", PASSWORD)
        await accounts.set_disabled("zhangsan", True)
        with pytest.raises(NotSignedIn):
            await accounts.session(signed.cookie)
        with pytest.raises(AccountDisabled):
            await accounts.sign_in("zhangsan", PASSWORD)
        with pytest.raises(SignInRefused):  # a wrong password is not told the account is disabled
            await accounts.sign_in("zhangsan", "wrong password")
        await accounts.set_disabled("zhangsan", False)
        assert (await accounts.sign_in("zhangsan", PASSWORD)).session.user.disabled is False
    scenario(tmp_path, body)


def test_an_operator_acts_for_no_unit_and_a_session_lasts_its_absolute_time(tmp_path):
    async def body(store, accounts, clock):
        await accounts.add("ops", "王五", "operator", [], PASSWORD)
        session = (await accounts.sign_in("ops", PASSWORD)).session
        assert session.expires_at - session.created_at == dt.timedelta(seconds=ABSOLUTE_SECONDS)
        assert principal_of(session.user).role == "operator" and principal_of(session.user).unit is None
    scenario(tmp_path, body)
