"""Bearer tokens and roles for the local API.

A token is 32 random bytes (URL-safe base64), shown once. The node's token store,
``NODE_DIR/tokens.json`` (0600), keeps only each token's SHA-256, never the token. ``gwx node init``
also leaves the initial tokens themselves in ``NODE_DIR/tokens/*.token`` (0600, directory 0700):
secrets for the operator to hand out to the clerks and then delete. Each token names a person (the
签收人 recorded when they sign for a document) and a role:

* ``clerk`` of one unit (收发员): send as that unit, read and act on that unit's inbox/outbox;
* ``operator``: node status, queues, peers, metrics — no documents;
* ``pki_admin``: reserved for PKI operations served by a node.

Lookup is by hash, so timing does not depend on how much of a guessed token matches.

The running node sees ``gwx node add-token`` / ``revoke-token`` without a restart: on
:meth:`TokenStore.authenticate` the file's identity (inode, mtime, size: the store is rewritten by
atomic rename) is compared with what was loaded, at most once a second. A file that cannot be read
is a :class:`~node.errors.ConfigError` — at start, and also at a reload, where the node then refuses
every token until the file is repaired rather than keep honouring tokens that may have been revoked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from node.errors import ApiError, ConfigError, NodeError
from pki.errors import ErrorKind
from pki.keystore import write_secret_file
from pki.unit_code import validate_unit_code

log = logging.getLogger("gwx.auth")

ROLES = ("clerk", "operator", "pki_admin")
RELOAD_INTERVAL = 1.0  # seconds between looks at tokens.json from authenticate()


class AuthError(NodeError):
    code = "API_UNAUTHENTICATED"
    kind = ErrorKind.UNAUTHENTICATED


class Forbidden(NodeError):
    code = "API_FORBIDDEN"
    kind = ErrorKind.FORBIDDEN


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    role: str
    unit: str | None = None
    units: tuple[str, ...] = ()  # a supervisor's: the units it supervises (node.documents.supervised)

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}; {self.name} is {self.role}")

    def require_unit(self, unit: str) -> None:
        """A clerk acts for their own unit only."""
        self.require_role("clerk")
        if self.unit != unit:
            raise Forbidden(f"{self.name} is the clerk of {self.unit}, not of {unit}", unit=unit)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The hashed tokens of ``tokens.json``; ``clock`` (monotonic seconds) paces the reload checks."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._clock = clock
        self._by_hash: dict[str, tuple[str, Principal]] = {}
        self._loaded_as: tuple[int, int, int] | None = None
        self._checked_at = clock()
        self._broken: ConfigError | None = None
        self._load()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the token store {self.path}: {exc.strerror}",
                              code="NODE_TOKENS_CORRUPT", path=str(self.path)) from None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _load(self) -> None:
        identity = self._identity()
        self._by_hash = _parse(self.path) if identity is not None else {}
        self._loaded_as = identity

    def _maybe_reload(self) -> None:
        now = self._clock()
        if now - self._checked_at < RELOAD_INTERVAL:
            return
        self._checked_at = now
        try:
            if self._broken is not None or self._identity() != self._loaded_as:
                self._load()
                log.info("token store %s reloaded: %d tokens", self.path, len(self._by_hash))
            self._broken = None
        except ConfigError as exc:
            if self._broken is None:
                log.error("%s; refusing every token until it is repaired", exc.message)
            self._by_hash, self._broken = {}, exc

    def issue(self, name: str, role: str, unit: str | None = None,
              hosted: Collection[str] | None = None) -> tuple[Principal, str]:
        """Create a token; returns the principal and the token text (shown once, never stored).

        ``hosted``: the units this node hosts; a clerk token for any other unit could never be used.
        """
        if role not in ROLES:
            raise ApiError(f"unknown role {role!r}; one of {', '.join(ROLES)}", code="API_BAD_ROLE")
        if role == "clerk":
            if not unit:
                raise ApiError("a clerk token needs a unit", code="API_BAD_ROLE")
            unit = validate_unit_code(unit)
            if hosted is not None and unit not in hosted:
                raise ApiError(f"this node does not host unit {unit} (it hosts {', '.join(sorted(hosted))}); "
                               "a clerk token acts for a unit of this node", code="API_BAD_ROLE", unit=unit)
        elif unit:
            raise ApiError(f"only a clerk token names a unit; a {role} token acts for the node, not for {unit}",
                           code="API_BAD_ROLE", unit=unit)
        if not name.strip():
            raise ApiError("a token needs the name of the person who uses it", code="API_BAD_ROLE")
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        principal = Principal(secrets.token_hex(6), name.strip(), role, unit)
        self._by_hash[_digest(token)] = (_digest(token), principal)
        self._save()
        return principal, token

    def revoke(self, token_id: str) -> bool:
        for h, (_, p) in list(self._by_hash.items()):
            if p.token_id == token_id:
                del self._by_hash[h]
                self._save()
                return True
        return False

    def authenticate(self, header: str | None) -> Principal:
        self._maybe_reload()
        if self._broken is not None:
            raise self._broken
        if not header or not header.startswith("Bearer "):
            raise AuthError("missing bearer token (Authorization: Bearer …)")
        found = self._by_hash.get(_digest(header[len("Bearer "):].strip()))
        if found is None:
            raise AuthError("unknown or revoked token")
        return found[1]

    def principals(self) -> list[Principal]:
        return [p for _, p in self._by_hash.values()]

    def find(self, token_id: str) -> Principal | None:
        return next((p for p in self.principals() if p.token_id == token_id), None)

    def _save(self) -> None:
        data = [{"sha256": h, **asdict(p)} for h, p in self._by_hash.values()]
        write_secret_file(self.path, json.dumps(data, ensure_ascii=False, indent=1).encode())
        self._loaded_as = self._identity()


def _parse(path: Path) -> dict[str, tuple[str, Principal]]:
    """tokens.json → {sha256: (sha256, principal)}; anything unexpected is a ConfigError."""
    def corrupt(why: str) -> ConfigError:
        return ConfigError(f"the token store {path} is corrupt: {why}", code="NODE_TOKENS_CORRUPT", path=str(path))

    try:
        entries = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the token store {path}: {exc.strerror}", code="NODE_TOKENS_CORRUPT",
                          path=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupt(str(exc)) from None
    if not isinstance(entries, list):
        raise corrupt("it is not a list of tokens")
    by_hash: dict[str, tuple[str, Principal]] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise corrupt(f"entry {n} is not an object")
        fields = {k: entry.get(k) for k in ("sha256", "token_id", "name", "role")}
        missing = [k for k, v in fields.items() if not isinstance(v, str) or not v]
        if missing:
            raise corrupt(f"entry {n} lacks {', '.join(missing)}")
        unit = entry.get("unit")
        if fields["role"] not in ROLES or (unit is not None and not isinstance(unit, str)):
            raise corrupt(f"entry {n} has role {fields['role']!r} and unit {unit!r}")
        principal = Principal(fields["token_id"], fields["name"], fields["role"], unit)
        by_hash[fields["sha256"]] = (fields["sha256"], principal)
    return by_hash
