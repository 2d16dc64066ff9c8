"""Bearer tokens and roles for the local API.

A token is 32 random bytes (URL-safe base64) shown once and stored only as its SHA-256 in
``NODE_DIR/tokens.json`` (0600). Each token names a person (the 签收人 recorded when they sign
for a document) and a role:

* ``clerk`` of one unit (收发员): send as that unit, read and act on that unit's inbox/outbox;
* ``operator``: node status, queues, peers, metrics — no documents;
* ``pki_admin``: reserved for PKI operations served by a node.

Lookup is by hash, so timing does not depend on how much of a guessed token matches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from pki.keystore import write_secret_file
from pki.unit_code import validate_unit_code

from .errors import NodeError

ROLES = ("clerk", "operator", "pki_admin")


class AuthError(NodeError):
    code = "API_UNAUTHENTICATED"


class Forbidden(NodeError):
    code = "API_FORBIDDEN"


@dataclass(frozen=True)
class Principal:
    token_id: str
    name: str
    role: str
    unit: str | None = None

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
    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_hash: dict[str, tuple[str, Principal]] = {}
        if path.exists():
            for entry in json.loads(path.read_text("utf-8")):
                p = Principal(entry["token_id"], entry["name"], entry["role"], entry.get("unit"))
                self._by_hash[entry["sha256"]] = (entry["sha256"], p)

    def issue(self, name: str, role: str, unit: str | None = None) -> tuple[Principal, str]:
        """Create a token; returns the principal and the token text (shown once, never stored)."""
        if role not in ROLES:
            raise NodeError(f"unknown role {role!r}; one of {', '.join(ROLES)}", code="API_BAD_ROLE")
        if role == "clerk":
            if not unit:
                raise NodeError("a clerk token needs a unit", code="API_BAD_ROLE")
            unit = validate_unit_code(unit)
        if not name.strip():
            raise NodeError("a token needs the name of the person who uses it", code="API_BAD_ROLE")
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
        if not header or not header.startswith("Bearer "):
            raise AuthError("missing bearer token (Authorization: Bearer …)")
        found = self._by_hash.get(_digest(header[len("Bearer "):].strip()))
        if found is None:
            raise AuthError("unknown or revoked token")
        return found[1]

    def principals(self) -> list[Principal]:
        return [p for _, p in self._by_hash.values()]

    def _save(self) -> None:
        data = [{"sha256": h, **asdict(p)} for h, p in self._by_hash.values()]
        write_secret_file(self.path, json.dumps(data, ensure_ascii=False, indent=1).encode())
