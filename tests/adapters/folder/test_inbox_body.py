"""The watched folder writes a received document's body under the name its package carries it by:
body.pdf, or body.ofd for an OFD 正文 (checked against the manifest while it is written)."""

from __future__ import annotations

import zipfile

from adapters.folder.inbox import _write_document
from exchange_protocol.package import build_package
from node.localnet import notice_pdf
from tests.exchange_protocol.ofd_fixtures import make_ofd
from tests.exchange_protocol.package_fixtures import NOW, make_meta, pki_env  # noqa: F401


def test_the_body_keeps_its_kind_in_the_units_folder(tmp_path, pki_env):  # noqa: F811
    for n, (body, name) in enumerate(((make_ofd(), "body.ofd"), (notice_pdf(), "body.pdf"))):
        package = tmp_path / f"p{n}.zip"
        with open(package, "wb") as out:
            build_package(out, metadata=make_meta(), body=body, seal_key=pki_env.seal, at=NOW)
        target = tmp_path / f"doc{n}"
        _write_document(target, {"metadata": {"id": "x"}, "verification": {"ok": True}}, {"doc_id": "x"}, package)
        with zipfile.ZipFile(package) as archive:
            assert (target / name).read_bytes() == archive.read(name)
        assert sorted(p.name for p in target.iterdir()) == sorted([name, "META.json", "verification.json",
                                                                   "document.json"])
