"""Hostile OFD containers: each refused with its code before anything is expanded, extracted or trusted
(exchange_protocol.ofd_container, used by both the sealer and the verifier)."""

from __future__ import annotations

import io
import zipfile

import pytest

from exchange_protocol.ofd_container import OfdContainer, OfdLimits, resolve_loc
from exchange_protocol.ofd_errors import OfdMalformed, OfdUnsafePath, OfdXmlForbidden, OfdZipBomb
from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd

from .ofd_fixtures import make_ofd, unzip, zip_files

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016">&lol3;</ofd:Document>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016">&secret;</ofd:Document>"""


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return out.getvalue()


def _verify(ofd: bytes):
    return verify_sealed_ofd(ofd, revocation=NO_REVOCATION_CHECK, trust_roots=[])


def test_a_zip_bomb_is_refused_before_it_is_inflated():
    files = unzip(make_ofd())
    bomb = _zip([*files.items(), ("Doc_0/Res/bomb.bin", b"\0" * (64 * 1024 * 1024))])
    assert len(bomb) < 200 * 1024  # 64 MiB of zeros compresses a thousandfold
    with pytest.raises(OfdZipBomb):
        _verify(bomb)


def test_members_past_the_total_are_refused_whatever_their_ratio():
    files = unzip(make_ofd())
    limits = OfdLimits(max_inflated_bytes=2 * 1024 * 1024, ratio_floor_bytes=10**9)
    with pytest.raises(OfdZipBomb):  # the ratio check off: the total alone refuses it
        OfdContainer.open(_zip([*files.items(), ("Doc_0/Res/big.bin", b"\0" * (3 * 1024 * 1024))]), limits)


def test_too_many_members_is_refused():
    with pytest.raises(OfdZipBomb):
        OfdContainer.open(_zip([(f"f{i}", b"") for i in range(30)] + [("OFD.xml", b"<x/>")]),
                          OfdLimits(max_members=20))


@pytest.mark.parametrize("name", ["../evil.xml", "Doc_0/../../evil.xml", "/etc/cron.d/x", "C:/x.xml",
                                  "Doc_0\\x.xml"])
def test_a_member_name_out_of_the_container_is_refused(name):
    files = unzip(make_ofd())
    with pytest.raises(OfdUnsafePath):
        _verify(_zip([*files.items(), (zipfile.ZipInfo(name), b"x")]))


def test_a_symlink_and_a_duplicate_name_are_refused():
    files = unzip(make_ofd())
    link = zipfile.ZipInfo("Doc_0/link")
    link.create_system, link.external_attr = 3, (0o120777 << 16)
    with pytest.raises(OfdUnsafePath):
        _verify(_zip([*files.items(), (link, b"/etc/passwd")]))
    with pytest.raises(OfdUnsafePath):
        _verify(_zip([*files.items(), ("doc_0/document.xml", b"<x/>")]))  # the same name on a case-blind disk


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_xml_with_a_dtd_or_entities_is_refused(xml):
    files = unzip(make_ofd())
    files["Doc_0/Document.xml"] = xml
    with pytest.raises(OfdXmlForbidden):
        _verify(zip_files(files))


def test_a_location_that_climbs_out_is_refused():
    files = unzip(make_ofd())
    files["OFD.xml"] = files["OFD.xml"].replace(b"<ofd:DocRoot>Doc_0/Document.xml", b"<ofd:DocRoot>../../etc/passwd")
    with pytest.raises(OfdUnsafePath):
        _verify(zip_files(files))
    with pytest.raises(OfdUnsafePath):
        resolve_loc("Doc_0/Signs/Signatures.xml", "Sign_0/../../../../x")
    assert resolve_loc("Doc_0/Signs/Signatures.xml", "Sign_0/Signature.xml") == "Doc_0/Signs/Sign_0/Signature.xml"
    assert resolve_loc("Doc_0/Signs/Signatures.xml", "/Doc_0/Signs/Sign_0/Signature.xml") == \
        "Doc_0/Signs/Sign_0/Signature.xml"


@pytest.mark.parametrize("data", [b"%PDF-1.7 not an ofd", b"PK\x03\x04broken", _zip([("Doc_0/Document.xml", b"<x/>")]),
                                  _zip([("OFD.xml", b"<ofd:OFD xmlns:ofd='http://www.ofdspec.org/2016'>")]),
                                  _zip([("OFD.xml", b'<?xml version="1.0" encoding="UTFh8"?><a/>')])],
                         ids=["pdf", "broken-zip", "no-ofd-xml", "bad-xml", "unknown-encoding"])
def test_what_is_not_an_ofd_is_malformed(data):
    with pytest.raises(OfdMalformed):
        _verify(data)
