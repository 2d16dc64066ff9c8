"""Sealed OFDs made by other products (ofd_samples/, see its SOURCE.md) read by our verifier: every check
up to trust passes — structure, references, Seal.esl, the SES_Signature, the seal maker's signature, the
picture — and the foreign seal maker is refused (SEAL_MAKER_UNTRUSTED); a page changed in them is caught.
The second, independent verifier accepts them too, so the two agree on what others make."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange_protocol.ofd_errors import OfdReferenceMismatch
from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
from pki.ca import CertificateAuthority
from pki.errors import SealMakerUntrusted
from pki.seal_signature import parse_sealed_signature
from tests.support import PASSPHRASE

from .ofd_fixtures import unzip, zip_files
from .ofd_independent import check_sealed_ofd

SAMPLES = Path(__file__).parent / "ofd_samples"
# name: (the signed-value member, the seal's name, whether Signatures.xml is protected)
EXPECTED = {
    "ofdrw-SESV4SignDoc.ofd": ("Doc_0/Signs/Sign_0/SignedValue.dat", "OFD R&W 测试用印章", False),
    "ofdrw-V4RideRight.ofd": ("Doc_0/Signs/Sign_0/SignedValue.dat", "OFD R&W 测试用印章", True),
    "ofdrw-v4signed.ofd": ("Doc_0/Signs/Sign_0/SignedValue.dat", "测试全国统一发票监制章国家税务总局重庆市税务局", False),
    "suzhou-unified-eseal.ofd": ("Doc_0/Signs/Sign_0/SignValue.dat", None, False),
}


@pytest.fixture(scope="module")
def our_root(tmp_path_factory):
    ca = CertificateAuthority.init_root(tmp_path_factory.mktemp("interop") / "ca", "国密根CA", PASSPHRASE,
                                        algorithm="sm2-sm3")
    return ca.root_certificate


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_seal_made_by_another_product_checks_out_up_to_its_foreign_maker(name, our_root):
    data = (SAMPLES / name).read_bytes()
    files = unzip(data)
    signed_value, seal_name, list_protected = EXPECTED[name]
    ses = parse_sealed_signature(files[signed_value])
    assert ses.algorithm_oid == "1.2.156.10197.1.501"  # SM2 with SM3
    if seal_name:
        assert ses.seal.name == seal_name
    at = ses.time_info
    with pytest.raises(SealMakerUntrusted):
        verify_sealed_ofd(data, revocation=NO_REVOCATION_CHECK, trust_roots=[our_root], at=at)
    if name == "ofdrw-SESV4SignDoc.ofd":  # ofdrw's test file was signed in 2026 with a seal valid to 2022
        with pytest.raises(AssertionError, match="timeInfo outside the seal's validity"):
            check_sealed_ofd(data, list_protected=list_protected)
    elif name.startswith("ofdrw-"):  # the second verifier's SM3 is pure Python: 0.6 MB of GIF would take seconds
        assert check_sealed_ofd(data, list_protected=list_protected)["references"] >= 5
    page = next(n for n in sorted(files) if n.endswith("Content.xml") and "Sign" not in n)  # a page
    files[page] = files[page].replace(b"</", b" </", 1)
    with pytest.raises(OfdReferenceMismatch):
        verify_sealed_ofd(zip_files(files), revocation=NO_REVOCATION_CHECK, trust_roots=[our_root], at=at)


def test_a_maker_certificate_that_is_not_der_is_a_typed_refusal_even_as_a_root():
    from pki.errors import CertificateInvalid
    from pki.trust import TrustStore, verify_certificate

    data = (SAMPLES / "suzhou-unified-eseal.ofd").read_bytes()
    ses = parse_sealed_signature(unzip(data)["Doc_0/Signs/Sign_0/SignValue.dat"])
    maker = ses.seal.maker_certificate  # its BasicConstraints encodes the default cA FALSE: BER, not DER
    with pytest.raises(CertificateInvalid):
        verify_certificate(maker, TrustStore.of([maker]), ses.time_info)
    with pytest.raises(SealMakerUntrusted):  # was a ValueError traceback from deep in pyca
        verify_sealed_ofd(data, revocation=NO_REVOCATION_CHECK, trust_roots=[maker, ses.certificate], at=ses.time_info)
