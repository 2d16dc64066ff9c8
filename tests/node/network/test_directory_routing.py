"""A unit no static peer names is reached through the network directory the node holds: the city
lists no peer at all, yet once a directory naming the county and its unit is installed — while the
city runs — its 通知 reaches that unit."""

from __future__ import annotations

import pytest

from node.config import load_config
from node.localnet import send_document
from node.provision import add_peer
from pki.errors import GwxError
from pki.keystore import write_public_file
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    inbox_item,
    new_network,
    notice_meta,
    signed_directory,
    units,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = new_network(tmp_path_factory.mktemp("directory-routing"))
    city = net.add_node("city", units(CITY), retry=FAST_RETRY)
    county = net.add_node("county-a", units(A1), retry=FAST_RETRY)
    # Only the county has a static peer (the city, to accept its documents); the city has none.
    add_peer(county.directory, "city", load_config(city.directory).peer_api.public_url, [CITY])
    try:
        net.start_all()
        yield net
    finally:
        net.stop_all()


def directory_of(net) -> bytes:
    return signed_directory(net, 1, [("city", "city", None), ("county-a", "county", "city")], [
        {"code": CITY, "name": "临沂市人民政府办公室", "level": "city", "node": "city"},
        {"code": A1, "name": "兰山区人民政府办公室", "level": "county", "node": "county-a"}])


def test_a_unit_named_only_by_the_directory_is_reached(net):
    city, county = net.nodes["city"], net.nodes["county-a"]
    with pytest.raises(GwxError) as unknown:
        send_document(city, CITY, notice_meta(CITY, [A1]), net.body)
    assert unknown.value.code == "ROUTE_UNKNOWN_UNIT"
    write_public_file(city.directory / "directory.json", directory_of(net))  # no restart
    result = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)
    item = inbox_item(county, A1, result["doc_id"])
    assert item["from_unit"] == CITY and item["status"] == "pending"
    assert city.process.poll() is None
