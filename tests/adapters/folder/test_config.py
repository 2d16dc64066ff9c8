"""``[[folders]]`` in node.toml: read, written back, and every mistake a typed error naming the key."""

from __future__ import annotations

import pytest

from node.config import CONFIG_NAME, load_config
from node.config_toml import dump_config
from node.errors import ConfigError
from pki.unit_code import make_unit_code

HERE = make_unit_code("91350100M00020000")
ALSO_HERE = make_unit_code("91350100M00050000")
ELSEWHERE = make_unit_code("91350100M00040000")


@pytest.fixture
def node_dir(tmp_path):
    (tmp_path / CONFIG_NAME).write_text(f'node_id = "county-c"\n\n[[units]]\ncode = "{HERE}"\nname = "福州市人民政府办公厅"\n'
                                        f'\n[[units]]\ncode = "{ALSO_HERE}"\nname = "福州市财政局"\n', "utf-8")
    return tmp_path.resolve()


def append(node_dir, text: str) -> None:
    path = node_dir / CONFIG_NAME
    path.write_text(path.read_text("utf-8") + text, "utf-8")


def test_folders_are_read_with_defaults_and_written_back(node_dir):
    append(node_dir, f'\n[[folders]]\nunit = "{HERE}"\n\n[[folders]]\nunit = "{ALSO_HERE}"\npath = "/srv/oa/财政"\n'
                     "poll_seconds = 0.5\n")
    config = load_config(node_dir)
    assert [(f.unit, str(f.path), f.poll_seconds) for f in config.folders] == [
        (HERE, str(node_dir / "folders" / HERE), 2.0), (ALSO_HERE, "/srv/oa/财政", 0.5)]
    (node_dir / CONFIG_NAME).write_text(dump_config(config), "utf-8")
    assert load_config(node_dir).folders == config.folders


@pytest.mark.parametrize(("tables", "key"), [
    ('path = "x"', "folders"),
    (f'unit = "{ELSEWHERE}"', "folders.unit"),
    (f'unit = "{HERE}"\n\n[[folders]]\nunit = "{HERE}"\npath = "other"', "folders.unit"),
    (f'unit = "{HERE}"\npath = "oa"\n\n[[folders]]\nunit = "{ALSO_HERE}"\npath = "oa/inner"', "folders.path"),
    (f'unit = "{HERE}"\npoll_seconds = 0', "folders.poll_seconds"),
    (f'unit = "{HERE}"\npoll_seconds = "2"', "folders.poll_seconds"),
    (f'unit = "{HERE}"\nwatch = true', "folders"),
])
def test_a_wrong_folder_is_a_config_error_naming_the_key(node_dir, tables, key):
    append(node_dir, f"\n[[folders]]\n{tables}\n")
    with pytest.raises(ConfigError) as err:
        load_config(node_dir)
    assert err.value.details["key"] == key
