"""How current the CRLs this node holds are, and how its last fetch from the parent went.

Read by readiness, ``gwx node status`` and /metrics from the node directory alone (so the answer is
the same whether the node runs or not):

* ``crl.pem`` — every CA's CRL (:func:`held_crls`); on the root node the CA operator writes it, below
  it :mod:`node.federation.crl_fetch` does;
* ``run/crl-fetch.json`` — the fetcher's last outcome (:func:`record_fetch`): when, from which parent,
  installed / unchanged / refused / try-again, with the code and message of a failure, and when a
  fetch last succeeded. A stale CRL is reported with this as its reason (:func:`fetch_note`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from cryptography import x509

from exchange_protocol.envelope import format_time
from node.config import NodeConfig
from pki.crl import crl_number, load_crls
from pki.errors import GwxError
from pki.keystore import write_public_file


def held_crls(config: NodeConfig) -> list[x509.CertificateRevocationList]:
    """The CRLs in ``crl.pem`` (empty when there is no file). Raises a typed error when unreadable."""
    try:
        data = config.crl_path.read_bytes()
    except FileNotFoundError:
        return []
    return load_crls(data)


def crl_figures(config: NodeConfig, now: dt.datetime) -> dict[str, dict[str, float]]:
    """Per issuing CA (its name): CRL number, seconds until its next update (negative once passed)
    and whether it is stale — the gauges of /metrics. Empty when no CRL can be read."""
    try:
        crls = held_crls(config)
    except (OSError, GwxError):
        return {}
    figures: dict[str, dict[str, float]] = {}
    for crl in sorted(crls, key=crl_number):  # the newest of an issuer's last: it is the one reported
        due = crl.next_update_utc
        # A CRL that announces no next update is stale from its issue on.
        remaining = ((due or crl.last_update_utc) - now).total_seconds()
        figures[crl.issuer.rfc4514_string()] = {"number": float(crl_number(crl)), "next_update_in": remaining,
                                                "stale": 1.0 if remaining < 0 else 0.0}
    return figures


def record_fetch(config: NodeConfig, parent: str, at: dt.datetime, outcome: str, code: str | None = None,
                 message: str | None = None) -> None:
    previous = last_fetch(config) or {}
    succeeded = outcome in ("installed", "unchanged")
    state = {"parent": parent, "at": at.isoformat(), "outcome": outcome, "code": code, "message": message,
             "last_success": at.isoformat() if succeeded else previous.get("last_success")}
    write_public_file(config.crl_fetch_state_path, json.dumps(state, ensure_ascii=False).encode())


def last_fetch(config: NodeConfig) -> dict[str, Any] | None:
    try:
        state = json.loads(config.crl_fetch_state_path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def fetch_note(config: NodeConfig) -> str:
    """Why a stale CRL is still held, in words: what the last fetch from the parent did; for the root
    node, that the CA operator publishes it."""
    if config.parent is None:
        return (f"no [parent] to fetch from (the root node, or static peers only): the CA operator publishes "
                f"the CRL into {config.crl_path} (gwx pki crl --out …)")
    state = last_fetch(config)
    parent = config.parent.node_id
    if state is None:
        return f"no fetch from the parent {parent} has completed yet"
    at = _time(state.get("at"))
    outcome = state.get("outcome")
    if outcome == "unchanged":
        return f"the parent {parent} had nothing newer at {at} (its own CRL is late: the CA operator must publish one)"
    if outcome == "installed":
        return f"the last fetch from {parent} at {at} installed a CRL that is itself late"
    since = state.get("last_success")
    return (f"last fetch from {parent} failed at {at}: {state.get('code')}: {state.get('message')}"
            + (f" (last success {_time(since)})" if since else " (none has succeeded yet)"))


def _time(value: Any) -> str:
    try:
        return format_time(dt.datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)
