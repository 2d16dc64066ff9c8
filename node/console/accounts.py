"""Who may use the console, and the rules of signing in: the one place that decides them.

* **Users** (``gwx user add | disable | enable | passwd | list``, the operator's): a ``login`` to
  sign in with (lower-case letters, digits, ``.``, ``_``, ``-``), a ``name`` recorded as 签收人, and
  a role — ``clerk`` of one unit this node hosts, ``supervisor`` of one or more units, ``operator``
  (node status, no documents). A supervisor's units are those listed (``--unit``) and, when its
  account names a supervising unit (``--supervising-unit``), every unit the network directory
  (else node.toml's ``parent``) says that unit supervises, read at each request
  (:func:`node.supervision.supervisors.supervised_by`). Passwords are kept as scrypt hashes (:mod:`node.console.passwords`).
* **Lockout**: :data:`LOCK_AFTER` wrong passwords in a row lock the account for
  :data:`LOCK_SECONDS`; it unlocks by itself then (or at once with ``gwx user passwd``). A good
  sign-in starts the count again, but never lifts a lock: the lock is read again when an attempt's
  turn to hash comes, and the session opens only if the account is still unlocked then (one
  transaction in the store), so a burst of parallel guesses is checked at most
  :data:`LOCK_AFTER` + ``AT_ONCE`` − 1 times.
* **What a refusal tells**: a wrong password and an unknown login get the same answer after the same
  scrypt work (an unknown login is checked against a dummy hash), with no count of tries left. A
  lock does tell that its login exists (unknown logins are never locked): the price of telling a
  clerk why the right password is refused; it reveals a login only after :data:`LOCK_AFTER` guesses.
* **Floods**: at most ``AT_ONCE`` passwords are checked at a time and :data:`MAX_WAITING` more sign-ins
  wait; beyond that a sign-in is turned away at once (``CONSOLE_BUSY``, 503), unchecked and unaudited.
* **Sessions**: a random 256-bit id in the cookie, its SHA-256 in the store; the session ends after
  :data:`IDLE_SECONDS` without a request or :data:`ABSOLUTE_SECONDS` after sign-in, whichever
  comes first, at sign-out, and when the user is disabled or given a new password. Each session
  has its own CSRF token (:mod:`node.console.security` checks it on every form).

Every sign-in, good or refused (with why: unknown login, wrong password, locked, disabled), and
every change to a user is in the audit log, written by the store in the same transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from node.api.auth import Principal
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
from node.console.passwords import AT_ONCE, DUMMY_HASH, check_password_rules, hash_password, verify_password
from node.errors import StoreDuplicate, StoreNotFound
from node.store.interfaces import ConsoleAccountStore
from node.store.values import ConsoleSession, ConsoleUser
from pki.errors import InvalidUnitCode
from pki.unit_code import validate_unit_code

ROLES = ("clerk", "supervisor", "operator")
LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
MAX_NAME = 64
LOCK_AFTER = 5
LOCK_SECONDS = 15 * 60
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600
MAX_WAITING = 16  # sign-ins that may wait for a password check; more are turned away (CONSOLE_BUSY, 503)
TOUCH_SECONDS = 60  # a session's last_seen_at is written at most this often (not at every request)


@dataclass(frozen=True)
class SignedIn:
    session: ConsoleSession
    cookie: str  # the session id itself: goes to the browser once, never stored


def principal_of(user: ConsoleUser, supervised_by: Callable[[str], Collection[str]] | None = None) -> Principal:
    """The principal the document service sees for a console user: 签收人 is the user's name; a
    supervisor carries the units it supervises (what its 督办 list, 台账 and statistics may show):
    those listed, and those ``supervised_by`` its supervising unit."""
    unit = user.units[0] if user.role == "clerk" else None
    supervised: tuple[str, ...] = ()
    if user.role == "supervisor":
        found = set(user.units)
        if user.supervising_unit is not None and supervised_by is not None:
            found |= set(supervised_by(user.supervising_unit))
        supervised = tuple(sorted(found))
    return Principal(f"console:{user.login}", user.name, user.role, unit, supervised)


def _unit_code(text: str, field: str) -> str:
    try:
        return validate_unit_code(text)
    except InvalidUnitCode as exc:
        raise BadUser(f"unit {text!r}: {exc.message}", field=field) from None


def session_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()


class Accounts:
    def __init__(self, store: ConsoleAccountStore, clock: Callable[[], dt.datetime],
                 hosted_units: Collection[str] | None = None, *,
                 supervised_by: Callable[[str], Collection[str]] | None = None) -> None:
        """``supervised_by``: the units a supervising unit supervises, as the node reads them now."""
        self.store = store
        self.clock = clock
        self.hosted_units = frozenset(hosted_units) if hosted_units is not None else None
        self.supervised_by = supervised_by
        self._hashing = asyncio.Semaphore(AT_ONCE)
        self._signing_in = 0  # sign-ins being checked or waiting for their turn

    # ---- the operator's commands -------------------------------------------------------------------
    async def add(self, login: str, name: str, role: str, units: Sequence[str], password: str, *,
                  actor: str = "operator", supervising_unit: str | None = None) -> ConsoleUser:
        login = check_login(login)
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
            raise BadUser(f"a user needs a name (签收人) of 1 to {MAX_NAME} printable characters", field="name")
        if supervising_unit is not None:
            if role != "supervisor":
                raise BadUser("only a supervisor works for a supervising unit (--supervising-unit)",
                              field="supervising_unit")
            supervising_unit = _unit_code(supervising_unit, "supervising_unit")
        units = self._check_units(role, units, supervising=supervising_unit is not None)
        password_hash = await self._hash(check_password_rules(password))
        try:
            return await self.store.add_user(login, name, role, units, password_hash, actor=actor,
                                             supervising_unit=supervising_unit)
        except StoreDuplicate:
            raise UserExists(f"there is already a user {login}", login=login) from None

    async def set_password(self, login: str, password: str, *, actor: str = "operator") -> ConsoleUser:
        password_hash = await self._hash(check_password_rules(password))
        try:
            return await self.store.set_password(check_login(login), password_hash, actor=actor)
        except StoreNotFound:
            raise NoSuchUser(f"there is no user {login}", login=login) from None

    async def set_disabled(self, login: str, disabled: bool, *, actor: str = "operator") -> ConsoleUser:
        try:
            return await self.store.set_disabled(check_login(login), disabled, actor=actor)
        except StoreNotFound:
            raise NoSuchUser(f"there is no user {login}", login=login) from None

    async def users(self) -> list[ConsoleUser]:
        return await self.store.list_users()

    def principal(self, user: ConsoleUser) -> Principal:
        """:func:`principal_of` with the node's reading of who supervises whom."""
        return principal_of(user, self.supervised_by)

    def _check_units(self, role: str, units: Sequence[str], *, supervising: bool = False) -> tuple[str, ...]:
        if role not in ROLES:
            raise BadUser(f"unknown role {role!r}; one of {', '.join(ROLES)}", field="role")
        checked: list[str] = []
        for unit in units:
            code = _unit_code(unit, "unit")
            if code not in checked:
                checked.append(code)
        if role == "clerk":
            if len(checked) != 1:
                raise BadUser("a clerk acts for exactly one unit (--unit CODE)", field="unit")
            if self.hosted_units is not None and checked[0] not in self.hosted_units:
                raise BadUser(f"this node does not host unit {checked[0]} (it hosts "
                              f"{', '.join(sorted(self.hosted_units))})", field="unit", unit=checked[0])
        elif role == "supervisor" and not checked and not supervising:
            raise BadUser("a supervisor supervises one or more units (--unit CODE, repeated, or "
                          "--supervising-unit CODE)", field="unit")
        elif role == "operator" and checked:
            raise BadUser("an operator acts for the node, not for units: leave --unit out", field="unit")
        return tuple(checked)

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(hash_password, password)

    # ---- signing in and out ------------------------------------------------------------------------
    async def sign_in(self, login: str, password: str, *, client: str = "") -> SignedIn:
        # Each check costs 32 MiB and 0.15 s of a core: a flood of sign-ins may not queue without end.
        if self._signing_in >= AT_ONCE + MAX_WAITING:
            raise SignInBusy(f"more than {MAX_WAITING} sign-ins are waiting; try again shortly")
        self._signing_in += 1
        try:
            return await self._sign_in(login, password, client)
        finally:
            self._signing_in -= 1

    async def _sign_in(self, login: str, password: str, client: str) -> SignedIn:
        login = (login or "").strip().lower()
        known = LOGIN.fullmatch(login) is not None
        shown = login[:64]
        async with self._hashing:
            # The lock is read once it is this attempt's turn to hash, and the outcome is recorded
            # before the next one's turn: attempts queued behind a burst that has locked the account
            # are refused without being checked.
            user = await self.store.get_user(login) if known else None
            now = self.clock()
            if user is not None and user.locked_until is not None and user.locked_until > now:
                await self.store.refuse_sign_in(shown, user, "locked", now=now)
                raise _locked(user.locked_until)
            # An unknown login costs the same hash as a known one: timing does not tell which exist.
            good = await asyncio.to_thread(verify_password, password or "",
                                           user.password_hash if user else DUMMY_HASH)
            now = self.clock()
            if user is None:
                await self.store.refuse_sign_in(shown, None, "unknown_login", now=now)
                raise SignInRefused("wrong login or password")
            if not good:
                # Counted in one statement; a failure that finds the account locked answers "locked"
                # whatever the password, so guesses checked in parallel tell nothing once it has locked.
                after = await self.store.refuse_sign_in(shown, user, "wrong_password", now=now, lock_after=LOCK_AFTER,
                                                        lock_until=now + dt.timedelta(seconds=LOCK_SECONDS))
                if after is not None and after.locked_until is not None and after.locked_until > now:
                    raise _locked(after.locked_until)
                # Said exactly as for an unknown login: how many tries are left would tell that it exists.
                raise SignInRefused("wrong login or password")
            if user.disabled:
                await self.store.refuse_sign_in(shown, user, "disabled", now=now)
                raise AccountDisabled(f"the account {login} is disabled; the node's operator can enable it", login=login)
            cookie = secrets.token_urlsafe(32)
            # The store opens the session only if the account is not locked now (failures checked at the
            # same time as this password may have locked it): a good password never lifts a lock.
            session = await self.store.open_session(
                user, session_hash(cookie), secrets.token_urlsafe(32), now,
                now + dt.timedelta(seconds=ABSOLUTE_SECONDS), {"client": client[:64]})
            if session is None:
                locked = await self.store.get_user(login)
                raise _locked(locked.locked_until if locked and locked.locked_until else now)
            return SignedIn(session, cookie)

    async def session(self, cookie: str | None) -> ConsoleSession:
        """The live session the cookie names; :class:`NotSignedIn` (``CONSOLE_SESSION_EXPIRED`` when
        it names one that has ended) otherwise. Ending one for a timeout is audited."""
        if not cookie:
            raise NotSignedIn("not signed in")
        session = await self.store.get_session(session_hash(cookie))
        if session is None:
            raise NotSignedIn("the session has ended; sign in again", code="CONSOLE_SESSION_EXPIRED")
        now = self.clock()
        reason = ("expired" if now >= session.expires_at else
                  "idle" if (now - session.last_seen_at).total_seconds() >= IDLE_SECONDS else
                  "disabled" if session.user.disabled else None)
        if reason is not None:
            await self.store.close_session(session, reason)
            raise NotSignedIn(f"the session has ended ({reason}); sign in again", code="CONSOLE_SESSION_EXPIRED")
        if (now - session.last_seen_at).total_seconds() >= TOUCH_SECONDS:
            await self.store.touch_session(session.id_hash, now)
        return session

    async def sign_out(self, session: ConsoleSession) -> None:
        await self.store.close_session(session, "signed_out")

    async def replaced(self, cookie: str | None) -> None:
        """A new sign-in from a browser that still holds a cookie: the session it names ends (one
        browser, one session; an old cookie left behind would otherwise stay good for hours)."""
        session = await self.store.get_session(session_hash(cookie)) if cookie else None
        if session is not None:
            await self.store.close_session(session, "signed_in_again")


def check_login(login: str) -> str:
    if not isinstance(login, str) or not LOGIN.fullmatch(login):
        raise BadUser("a login has 2 to 32 characters: lower-case letters, digits, '.', '_' or '-', "
                      "starting with a letter or digit", field="login")
    return login


def _locked(until: dt.datetime) -> AccountLocked:
    return AccountLocked(f"the account is locked after {LOCK_AFTER} wrong passwords until {until.isoformat()}",
                         until=until.isoformat())
