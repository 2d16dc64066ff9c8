"""``gwx net build / show / diff``: the root operator builds the signed directory from the example
source, openssl verifies its signature, and bad input is a typed error with no traceback."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.hashes import SHA256

from exchange_protocol.directory_signing import signed_parts, verify_directory
from node.directory_source import read_source
from pki.ca import CertificateAuthority
from pki.certificates import load_certificate, utcnow
from tests.support import PASSPHRASE_TEXT, run_gwx, run_openssl

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples"
PW = PASSPHRASE_TEXT
ENV = {"GWX_PASSPHRASE": PW}
NODES = ("city", "county-wuling", "county-dingcheng")


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    """A CA, credentials for the example's three nodes, and the example source beside them."""
    base = tmp_path_factory.mktemp("net")
    ca = CertificateAuthority.init_root(base / "ca", "常德市电子政务CA", PW.encode())
    for node_id in NODES:
        ca.issue_node(node_id, f"{node_id}.example", base / "credentials" / node_id, PW.encode())
    # The example's county-wuling has renewed: the new set, and the old one published beside it.
    ca.issue_node("county-wuling", "county-wuling.example", base / "credentials" / "county-wuling-2027",
                  PW.encode(), renew=True)
    shutil.copy(EXAMPLES / "network.toml", base / "network.toml")
    return base


def source(network: Path, tmp_path: Path, edit=lambda text: text) -> Path:
    """A copy of the example source with ``edit`` applied, its credentials paths still valid."""
    text = (network / "network.toml").read_text("utf-8").replace('"credentials/', f'"{network}/credentials/')
    path = tmp_path / "network.toml"
    path.write_text(edit(text), "utf-8")
    return path


def build(network: Path, src: Path, out: Path, *extra, env=ENV):
    return run_gwx("net", "build", "--source", src, "--ca", network / "ca", "--out", out, *extra, env=env)


def test_the_example_source_loads_with_every_key_documented(network):
    directory = read_source(network / "network.toml", utcnow())
    assert [n.id for n in directory.nodes] == list(NODES)
    assert directory.unit("11430703MB1766308K").parent == "11430703MB1766307G"
    assert directory.links == (("county-dingcheng", "county-wuling"),) and directory.crl_urls
    text = (EXAMPLES / "network.toml").read_text("utf-8")
    for key in ("next_update_days", "valid_days", "links", "[revocation]", "supervisor", "parent", "credentials",
                "previous", "[supervision]", "grace_working_days"):
        assert key in text


def test_a_renewed_node_is_published_with_its_previous_certificates_beside_the_new(network, tmp_path):
    directory = read_source(network / "network.toml", utcnow())
    wuling = directory.node("county-wuling")
    new = load_certificate((network / "credentials" / "county-wuling-2027" / "enc.crt").read_bytes())
    old = load_certificate((network / "credentials" / "county-wuling" / "enc.crt").read_bytes())
    assert wuling.encryption == new and [p.encryption for p in wuling.previous] == [old]
    assert wuling.certificates("encryption") == (new, old) and not directory.node("city").previous
    out = tmp_path / "directory.json"
    assert build(network, network / "network.toml", out).returncode == 0
    root = load_certificate((network / "ca" / "root.crt").read_bytes())
    published = verify_directory(out.read_bytes(), [root], utcnow()).directory.node("county-wuling")
    assert published.certificates("signing") == wuling.certificates("signing")
    # Only a node with previous certificates carries the key: the others read as they always did.
    nodes = json.loads(signed_parts(out.read_bytes())[0])["nodes"]
    assert [("previous" in n) for n in nodes] == [False, True, False]


def test_a_previous_credentials_entry_that_is_not_a_list_or_not_there_is_a_typed_error(network, tmp_path):
    bad = source(network, tmp_path, lambda t: t.replace('previous = ["', 'previous = "', 1)
                 .replace('county-wuling"]', 'county-wuling"', 1))
    proc = build(network, bad, tmp_path / "o.json")
    assert proc.returncode == 2 and "NET_SOURCE_INVALID" in proc.stderr.decode() and "previous" in proc.stderr.decode()
    gone = source(network, tmp_path, lambda t: t.replace('credentials/county-wuling"]', 'credentials/nowhere"]'))
    proc = build(network, gone, tmp_path / "o.json")
    assert proc.returncode == 2 and "nowhere" in proc.stderr.decode() and "Traceback" not in proc.stderr.decode()


