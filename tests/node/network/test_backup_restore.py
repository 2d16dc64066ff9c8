"""``gwx node backup`` of a running node while documents are being sent, restored into another
directory and started there: its documents and its queue are there and the queue is delivered; an
archive changed anywhere — a byte, or a file with its digest rewritten — is refused and nothing is
restored."""

from __future__ import annotations

import io
import json
import tarfile
import threading

import pytest

from node.localnet import PASSPHRASE, send_document
from tests.node.network.network_support import (
    A1,
    CITY,
    FAST_RETRY,
    inbox_item,
    new_network,
    notice_meta,
    units,
)
from tests.support import run_gwx

ENV = {"GWX_PASSPHRASE": PASSPHRASE.decode()}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_running_node_backed_up_mid_traffic_restores_elsewhere_with_its_documents_and_queue(tmp_path):
    net = new_network(tmp_path / "net")
    city = net.add_node("city", units(CITY), retry=FAST_RETRY)
    lanshan = net.add_node("lanshan", units(A1), retry=FAST_RETRY)
    net.connect_all()
    archive = tmp_path / "city.backup"
    try:
        net.start(city)  # lanshan is down: what city sends waits in its queue
        first = send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"]
        sent: list[str] = []
        sending = threading.Thread(target=lambda: sent.extend(
            send_document(city, CITY, notice_meta(CITY, [A1]), net.body)["doc_id"] for _ in range(4)))
        sending.start()
        out = run_gwx("node", "backup", city.directory, "--to", archive, env=ENV, text=True)
        sending.join()
        assert out.returncode == 0, out.stderr
        assert "node 'city' backed up to" in out.stdout and (archive.stat().st_mode & 0o077) == 0
        net.stop(city)

        restored = tmp_path / "elsewhere" / "city"
        out = run_gwx("node", "restore", archive, "--to", restored, env=ENV, text=True)
        assert out.returncode == 0, out.stderr
        check = run_gwx("node", "check", "--dir", restored, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

        twin = net.adopt("city", restored, units(CITY))
        net.start(twin)
        backed_up = [d["doc_id"] for d in twin.clerk(CITY).get("/api/v1/outbox", {"limit": 100})]
        assert first in backed_up and set(backed_up) <= {first, *sent}
        net.start(lanshan)
        for doc_id in backed_up:  # the restored queue is delivered from the new directory
            inbox_item(lanshan, A1, doc_id, timeout=60)
    finally:
        net.stop_all()

    tampered = tmp_path / "tampered.backup"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    target = tmp_path / "never"
    out = run_gwx("node", "restore", tampered, "--to", target, env=ENV, text=True)
    assert out.returncode == 1 and "gwx: NODE_BACKUP_TAMPERED: " in out.stderr and "Traceback" not in out.stderr
    assert not target.exists() and not any(p.name.startswith(".never") for p in tmp_path.iterdir())

    # node.toml changed and its digest rewritten in the manifest: the HMAC (the passphrase's) refuses it.
    rewritten = tmp_path / "rewritten.backup"
    with tarfile.open(archive) as source, tarfile.open(rewritten, "w") as dest:
        for info in source.getmembers():
            data = source.extractfile(info).read()
            if info.name == "node/node.toml":
                data = data.replace(b'node_id = "city"', b'node_id = "evil"')
            if info.name == "MANIFEST.json":
                import hashlib

                manifest = json.loads(data)
                toml = next(m for m in source.getmembers() if m.name == "node/node.toml")
                changed = source.extractfile(toml).read().replace(b'node_id = "city"', b'node_id = "evil"')
                manifest["files"]["node.toml"] = {"size": len(changed), "sha256": hashlib.sha256(changed).hexdigest()}
                data = json.dumps(manifest).encode()
            info.size = len(data)
            dest.addfile(info, io.BytesIO(data))
    out = run_gwx("node", "restore", rewritten, "--to", target, env=ENV, text=True)
    assert out.returncode == 1 and "NODE_BACKUP_TAMPERED" in out.stderr and "HMAC" in out.stderr
    assert not target.exists()
    out = run_gwx("node", "restore", archive, "--to", target, env={"GWX_PASSPHRASE": "another passphrase"},
                  text=True)
    assert out.returncode == 1 and "another node passphrase" in out.stderr and not target.exists()
