"""node.api.auth: the token store keeps hashes, survives no corruption silently, and sees changes made by
another process (``gwx node add-token`` / ``revoke-token``) within a second, without a restart."""

from __future__ import annotations

import json
import stat

import pytest

from node.api.auth import RELOAD_INTERVAL, AuthError, TokenStore
from node.errors import ConfigError
from tests.support import FakeClock

UNIT = "91350100M000100Y43"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_the_file_keeps_hashes_only_and_is_private(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    principal, token = store.issue("张三", "clerk", UNIT)
    raw = (tmp_path / "tokens.json").read_text()
    assert token not in raw and principal.token_id in raw
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600
    assert TokenStore(tmp_path / "tokens.json").authenticate(bearer(token)) == principal


def test_a_token_added_by_another_process_is_accepted_after_a_second(tmp_path):
    clock = FakeClock.monotonic()
    running = TokenStore(tmp_path / "tokens.json", clock=clock)  # what the node loaded at start
    _, token = TokenStore(tmp_path / "tokens.json").issue("李四", "operator")  # gwx node add-token
    with pytest.raises(AuthError):
        running.authenticate(bearer(token))  # checked at most once a second
    clock.advance(seconds=RELOAD_INTERVAL)
    assert running.authenticate(bearer(token)).name == "李四"


def test_a_token_revoked_by_another_process_is_refused_after_a_second(tmp_path):
    clock = FakeClock.monotonic()
    admin = TokenStore(tmp_path / "tokens.json")
    kept, kept_token = admin.issue("王五", "operator")
    gone, gone_token = admin.issue("赵六", "clerk", UNIT)
    running = TokenStore(tmp_path / "tokens.json", clock=clock)
    assert running.authenticate(bearer(gone_token)) == gone
    assert TokenStore(tmp_path / "tokens.json").revoke(gone.token_id)
    clock.advance(seconds=RELOAD_INTERVAL)
    with pytest.raises(AuthError):
        running.authenticate(bearer(gone_token))
    assert running.authenticate(bearer(kept_token)) == kept


@pytest.mark.parametrize("content", [b"{", b"\xff", b"{}", b'[{"sha256": "ab"}]', b'[1]',
                                     b'[{"sha256": "ab", "token_id": "x", "name": "n", "role": "root"}]'],
                         ids=["truncated", "not-utf8", "not-a-list", "missing-fields", "not-an-object", "bad-role"])
def test_a_corrupt_token_store_is_a_config_error_at_start(tmp_path, content):
    (tmp_path / "tokens.json").write_bytes(content)
    with pytest.raises(ConfigError) as err:
        TokenStore(tmp_path / "tokens.json")
    assert err.value.code == "NODE_TOKENS_CORRUPT" and "tokens.json" in err.value.message


def test_a_store_damaged_while_running_refuses_every_token_until_repaired(tmp_path):
    clock = FakeClock.monotonic()
    path = tmp_path / "tokens.json"
    _, token = TokenStore(path).issue("王五", "operator")
    good = path.read_bytes()
    running = TokenStore(path, clock=clock)
    path.write_bytes(good[: len(good) // 2])
    clock.advance(seconds=RELOAD_INTERVAL)
    with pytest.raises(ConfigError):  # never keeps honouring tokens the damaged file may have revoked
        running.authenticate(bearer(token))
    path.write_bytes(good)
    clock.advance(seconds=RELOAD_INTERVAL)
    assert running.authenticate(bearer(token)).name == "王五"


def test_find_and_principals_never_expose_the_secret(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    principal, token = store.issue("张三", "clerk", UNIT)
    assert store.find(principal.token_id) == principal and store.find("nope") is None
    assert token not in json.dumps([vars(p) for p in store.principals()])
