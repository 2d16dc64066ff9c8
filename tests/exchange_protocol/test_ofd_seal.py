"""OFD bodies sealed per GB/T 38540 (exchange_protocol.ofd_seal) and verified (ofd_verify): the layout
the standard gives, both network profiles, and every kind of damage refused with its own code."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest

from exchange_protocol.ofd_errors import (
    OfdCheckMethodRefused,
    OfdInputError,
    OfdMalformed,
    OfdNotSealed,
    OfdReferenceMismatch,
    OfdReferenceMissing,
    OfdSealMismatch,
    OfdSignatureMoved,
    OfdSignerMismatch,
    OfdStampInvalid,
    OfdUnreferencedFile,
    OfdUnsafePath,
)
from exchange_protocol.ofd_seal import StampBox, seal_ofd
from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
from pki import crl as crls
from pki.ca import CertificateAuthority
from pki.errors import (
    SealBadSignature,
    SealDataMismatch,
    SealExpired,
    SealMakerUntrusted,
    SealNotYetValid,
    SealRevoked,
)
from pki.seal_signature import make_sealed_signature, parse_sealed_signature
from pki.seal_store import issue_seal
from pki.sm3_sm4 import sm3
from tests.support import PASSPHRASE

from .ofd_fixtures import make_ofd, unzip, zip_files

UNIT, UNIT_NAME = "91350100M000100Y43", "福州市鼓楼区人民政府办公室"
OTHER_UNIT, OTHER_NAME = "11100000000013127D", "临沂市财政局"
SIG = "Doc_0/Signs/Sign_0/Signature.xml"
VALUE = "Doc_0/Signs/Sign_0/SignedValue.dat"
PAGE = "Doc_0/Pages/Page_0/Content.xml"


class Network:
    def __init__(self, base, algorithm: str | None):
        kw = {"algorithm": algorithm} if algorithm else {}
        self.ca = CertificateAuthority.init_root(base / "ca", "OFD测试CA", PASSPHRASE, **kw)
        self.cred = issue_seal(self.ca, UNIT, UNIT_NAME, base / "seal", PASSPHRASE)
        self.other = issue_seal(self.ca, OTHER_UNIT, OTHER_NAME, base / "other", PASSPHRASE)
        self.at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.sealed = seal_ofd(make_ofd(), self.cred.signer, self.cred.seal, at=self.at)

    def verify(self, ofd: bytes, **kw):
        if "crls" not in kw:
            kw.setdefault("revocation", NO_REVOCATION_CHECK)
        return verify_sealed_ofd(ofd, trust_roots=[self.ca.root_certificate], **kw)


_NETWORKS: dict[str | None, Network] = {}  # one CA and two seals per profile for the whole module


def _network(tmp_path_factory, algorithm: str | None) -> Network:
    if algorithm not in _NETWORKS:
        _NETWORKS[algorithm] = Network(tmp_path_factory.mktemp(f"ofd-{algorithm}"), algorithm)
    return _NETWORKS[algorithm]


@pytest.fixture(scope="module", params=["sm2-sm3", None], ids=["sm", "p256"])
def net(request, tmp_path_factory):
    return _network(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def sm(tmp_path_factory):
    return _network(tmp_path_factory, "sm2-sm3")


def _with(ofd: bytes, path: str, data: bytes | None) -> bytes:
    files = unzip(ofd)
    if data is None:
        files.pop(path)
    else:
        files[path] = data
    return zip_files(files)


def _resign(net: Network, ofd: bytes, signature_xml: bytes) -> bytes:
    """A hostile (or buggy) sealer holding the real key: Signature.xml as it likes, properly signed."""
    der = make_sealed_signature(signature_xml, net.cred.signer, net.cred.seal, property_info="/" + SIG, now=net.at)
    return _with(_with(ofd, SIG, signature_xml), VALUE, der)


def test_a_sealed_ofd_has_the_standards_layout_and_verifies(net):
    files = unzip(net.sealed)
    assert b"<ofd:Signatures>/Doc_0/Signs/Signatures.xml</ofd:Signatures>" in files["OFD.xml"]
    assert b'BaseLoc="/Doc_0/Signs/Sign_0/Signature.xml"' in files["Doc_0/Signs/Signatures.xml"]
    assert files["Doc_0/Signs/Sign_0/Seal.esl"] == net.cred.seal.der
    signature_xml = files[SIG]
    referenced = set(re.findall(rb'FileRef="/([^"]+)"', signature_xml))
    assert referenced == {n.encode() for n in files} - {SIG.encode(), VALUE.encode()}
    ses = parse_sealed_signature(files[VALUE])
    assert ses.property_info == "/" + SIG and ses.seal.der == net.cred.seal.der
    assert ses.time_info == net.at
    checked = net.verify(net.sealed, unit_code=UNIT, expected_certificate=net.cred.certificate)
    report = checked.first.to_dict()
    assert report["seal_name"] == UNIT_NAME and report["unit_code"] == UNIT and report["page_id"] == 10
    assert report["box_mm"] == [143.0, 177.0, 42.0, 42.0]  # the seal's 42 mm, right of the lower third


def test_the_profile_decides_digest_and_signature(net):
    files = unzip(net.sealed)
    signature_xml = files[SIG]
    ses = parse_sealed_signature(files[VALUE])
    page_value = re.search(rb'FileRef="/' + PAGE.encode() + rb'"><ofd:CheckValue>([^<]+)<', signature_xml)[1]
    if net.ca.algorithm.name.startswith("sm2"):
        assert b'CheckMethod="1.2.156.10197.1.401"' in signature_xml  # SM3
        assert b"<ofd:SignatureMethod>1.2.156.10197.1.501</ofd:SignatureMethod>" in signature_xml
        assert ses.data_hash == sm3(signature_xml) and ses.algorithm_oid == "1.2.156.10197.1.501"
        assert base64.b64decode(page_value) == sm3(files[PAGE])
    else:
        import hashlib
        assert b'CheckMethod="2.16.840.1.101.3.4.2.1"' in signature_xml  # SHA-256
        assert ses.data_hash == hashlib.sha256(signature_xml).digest()
        assert ses.algorithm_oid == "1.2.840.10045.4.3.2"  # ECDSA with SHA-256
        assert base64.b64decode(page_value) == hashlib.sha256(files[PAGE]).digest()


def test_a_page_changed_after_sealing_is_refused(net):
    page = unzip(net.sealed)[PAGE].replace("十二月十五日".encode(), "十二月二十日".encode())
    with pytest.raises(OfdReferenceMismatch) as err:
        net.verify(_with(net.sealed, PAGE, page))
    assert err.value.code == "OFD_REFERENCE_MISMATCH" and err.value.details["name"] == PAGE


def test_a_file_added_or_removed_is_refused(net):
    with pytest.raises(OfdUnreferencedFile) as err:
        net.verify(_with(net.sealed, "Doc_0/Pages/Page_0/Res/extra.png", b"\x89PNG\r\n\x1a\n"))
    assert err.value.details["name"] == "Doc_0/Pages/Page_0/Res/extra.png"
    with pytest.raises(OfdReferenceMissing):
        net.verify(_with(net.sealed, "Doc_0/PublicRes.xml", None))


def test_a_reference_removed_from_signature_xml_breaks_the_data_hash(net):
    signature_xml = unzip(net.sealed)[SIG]
    cut = re.sub(rb'<ofd:Reference FileRef="/Doc_0/Pages/Page_0/Content.xml">.*?</ofd:Reference>', b"",
                 signature_xml)
    assert cut != signature_xml
    with pytest.raises(SealDataMismatch):
        net.verify(_with(net.sealed, SIG, cut))


def test_a_swapped_seal_is_refused(net):
    with pytest.raises(OfdSealMismatch):  # another unit's seal picture beside the signature
        net.verify(_with(net.sealed, "Doc_0/Signs/Sign_0/Seal.esl", net.other.seal.der))


def test_a_signature_moved_to_another_document_is_refused(net):
    other_doc = seal_ofd(make_ofd(doc_id="0" * 32, title="另一份通知"), net.other.signer, net.other.seal,
                         at=net.at)
    files = unzip(other_doc)
    for name, data in unzip(net.sealed).items():
        if name.startswith("Doc_0/Signs/"):
            files[name] = data  # our seal lifted onto another document
    with pytest.raises(OfdSignatureMoved):
        net.verify(zip_files(files))


def test_a_signature_moved_to_another_place_is_refused(net):
    files = unzip(net.sealed)
    moved = dict(files)
    for name, data in files.items():
        if "/Sign_0/" in name:
            moved[name.replace("Sign_0", "Sign_1")] = data  # the same signature, listed at another place
    moved["Doc_0/Signs/Signatures.xml"] = files["Doc_0/Signs/Signatures.xml"].replace(b"Sign_0", b"Sign_1")
    with pytest.raises(OfdSignatureMoved) as err:
        net.verify(zip_files(moved))
    assert err.value.details["property_info"] == "/" + SIG


def test_a_damaged_signature_or_foreign_root_is_refused(net, tmp_path):
    value = bytearray(unzip(net.sealed)[VALUE])
    value[-3] ^= 0x01
    with pytest.raises(SealBadSignature):
        net.verify(_with(net.sealed, VALUE, bytes(value)))
    stranger = CertificateAuthority.init_root(tmp_path / "stranger", "陌生CA", PASSPHRASE,
                                              algorithm=net.ca.algorithm.name)
    with pytest.raises(SealMakerUntrusted):
        verify_sealed_ofd(net.sealed, revocation=NO_REVOCATION_CHECK, trust_roots=[stranger.root_certificate])


def test_an_expired_seal_and_a_revoked_key_are_refused(net, tmp_path):
    with pytest.raises(SealExpired):
        net.verify(net.sealed, at=net.cred.seal.valid_end + dt.timedelta(days=1))
    ca = CertificateAuthority.init_root(tmp_path / "ca", "吊销CA", PASSPHRASE, algorithm=net.ca.algorithm.name)
    cred = issue_seal(ca, UNIT, UNIT_NAME, tmp_path / "seal", PASSPHRASE)
    sealed = seal_ofd(make_ofd(), cred.signer, cred.seal, at=net.at)
    ca.revoke(cred.certificate, "key_compromise")
    crl = crls.publish_crl(ca, dt.datetime.now(dt.UTC))
    with pytest.raises(SealRevoked):
        verify_sealed_ofd(sealed, trust_roots=[ca.root_certificate], crls=[crl])


def test_a_seal_dated_in_the_future_is_refused(net):
    """timeInfo is the signer's word: a signature "made" tomorrow is not valid now (clock skew allowed)."""
    tomorrow = seal_ofd(make_ofd(), net.cred.signer, net.cred.seal, at=net.at + dt.timedelta(days=1))
    with pytest.raises(SealNotYetValid, match="later than"):
        net.verify(tomorrow, at=net.at)
    net.verify(tomorrow, at=net.at + dt.timedelta(days=1, minutes=1))
    soon = seal_ofd(make_ofd(), net.cred.signer, net.cred.seal, at=net.at + dt.timedelta(minutes=2))
    net.verify(soon, at=net.at)  # within the clock skew


