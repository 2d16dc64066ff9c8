# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""A push whose files are streamed from a real sealed package into the message: the legacy OA
(spyne, parsing the message whole) gets the body and attachments byte for byte, as when zeep was
given them inline; a package that breaks while it is sent never reaches the OA as a whole message."""

from __future__ import annotations

import asyncio
import logging
import os
import zipfile
from pathlib import Path

import pytest

from adapters.oa_push.consumer import _package_parts
from adapters.oa_push.mapping import ReceivedDocument
from adapters.oa_push.soap_call import OaClient
from adapters.oa_push.streaming import split_envelope
from exchange_protocol.errors import PackageError
from exchange_protocol.package import Attachment, build_package
from node.localnet import notice_pdf
from tests.adapters.oa_push.legacy_oa import LegacyOa
from tests.adapters.oa_push.test_mapping import SENDER
from tests.adapters.oa_push.test_soap_call import run, settings
from tests.exchange_protocol.package_fixtures import NOW, make_meta, pki_env  # noqa: F401

logging.getLogger("spyne").setLevel(logging.CRITICAL)


@pytest.fixture
def oa():
    with LegacyOa() as server:
        yield server


def sealed(path: Path, pki, attachments: list[tuple[str, bytes]]) -> Path:
    with open(path, "wb") as out:
        build_package(out, metadata=make_meta(), body=notice_pdf(), seal_key=pki.seal, at=NOW,
                      attachments=[Attachment(name, content) for name, content in attachments])
    return path


def push_package(client: OaClient, package: Path, doc_id: str = "gw.stream.1"):
    body, attachments = _package_parts(package)
    doc = ReceivedDocument(doc_id=doc_id, event_id="node-a:9", unit=client.settings.unit, from_unit=SENDER,
                           received_at="2026-11-30T01:00:00Z", meta={"title": "关于报送录像的函", "kind": "函"},
                           body=body.token, attachments=tuple((name, part.token) for name, part in attachments))
    return client.call("ReceiveGongwen", client.settings.mapping.received_arguments(doc),
                       (body, *(part for _, part in attachments)))


def test_the_files_of_a_sealed_package_arrive_byte_for_byte(oa, tmp_path, pki_env):
    video = os.urandom(3 * 1024 * 1024 + 1)  # not a multiple of 3: the base64 ends padded
    package = sealed(tmp_path / "p.zip", pki_env, [("现场录像.mp4", video), ("说明.txt", "说明".encode())])
    assert asyncio.run(run(lambda c: push_package(c, package))(OaClient(settings(oa)))) == "成功"
    got = oa.state.documents["gw.stream.1"]
    with zipfile.ZipFile(package) as archive:
        assert got["zw"] == archive.read("body.pdf")  # the sealed body, as the package holds it
    assert got["fj"] == [("现场录像.mp4", video), ("说明.txt", "说明".encode())]


def test_an_ofd_body_reaches_the_oa_as_the_package_holds_it(oa, tmp_path, pki_env):
    from tests.exchange_protocol.ofd_fixtures import make_ofd

    package = tmp_path / "p.zip"
    with open(package, "wb") as out:
        build_package(out, metadata=make_meta(), body=make_ofd(), seal_key=pki_env.seal, at=NOW)
    assert asyncio.run(run(lambda c: push_package(c, package))(OaClient(settings(oa)))) == "成功"
    with zipfile.ZipFile(package) as archive:
        assert oa.state.documents["gw.stream.1"]["zw"] == archive.read("body.ofd")


def test_the_placeholders_are_cut_out_where_they_stand(tmp_path, pki_env):
    package = sealed(tmp_path / "p.zip", pki_env, [("a.txt", b"a")])
    body, ((_, part),) = _package_parts(package)
    message = b"<zw>" + body.placeholder + b"</zw><x>" + part.placeholder + b"</x>"
    assert split_envelope(message, [body, part]) == [b"<zw>", body, b"</zw><x>", part, b"</x>"]
    with zipfile.ZipFile(package) as archive:
        assert (body.size, part.size) == (archive.getinfo("body.pdf").file_size, 1)
    assert (body.encoded_size, part.encoded_size) == (4 * ((body.size + 2) // 3), 4)


def test_a_package_that_breaks_while_it_is_sent_never_reaches_the_oa_whole(oa, tmp_path, pki_env):
    content = os.urandom(2 * 1024 * 1024)
    package = sealed(tmp_path / "p.zip", pki_env, [("现场录像.mp4", content)])
    with zipfile.ZipFile(package) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("现场录像.mp4"))
    data = bytearray(package.read_bytes())  # flip a byte past the first megabyte of the member's data
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 1536 * 1024
    data[at] ^= 0xFF
    package.write_bytes(bytes(data))
    with pytest.raises(PackageError):
        asyncio.run(run(lambda c: push_package(c, package))(OaClient(settings(oa))))
    assert oa.state.documents == {}
