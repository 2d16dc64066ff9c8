"""node.toml and UNITS.toml as an operator writes them: wrong types, unknown keys and ambiguous peer
lists are typed errors naming the key; ``add-peer`` validates before writing and keeps comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from node.config import (
    CONFIG_NAME,
    ParentSettings,
    ProcessingSettings,
    RevocationSettings,
    SoapSettings,
    StoreSettings,
    load_config,
)
from node.config_toml import dump_config
from node.errors import ConfigError
from node.provision import add_peer, init_node, read_units_file
from node.run_lock import NodeLock
from pki.ca import CertificateAuthority
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, run_gwx

HERE = make_unit_code("91350100M00020000")
THERE = make_unit_code("91350100M00030000")
ELSEWHERE = make_unit_code("91350100M00040000")


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory) -> Path:
    """A node directory as ``gwx node init`` leaves it, made once for the module: the tests read and
    edit its files only (node.toml, the units), each in a copy of its own (:func:`node_dir`).
    Provisioning writes five keys of 100,000 PBKDF2 rounds and draws a seal; a copy writes none."""
    base = tmp_path_factory.mktemp("config-node")
    ca = CertificateAuthority.init_root(base / "ca", "配置测试CA", PASSPHRASE)
    config, _ = init_node(base / "node", "county-c", ca, [{"code": HERE, "name": "福州市人民政府办公厅"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    path = config.directory / CONFIG_NAME
    # What an operator does with the file: comments of their own, above and beside keys.
    path.write_text("# 福州 county node — ask 王工 before changing ports\n" + path.read_text()
                    .replace("[retry]", "# shortened for the pilot\n[retry]"), "utf-8")
    return config.directory


@pytest.fixture
def node_dir(provisioned, tmp_path) -> Path:
    """The module's provisioned node, copied for the test (owner-only modes kept)."""
    return Path(shutil.copytree(provisioned, tmp_path / "node"))


def write_config(node_dir, replace: tuple[str, str] | None = None, append: str = "") -> None:
    path = node_dir / CONFIG_NAME
    text = path.read_text("utf-8")
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    path.write_text(text + append, "utf-8")


@pytest.mark.parametrize(("old", "new", "key"), [
    ("min_seconds = 1.0", 'min_seconds = "x"', "retry.min_seconds"),
    ("port = 0", 'port = "abc"', "peer_api.port"),
    ("port = 0", "port = true", "peer_api.port"),
    ("port = 0", "port = 70000", "peer_api.port"),
    ("batch_size = 64", "batch_size = 2.5", "limits.batch_size"),
    ("max_hops = 8", "max_hops = -1", "limits.max_hops"),
    ("jitter = 0.5", "jitter = 3", "retry"),
    ('host = "127.0.0.1"', "host = 127", "peer_api.host"),
])
def test_a_value_of_the_wrong_type_or_range_is_a_config_error_naming_the_key(node_dir, old, new, key):
    write_config(node_dir, (old, new))
    with pytest.raises(ConfigError) as err:
        load_config(node_dir)
    assert err.value.details["key"] == key and key.split(".")[-1] in err.value.message
    out = run_gwx("node", "tokens", "--dir", node_dir)
    assert out.returncode != 0 and "Traceback" not in out.stderr.decode()
    assert "gwx: NODE_CONFIG: " in out.stderr.decode()


