"""[[oa_push]] in node.toml: the example block loads with the example mapping, and a bad entry or a
bad mapping file stops the configuration from loading (what `gwx node run` reads at start)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from adapters.oa_push.errors import OaMappingInvalid
from node.config import CONFIG_NAME, load_config
from node.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples"
UNIT = "11371300MB00000024"


def example_node(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The example node.toml with its [[oa_push]] block uncommented, and the example mapping beside it."""
    text = (EXAMPLES / "node.toml").read_text("utf-8")
    head, block = text.split("# OA push", 1)
    text = head + "# OA push" + re.sub(r"^# (\[\[oa_push\]\]|[a-z_]+ = .*)$", r"\1", block, flags=re.M)
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / CONFIG_NAME).write_text(text, "utf-8")
    shutil.copy(EXAMPLES / "oa-mapping.toml", tmp_path / "oa-mapping.toml")
    (tmp_path / "oa-password").write_text("口令-2009\n", "utf-8")
    (tmp_path / "oa-password").chmod(0o600)
    return tmp_path


def test_the_example_block_loads(tmp_path):
    config = load_config(example_node(tmp_path))
    (push,) = config.oa_push
    assert push.unit == UNIT and push.consumer_name == f"oa:{UNIT}"
    assert push.received_operation == "ReceiveGongwen" and push.status_operation == "UpdateZhuangtai"
    assert push.wsdl.startswith("http://") and push.mapping_path == tmp_path / "oa-mapping.toml"
    assert push.timeout_seconds == 30.0 and push.window_seconds == 172800.0 and push.port == "GongwenServiceSoap"
    assert push.mapping.received  # the mapping file was loaded with the configuration


def test_without_oa_push_there_is_none(tmp_path):
    shutil.copy(EXAMPLES / "node.toml", tmp_path / CONFIG_NAME)
    assert load_config(tmp_path).oa_push == ()


@pytest.mark.parametrize(("edit", "message"), [
    (('unit = "11371300MB00000024"\nwsdl', 'unit = "11371302MB0000001X"\nwsdl'), "not hosted on this node"),
    (('unit = "11371300MB00000024"\nwsdl', 'unit = "1137"\nwsdl'), "18 characters"),
    (('mapping = "oa-mapping.toml"', 'mapping = "oa-mapig.toml"'), "does not exist"),
    (('timeout_seconds = 30.0', 'timeout_seconds = 0'), "positive number"),
    (('window_seconds = 172800.0', 'window_seconds = "2d"'), "positive number"),
    (('received_operation = "ReceiveGongwen"', 'recieved_operation = "ReceiveGongwen"'), "unknown keys"),
    (('status_operation = "UpdateZhuangtai"', ''), "go together"),
    (('wsdl = "http://10.1.9.20:8080/gwjh/GongwenService?wsdl"', 'wsdl = "oa.wsdl"'), "neither an http(s) URL"),
    (('port = "GongwenServiceSoap"', 'port = ""'), "non-empty string"),
])
def test_a_bad_entry_stops_the_configuration(tmp_path, edit, message):
    with pytest.raises(OaMappingInvalid, match=re.escape(message)) as caught:
        load_config(example_node(tmp_path, edit))
    assert isinstance(caught.value, ConfigError)  # the node's start reports it like any node.toml error


def test_a_bad_mapping_file_stops_the_configuration(tmp_path):
    node = example_node(tmp_path)
    mapping = node / "oa-mapping.toml"
    mapping.write_text(mapping.read_text("utf-8").replace('"%Y%m%d"', '"%d.%m."'), "utf-8")
    with pytest.raises(OaMappingInvalid, match="lacks %Y") as caught:
        load_config(node)
    assert caught.value.details["file"] == str(mapping)


def test_one_oa_per_unit(tmp_path):
    node = example_node(tmp_path)
    text = (node / CONFIG_NAME).read_text("utf-8")
    block = text[text.index("[[oa_push]]"):]
    (node / CONFIG_NAME).write_text(text + "\n" + block, "utf-8")
    with pytest.raises(OaMappingInvalid, match="twice"):
        load_config(node)


def test_a_wsdl_file_in_the_node_directory(tmp_path):
    node = example_node(tmp_path, ('wsdl = "http://10.1.9.20:8080/gwjh/GongwenService?wsdl"', 'wsdl = "oa/gw.wsdl"'))
    (node / "oa").mkdir()
    (node / "oa" / "gw.wsdl").write_text("<definitions/>", "utf-8")
    assert load_config(node).oa_push[0].wsdl == str(node / "oa" / "gw.wsdl")


