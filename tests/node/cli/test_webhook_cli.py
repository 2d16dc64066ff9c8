"""``gwx webhook …`` on a node directory (no node running): bad input of every kind is a typed error
with its exit code and no traceback, and loses nothing; add, list and remove do what they say."""

from __future__ import annotations

import json
import os
import stat

import pytest

from node.cli.exit_codes import TRY_AGAIN
from pki.unit_code import make_unit_code
from tests.support import assert_typed_failure, one_unit_node, run_gwx

UNIT = make_unit_code("11371302MB0000001")


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return one_unit_node(tmp_path_factory.mktemp("webhook-cli"), "网络钩子测试CA", UNIT, "兰山区人民政府办公室")


@pytest.mark.parametrize("url, says", [
    ("ftp://sms.example/hook", "http:// or https://"), ("http:///nohost", "names a host"),
    ("https://admin:s3cret@sms.example/hook", "user or password"), ("http://sms.example/a b", "without spaces"),
    ("http://sms.example:99999/", "not a URL"), ("http://sms.example/#top", "fragment"),
    ("http://sms.example/" + "x" * 2001, "at most 2000"), ("", "http(s)://")])
def test_a_bad_url_is_refused(node_dir, url, says):
    stderr = assert_typed_failure(run_gwx("webhook", "add", "--dir", node_dir, "--unit", UNIT, "--url", url), "WEBHOOK_BAD_URL")
    assert says in stderr and "s3cret" not in stderr


def test_an_unknown_unit_event_or_webhook_is_refused(node_dir):
    stderr = assert_typed_failure(run_gwx("webhook", "add", "--dir", node_dir, "--unit", "11371399MB0000009",
                                   "--url", "http://127.0.0.1:9/"), "WEBHOOK_UNKNOWN_UNIT")
    assert UNIT in stderr  # it says which units the node hosts
    stderr = assert_typed_failure(run_gwx("webhook", "add", "--dir", node_dir, "--unit", UNIT, "--url", "http://127.0.0.1:9/",
                                   "--event", "document.received", "--event", "document.lost"), "WEBHOOK_UNKNOWN_EVENT")
    assert "document.lost" in stderr and "document.signed_for" in stderr
    for command in ("remove", "replay", "test", "list"):
        assert_typed_failure(run_gwx("webhook", command, "--dir", node_dir, "0badc0de"), "WEBHOOK_NOT_FOUND")
        assert_typed_failure(run_gwx("webhook", command, "--dir", node_dir, "../../etc"), "WEBHOOK_NOT_FOUND")
    assert json.loads(run_gwx("webhook", "list", "--dir", node_dir, "--json").stdout) == []  # nothing half-made
    assert not (node_dir / "webhooks").exists() or not list((node_dir / "webhooks").iterdir())


def test_add_list_test_remove(node_dir):
    out = run_gwx("webhook", "add", "--dir", node_dir, "--unit", UNIT, "--url", "http://127.0.0.1:9/sms",
                  "--event", "document.received", "--json")
    assert out.returncode == 0, out.stderr.decode()
    added = json.loads(out.stdout)
    secret_file = node_dir / "webhooks" / f"{added['id']}.secret"
    assert secret_file.read_text().strip() == added["secret"] and added["secret"].startswith("whsec_")
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(secret_file.parent).st_mode) == 0o700
    [listed] = json.loads(run_gwx("webhook", "list", "--dir", node_dir, "--json").stdout)
    assert listed["url"] == "http://127.0.0.1:9/sms" and listed["events"] == ["document.received"]
    assert added["secret"] not in json.dumps(listed)
    # nobody listens on port 9: the test says so, typed, "try again later"
    stderr = assert_typed_failure(run_gwx("webhook", "test", "--dir", node_dir, added["id"], "--timeout", "2"),
                           "WEBHOOK_UNREACHABLE", TRY_AGAIN)
    assert added["secret"] not in stderr
    assert run_gwx("webhook", "replay", "--dir", node_dir, added["id"]).stdout.decode().startswith(
        f"webhook {added['id']}: 0 dead letter(s)")
    removed = run_gwx("webhook", "remove", "--dir", node_dir, added["id"])
    assert removed.returncode == 0 and not secret_file.exists()
    assert json.loads(run_gwx("webhook", "list", "--dir", node_dir, "--json").stdout) == []


def test_help_explains_the_signature_scheme():
    out = run_gwx("webhook", "add", "--help").stdout.decode()
    assert "HMAC-SHA256" in out and "X-Gwx-Signature" in out and "document.received" in out