def test_build_then_show_then_openssl_verifies(network, tmp_path):
    out = tmp_path / "directory.json"
    proc = build(network, network / "network.toml", out)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "3 nodes, 4 units" in proc.stdout.decode()
    root = network / "ca" / "root.crt"
    verified = verify_directory(out.read_bytes(), [load_certificate(root.read_bytes())], utcnow())
    assert verified.directory.version == 1 and verified.directory.network == "常德市电子政务外网"

    content, signature = signed_parts(out.read_bytes())
    (tmp_path / "content").write_bytes(content)
    (tmp_path / "sig.der").write_bytes(signature)
    proc = run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                       "-content", tmp_path / "content", "-CAfile", root, "-purpose", "any", "-out", tmp_path / "o")
    assert b"Verification successful" in proc.stderr

    shown = run_gwx("net", "show", out, "--trust", root)
    text = shown.stdout.decode()
    assert shown.returncode == 0 and "version   1  (current)" in text and "signature verified" in text
    assert re.search(r"county-dingcheng\s+county\s+parent city\s+units 2", text)
    info = json.loads(run_gwx("net", "show", out, "--json").stdout)
    assert info["status"] == "current" and info["signature"] == {"checked": False}
    assert len(info["units"]) == 4 and info["age"].endswith("m") and info["expires"] > info["next_update"]


def test_a_tampered_file_fails_show_with_trust(network, tmp_path):
    out = tmp_path / "directory.json"
    assert build(network, network / "network.toml", out).returncode == 0
    out.write_bytes(out.read_bytes().replace("鼎城区某镇".encode(), "鼎城区别镇".encode()))
    shown = run_gwx("net", "show", out, "--trust", network / "ca" / "root.crt")
    assert shown.returncode == 1 and b"DIR_BAD_SIGNATURE" in shown.stderr and b"Traceback" not in shown.stderr


def test_diff_shows_a_unit_moving_to_its_own_node(network, tmp_path):
    old = tmp_path / "v1.json"
    assert build(network, network / "network.toml", old).returncode == 0
    CertificateAuthority.open(network / "ca", PW.encode()).issue_node(
        "town-x", "town-x.example", tmp_path / "credentials" / "town-x", PW.encode())
    township = ('\n[[nodes]]\nid = "town-x"\nurls = ["https://10.43.2.9:7443"]\nlevel = "乡镇"\n'
                f'parent = "county-dingcheng"\ncredentials = "{tmp_path}/credentials/town-x"\n')

    def v2(text):
        text = text.replace("version = 1", "version = 2")
        text = text.replace('node = "county-dingcheng"          # hosted', 'node = "town-x"  # hosted')
        return text + township

    new = tmp_path / "v2.json"
    proc = build(network, source(network, tmp_path, v2), new, "--current", old)
    assert proc.returncode == 0, proc.stderr.decode()
    text = run_gwx("net", "diff", old, new, "--trust", network / "ca" / "root.crt").stdout.decode()
    assert "version 1 → 2" in text and "+ node town-x" in text
    assert "→ unit 11430703MB1766308K 鼎城区某镇人民政府 moved from county-dingcheng to town-x" in text
    changes = json.loads(run_gwx("net", "diff", old, new, "--json").stdout)
    assert changes["units"]["moved"] == {"11430703MB1766308K": {"from": "county-dingcheng", "to": "town-x"}}
    # Building version 2 again over the published version 2 is a rollback the operator is told about.
    again = build(network, source(network, tmp_path, v2), tmp_path / "v2b.json", "--current", new)
    assert again.returncode == 1 and b"DIR_ROLLBACK" in again.stderr and b"raise version" in again.stderr


def test_an_enrolled_node_is_listed_by_the_response_its_request_got(network, tmp_path):
    from pki.node_enrolment import create_node_request, sign_node_request

    ca = CertificateAuthority.open(network / "ca", PW.encode())
    request = create_node_request(tmp_path / "on-the-node", "town-y", ca.root_certificate, b"node passphrase")
    response = tmp_path / "town-y.resp"
    signed = sign_node_request(ca, request.pem, "town-y.example")
    response.write_bytes(signed.response)
    township = ('\n[[nodes]]\nid = "town-y"\nurls = ["https://10.43.2.10:7443"]\nlevel = "乡镇"\n'
                f'parent = "county-dingcheng"\ncredentials = "{response}"\n')
    directory = read_source(source(network, tmp_path, lambda t: t + township), utcnow())
    node = next(n for n in directory.nodes if n.id == "town-y")
    assert node.certificate("signing") == signed.certificates["sign"]
    assert node.certificate("encryption") == signed.certificates["enc"]
    response.write_bytes(b"# not a response\n")
    proc = build(network, source(network, tmp_path, lambda t: t + township), tmp_path / "d.json")
    assert proc.returncode == 2 and b"neither a credentials directory nor a response" in proc.stderr


