"""bench/network_city.py: a network kept between runs (``bench/network.py --keep DIR``) is reused as
provisioned — the same keys and certificates — with new ports, fresh CRLs and empty stores, and the
exchange on it is complete; a keep directory of another size is refused, not provisioned over."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.network import exchange
from bench.network_city import KEPT, Shape, build_network, keep_network, kept, plan, provision
from node.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TINY = Shape(counties=1, townships=2, city_units=3, county_units=3, units=14)


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.suffix in (".crt", ".key", ".esl", ".token")}


def test_a_kept_network_is_reused_with_its_keys_on_new_ports_and_empty_stores(tmp_path):
    keep = tmp_path / "keep"
    first = provision(tmp_path / "first", plan(TINY), TINY, workers=1)
    keep_network(first.base, TINY, keep)
    provisioned = _files(keep / "net")
    assert kept(keep, TINY) and provisioned
    ports_then = {n: load_config(keep / "net" / n).local_api.port for n in first.nodes}

    city = build_network(tmp_path / "run", TINY, routing="tree", processes=2, keep=keep)
    try:
        figures = exchange(city, tmp_path, timeout=120, poll=0.2)
        ports_now = {n: node.ready["local_url"].rsplit(":", 1)[1] for n, node in city.net.nodes.items()}
    finally:
        city.net.stop_all()
    assert city.figures["reused"]
    assert figures["received"] == figures["signed_back"] == figures["recipients"] == 13
    # Every key, certificate, seal and token the run used is the one provisioned and kept.
    assert _files(tmp_path / "run") == provisioned
    assert all(int(ports_now[n]) != ports_then[n] for n in ports_then)
    # The kept copy is never run from: no store, no log, no directory in it, whatever the runs did.
    assert not list((keep / "net").rglob("data")) and not list((keep / "net").rglob("*.log"))
    assert not list((keep / "net").rglob("directory.json"))


def test_a_keep_directory_of_another_size_is_refused(tmp_path):
    (tmp_path / KEPT).write_text('{"shape": {"counties": 9, "townships": 153, "city_units": 60, '
                                 '"county_units": 30, "units": 3600}}')
    with pytest.raises(ValueError, match="another shape"):
        kept(tmp_path, TINY)
    assert not kept(tmp_path / "empty", TINY)
