"""``[archive]`` in node.toml: each mistake a typed ConfigError naming the key; dump and load agree."""

from __future__ import annotations

import pytest

from node.archive.settings import ArchiveSettings, parse_archive
from node.errors import ConfigError


def test_good_settings_and_their_toml(tmp_path):
    assert parse_archive({}, tmp_path) == ArchiveSettings()
    assert ArchiveSettings().to_toml(tmp_path) == []
    root = parse_archive({"tsa_signer": "tsa"}, tmp_path)
    assert root.tsa_signer == tmp_path / "tsa" and root.to_toml(tmp_path) == ["[archive]", 'tsa_signer = "tsa"', ""]
    other = parse_archive({"tsa_node": "city", "tsa_url": "https://10.1.0.1:7443/"}, tmp_path)
    assert other.tsa_url == "https://10.1.0.1:7443"


@pytest.mark.parametrize("raw, key", [
    ({"tsa_node": "city"}, "archive.tsa_url"),
    ({"tsa_node": "city", "tsa_url": "http://10.1.0.1:7443"}, "archive.tsa_url"),
    ({"tsa_signer": ""}, "archive.tsa_signer"),
    ({"tsa_signer": 5}, "archive.tsa_signer"),
    ({"tsa": "x"}, "archive"),
    ("tsa", "archive"),
])
def test_bad_settings_are_typed(tmp_path, raw, key):
    with pytest.raises(ConfigError) as info:
        parse_archive(raw, tmp_path)
    assert info.value.details["key"] == key