BAD_SOURCES = {
    "unit on a missing node": (lambda t: t.replace('node = "county-wuling"', 'node = "county-nowhere"'),
                               "DIR_UNKNOWN_REFERENCE", 2, "county-nowhere"),
    "duplicate unit code": (lambda t: t.replace('code = "11430702MB1766306Y"', 'code = "11430700MB1766305Y"'),
                            "DIR_DUPLICATE", 2, "11430700MB1766305Y"),
    "bad check character": (lambda t: t.replace('code = "11430702MB1766306Y"', 'code = "11430702MB1766306X"'),
                            "DIR_BAD_UNIT_CODE", 2, "check character"),
    "unknown key": (lambda t: t.replace('level = "county"\nparent', 'levle = "county"\nparent', 1),
                    "NET_SOURCE_INVALID", 2, "levle"),
    "not TOML": (lambda t: t + "\n[[nodes\n", "NET_SOURCE_INVALID", 2, "TOML"),
    "missing credentials": (lambda t: t.replace("credentials/county-wuling", "credentials/nope"),
                            "NET_SOURCE_INVALID", 2, "nope"),
    "a bad network calendar": (lambda t: t + '[supervision]\ncalendar = "nowhere.toml"\n', "NET_SOURCE_INVALID", 2,
                               "cannot read the holiday calendar"),
    "a bad network grace": (lambda t: t + "[supervision]\ngrace_working_days = -2\n", "DIR_BAD_FIELD", 2,
                            "grace_working_days"),
    "an unknown supervision key": (lambda t: t + "[supervision]\ngrace = 2\n", "NET_SOURCE_INVALID", 2, "grace"),
    "the root given a parent": (lambda t: t.replace('level = "city"\ncredentials', 'level = "city"\nparent = "county-wuling"\n'
                                       'credentials'), "DIR_BAD_FIELD", 2, "exactly one root"),
}


def test_the_networks_duban_rules_go_from_the_source_into_the_signed_directory(network, tmp_path):
    shutil.copy(EXAMPLES / "holidays-2026.toml", tmp_path / "holidays-2026.toml")
    src = source(network, tmp_path, lambda t: t.replace("# [supervision]\n# grace_working_days = 3\n# calendar",
                                                       "[supervision]\ngrace_working_days = 2\ncalendar"))
    out = tmp_path / "directory.json"
    proc = build(network, src, out)
    assert proc.returncode == 0, proc.stderr.decode()
    root = load_certificate((network / "ca" / "root.crt").read_bytes())
    rules = verify_directory(out.read_bytes(), [root], utcnow()).directory.supervision
    assert rules.grace_working_days == 2 and len(rules.calendar.holidays) == 33 and len(rules.calendar.workdays) == 6
    shown = run_gwx("net", "show", out, "--trust", network / "ca" / "root.crt").stdout.decode()
    assert "督办      grace 2 working days, calendar of 33 holidays and 6 adjusted working days" in shown
    before = tmp_path / "before.json"
    assert build(network, network / "network.toml", before).returncode == 0
    changed = run_gwx("net", "diff", before, out).stdout.decode()
    assert "~ 督办 rules: grace 2 working days" in changed and "no node, unit or link changed" not in changed
    # The example as shipped sets none: its directory has no supervision key, as before the key existed.
    assert "supervision" not in json.loads(signed_parts(before.read_bytes())[0])


@pytest.mark.parametrize("case", BAD_SOURCES, ids=list(BAD_SOURCES))
def test_bad_sources_are_typed_errors(network, tmp_path, case):
    edit, code, exit_code, mention = BAD_SOURCES[case]
    proc = build(network, source(network, tmp_path, edit), tmp_path / "out.json")
    err = proc.stderr.decode()
    assert proc.returncode == exit_code, err
    assert f"gwx: {code}:" in err and mention in err and "Traceback" not in err
    assert not (tmp_path / "out.json").exists()


def test_a_wrong_passphrase_and_a_missing_signer_are_refused(network, tmp_path):
    proc = build(network, network / "network.toml", tmp_path / "o.json", env={"GWX_PASSPHRASE": "not the one"})
    assert proc.returncode == 3 and b"PKI_WRONG_PASSPHRASE" in proc.stderr and b"Traceback" not in proc.stderr
    proc = run_gwx("net", "build", "--source", network / "network.toml", "--signer", tmp_path / "none",
                   "--out", tmp_path / "o.json", env=ENV)
    assert proc.returncode == 2 and b"PKI_CA_MISSING" in proc.stderr and b"issue-directory-signer" in proc.stderr


def test_a_signer_directory_signs_without_the_ca(network, tmp_path):
    """The signer directory (key encrypted with the passphrase it was issued with) is all build needs."""
    assert run_gwx("pki", "issue-directory-signer", "--ca", network / "ca", "--out", tmp_path / "signer",
                   env=ENV).returncode == 0
    out = tmp_path / "d.json"
    proc = run_gwx("net", "build", "--source", network / "network.toml", "--signer", tmp_path / "signer",
                   "--out", out, env=ENV)
    assert proc.returncode == 0, proc.stderr.decode()
    assert run_gwx("net", "show", out, "--trust", tmp_path / "signer" / "root.crt").returncode == 0