def test_a_caller_must_say_how_revocation_is_checked(net):
    """No fail-open default: forgetting revocation= and crls= is a programming error, not 'not revoked'."""
    with pytest.raises(TypeError, match="NO_REVOCATION_CHECK"):
        verify_sealed_ofd(net.sealed, trust_roots=[net.ca.root_certificate])
    assert net.verify(net.sealed, revocation=NO_REVOCATION_CHECK).first.page_id == 10


def test_the_package_signer_must_be_the_seal_key(net):
    with pytest.raises(OfdSignerMismatch):
        net.verify(net.sealed, expected_certificate=net.other.certificate)


def test_an_unsealed_ofd_is_said_so(net):
    with pytest.raises(OfdNotSealed):
        net.verify(make_ofd())
    empty = _with(net.sealed, "Doc_0/Signs/Signatures.xml",
                  b'<ofd:Signatures xmlns:ofd="http://www.ofdspec.org/2016"/>')
    with pytest.raises(OfdNotSealed):
        net.verify(empty)


def test_a_weaker_check_method_is_refused_even_when_signed(sm):
    signature_xml = unzip(sm.sealed)[SIG].replace(b'CheckMethod="1.2.156.10197.1.401"', b'CheckMethod="MD5"')
    with pytest.raises(OfdCheckMethodRefused):
        sm.verify(_resign(sm, sm.sealed, signature_xml))