def test_the_old_unit_spelling_in_node_toml_is_named(node_dir):
    write_config(node_dir, append=f'\n[[unit]]\ncode = "{THERE}"\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"\[\[units\]\]"):
        load_config(node_dir)


def test_add_peer_refuses_what_the_node_would_refuse_and_leaves_the_file_alone(node_dir):
    before = (node_dir / CONFIG_NAME).read_bytes()
    attempts = [
        ("plain http", dict(node_id="city", url="http://127.0.0.1:7443", units=[THERE]), "https"),
        ("the node itself", dict(node_id="county-c", url="https://127.0.0.1:7443", units=[THERE]), "itself"),
        ("an id with spaces", dict(node_id="city hall", url="https://127.0.0.1:7443", units=[THERE]), "node_id"),
        ("a unit hosted here", dict(node_id="city", url="https://127.0.0.1:7443", units=[HERE]), "hosts it"),
    ]
    for what, kwargs, words in attempts:
        with pytest.raises(ConfigError, match=words):
            add_peer(node_dir, **kwargs)
        assert (node_dir / CONFIG_NAME).read_bytes() == before, what
    add_peer(node_dir, "city", "https://127.0.0.1:7443", [THERE])
    with pytest.raises(ConfigError, match="peer city claims it"):
        add_peer(node_dir, "county-b", "https://127.0.0.1:7444", [THERE])
    assert [p.node_id for p in load_config(node_dir).peers] == ["city"]


def test_add_peer_over_the_cli_is_a_typed_error_and_every_command_still_works(node_dir):
    out = run_gwx("node", "add-peer", "--dir", node_dir, "--node-id", "city", "--url", "http://127.0.0.1:7443",
                  "--units", THERE)
    assert out.returncode == 2 and "gwx: NODE_CONFIG: " in out.stderr.decode(), out.stderr
    assert "https" in out.stderr.decode() and "Traceback" not in out.stderr.decode()
    assert run_gwx("node", "tokens", "--dir", node_dir).returncode == 0
    out = run_gwx("node", "add-peer", "--dir", node_dir, "--node-id", "city", "--url", "https://127.0.0.1:7443",
                  "--units", THERE)
    assert out.returncode == 0, out.stderr
    assert load_config(node_dir).peers[0].units == (THERE,)
    assert b"restart" not in out.stdout  # no node runs there
    lock = NodeLock.acquire(node_dir)  # as a running node holds it: it read node.toml at its start
    try:
        out = run_gwx("node", "add-peer", "--dir", node_dir, "--node-id", "city", "--url", "https://127.0.0.1:7446",
                      "--units", THERE)
    finally:
        lock.release()
    assert out.returncode == 0 and b"reads node.toml at start: restart it to use this peer" in out.stdout


def test_add_peer_keeps_the_operators_comments_and_replaces_a_peer_in_place(node_dir):
    add_peer(node_dir, "city", "https://127.0.0.1:7443", [THERE], {THERE: "福州市财政局"})
    write_config(node_dir, ('node_id = "city"', '# the city hall, reached over the e-gov network\nnode_id = "city"'))
    add_peer(node_dir, "county-b", "https://127.0.0.1:7445", [ELSEWHERE])
    add_peer(node_dir, "city", "https://10.0.0.1:7443", [THERE])
    text = (node_dir / CONFIG_NAME).read_text("utf-8")
    assert text.startswith("# 福州 county node — ask 王工 before changing ports\n")
    assert "# shortened for the pilot\n[retry]" in text
    assert "# the city hall, reached over the e-gov network" in text
    assert text.index("the city hall") < text.index("https://10.0.0.1:7443") < text.index("county-b")
    config = load_config(node_dir)
    assert [(p.node_id, p.url) for p in config.peers] == [("city", "https://10.0.0.1:7443"),
                                                          ("county-b", "https://127.0.0.1:7445")]
    assert config.unit_name(THERE) == "福州市财政局"


def units_file(tmp_path, text: str):
    path = tmp_path / "UNITS.toml"
    path.write_text(text, "utf-8")
    return path


def test_units_file_uses_the_node_toml_spelling_and_refuses_unknown_keys(tmp_path):
    good = units_file(tmp_path, f'[[units]]\ncode = "{HERE}"\nname = "福州市人民政府办公厅"\nlevel = "市级"\n')
    assert read_units_file(good) == [{"code": HERE, "name": "福州市人民政府办公厅", "level": "市级", "parent": None}]
    with pytest.raises(ConfigError, match=r"\[\[units\]\].*not \[\[unit\]\]"):
        read_units_file(units_file(tmp_path, f'[[unit]]\ncode = "{HERE}"\nname = "x"\n'))
    with pytest.raises(ConfigError, match="nmae"):
        read_units_file(units_file(tmp_path, f'[[units]]\ncode = "{HERE}"\nname = "x"\nnmae = "y"\n'))
    with pytest.raises(ConfigError, match="level must be a string"):
        read_units_file(units_file(tmp_path, f'[[units]]\ncode = "{HERE}"\nname = "x"\nlevel = 3\n'))


@pytest.mark.parametrize("days", ["-5", "0"])
def test_init_root_refuses_a_validity_that_is_not_positive(tmp_path, days):
    out = run_gwx("pki", "init-root", "--dir", tmp_path / "ca", "--name", "测试CA", "--valid-days", days,
                  env={"GWX_PASSPHRASE": PASSPHRASE_TEXT})
    assert out.returncode == 2 and "gwx: PKI_INVALID_INPUT: " in out.stderr.decode(), out.stderr
    assert "Traceback" not in out.stderr.decode() and not (tmp_path / "ca" / "root.crt").exists()


def test_an_unknown_log_level_is_a_usage_error(node_dir):
    out = run_gwx("node", "run", "--dir", node_dir, "--log-level", "verbose")
    assert out.returncode == 2 and "Traceback" not in out.stderr.decode()
    assert "--log-level" in out.stderr.decode()


def test_the_consoles_host_names_are_read_and_written_back_and_checked(node_dir):
    write_config(node_dir, ("[local_api]\n", '[local_api]\nhosts = ["gwx.fz.gov.cn", "10.1.0.5"]\n'))
    config = load_config(node_dir)
    assert config.local_api.hosts == ("gwx.fz.gov.cn", "10.1.0.5")
    (node_dir / CONFIG_NAME).write_text(dump_config(config), "utf-8")
    assert load_config(node_dir).local_api == config.local_api
    write_config(node_dir, ('hosts = ["gwx.fz.gov.cn", "10.1.0.5"]', "hosts = [1]"))
    with pytest.raises(ConfigError) as err:
        load_config(node_dir)
    assert err.value.details["key"] == "local_api.hosts"


@pytest.mark.parametrize(("written", "read"), [("市级", "city"), ("乡镇", "township"), ("county", "county")])
def test_a_units_level_is_read_in_the_directorys_vocabulary(node_dir, written, read):
    write_config(node_dir, append=f'\n[[units]]\ncode = "{THERE}"\nname = "某县政府办公室"\nlevel = "{written}"\n')
    assert load_config(node_dir).unit(THERE).level == read


def test_a_level_the_directory_does_not_know_is_a_config_error(node_dir):
    write_config(node_dir, append=f'\n[[units]]\ncode = "{THERE}"\nname = "某县政府办公室"\nlevel = "地级"\n')
    with pytest.raises(ConfigError, match="地级") as err:
        load_config(node_dir)
    assert err.value.details["key"] == "units.level"


@pytest.mark.parametrize(("table", "section", "expected"), [
    ('[parent]\nnode_id = "city"\nurl = "https://10.1.0.1:7443"', "parent",
     ParentSettings("city", "https://10.1.0.1:7443", refresh_seconds=600.0)),
    ('[revocation]\nhost = "0.0.0.0"\nport = 7480\nocsp_signer = "ocsp"', "revocation",
     RevocationSettings("0.0.0.0", 7480, ocsp_signer="ocsp")),
    ("[soap]\nenabled = false", "soap", SoapSettings(enabled=False)),
    ("[store]\ninline_max_bytes = 65536", "store", StoreSettings(inline_max_bytes=65536)),
    ("[processing]\ncheck_processes = 7", "processing", ProcessingSettings(check_processes=7)),
], ids=["parent", "revocation", "soap", "store", "processing"])
def test_a_section_is_read_and_written_back(node_dir, table, section, expected):
    write_config(node_dir, append=f"\n{table}\n")
    config = load_config(node_dir)
    assert getattr(config, section) == expected
    if section == "revocation":
        assert config.ocsp_signer_dir == node_dir / "ocsp"
    (node_dir / CONFIG_NAME).write_text(dump_config(config), "utf-8")
    assert getattr(load_config(node_dir), section) == expected


@pytest.mark.parametrize(("section", "table", "key"), [
    ("parent", 'node_id = "city"', "parent"),
    ("parent", 'node_id = "City!"\nurl = "https://10.1.0.1:7443"', "parent.node_id"),
    ("parent", 'node_id = "city"\nurl = "http://10.1.0.1:7443"', "parent.url"),
    ("parent", 'node_id = "city"\nurl = "https://10.1.0.1:7443"\nrefresh_seconds = 0', "parent.refresh_seconds"),
    ("parent", 'node_id = "city"\nurl = "https://10.1.0.1:7443"\nrefresh = 5', "parent"),
    ("revocation", "port = 70000", "revocation.port"),
    ("revocation", 'port = "7480"', "revocation.port"),
    ("revocation", 'host = 7480', "revocation.host"),
    ("revocation", 'ocsp = "ocsp"', "revocation"),
    ("soap", 'enabled = "no"', "soap.enabled"),
    ("soap", "enabled = 0", "soap.enabled"),
    ("soap", "on = true", "soap"),
    ("store", "inline_max_bytes = -1", "store.inline_max_bytes"),
    ("store", "inline_max_bytes = 20000000", "store.inline_max_bytes"),
    ("processing", "check_processes = -1", "processing.check_processes"),
    ("processing", "check_processes = 1.5", "processing.check_processes"),
    ("processing", "processes = 1", "processing"),
])
def test_a_wrong_section_is_a_config_error_naming_the_key(node_dir, section, table, key):
    write_config(node_dir, append=f"\n[{section}]\n{table}\n")
    with pytest.raises(ConfigError) as err:
        load_config(node_dir)
    assert err.value.details["key"] == key



def share_peer_port(node_dir, table: str, store: str = "") -> None:
    """``table``'s lines added to [peer_api] (or [local_api]), with a fixed peer port, and ``store`` appended."""
    path = node_dir / CONFIG_NAME
    section, lines = table.split("\n", 1)
    text = path.read_text("utf-8").replace("[peer_api]\nhost = \"127.0.0.1\"\nport = 0",
                                           "[peer_api]\nhost = \"127.0.0.1\"\nport = 7443", 1)
    assert section in text
    path.write_text(text.replace(section, f"{section}\n{lines}", 1) + store, "utf-8")


POSTGRESQL = '\n[store]\nbackend = "postgresql"\ndsn = "dbname=gwx"\nworker = "gw1"\n'


@pytest.mark.parametrize(("table", "store", "words", "key"), [
    ("[peer_api]\nreuse_port = true", "", 'backend = "postgresql"', "peer_api.reuse_port"),  # SQLite: one process
    ("[local_api]\nreuse_port = true", POSTGRESQL, "port of its own", "local_api.reuse_port"),
    ('[peer_api]\nreuse_port = "yes"', POSTGRESQL, "true or false", "peer_api.reuse_port"),
], ids=["sqlite", "local-api", "type"])
def test_a_shared_port_is_refused_where_it_would_split_what_one_process_serves(node_dir, table, store, words, key):
    share_peer_port(node_dir, table, store)
    with pytest.raises(ConfigError, match=words) as err:
        load_config(node_dir)
    assert err.value.details["key"] == key
    out = run_gwx("node", "tokens", "--dir", node_dir)
    assert "gwx: NODE_CONFIG: " in out.stderr.decode() and "Traceback" not in out.stderr.decode()


def test_a_shared_peer_port_needs_a_fixed_port(node_dir):
    write_config(node_dir, ("[peer_api]", "[peer_api]\nreuse_port = true"), POSTGRESQL)
    with pytest.raises(ConfigError, match="fixed port") as err:  # port 0: each worker a port of its own
        load_config(node_dir)
    assert err.value.details["key"] == "peer_api.reuse_port"


def test_a_shared_peer_port_on_postgresql_is_read_and_written_back(node_dir):
    assert "reuse_port" not in dump_config(load_config(node_dir))  # not written while unset
    share_peer_port(node_dir, "[peer_api]\nreuse_port = true", POSTGRESQL)
    config = load_config(node_dir)
    assert config.peer_api.reuse_port and config.peer_api.port == 7443 and not config.local_api.reuse_port
    (node_dir / CONFIG_NAME).write_text(dump_config(config), "utf-8")
    assert load_config(node_dir).peer_api == config.peer_api


def test_add_peer_over_the_cli_names_the_peers_units_for_send_track_and_the_console(node_dir):
    """A two-node setup without a directory: the names given to add-peer are what the node shows for the
    peer's units (gwx send / track and the console ask the router); a unit given no name is said to be
    shown as its code."""
    from node.federation.routing import StaticRouter

    out = run_gwx("node", "add-peer", "--dir", node_dir, "--node-id", "city", "--url", "https://127.0.0.1:7443",
                  "--units", f"{THERE}=福州市财政局, {ELSEWHERE}")
    assert out.returncode == 0, out.stderr
    assert f"no name given for {ELSEWHERE}: shown as the code".encode() in out.stdout
    config = load_config(node_dir)
    assert config.peers[0].units == (THERE, ELSEWHERE)
    router = StaticRouter(config)
    assert (router.unit_name(THERE), router.unit_name(ELSEWHERE)) == ("福州市财政局", None)
    before = (node_dir / CONFIG_NAME).read_bytes()
    out = run_gwx("node", "add-peer", "--dir", node_dir, "--node-id", "city", "--url", "https://127.0.0.1:7443",
                  "--units", f"{THERE}=")
    assert out.returncode == 2 and "gwx: NODE_CONFIG: --units" in out.stderr.decode(), out.stderr
    assert (node_dir / CONFIG_NAME).read_bytes() == before
