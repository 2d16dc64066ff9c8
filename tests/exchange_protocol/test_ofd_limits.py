"""What an OFD may cost the node before anything in it is authenticated: each XML file is capped in
bytes, elements, attributes and depth before or while it is parsed (``OFD_XML_TOO_LARGE``), so a
small upload cannot make the sealer or the verifier build a tree of millions of elements; and the
ZIP's bytes are its members, directory and end record, nothing before, between or after them
(``OFD_MALFORMED``), so a streaming reader cannot be shown a page the verifier never hashed."""

from __future__ import annotations

import io
import random
import struct
import time
import tracemalloc
import zipfile

import pytest

from exchange_protocol.ofd_container import DEFAULT_OFD_LIMITS, OfdContainer
from exchange_protocol.ofd_errors import OfdError
from exchange_protocol.ofd_seal import seal_ofd
from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd

from .ofd_fixtures import make_ofd, unzip, zip_files
from .test_ofd_seal import Network

MiB = 1024 * 1024
DOC = "Doc_0/Document.xml"


@pytest.fixture(scope="module")
def p256(tmp_path_factory):
    return Network(tmp_path_factory.mktemp("ofd-limits"), None)


def _refusal(call) -> tuple[OfdError, float, int]:
    """The typed error ``call`` raised, with the CPU seconds it took (measured apart: tracemalloc slows
    allocation several times over) and the peak of new memory it took."""
    started = time.process_time()
    with pytest.raises(OfdError):
        call()
    cpu = time.process_time() - started
    tracemalloc.start()
    try:
        with pytest.raises(OfdError) as caught:
            call()
        return caught.value, cpu, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _padded_document(padding: bytes) -> bytes:
    """Document.xml with ``padding`` (elements) inside its CommonData, where no reader looks."""
    document = unzip(make_ofd())[DOC]
    return document.replace(b"</ofd:CommonData>", padding + b"</ofd:CommonData>")