def test_a_seal_placed_on_no_page_is_refused_even_when_signed(sm):
    signature_xml = unzip(sm.sealed)[SIG]
    with pytest.raises(OfdStampInvalid):
        sm.verify(_resign(sm, sm.sealed, signature_xml.replace(b'PageRef="10"', b'PageRef="99"')))
    with pytest.raises(OfdStampInvalid):
        sm.verify(_resign(sm, sm.sealed, re.sub(rb"<ofd:StampAnnot [^>]*/>", b"", signature_xml)))
    with pytest.raises(OfdStampInvalid):
        sm.verify(_resign(sm, sm.sealed, re.sub(rb'Boundary="[^"]*"', b'Boundary="nan 10 42 42"', signature_xml)))


def test_a_seal_placed_off_its_page_is_refused_even_when_signed(sm):
    """The sealer keeps the box on the page; a foreign seal at x = 5,000 mm is not "placed" either."""
    signature_xml = re.sub(rb'Boundary="[^"]*"', b'Boundary="5000 10 42 42"', unzip(sm.sealed)[SIG])
    with pytest.raises(OfdStampInvalid, match="off the 210×297 mm page"):
        sm.verify(_resign(sm, sm.sealed, signature_xml))


def test_two_pages_with_one_id_are_refused(sm):
    """One silently replaced the other: the seal's PageRef could name either page."""
    files = unzip(make_ofd(pages=2))
    files["Doc_0/Document.xml"] = files["Doc_0/Document.xml"].replace(b'ID="11"', b'ID="10"')
    with pytest.raises(OfdMalformed, match="twice"):
        seal_ofd(zip_files(files), sm.cred.signer, sm.cred.seal, at=sm.at)


