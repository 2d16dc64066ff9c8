"""``gwx node add-token / tokens / revoke-token`` as an operator runs them (separate processes)."""

from __future__ import annotations

import json
import stat

import pytest

from node.api.auth import AuthError, TokenStore
from node.provision import init_node
from pki.ca import CertificateAuthority
from pki.certificates import load_certificate
from pki.crl import load_crls
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, run_gwx

UNIT = "91350100M000100Y43"


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("admin")
    ca = CertificateAuthority.init_root(base / "ca", "令牌测试CA", PASSPHRASE)
    config, _ = init_node(base / "node", "county-t", ca, [{"code": UNIT, "name": "福州市人民政府办公厅"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    return config.directory


def listed(node_dir) -> list[dict]:
    out = run_gwx("node", "tokens", "--dir", node_dir, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_init_leaves_the_initial_tokens_as_private_files_for_the_operator(node_dir):
    files = sorted(p.name for p in (node_dir / "tokens").iterdir())
    assert files == ["clerk-91350100M000100Y43.token", "operator.token"]
    assert stat.S_IMODE((node_dir / "tokens").stat().st_mode) == 0o700
    for f in (node_dir / "tokens").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert f.read_text() not in (node_dir / "tokens.json").read_text()  # the store has hashes only


def test_tokens_lists_names_roles_units_and_ids_but_never_a_secret(node_dir):
    secrets_on_disk = [f.read_text() for f in (node_dir / "tokens").iterdir()]
    rows = listed(node_dir)
    assert {(r["role"], r["unit"]) for r in rows} >= {("operator", None), ("clerk", UNIT)}
    assert all(set(r) == {"token_id", "name", "role", "unit"} for r in rows)
    table = run_gwx("node", "tokens", "--dir", node_dir)
    text = table.stdout.decode()
    assert table.returncode == 0 and "福州市人民政府办公厅收发员" in text and UNIT in text
    for r in rows:
        assert r["token_id"] in text
    for secret in secrets_on_disk:
        assert secret not in text and secret not in json.dumps(rows)


def test_add_then_revoke_a_token(node_dir):
    out = run_gwx("node", "add-token", "--dir", node_dir, "--role", "clerk", "--name", "陈七", "--unit", UNIT)
    assert out.returncode == 0, out.stderr
    token = out.stdout.decode().strip()  # the token alone on stdout: TOKEN=$(gwx node add-token …)
    store = TokenStore(node_dir / "tokens.json")
    principal = store.authenticate(f"Bearer {token}")
    assert principal.name == "陈七" and principal.token_id in {r["token_id"] for r in listed(node_dir)}
    said = out.stderr.decode()  # what it is, for whom, its role, and that it is not shown again
    assert token not in said and principal.token_id in said and "陈七" in said and "role clerk" in said
    assert UNIT in said and "shown this once" in said

    out = run_gwx("node", "revoke-token", "--dir", node_dir, principal.token_id)
    assert out.returncode == 0, out.stderr
    assert principal.token_id in out.stdout.decode() and "陈七" in out.stdout.decode()
    assert principal.token_id not in {r["token_id"] for r in listed(node_dir)}
    with pytest.raises(AuthError):
        TokenStore(node_dir / "tokens.json").authenticate(f"Bearer {token}")


def test_revoking_an_unknown_token_is_a_typed_error(node_dir):
    before = (node_dir / "tokens.json").read_bytes()
    out = run_gwx("node", "revoke-token", "--dir", node_dir, "000000000000")
    assert out.returncode == 2 and "gwx: NODE_UNKNOWN_TOKEN: " in out.stderr.decode()  # not found
    assert "Traceback" not in out.stderr.decode()
    assert (node_dir / "tokens.json").read_bytes() == before


def test_a_corrupt_token_store_is_reported_not_a_traceback(tmp_path, node_dir):
    import shutil

    copy = tmp_path / "node"
    shutil.copytree(node_dir, copy)
    (copy / "tokens.json").write_text('[{"sha256": "ab"}]')
    text = (copy / "node.toml").read_text().replace(str(node_dir), str(copy))
    (copy / "node.toml").write_text(text)
    out = run_gwx("node", "tokens", "--dir", copy)
    assert out.returncode != 0 and "gwx: NODE_TOKENS_CORRUPT: " in out.stderr.decode()
    assert "Traceback" not in out.stderr.decode()


def test_init_under_an_intermediate_ca_takes_the_other_cas_crls_and_warns_without_them(tmp_path):
    env = {"GWX_PASSPHRASE": PASSPHRASE_TEXT}
    assert run_gwx("pki", "init-root", "--dir", tmp_path / "root", "--name", "临沂市电子政务CA", env=env).returncode == 0
    assert run_gwx("pki", "issue-intermediate", "--ca", tmp_path / "root", "--dir", tmp_path / "lanshan",
                   "--name", "兰山区CA", env=env).returncode == 0
    assert run_gwx("pki", "crl", "--ca", tmp_path / "root", "--out", tmp_path / "root.crl.pem", env=env).returncode == 0
    def init(name: str, *extra):
        # Each node hosts a unit of its own: the CA makes one seal per unit.
        units = tmp_path / f"{name}.UNITS.toml"
        code = make_unit_code(f"91371302MB00000{ord(name[-1]) - 96:02d}")
        units.write_text(f'[[units]]\ncode = "{code}"\nname = "兰山区人民政府办公室"\n', "utf-8")
        return run_gwx("node", "init", "--dir", tmp_path / name, "--node-id", name, "--ca", tmp_path / "lanshan",
                       "--units", units, "--peer-port", "0", "--local-port", "0", *extra, env=env)

    bare = init("county-a")
    assert bare.returncode == 0, bare.stderr
    assert "warning" in bare.stderr.decode() and "临沂市电子政务CA" in bare.stderr.decode()
    assert [c.issuer for c in load_crls((tmp_path / "county-a" / "crl.pem").read_bytes())] == [
        load_certificate((tmp_path / "lanshan" / "ca.crt").read_bytes()).subject]

    complete = init("county-b", "--crl", tmp_path / "root.crl.pem")
    assert complete.returncode == 0 and "warning" not in complete.stderr.decode(), complete.stderr
    issuers = {c.issuer.rfc4514_string() for c in load_crls((tmp_path / "county-b" / "crl.pem").read_bytes())}
    assert any("兰山区CA" in i for i in issuers) and any("临沂市电子政务CA" in i for i in issuers)

    missing = init("county-c", "--crl", tmp_path / "no-such.crl")
    assert missing.returncode != 0 and "NODE_CONFIG" in missing.stderr.decode() + missing.stdout.decode()
    assert "Traceback" not in missing.stderr.decode()


def test_add_token_refuses_a_unit_the_node_does_not_host_and_a_unit_on_an_operator(node_dir):
    before = listed(node_dir)
    other = "11100000000013127D"  # a valid unit code, hosted elsewhere
    out = run_gwx("node", "add-token", "--dir", node_dir, "--role", "clerk", "--name", "错人", "--unit", other)
    assert out.returncode == 2 and b"does not host unit" in out.stderr, out.stderr
    out = run_gwx("node", "add-token", "--dir", node_dir, "--role", "operator", "--name", "值班员二", "--unit", UNIT)
    assert out.returncode == 2 and b"only a clerk token names a unit" in out.stderr, out.stderr
    assert listed(node_dir) == before  # nothing was issued


def test_add_token_json_is_one_object_a_script_can_parse(node_dir):
    out = run_gwx("node", "add-token", "--dir", node_dir, "--role", "operator", "--name", "值班员三", "--json")
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    made = json.loads(out.stdout)
    principal = TokenStore(node_dir / "tokens.json").authenticate(f"Bearer {made['token']}")
    assert (made["token_id"], made["name"], made["role"], made["unit"]) == (principal.token_id, "值班员三",
                                                                          "operator", None)