def _with(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_a_53_mib_stored_document_xml_is_refused_at_once(p256):
    """The review's case: 7 M empty elements stored (not deflated) took 29 s and +660 MiB before."""
    files = unzip(make_ofd())
    files[DOC] = _padded_document(b"<x/>" * (53 * MiB // 4))
    ofd = _with(files, zipfile.ZIP_STORED)
    for call in (lambda: verify_sealed_ofd(ofd, revocation=NO_REVOCATION_CHECK, trust_roots=[]),
                 lambda: seal_ofd(ofd, p256.cred.signer, p256.cred.seal, at=p256.at)):
        error, cpu, peak = _refusal(call)
        assert error.code == "OFD_XML_TOO_LARGE" and DOC in error.message
        assert cpu < 0.5 and peak < 4 * MiB, (cpu, peak)


def test_a_small_upload_of_millions_of_elements_is_refused_before_they_are_built():
    """7 MiB of XML (under the byte cap) that deflates below the ratio limit: 1.7 M elements."""
    rng = random.Random(7)
    chunks = [b"<x/>" * 60 + b'<y a="%08x"/>' % rng.getrandbits(32) for _ in range(7 * MiB // 256)]
    files = unzip(make_ofd())
    files[DOC] = _padded_document(b"".join(chunks))
    ofd = zip_files(files)
    assert len(ofd) < MiB
    error, cpu, peak = _refusal(lambda: verify_sealed_ofd(ofd, revocation=NO_REVOCATION_CHECK, trust_roots=[]))
    assert error.code == "OFD_XML_TOO_LARGE" and "elements" in error.message
    assert cpu < 1.0 and peak < 64 * MiB, (cpu, peak)


def test_one_element_with_half_a_million_attributes_is_refused_before_parsing():
    files = unzip(make_ofd())
    files[DOC] = _padded_document(b"<x " + b" ".join(b'a%d=""' % i for i in range(500_000)) + b"/>")
    error, cpu, peak = _refusal(lambda: verify_sealed_ofd(zip_files(files), revocation=NO_REVOCATION_CHECK, trust_roots=[]))
    assert error.code == "OFD_XML_TOO_LARGE" and "attributes" in error.message
    assert cpu < 0.5 and peak < 32 * MiB, (cpu, peak)


def test_sealing_a_deeply_nested_ofd_xml_is_a_typed_refusal_not_a_recursion_error(p256):
    """Well-formed: expat accepts 5,000 levels, and re-serialising OFD.xml recursed once per level."""
    files = unzip(make_ofd())
    files["OFD.xml"] = files["OFD.xml"].replace(b"</ofd:OFD>", b"<x>" * 5000 + b"</x>" * 5000 + b"</ofd:OFD>")
    with pytest.raises(OfdError) as caught:
        seal_ofd(zip_files(files), p256.cred.signer, p256.cred.seal, at=p256.at)
    assert caught.value.code == "OFD_XML_TOO_LARGE" and "deep" in caught.value.message


def test_the_caps_leave_room_for_a_real_document(p256):
    """A 600-page 通知 (Document.xml lists them all) seals and verifies under the default caps."""
    sealed = seal_ofd(make_ofd(pages=600), p256.cred.signer, p256.cred.seal, at=p256.at)
    assert p256.verify(sealed).pages == 600
    assert DEFAULT_OFD_LIMITS.max_xml_elements >= 100_000 and DEFAULT_OFD_LIMITS.max_xml_depth >= 32


# ---- the ZIP's bytes ---------------------------------------------------------------------------------

def test_bytes_before_or_after_the_zip_are_refused(p256):
    p256.verify(p256.sealed)  # the sealed OFD itself is fine
    for hostile, where in ((b"\0" * 4096 + p256.sealed, "before"), (p256.sealed + b"\0" * 4096, "after")):
        with pytest.raises(OfdError) as caught:
            p256.verify(hostile)
        assert caught.value.code == "OFD_MALFORMED" and where in caught.value.message, caught.value.message


def test_a_local_header_hidden_between_members_is_refused(p256):
    """A page in a gap no central-directory entry claims: a streaming reader (local headers in order)
    would show it; the verifier, reading the directory, never hashed it."""
    sealed = p256.sealed
    with zipfile.ZipFile(io.BytesIO(sealed)) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    hidden = _with({"Doc_0/Pages/Page_0/Content.xml": b"<ofd:Page xmlns:ofd='http://www.ofdspec.org/2016'/>"})
    hidden = hidden[:hidden.index(b"PK\x01\x02")]  # its local header and data alone
    at = infos[1].header_offset
    shifted = _shift_offsets(sealed, at, len(hidden))
    with pytest.raises(OfdError) as caught:
        p256.verify(shifted[:at] + hidden + shifted[at:])
    assert caught.value.code == "OFD_MALFORMED" and "between" in caught.value.message, caught.value.message


def _shift_offsets(data: bytes, after: int, by: int) -> bytes:
    """``data`` with every central-directory offset at or past ``after`` moved by ``by`` bytes, and the
    directory's own offset too, as if ``by`` bytes were inserted at ``after``."""
    out = bytearray(data)
    eocd = data.rindex(b"PK\x05\x06")
    count, _, cd_offset = struct.unpack_from("<HII", data, eocd + 10)
    pos = cd_offset
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        (offset,) = struct.unpack_from("<I", data, pos + 42)
        if offset >= after:
            struct.pack_into("<I", out, pos + 42, offset + by)
        pos += 46 + name_len + extra_len + comment_len
    struct.pack_into("<I", out, eocd + 16, cd_offset + by)
    return bytes(out)


def test_a_zip_comment_and_data_descriptors_are_still_read(p256):
    """What the layout check allows: the end record's own comment, and the data descriptors Java's
    ZipOutputStream writes after each member (ofdrw's samples have them)."""
    with_comment = bytearray(p256.sealed)
    struct.pack_into("<H", with_comment, len(with_comment) - 2, 7)
    p256.verify(bytes(with_comment) + b"gwx-ofd")
    assert OfdContainer.open(_descriptor_zip()).files["OFD.xml"] == unzip(make_ofd())["OFD.xml"]


def _descriptor_zip() -> bytes:
    """make_ofd()'s files written to an unseekable stream, so zipfile writes a data descriptor each."""
    class Unseekable(io.RawIOBase):
        def __init__(self):
            self.buf = bytearray()

        def writable(self):
            return True

        def write(self, b):
            self.buf += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in unzip(make_ofd()).items():
            with zf.open(name, "w") as member:
                member.write(data)
    data = bytes(out.buf)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert all(i.flag_bits & 0x08 for i in zf.infolist())
    return data
