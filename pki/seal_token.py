"""A unit's seal key on a PKCS#11 token (UKey, HSM): where to find it and how the node unlocks it.

A seal directory whose key lives on a token holds ``token.toml`` instead of ``seal.key``::

    module = "/usr/lib/softhsm/libsofthsm2.so"   # the token's PKCS#11 library
    token = "unit-ukey"                          # the token's label
    key_label = "seal-91350100M000100Y43"        # the key's label on the token
    pin_file = "/etc/gwx/unit.pin"               # or: pin_env = "GWX_SEAL_PIN"

The key is made on the token (:func:`create_token_seal_request`, through
:func:`pki.pkcs11.generate_keypair_on_token`: non-extractable) and never leaves it; the node signs
through :class:`pki.pkcs11.Pkcs11Signer`. The PIN is not kept in ``token.toml``: it comes from a
file only its owner may read (refused otherwise, as :mod:`pki.keystore` refuses a readable key) or
from an environment variable the service manager sets. A running node logs in once and keeps the
session; the PIN is read when the node opens its seals.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from .algorithms import DEFAULT, PublicKey, SignatureAlgorithm
from .errors import InvalidInput, TokenConfigInvalid
from .keystore import write_public_file

TOKEN_FILE = "token.toml"

if TYPE_CHECKING:  # python-pkcs11 (~30 ms to import) is loaded where a token is used, not by every start
    from .pkcs11 import Pkcs11Signer


@dataclass(frozen=True)
class TokenRef:
    """Where a seal key is: the PKCS#11 library, the token's label, the key's label, the PIN's source."""

    module: str
    token: str
    key_label: str
    pin_file: str | None = None
    pin_env: str | None = None

    def __post_init__(self) -> None:
        for name in ("module", "token", "key_label"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise TokenConfigInvalid(f"token {name} must be a non-empty string", field=name)
        if (self.pin_file is None) == (self.pin_env is None):
            raise TokenConfigInvalid("say where the token PIN comes from: pin_file or pin_env (one of them)",
                                     code="SEAL_TOKEN_PIN_MISSING")

    def pin(self) -> str:
        """The PIN, from an owner-only file or the environment (typed errors, never the PIN in them)."""
        if self.pin_env is not None:
            value = os.environ.get(self.pin_env)
            if not value:
                raise TokenConfigInvalid(f"the environment variable {self.pin_env} (the token PIN) is not set",
                                         code="SEAL_TOKEN_PIN_MISSING", env=self.pin_env)
            return value
        path = Path(self.pin_file or "")
        try:
            mode = path.stat().st_mode
            text = path.read_text("utf-8").strip()
        except OSError as exc:
            raise TokenConfigInvalid(f"cannot read the token PIN file {path}: {exc.strerror}",
                                     code="SEAL_TOKEN_PIN_MISSING", path=str(path)) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenConfigInvalid(f"the token PIN file {path} is readable by others (chmod 600 it)",
                                     code="SEAL_TOKEN_PIN_EXPOSED", path=str(path))
        if not text:
            raise TokenConfigInvalid(f"the token PIN file {path} is empty", code="SEAL_TOKEN_PIN_MISSING",
                                     path=str(path))
        return text

    def signer(self, certificate: x509.Certificate | None = None) -> Pkcs11Signer:
        from .pkcs11 import Pkcs11Signer

        return Pkcs11Signer(self.module, self.token, self.pin(), self.key_label, certificate=certificate)

    def toml(self) -> str:
        lines = [f"module = {_quoted(self.module)}", f"token = {_quoted(self.token)}",
                 f"key_label = {_quoted(self.key_label)}"]
        lines.append(f"pin_file = {_quoted(self.pin_file)}" if self.pin_file is not None
                     else f"pin_env = {_quoted(self.pin_env or '')}")
        return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_token_ref(seal_dir: str | Path) -> TokenRef | None:
    """The seal directory's ``token.toml``, or None when its key is a file (``seal.key``)."""
    path = Path(seal_dir) / TOKEN_FILE
    if not path.exists():
        return None
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TokenConfigInvalid(f"{path} is not valid TOML: {exc}", path=str(path)) from None
    unknown = set(raw) - {"module", "token", "key_label", "pin_file", "pin_env"}
    if unknown:
        raise TokenConfigInvalid(f"{path} has unknown keys: {', '.join(sorted(unknown))}", path=str(path))
    if not all(isinstance(v, str) for v in raw.values()):
        raise TokenConfigInvalid(f"every value in {path} must be a string", path=str(path))
    return TokenRef(raw.get("module", ""), raw.get("token", ""), raw.get("key_label", ""),
                    raw.get("pin_file"), raw.get("pin_env"))


def make_token_key(seal_dir: str | Path, ref: TokenRef,
                   algorithm: SignatureAlgorithm = DEFAULT) -> Pkcs11Signer:
    """Generate the seal key on the token (refusing to shadow one) and write ``token.toml``; the
    signer it returns signs the request. Nothing is written when the PIN or the token fails."""
    if not isinstance(algorithm, SignatureAlgorithm):
        raise InvalidInput("algorithm must be a SignatureAlgorithm")
    from .pkcs11 import Pkcs11Signer, generate_keypair_on_token

    pin = ref.pin()
    generate_keypair_on_token(ref.module, ref.token, pin, ref.key_label, algorithm)
    out = Path(seal_dir)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    write_public_file(out / TOKEN_FILE, ref.toml().encode())
    return Pkcs11Signer(ref.module, ref.token, pin, ref.key_label)


def token_public_key(ref: TokenRef) -> PublicKey:
    with ref.signer() as signer:
        return signer.public_key
