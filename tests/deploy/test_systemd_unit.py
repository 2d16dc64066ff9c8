"""deploy/systemd/gwx-node@.service: systemd accepts it (``systemd-analyze verify``, when the machine
has systemd), its hardening is there, and the command it runs is one gwx takes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, run_gwx

UNIT = REPO / "deploy" / "systemd" / "gwx-node@.service"
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/gwx/%i", "ProtectHome=yes",
             "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=", "RestrictAddressFamilies=",
             "SystemCallFilter=@system-service", "UMask=0077")


def settings() -> list[str]:
    return [line.strip() for line in UNIT.read_text("utf-8").splitlines() if line.strip() and line[0] not in "#;"]


def test_the_unit_is_hardened_and_keeps_the_passphrase_out_of_the_environment():
    lines = settings()
    for option in HARDENING:
        assert any(line.startswith(option) for line in lines), option
    assert "LoadCredential=passphrase:/etc/gwx/%i.passphrase" in lines
    assert not any(line.startswith(("Environment=", "EnvironmentFile=")) for line in lines)
    stop = int(next(line for line in lines if line.startswith("TimeoutStopSec=")).split("=")[1])
    assert stop > 10  # the node exits within 10 s of SIGTERM: systemd must not SIGKILL it earlier


def test_its_command_is_one_gwx_takes(tmp_path):
    [exec_start] = [line.split("=", 1)[1] for line in settings() if line.startswith("ExecStart=")]
    program, *args = exec_start.split()
    assert program == "/opt/gwx/venv/bin/gwx" and args[:2] == ["node", "run"]
    # The instance's directory with no node.toml: gwx parsed every option and got as far as the config.
    args = [a.replace("/var/lib/gwx/%i", str(tmp_path / "county-a")).replace("%d", str(tmp_path)) for a in args]
    out = run_gwx(*args[1:] if args[0] == "gwx" else args)
    assert out.returncode == 2 and "gwx: NODE_CONFIG: " in out.stderr.decode() and "node.toml" in out.stderr.decode()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd on this machine")
def test_systemd_analyze_verify_accepts_an_instance(tmp_path):
    gwx = Path(sys.executable).parent / "gwx"
    instance = tmp_path / "gwx-node@county-a.service"
    instance.write_text(UNIT.read_text("utf-8").replace("/opt/gwx/venv/bin/gwx", str(gwx)), "utf-8")
    out = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Unknown key" not in out.stderr and "Unknown lvalue" not in out.stderr, out.stderr


def _gwx_commands(text: str) -> list[list[str]]:
    """Every gwx command in the guide's sh blocks, continuation lines joined, from ``gwx`` on."""
    import re
    import shlex

    from node.cli.main import GROUPS as groups  # (command, help, modules)

    group_names = {name for name, _, _ in groups if name}
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    commands = []
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        starts = [i for i, w in enumerate(words[:-1]) if w == "gwx" and words[i + 1] in group_names]
        if starts:
            commands.append(words[starts[0] + 1:])
    return commands


def test_every_gwx_command_of_the_operations_guide_is_one_gwx_takes():
    from node.cli.main import build_parser

    commands = _gwx_commands((REPO / "docs" / "operations.md").read_text("utf-8"))
    assert {tuple(c[:2]) for c in commands} >= {("node", "check"), ("node", "request"), ("node", "init"),
                                                ("node", "renew"), ("node", "status"),
                                                ("node", "backup"), ("node", "restore")}
    for words in commands:
        build_parser(words[0]).parse_args(words)  # argparse exits (SystemExit) on a command gwx has not