def test_help_says_what_the_source_holds():
    text = run_gwx("net", "build", "--help").stdout.decode()
    for word in ("[[nodes]]", "[[units]]", "credentials", "--current", "deploy/examples/network.toml"):
        assert word in text
    assert "whether current" in " ".join(run_gwx("net", "--help").stdout.decode().split())


def build_plain(tmp_path: Path) -> bytes:
    """A directory of a P-256 network with one node, as bytes."""
    from pki.unit_code import make_unit_code

    ca = CertificateAuthority.init_root(tmp_path / "plain-ca", "国际目录CA", PW.encode())
    ca.issue_node("city", "city.example", tmp_path / "plain" / "city", PW.encode())
    src = tmp_path / "plain.toml"
    src.write_text('network = "国际测试网"\nversion = 1\n[[nodes]]\nid = "city"\nurls = ["https://city.example:8443"]\n'
                   f'level = "city"\ncredentials = "{tmp_path / "plain" / "city"}"\n[[units]]\n'
                   f'code = "{make_unit_code("11371300MB0000001")}"\nname = "市单位"\nlevel = "city"\nnode = "city"\n',
                   "utf-8")
    done = run_gwx("net", "build", "--source", src, "--ca", tmp_path / "plain-ca", "--out", tmp_path / "plain.json",
                   env=ENV)
    assert done.returncode == 0, done.stderr.decode()
    return (tmp_path / "plain.json").read_bytes()


def test_a_sm_networks_directory_checks_node_tls_under_its_transport_root(tmp_path):
    """On a 国密 network node TLS is P-256 under the CA's transport root: build checks it there (and
    the rest under the SM2 root), and publishes the intermediates of both kinds for a node below a CA."""
    from pki.unit_code import make_unit_code

    root = CertificateAuthority.init_root(tmp_path / "ca", "国密目录CA", PW.encode(), algorithm="sm2-sm3")
    county_ca = root.create_intermediate(tmp_path / "county-ca", "兰山区CA", PW.encode())
    root.issue_node("city", "city.example", tmp_path / "credentials" / "city", PW.encode())
    county_ca.issue_node("county-a", "county-a.example", tmp_path / "credentials" / "county-a", PW.encode())
    lines = ['network = "国密测试网"', "version = 1"]
    for node_id, level, parent in (("city", "city", None), ("county-a", "county", "city")):
        lines += ["[[nodes]]", f'id = "{node_id}"', f'urls = ["https://{node_id}.example:8443"]', f'level = "{level}"',
                  f'credentials = "{tmp_path / "credentials" / node_id}"'] + ([f'parent = "{parent}"'] if parent else [])
    for code, node_id, level in (("11371300MB0000001", "city", "city"), ("11371302MB0000001", "county-a", "county")):
        lines += ["[[units]]", f'code = "{make_unit_code(code)}"', f'name = "{node_id}单位"', f'level = "{level}"',
                  f'node = "{node_id}"']
    src = tmp_path / "network.toml"
    src.write_text("\n".join(lines) + "\n", "utf-8")
    out = tmp_path / "directory.json"
    done = run_gwx("net", "build", "--source", src, "--ca", tmp_path / "ca", "--out", out, env=ENV)
    assert done.returncode == 0, done.stderr.decode()
    published = verify_directory(out.read_bytes(), [root.root_certificate], utcnow()).directory
    county = published.node("county-a")
    assert set(county.chain) == {county_ca.certificate, county_ca.transport.certificate}
    # the directory names the transport root under its SM2 signature, and gwx net show says which
    assert published.transport_root == root.transport.root_certificate
    assert "transport_root" not in json.loads(signed_parts(build_plain(tmp_path))[0])  # absent elsewhere
    shown = run_gwx("net", "show", out, "--trust", tmp_path / "ca" / "root.crt")
    fingerprint = root.transport.root_certificate.fingerprint(SHA256()).hex(":")
    assert shown.returncode == 0 and "TLS root  CN=国密目录CA TLS传输".encode() in shown.stdout
    assert fingerprint.encode() in shown.stdout
    # the SM2 root named as the TLS root: the TLS certificates do not chain to it
    wrong = run_gwx("net", "build", "--source", src, "--ca", tmp_path / "ca", "--out", tmp_path / "d2.json",
                    "--tls-root", tmp_path / "ca" / "root.crt", env=ENV)
    assert wrong.returncode != 0 and b"DIR_BAD_CERTIFICATE" in wrong.stderr and b"tls certificate" in wrong.stderr
