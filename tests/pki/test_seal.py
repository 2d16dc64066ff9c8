"""Seal building and tolerant parsing: v4 round trip, v1/v5 and encoder variants, hostile bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import stat

import pytest
from asn1crypto.core import ObjectIdentifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki.errors import (
    InvalidInput,
    InvalidUnitCode,
    KeyCertificateMismatch,
    SealError,
    SealMalformed,
    SealUnsupportedVersion,
    WrongPassphrase,
)
from pki.keystore import read_private_key
from pki.seal import SealBuilder, describe_seal, parse_seal
from pki.seal_store import issue_seal, load_seal_credential
from pki.seal_verify import verify_seal
from tests.pki.seal_support import OTHER_UNIT, UNIT, UNIT_NAME, der, make_seal, picture
from tests.support import PASSPHRASE

# --- a tiny DER writer, so these tests build foreign-shaped seals without our encoder ---------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def ia5(s: str) -> bytes:
    return tlv(0x16, s.encode())


def printable(s: str) -> bytes:
    return tlv(0x13, s.encode())


def utf8(s: str) -> bytes:
    return tlv(0x0C, s.encode())


def utctime(t: dt.datetime) -> bytes:
    return tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode())


def gentime(t: dt.datetime) -> bytes:
    return tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").encode())


def oid(dotted: str) -> bytes:
    return ObjectIdentifier(dotted).dump()


def bits(b: bytes) -> bytes:
    return tlv(0x03, b"\x00" + b)


@pytest.fixture(scope="module")
def made(root_ca):
    return make_seal(root_ca)


@pytest.fixture(scope="module")
def maker(root_ca):
    return root_ca.seal_maker_signer()


def _pic() -> bytes:
    return seq(ia5("PNG"), octets(picture()), integer(40), integer(40))


# --- round trip ----------------------------------------------------------------------------------


def test_build_then_parse_gives_every_field_back(made, maker):
    s = parse_seal(made.der)
    assert (s.format, s.header_version, s.vid) == ("v4", 4, "gwx")
    assert s.name == UNIT_NAME and s.seal_type == 1 and s.unit_code == UNIT
    assert s.es_id.startswith(UNIT) and s.es_id.isascii()
    assert s.cert_list == (der(made.certificate),) and s.seal_certificates == (made.certificate,)
    assert s.valid_start == made.certificate.not_valid_before_utc
    assert s.valid_end == made.certificate.not_valid_after_utc
    assert s.valid_start <= s.create_date <= s.valid_end
    assert (s.picture.type, s.picture.data, s.picture.width_mm, s.picture.height_mm) == ("PNG", picture(), 42, 42)
    assert s.maker_certificate == maker.certificate and s.sign_alg_oid == maker.algorithm.oid
    assert s.der == made.der and made.der.find(s.seal_info_der) in (4, 5)  # right after the outer header
    assert s.matches_certificate(made.certificate)


def test_the_same_bytes_give_the_same_seal_and_broken_bytes_are_refused_every_time(made):
    """A receiver parses a unit's one seal in every package it sends: the parse (and the certificates
    it loads) is kept by exact bytes; a broken seal is judged again, never kept as a verdict."""
    first = parse_seal(made.der)
    assert parse_seal(bytearray(made.der)) is first and first.unit_code == UNIT
    broken = made.der[:-3]
    for _ in range(2):
        with pytest.raises(SealMalformed):
            parse_seal(broken)


def test_builder_is_immutable():
    b = SealBuilder()
    b2 = b.with_unit(UNIT, "甲").with_picture(b"png", 30)
    assert b.unit_code is None and b.picture_png is None
    assert (b2.unit_code, b2.width_mm, b2.height_mm) == (UNIT, 30, 30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b2.name = "乙"  # type: ignore[misc]


def test_digest_list_seal_names_its_certificate_by_hash(root_ca):
    m = make_seal(root_ca, builder=SealBuilder().with_digests())
    s = parse_seal(m.der)
    assert s.cert_list_type == 2 and s.cert_list == () and s.cert_digests[0].type == "sha256"
    assert s.matches_certificate(m.certificate)
    assert not s.matches_certificate(make_seal(root_ca).certificate)


# --- builder validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("change, error, code", [
    (lambda b: b.with_unit("91350100M000100Y44", UNIT_NAME), InvalidUnitCode, "PKI_INVALID_UNIT_CODE"),
    (lambda b: b.with_unit(UNIT, "  "), InvalidInput, "PKI_INVALID_INPUT"),
    (lambda b: b.with_picture(b"GIF89a not a png"), InvalidInput, "SEAL_PICTURE_INVALID"),
    (lambda b: b.with_picture(picture(), 0), InvalidInput, "PKI_INVALID_INPUT"),
    (lambda b: dataclasses.replace(b, certificates=()), InvalidInput, "PKI_INVALID_INPUT"),
    (lambda b: dataclasses.replace(b, seal_type=7), InvalidInput, "PKI_INVALID_INPUT"),
    (lambda b: b.with_unit(OTHER_UNIT, UNIT_NAME), InvalidInput, "PKI_INVALID_INPUT"),  # cert names UNIT
    (lambda b: b.with_es_id("印章1"), InvalidInput, "PKI_INVALID_INPUT"),
])
def test_builder_refuses_bad_input_at_build(made, maker, change, error, code):
    base = SealBuilder().with_unit(UNIT, UNIT_NAME).with_certificate(made.certificate).with_picture(picture())
    bad = change(base)  # building the description never fails …
    with pytest.raises(error) as err:
        bad.build(maker)  # … build() does
    assert err.value.code == code


def test_builder_refuses_validity_that_ends_first_or_outlives_the_certificate(made, maker):
    base = SealBuilder().with_unit(UNIT, UNIT_NAME).with_certificate(made.certificate).with_picture(picture())
    start = made.certificate.not_valid_before_utc
    with pytest.raises(InvalidInput, match="before it starts"):
        base.with_validity(start + dt.timedelta(days=2), start + dt.timedelta(days=1)).build(maker)
    with pytest.raises(InvalidInput, match="within its certificates"):
        base.with_validity(start, made.certificate.not_valid_after_utc + dt.timedelta(days=1)).build(maker)


# --- tolerant parsing -------------------------------------------------------------------------------


def _v1_seal(maker, cert, *, version: int = 1, name=printable) -> tuple[bytes, bytes]:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    info = seq(seq(ia5("ES"), integer(version), ia5("OFD-VENDOR")), ia5("V1-0001"),
               seq(integer(1), name("Unit Seal"), seq(octets(der(cert))),
                   utctime(start + dt.timedelta(minutes=5)), utctime(start), utctime(end)),
               _pic())
    return seq(info, seq(octets(der(maker.certificate)), oid(maker.algorithm.oid), bits(maker.sign(info)))), info


def test_gmt_0031_2014_v1_seal_parses_and_its_signature_checks(made, maker, root_ca):
    data, info = _v1_seal(maker, made.certificate)
    s = parse_seal(data)
    assert (s.format, s.header_version, s.vid, s.es_id, s.name) == ("v1", 1, "OFD-VENDOR", "V1-0001", "Unit Seal")
    assert s.cert_list == (der(made.certificate),) and s.cert_list_type == 1
    assert s.valid_start == made.certificate.not_valid_before_utc
    assert s.valid_end == made.certificate.not_valid_after_utc and s.picture.width_mm == 40
    assert s.seal_info_der == info
    assert verify_seal(data, trust_roots=[root_ca.root_certificate]).unit_code == UNIT
    tampered = data.replace(b"Unit Seal", b"Unit Sea1")
    with pytest.raises(SealError) as err:
        verify_seal(tampered, trust_roots=[root_ca.root_certificate])
    assert err.value.code == "SEAL_BAD_SIGNATURE"


def test_v4_encoder_variants_are_accepted_and_verified_over_the_bytes_received(made, maker, root_ca):
    # PrintableString esID and vid, UTCTime dates, certList in [0] EXPLICIT, extDatas in [0]:
    # all seen in public encoders; re-encoding would break the maker's signature.
    c = made.certificate
    ext = seq(oid("1.2.156.1"), tlv(0x01, b"\x00"), octets(b"x"))
    info = seq(seq(ia5("ES"), integer(4), printable("VENDOR")), printable("V4-VARIANT"),
               seq(integer(1), utf8(UNIT_NAME), integer(1), tlv(0xA0, seq(octets(der(c)))),
                   gentime(c.not_valid_before_utc), utctime(c.not_valid_before_utc), utctime(c.not_valid_after_utc)),
               _pic(), tlv(0xA0, seq(ext)))
    data = seq(info, octets(der(maker.certificate)), oid(maker.algorithm.oid), bits(maker.sign(info)))
    s = parse_seal(data)
    assert (s.es_id, s.vid, s.unit_code, s.name) == ("V4-VARIANT", "VENDOR", UNIT, UNIT_NAME)
    assert s.ext_datas[0].extn_id == "1.2.156.1" and s.ext_datas[0].value == b"x"
    assert verify_seal(data, trust_roots=[root_ca.root_certificate]).unit_code == UNIT


def test_v5_seal_with_time_stamp_parses(made):
    top = parse_seal(made.der)
    fields = made.der[made.der.find(top.seal_info_der):]
    data = seq(fields, tlv(0xA0, bits(b"\x01\x02\x03")))
    s = parse_seal(data)
    assert s.format == "v5" and s.time_stamp == tlv(0xA0, bits(b"\x01\x02\x03"))
    assert s.seal_info_der == top.seal_info_der


# --- hostile bytes ------------------------------------------------------------------------------------


def test_wrong_header_and_unknown_versions_are_typed(made, maker):
    data, _ = _v1_seal(maker, made.certificate, version=3)
    with pytest.raises(SealUnsupportedVersion):
        parse_seal(data)
    wrong_id = made.der.replace(ia5("ES") + integer(4), ia5("XS") + integer(4), 1)
    with pytest.raises(SealMalformed, match="ES"):
        parse_seal(wrong_id)
    v4_says_v1 = made.der.replace(ia5("ES") + integer(4), ia5("ES") + integer(1), 1)
    with pytest.raises(SealMalformed):
        parse_seal(v4_says_v1)


def test_truncation_anywhere_is_seal_malformed(made):
    step = max(1, len(made.der) // 400)
    for cut in [*range(0, 200), *range(200, len(made.der), step)]:
        with pytest.raises(SealMalformed):
            parse_seal(made.der[:cut])


def test_trailing_bytes_oversize_and_pem_are_refused(made):
    for data in (made.der + b"\x00", b"x" * (4 * 1024 * 1024 + 1), b"-----BEGIN SEAL-----\n"):
        with pytest.raises(SealMalformed):
            parse_seal(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_seal_errors(data):
    with pytest.raises(SealError):
        parse_seal(b"\x30" + bytes([len(data)]) + data if len(data) < 128 else data)


# --- seal directories --------------------------------------------------------------------------------


def test_issue_seal_writes_a_directory_that_loads_as_a_signer(root_ca, tmp_path):
    # replace: the shared CA already made seals for UNIT in other tests.
    cred = issue_seal(root_ca, UNIT, UNIT_NAME, tmp_path / "seal", PASSPHRASE, valid_days=30, replace=True)
    key_path = tmp_path / "seal" / "seal.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and b"ENCRYPTED" in key_path.read_bytes()
    with pytest.raises(WrongPassphrase):
        read_private_key(key_path, b"wrong passphrase")
    loaded = load_seal_credential(tmp_path / "seal", PASSPHRASE)
    assert loaded.seal_der == (tmp_path / "seal" / "seal.esl").read_bytes() == cred.seal.der
    assert loaded.picture_png.startswith(b"\x89PNG") and loaded.certificate == cred.certificate
    sig = loaded.signer.sign(b"document digest")
    loaded.signer.algorithm.verify(loaded.certificate.public_key(), sig, b"document digest")
    assert verify_seal(loaded.seal_der, trust_roots=[root_ca.root_certificate]).unit_code == UNIT
    with pytest.raises(SealError):
        issue_seal(root_ca, UNIT, UNIT_NAME, tmp_path / "seal", PASSPHRASE)  # never overwrites


def test_seal_directory_with_a_foreign_certificate_is_refused(root_ca, tmp_path):
    issue_seal(root_ca, UNIT, UNIT_NAME, tmp_path / "a", PASSPHRASE, valid_days=30, replace=True)
    issue_seal(root_ca, UNIT, UNIT_NAME, tmp_path / "b", PASSPHRASE, valid_days=30, replace=True)
    (tmp_path / "a" / "seal.crt").write_bytes((tmp_path / "b" / "seal.crt").read_bytes())
    with pytest.raises(KeyCertificateMismatch):
        load_seal_credential(tmp_path / "a", PASSPHRASE)
    (tmp_path / "b" / "seal.esl").write_bytes((tmp_path / "a" / "seal.esl").read_bytes())
    with pytest.raises(KeyCertificateMismatch, match="lists"):
        load_seal_credential(tmp_path / "b", PASSPHRASE)


def test_describe_seal_keeps_chinese(made):
    info = describe_seal(made.der)
    text = json.dumps(info, ensure_ascii=False)
    assert UNIT_NAME in text and "单位印章" in text
    assert info["unit_code"] == UNIT and info["picture"]["width_mm"] == 42
    assert info["certificates"][0]["serial"] == f"{made.certificate.serial_number:x}"


def test_whether_a_seal_lists_a_certificate_is_answered_alike_the_second_time(root_ca, made):
    """A kept seal answers for the signer of every package: the answer is kept per certificate, and
    another certificate gets its own (digest-list seals too)."""
    other = make_seal(root_ca).certificate
    seal = parse_seal(made.der)
    for _ in range(2):
        assert seal.matches_certificate(made.certificate) and not seal.matches_certificate(other)
    by_digest = parse_seal(make_seal(root_ca, builder=SealBuilder().with_digests()).der)
    for _ in range(2):
        assert not by_digest.matches_certificate(other)
