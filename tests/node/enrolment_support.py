"""Enrolling a node through the command line, as its operator and the PKI admin do it (README "Node
setup"): the node's commands get the node's passphrase and never the CA directory — which is moved
out of reach while they run, so a command that looked for it would fail — and the admin's get the CA.
Used by the CLI tests (tests/node/cli/test_cli_enrol.py) and the two-node network test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import run_gwx


@dataclass(frozen=True)
class Parties:
    """The PKI admin (CA directory and passphrase) and a node operator (own passphrase, own files)."""

    ca_dir: Path
    ca_passphrase: str
    node_passphrase: str
    hand_over: Path  # where request and response files pass between them (a USB stick, a mail)

    @property
    def root(self) -> Path:
        """The root certificate as the admin publishes it (its fingerprint checked another way)."""
        published = self.hand_over / "root.crt"
        if not published.exists():
            self.hand_over.mkdir(parents=True, exist_ok=True)
            published.write_bytes((self.ca_dir / "root.crt").read_bytes())
        return published

    @property
    def tls_root_option(self) -> list[str | Path]:
        """``--tls-root`` and the transport root a 国密 CA publishes beside its root; nothing elsewhere."""
        transport = self.ca_dir / "transport" / "root.crt"
        if not transport.exists():
            return []
        published = self.hand_over / "tls-root.crt"
        self.hand_over.mkdir(parents=True, exist_ok=True)
        published.write_bytes(transport.read_bytes())
        return ["--tls-root", published]

    @property
    def admin_env(self) -> dict[str, str]:
        return {"GWX_PASSPHRASE": self.ca_passphrase}

    @property
    def operator_env(self) -> dict[str, str]:
        return {"GWX_PASSPHRASE": self.node_passphrase}

    @contextlib.contextmanager
    def ca_out_of_reach(self) -> Iterator[None]:
        away = self.ca_dir.with_name(self.ca_dir.name + ".locked-away")
        self.ca_dir.rename(away)
        try:
            yield
        finally:
            away.rename(self.ca_dir)

    def operator(self, *args: str | Path):
        """A node-side command, run while the CA directory does not exist where it was."""
        with self.ca_out_of_reach():
            out = run_gwx(*args, env=self.operator_env)
        assert out.returncode == 0, out.stderr.decode()
        return out

    def admin(self, *args: str | Path):
        out = run_gwx(*args, env=self.admin_env)
        assert out.returncode == 0, out.stderr.decode()
        return out


def enrol_node(parties: Parties, node_dir: Path, node_id: str, units: list[dict], *, host: str = "127.0.0.1",
               peer_port: int = 0, local_port: int = 0, other_crls: tuple[Path, ...] = (),
               seal_options: dict[str, list[str]] | None = None):
    """The whole enrolment of one node and its units' seals, then ``gwx node init`` without ``--ca``
    (given the issuing CA's CRL and ``other_crls``); returns what init printed. ``seal_options``:
    unit code → more ``gwx node request-seal`` arguments (a seal key on a token, say)."""
    hand = parties.hand_over
    hand.mkdir(parents=True, exist_ok=True)
    root, crl = parties.root, hand / "crl.pem"
    parties.admin("pki", "crl", "--ca", parties.ca_dir, "--out", crl)
    parties.operator("node", "request", "--dir", node_dir, "--node-id", node_id, "--root", root,
                     *parties.tls_root_option, "--out", hand / f"{node_id}.req")
    parties.admin("pki", "sign-request", "--ca", parties.ca_dir, "--request", hand / f"{node_id}.req",
                  "--node-id", node_id, "--host", host, "--out", hand / f"{node_id}.resp")
    parties.operator("node", "install-certs", "--dir", node_dir, hand / f"{node_id}.resp")
    lines = []
    for u in units:
        parties.operator("node", "request-seal", "--dir", node_dir, "--unit", u["code"], "--name", u["name"],
                         "--out", hand / f"{u['code']}.req", *(seal_options or {}).get(u["code"], []))
        parties.admin("pki", "issue-seal", "--ca", parties.ca_dir, "--request", hand / f"{u['code']}.req",
                      "--unit", u["code"], "--name", u["name"], "--out", hand / f"{u['code']}.resp")
        parties.operator("node", "install-certs", "--dir", node_dir, hand / f"{u['code']}.resp")
        lines += ["[[units]]", f'code = "{u["code"]}"', f'name = "{u["name"]}"', ""]
    units_file = hand / f"{node_id}-units.toml"
    units_file.write_text("\n".join(lines), "utf-8")
    more = [arg for path in other_crls for arg in ("--crl", path)]
    return parties.operator("node", "init", "--dir", node_dir, "--node-id", node_id, "--units", units_file,
                            "--crl", crl, *more, "--peer-port", str(peer_port), "--local-port", str(local_port))