@pytest.mark.parametrize("loc", ["http://example.org/seal.png", "file:///etc/passwd", "C:\\Windows\\x.png"])
def test_sealing_refuses_a_resource_outside_the_container(sm, loc):
    """A reader that follows such a location shows content no Reference covers."""
    files = unzip(make_ofd())
    media = (f'<ofd:MultiMedias><ofd:MultiMedia ID="5" Type="Image"><ofd:MediaFile>{loc}</ofd:MediaFile>'
             "</ofd:MultiMedia></ofd:MultiMedias>")
    files["Doc_0/PublicRes.xml"] = files["Doc_0/PublicRes.xml"].replace(b"</ofd:Res>", media.encode() + b"</ofd:Res>")
    with pytest.raises(OfdUnsafePath, match="PublicRes.xml"):
        seal_ofd(zip_files(files), sm.cred.signer, sm.cred.seal, at=sm.at)
    files["Doc_0/PublicRes.xml"] = files["Doc_0/PublicRes.xml"].replace(loc.encode(), b"image_5.png")
    files["Doc_0/Res/image_5.png"] = b"\x89PNG"
    seal_ofd(zip_files(files), sm.cred.signer, sm.cred.seal, at=sm.at)  # a path inside is fine


def test_sealing_keeps_the_producers_ofd_xml_byte_for_byte_but_the_signatures_entry(sm):
    """Its prefixes and comments stay: the entry is inserted, the rest not re-serialised."""
    files = unzip(make_ofd())
    ofd_xml = files["OFD.xml"].replace(b"ofd:", b"o:").replace(b"xmlns:ofd=", b"xmlns:o=")
    ofd_xml = ofd_xml.replace(b"<o:DocRoot>", "<!-- 由某版式软件生成 --><o:DocRoot>".encode())
    files["OFD.xml"] = ofd_xml
    sealed = unzip(seal_ofd(zip_files(files), sm.cred.signer, sm.cred.seal, at=sm.at))["OFD.xml"]
    at = ofd_xml.index(b"</o:DocBody>")
    assert sealed[:at] == ofd_xml[:at] and sealed.endswith(ofd_xml[at:])
    assert b"/Doc_0/Signs/Signatures.xml</" in sealed[at:]
    sm.verify(seal_ofd(zip_files(files), sm.cred.signer, sm.cred.seal, at=sm.at))


