"""Our v4 seals as an independent decoder sees them: asn1tools compiled from the standard's ASN.1.

The ASN.1 (gbt38540.asn beside this file) is shared/standards.md's text with ``_`` turned into ``-`` (underscores are not
legal in ASN.1 type names). One deviation: the standard's ``SES_CertList`` is a CHOICE between two
untagged ``SEQUENCE OF`` types, which X.680 forbids (the alternatives share a tag) and which sends
asn1tools into an endless loop; a reader can only pick the alternative from ``certListType``, so
this test compiles the property twice, once per alternative.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import asn1tools
import pytest

from pki import seal_asn1 as A
from pki.seal import SealBuilder
from tests.pki.seal_support import UNIT, UNIT_NAME, der, make_seal, picture
from tests.support import run_openssl

SPEC = (Path(__file__).parent / "gbt38540.asn").read_text(encoding="utf-8")  # also read by ofd_independent.py


@pytest.fixture(scope="module")
def certs_codec():
    return asn1tools.compile_string(SPEC.replace("CERTLIST", "CertInfoList"), "der")


@pytest.fixture(scope="module")
def digests_codec():
    return asn1tools.compile_string(SPEC.replace("CERTLIST", "CertDigestList"), "der")


@pytest.fixture(scope="module")
def made(root_ca):
    return make_seal(root_ca)


def test_independent_decoder_reads_every_field(made, root_ca, certs_codec):
    d = certs_codec.decode("SESeal", made.der)
    info = d["eSealInfo"]
    assert info["header"] == {"id": "ES", "version": 4, "vid": "gwx"}
    assert info["esID"] == made.seal.es_id and info["esID"].startswith(UNIT)
    prop = info["property"]
    assert prop["type"] == 1 and prop["name"] == UNIT_NAME and prop["certListType"] == 1
    assert prop["certList"] == [der(made.certificate)]
    # asn1tools returns naive datetimes for "Z" GeneralizedTime values
    assert prop["validStart"].replace(tzinfo=dt.UTC) == made.certificate.not_valid_before_utc
    assert prop["validEnd"].replace(tzinfo=dt.UTC) == made.certificate.not_valid_after_utc
    assert info["picture"] == {"type": "PNG", "data": picture(), "width": 42, "height": 42}
    assert "extDatas" not in info
    assert d["cert"] == der(root_ca.seal_maker_signer().certificate)
    assert d["signAlgID"] == "1.2.840.10045.4.3.2"
    sig, bit_count = d["signedValue"]
    assert sig == made.seal.signed_value and bit_count == 8 * len(sig)


def test_we_emit_exactly_what_the_independent_encoder_emits(made, certs_codec):
    # DER is canonical: re-encoding the decoded value must give our bytes back, bit for bit.
    assert certs_codec.encode("SESeal", certs_codec.decode("SESeal", made.der)) == made.der


def test_digest_cert_list_decodes_as_cert_digest_list(root_ca, digests_codec):
    import hashlib
    m = make_seal(root_ca, builder=SealBuilder().with_digests())
    prop = digests_codec.decode("SESeal", m.der)["eSealInfo"]["property"]
    assert prop["certListType"] == 2
    assert prop["certList"] == [{"type": "sha256", "value": hashlib.sha256(der(m.certificate)).digest()}]


def test_openssl_sees_the_standard_string_and_time_types(made, tmp_path):
    path = tmp_path / "seal.esl"
    path.write_bytes(made.der)
    out = run_openssl("asn1parse", "-inform", "DER", "-in", path).stdout.decode()
    lines = out.splitlines()
    assert any("IA5STRING" in line and line.endswith(":ES") for line in lines)
    assert sum("GENERALIZEDTIME" in line for line in lines) == 3
    assert "UTCTIME" not in out
    assert sum("UTF8STRING" in line for line in lines) == 1
    assert "ecdsa-with-SHA256" in out


def test_sealed_signature_structures_encode_per_standard(made, certs_codec):
    tbs = A.TBSSign({"version": 4, "eseal": A.SESeal.load(made.der),
                     "time_info": dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                     "data_hash": b"\x11" * 32, "property_info": "Doc_0/Signs/Sign_0/Signature.xml"})
    sig = A.SESSignature({"to_sign": tbs, "cert": b"\x30\x00", "signature_alg_id": "1.2.840.10045.4.3.2",
                          "signature": b"\x22" * 70, "time_stamp": b"\x33" * 5})
    d = certs_codec.decode("SES-Signature", sig.dump())
    assert d["toSign"]["version"] == 4
    assert certs_codec.encode("SESeal", d["toSign"]["eseal"]) == made.der
    assert d["toSign"]["dataHash"] == (b"\x11" * 32, 256)
    assert d["toSign"]["timeInfo"] == dt.datetime(2025, 1, 2, 3, 4, 5)
    assert d["timeStamp"] == (b"\x33" * 5, 40)


def test_asn1crypto_classes_parse_our_seal_and_reencode_it_identically(made):
    s = A.SESeal.load(made.der)
    prop = s["e_seal_info"]["property"]
    assert prop["name"].native == UNIT_NAME and prop["cert_list"].name == "certs"
    assert s.dump(force=True) == made.der
