"""``gwx node backup`` / ``restore`` on a node directory (the running node with traffic is
tests/node/network/test_backup_restore.py): paths made to fit the new directory, refusals typed."""

from __future__ import annotations

import shutil
import tarfile

from node.config import load_config
from node.provision import init_node
from pki.ca import CertificateAuthority
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, REPO, run_gwx

UNIT = make_unit_code("91350100M00080000")
ENV = {"GWX_PASSPHRASE": PASSPHRASE_TEXT}


def make_node(tmp_path):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "备份测试CA", PASSPHRASE)
    config, _ = init_node(tmp_path / "node", "county-b", ca, [{"code": UNIT, "name": "福州市仓山区人民政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    return config.directory


def test_a_restore_elsewhere_rewrites_absolute_paths_inside_the_old_directory(tmp_path):
    directory = make_node(tmp_path)
    shutil.copy(REPO / "deploy" / "examples" / "holidays-2026.toml", directory / "holidays.toml")
    with (directory / "node.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[supervision]\ncalendar = "{directory}/holidays.toml"\n')
    (directory / "node.log").write_text("not backed up")
    out = run_gwx("node", "backup", directory, "--to", tmp_path / "b.tar", env=ENV, text=True)
    assert out.returncode == 0, out.stderr
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
    assert "node/credentials/sign.key" in names and "node/tokens/operator.token" in names
    assert "node/node.log" not in names and names[-1] == "MANIFEST.json"
    shutil.rmtree(directory)  # another machine: the old directory is gone

    restored = tmp_path / "other" / "county-b"
    out = run_gwx("node", "restore", tmp_path / "b.tar", "--to", restored, env=ENV, text=True)
    assert out.returncode == 0, out.stderr
    assert load_config(restored).supervision.calendar_path == restored / "holidays.toml"
    assert (restored / "credentials" / "sign.key").stat().st_mode & 0o077 == 0

    out = run_gwx("node", "restore", tmp_path / "b.tar", "--to", restored, env=ENV, text=True)
    assert out.returncode == 2 and "gwx: NODE_RESTORE_TARGET_EXISTS: " in out.stderr


def test_a_backup_with_the_wrong_passphrase_is_refused_before_anything_is_written(tmp_path):
    directory = make_node(tmp_path)
    out = run_gwx("node", "backup", directory, "--to", tmp_path / "b.tar", env={"GWX_PASSPHRASE": "not the one"},
                  text=True)
    assert out.returncode == 3 and "PKI_WRONG_PASSPHRASE" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "b.tar").exists()
    # A --to in no directory is said first (was: the store copied, then a hidden .part file named).
    out = run_gwx("node", "backup", directory, "--to", tmp_path / "no-such" / "b.tar",
                  env={"GWX_PASSPHRASE": "not the one"}, text=True)
    assert out.returncode == 2 and out.stderr.startswith(f"gwx: IO_ERROR: cannot write {tmp_path / 'no-such' / 'b.tar'}")
