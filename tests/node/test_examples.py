"""deploy/examples/node.toml and UNITS.toml are what an operator copies: they must load with the
node's own loaders, mention every option there is, and make a node with `gwx node init`."""

from __future__ import annotations

import shutil
import tomllib
from dataclasses import fields
from pathlib import Path

from node.config import CONFIG_NAME, Limits, Listener, RetrySettings, WebhookSettings, load_config
from node.provision import add_peer, read_units_file
from pki.ca import CertificateAuthority
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, run_gwx

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def test_the_example_node_toml_loads_and_documents_every_option(tmp_path):
    shutil.copy(EXAMPLES / "node.toml", tmp_path / CONFIG_NAME)
    config = load_config(tmp_path)
    assert config.node_id == "city" and len(config.units) == 2 and len(config.peers) == 2
    assert config.unit_name("11371302MB0000001X") == "兰山区人民政府办公室"
    raw = tomllib.loads((EXAMPLES / "node.toml").read_text("utf-8"))
    for section, cls in (("peer_api", Listener), ("local_api", Listener), ("limits", Limits),
                         ("retry", RetrySettings), ("webhooks", WebhookSettings)):
        not_here = {"local_api": {"public_url", "reuse_port"}, "peer_api": {"hosts"}}.get(section, set())  # the other listener's
        missing = {f.name for f in fields(cls)} - set(raw[section]) - not_here
        assert not missing, f"[{section}] of the example lacks {missing}"
    assert {"code", "name", "seal_dir", "level", "parent"} <= {k for u in raw["units"] for k in u}
    assert {"node_id", "url", "units", "unit_names"} <= {k for p in raw["peers"] for k in p}
    assert [(f.unit, f.path, f.poll_seconds) for f in config.folders] == [
        ("11371300MB00000011", tmp_path.resolve() / "folders" / "11371300MB00000011", 2.0)]
    # Its comments survive an edit with gwx node add-peer.
    add_peer(tmp_path, "county-c", "https://10.1.2.5:7443", [])
    text = (tmp_path / CONFIG_NAME).read_text("utf-8")
    assert "# The static peer list" in text and 'node_id = "county-c"' in text
    assert "retries never further apart than this" in text


def test_the_example_units_file_makes_a_node(tmp_path):
    units = read_units_file(EXAMPLES / "UNITS.toml")
    assert [u["name"] for u in units] == ["临沂市人民政府办公室", "临沂市财政局"]
    CertificateAuthority.init_root(tmp_path / "ca", "示例CA", PASSPHRASE)
    out = run_gwx("node", "init", "--dir", tmp_path / "node", "--node-id", "city", "--ca", tmp_path / "ca",
                  "--units", EXAMPLES / "UNITS.toml", env={"GWX_PASSPHRASE": PASSPHRASE_TEXT})
    assert out.returncode == 0, out.stderr.decode()
    config = load_config(tmp_path / "node")
    assert [(u.code, u.parent) for u in config.units] == [(u["code"], u["parent"]) for u in units]
