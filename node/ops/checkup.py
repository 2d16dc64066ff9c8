"""``gwx node check``: everything an operator should know about a node directory before (or while)
it runs, one line each — ok, warning or error — without starting the node or asking for a passphrase.

Most lines are readiness's checks (:mod:`node.ops.readiness` decides certificate and seal expiry,
CRL freshness, the network directory, disk space and watched folders; ``gwx node status`` and
``/readyz`` show the same verdicts). This module adds what only an operator's check needs:

* ``keys`` — every private key and secret file of the directory (the node's credentials, the
  previous encryption key a renewal keeps, each unit's seal key, the OCSP signer's key, the API
  tokens) readable by its owner alone, and every private key encrypted. A key file others can read
  is an error (the node refuses to load it: ``PKI_INSECURE_KEY_FILE``), as is one in clear.
* ``store`` — the database opens read-only, and its schema is the one this gwx writes: older is a
  warning (the node migrates it at its next start; back it up first), newer an error
  (``STORE_SCHEMA_TOO_NEW``: this gwx is older than the one that last ran the node).

The node's configuration itself is checked by loading it (:func:`node.config.load_config`); a
node.toml that does not load is the one error that stops the other checks.
"""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from node.config import NodeConfig
from node.ops import readiness
from node.ops.readiness import FAIL, OK, WARN, Check
from node.store.opener import read_schema_version
from pki.errors import GwxError

# Files that hold a secret in clear (tokens) or a key: readable by the owner alone.
SECRET_FILES = ("tokens.json", "tokens/*.token")
PRIVATE_KEYS = ("credentials/*.key", "credentials/previous/*/*.key")


def run_checks(config: NodeConfig, now: dt.datetime) -> list[Check]:
    """The lines of ``gwx node check`` after the configuration's, in the order shown."""
    checks = {c.name: c for c in readiness.file_checks(config, now)}
    ordered = [keys_check(config), checks.pop("certificates"), checks.pop("seals"), checks.pop("revocation"),
               checks.pop("directory"), store_check(config), checks.pop("disk")]
    return ordered + list(checks.values())  # folders, when configured


def key_files(config: NodeConfig) -> list[Path]:
    """Every private key file of the node directory."""
    found = [p for pattern in PRIVATE_KEYS for p in sorted(config.directory.glob(pattern))]
    found += [u.seal_dir / "seal.key" for u in config.units if (u.seal_dir / "seal.key").exists()]
    if config.ocsp_signer_dir is not None:
        found += sorted(config.ocsp_signer_dir.glob("*.key"))
    return found


def keys_check(config: NodeConfig) -> Check:
    keys = key_files(config)
    secrets = [p for pattern in SECRET_FILES for p in sorted(config.directory.glob(pattern))]
    exposed, clear, unreadable = [], [], []
    for path in keys + secrets:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            head = path.read_bytes()[:64] if path in keys else b""
        except OSError as exc:
            unreadable.append(f"{_shown(config, path)} ({exc.strerror})")
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            exposed.append(f"{_shown(config, path)} (mode {mode:o})")
        if path in keys and b"ENCRYPTED" not in head:
            clear.append(_shown(config, path))
    if not (config.credentials_dir / "sign.key").exists():
        return Check("keys", FAIL, f"{_shown(config, config.credentials_dir / 'sign.key')} is missing: the node "
                     "cannot sign (enrol it: gwx node request, install-certs)", "PKI_KEY_MISSING")
    if exposed:
        return Check("keys", FAIL, "others can read " + ", ".join(exposed) + ": chmod 600 them, and treat the "
                     "keys as leaked (rotate them)", "PKI_INSECURE_KEY_FILE")
    if clear:
        return Check("keys", FAIL, "not encrypted with the node passphrase: " + ", ".join(clear),
                     "PKI_INSECURE_KEY_FILE")
    if unreadable:
        return Check("keys", FAIL, "cannot read " + ", ".join(unreadable), "IO_ERROR")
    return Check("keys", OK, f"{len(keys)} private keys, encrypted; they and {len(secrets)} token files "
                 "readable by the owner alone")


def store_check(config: NodeConfig) -> Check:
    try:
        versions = read_schema_version(config.data_dir)
    except GwxError as exc:
        return Check("store", FAIL, f"the database cannot be read: {exc.message}", exc.code)
    if versions is None:
        return Check("store", OK, "no database yet: the node creates it at its first start")
    version, latest = versions
    if version > latest:
        return Check("store", FAIL, f"the database is at schema version {version}, newer than the {latest} this "
                     "gwx knows: run the gwx that last ran this node (or a newer one)", "STORE_SCHEMA_TOO_NEW")
    if version < latest:
        return Check("store", WARN, f"the database is at schema version {version}: the node migrates it to "
                     f"{latest} at its next start (back it up first: gwx node backup)")
    return Check("store", OK, f"the database opens, schema version {version} (current)")


def _shown(config: NodeConfig, path: Path) -> str:
    try:
        return str(path.relative_to(config.directory))
    except ValueError:
        return str(path)


def worst(checks: list[Check]) -> str:
    verdicts = {c.verdict for c in checks}
    return FAIL if FAIL in verdicts else WARN if WARN in verdicts else OK
