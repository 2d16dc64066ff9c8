"""A running node serves the network directory it holds at GET /peer/v1/directory over mutual TLS,
with an ETag a child sends back (If-None-Match → 304); a new copy is served without a restart; and
``gwx net show --dir`` reads a node's copy, verified against the node's own root."""

from __future__ import annotations

import hashlib

import pytest

from exchange_protocol.directory_signing import verify_directory
from node.config import load_config
from pki.certificates import utcnow
from pki.keystore import write_public_file
from tests.node.network.network_support import (
    A1,
    CITY,
    RawPeer,
    gwx,
    signed_directory,
    start_network,
    tls_context_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("directory")
    network = start_network(base, {"city": ([CITY], {}), "county-a": ([A1], {})})
    yield network
    network.stop_all()


def publish(net, version: int) -> bytes:
    """The root operator builds a directory of the running nodes and installs it on the city node."""
    data = signed_directory(net, version, [("city", "city", None), ("county-a", "county", "city")], [
        {"code": CITY, "name": "临沂市人民政府办公室", "level": "city", "node": "city"},
        {"code": A1, "name": "兰山区人民政府办公室", "level": "county", "node": "county-a", "supervisor": CITY}])
    write_public_file(load_config(net.nodes["city"].directory).network_directory_path, data)
    return data


def test_a_node_serves_its_directory_with_an_etag(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    as_county = RawPeer(city, tls_context_of(county))
    data = publish(net, 1)
    status, _, body = as_county.request("GET", "/peer/v1/directory")
    assert status == 200 and body == data
    assert verify_directory(body, [net.ca.root_certificate], utcnow()).directory.version == 1
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    status, _, body = as_county.request("GET", "/peer/v1/directory", headers={"If-None-Match": etag})
    assert status == 304 and body == b""
    # A new version is served as soon as it is installed: the old ETag no longer matches.
    newer = publish(net, 2)
    status, _, body = as_county.request("GET", "/peer/v1/directory", headers={"If-None-Match": etag})
    assert status == 200 and body == newer


def test_a_node_without_a_directory_answers_404_with_its_code(net):
    (net.nodes["county-a"].directory / "directory.json").unlink(missing_ok=True)
    as_city = RawPeer(net.nodes["county-a"], tls_context_of(net.nodes["city"]))
    status, parsed, _ = as_city.request("GET", "/peer/v1/directory")
    assert status == 404 and parsed["error"]["code"] == "NODE_NO_DIRECTORY"


def test_gwx_net_show_reads_a_nodes_copy(net):
    publish(net, 3)
    shown = gwx("net", "show", "--dir", str(net.nodes["city"].directory))
    text = shown.stdout
    assert shown.returncode == 0, shown.stderr
    assert "version   3  (current)" in text and "signature verified" in text and "county-a" in text
    (net.nodes["county-a"].directory / "directory.json").unlink(missing_ok=True)
    missing = gwx("net", "show", "--dir", str(net.nodes["county-a"].directory))
    assert missing.returncode == 2 and "NODE_NO_DIRECTORY" in missing.stderr


def test_gwx_net_install_verifies_and_never_goes_back(net, tmp_path):
    county = net.nodes["county-a"].directory
    v4, v3 = tmp_path / "v4.json", tmp_path / "v3.json"
    v3.write_bytes(publish(net, 3))
    v4.write_bytes(publish(net, 4))
    out = gwx("net", "install", str(v4), "--dir", str(county))
    assert out.returncode == 0, out.stderr
    assert (county / "directory.json").read_bytes() == v4.read_bytes()
    back = gwx("net", "install", str(v3), "--dir", str(county))
    assert back.returncode == 1 and "DIR_ROLLBACK" in back.stderr
    tampered = tmp_path / "t.json"
    tampered.write_bytes(v4.read_bytes().replace("兰山区".encode(), "罗庄区".encode()))
    bad = gwx("net", "install", str(tampered), "--dir", str(county))
    assert bad.returncode == 1 and "DIR_BAD_SIGNATURE" in bad.stderr
    assert (county / "directory.json").read_bytes() == v4.read_bytes()
    status, _, body = RawPeer(net.nodes["county-a"], tls_context_of(net.nodes["city"])).request(
        "GET", "/peer/v1/directory")
    assert status == 200 and body == v4.read_bytes()