def test_sealing_refuses_what_cannot_be_sealed(sm):
    with pytest.raises(OfdInputError):
        seal_ofd(sm.sealed, sm.cred.signer, sm.cred.seal, at=sm.at)  # a second seal would break the first
    with pytest.raises(OfdInputError):
        seal_ofd(make_ofd(), sm.cred.signer, sm.cred.seal, at=sm.at, page=3)
    with pytest.raises(OfdInputError):
        seal_ofd(make_ofd(), sm.cred.signer, sm.cred.seal, at=sm.at, box=StampBox(190, 10, 42, 42))


def test_the_seal_goes_where_it_is_asked(sm):
    sealed = seal_ofd(make_ofd(pages=3), sm.cred.signer, sm.cred.seal, at=sm.at, page=1,
                      box=StampBox(120.5, 200, 40, 40))
    report = sm.verify(sealed).first
    assert report.page_id == 11 and report.box == (120.5, 200.0, 40.0, 40.0)
    assert sm.verify(sealed).pages == 3


def test_a_signatures_list_left_unprotected_by_its_producer_is_accepted_and_nothing_else(sm):
    """ContinueSign (ofdrw, other products): Signatures.xml out of the References, so seals can be added."""
    signature_xml = re.sub(rb'<ofd:Reference FileRef="/Doc_0/Signs/Signatures.xml">.*?</ofd:Reference>', b"",
                           unzip(sm.sealed)[SIG])
    with pytest.raises(OfdUnreferencedFile, match="Signatures.xml"):  # ours always cover it: not ours, then
        sm.verify(_resign(sm, sm.sealed, signature_xml))
    continued = _resign(sm, sm.sealed, signature_xml.replace(b'ProviderName="gwx"', b'ProviderName="ofdrw"'))
    assert sm.verify(continued).first.references == 5
    with pytest.raises(OfdUnreferencedFile):
        sm.verify(_resign(sm, sm.sealed, re.sub(rb'<ofd:Reference FileRef="/Doc_0/PublicRes.xml">.*?</ofd:Reference>',
                                                 b"", unzip(sm.sealed)[SIG])))


def test_an_ofd_written_in_the_namespace_without_its_year_is_read_sealed_and_verified(sm):
    """Some producers (数科, in ofdrw's samples) write http://www.ofdspec.org: read, never written."""
    files = {n: d.replace(b"http://www.ofdspec.org/2016", b"http://www.ofdspec.org") for n, d in
             unzip(make_ofd()).items()}
    sealed = seal_ofd(zip_files(files), sm.cred.signer, sm.cred.seal, at=sm.at)
    assert sm.verify(sealed).first.page_id == 10
    assert unzip(sealed)["Doc_0/Pages/Page_0/Content.xml"] == files["Doc_0/Pages/Page_0/Content.xml"]