def test_gwx_node_check_reports_the_oa_push_and_refuses_a_bad_mapping(tmp_path):
    from tests.support import node_check_config_ok, run_gwx

    node = example_node(tmp_path)
    out = run_gwx("node", "check", "--dir", node)
    assert node_check_config_ok(out), out.stdout.decode() + out.stderr.decode()
    text = out.stdout.decode()
    assert f"oa:{UNIT}: ReceiveGongwen and UpdateZhuangtai" in text and "note: 指示 stands for 意见" in text
    mapping = node / "oa-mapping.toml"
    mapping.write_text(mapping.read_text("utf-8").replace('"平件" = "3"', ""), "utf-8")
    out = run_gwx("node", "check", "--dir", node)
    assert out.returncode == 2 and "OA_MAPPING_INVALID" in out.stderr.decode()
    assert "平件 (no urgency)" in out.stderr.decode() and "Traceback" not in out.stderr.decode()


def test_credentials_from_a_private_password_file(tmp_path):
    node = example_node(tmp_path)
    secret = node / "oa-password"
    push = load_config(node).oa_push[0]
    assert (push.username, push.password) == ("gwx", "口令-2009") and "口令" not in repr(push)
    for mode in (0o644, 0o640, 0o604):  # group-readable is as refused as world-readable
        secret.chmod(mode)
        with pytest.raises(OaMappingInvalid, match="open to others than its owner"):
            load_config(node)
    secret.unlink()
    with pytest.raises(OaMappingInvalid, match="cannot be read"):
        load_config(node)
    text = (node / CONFIG_NAME).read_text("utf-8").replace('password_file = "oa-password"', "")
    (node / CONFIG_NAME).write_text(text, "utf-8")
    with pytest.raises(OaMappingInvalid, match="go together"):
        load_config(node)


def test_a_wsdl_or_endpoint_url_carrying_a_password_is_refused(tmp_path):
    node = example_node(tmp_path)
    text = (node / CONFIG_NAME).read_text("utf-8")
    for key in ("wsdl", "endpoint"):
        changed = re.sub(rf'^{key} = "http://', f'{key} = "http://gwx:口令@', text, flags=re.M)
        if changed == text:
            changed = text.replace("[[oa_push]]", f'[[oa_push]]\n{key} = "http://gwx:pw@10.1.2.3/x"', 1)
        (node / CONFIG_NAME).write_text(changed, "utf-8")
        with pytest.raises(OaMappingInvalid, match="carries a user:password") as caught:
            load_config(node)
        assert "口令" not in caught.value.message and "pw@" not in caught.value.message


def test_the_oa_password_goes_to_the_hosts_the_operator_named_only():
    import httpx

    from adapters.oa_push.soap_call import _OaHostAuth

    auth = _OaHostAuth("gwx", "口令-2009", frozenset({("oa.example.gov.cn", 8080)}))

    def sent(url: str) -> str | None:
        flow = auth.auth_flow(httpx.Request("GET", url))
        return next(flow).headers.get("Authorization")

    assert sent("http://oa.example.gov.cn:8080/gwjh/GongwenService?wsdl").startswith("Basic ")
    assert sent("http://schemas.elsewhere.example/common.xsd") is None  # an import from another host
    assert sent("http://oa.example.gov.cn:9090/other") is None  # another port is another server


def test_ws_security_instead_of_http_basic(tmp_path):
    assert load_config(example_node(tmp_path)).oa_push[0].authentication == "http_basic"
    node = example_node(tmp_path, ('authentication = "http_basic"', 'authentication = "ws_security_digest"'))
    push = load_config(node).oa_push[0]
    assert (push.username, push.authentication) == ("gwx", "ws_security_digest")
    for value, message in (('"wsse"', "authentication 'wsse' is none of http_basic, ws_security"),
                           ('"ws_security"\n#', None)):
        text = (node / CONFIG_NAME).read_text("utf-8")
        text = re.sub(r'authentication = .*', f"authentication = {value}", text)
        if message is None:  # authentication without a user to authenticate as
            text = re.sub(r'^(username|password_file) = .*$', "", text, flags=re.M)
            message = "authentication needs username and password_file"
        (node / CONFIG_NAME).write_text(text, "utf-8")
        with pytest.raises(OaMappingInvalid, match=message):
            load_config(node)


@pytest.mark.parametrize(("authentication", "warned"), [("http_basic", "HTTP Basic"),
                                                        ("ws_security", "a WS-Security PasswordText token"),
                                                        ("ws_security_digest", None)])
def test_a_password_sent_in_clear_over_http_is_warned_of_at_load(tmp_path, caplog, authentication, warned):
    node = example_node(tmp_path, ('authentication = "http_basic"', f'authentication = "{authentication}"'))
    with caplog.at_level("WARNING", logger="adapters.oa_push.settings"):
        load_config(node)
    if warned is None:  # a digest does not show the password
        assert "plain http" not in caplog.text
        return
    assert f"the OA's password goes as {warned} over plain http (wsdl, endpoint)" in caplog.text
    caplog.clear()
    text = (node / CONFIG_NAME).read_text("utf-8").replace('"http://10.1.9.20', '"https://10.1.9.20')
    (node / CONFIG_NAME).write_text(text, "utf-8")
    with caplog.at_level("WARNING", logger="adapters.oa_push.settings"):
        load_config(node)
    assert "plain http" not in caplog.text
