"""Seal verification: a good seal passes, openssl agrees on the signature, and every kind of
damage is refused with its own code — never another exception type."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto.core import OctetString
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pki.crl import build_crl
from pki.errors import CertificateRevoked, SealError
from pki.seal import SealBuilder, SealPicture, encode_seal, parse_seal
from pki.seal_der import read_single
from pki.seal_verify import verify_seal
from tests.pki.seal_support import OTHER_UNIT, UNIT, UNIT_NAME, der, foreign_crl, make_seal, picture
from tests.support import run_openssl

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def made(root_ca):
    return make_seal(root_ca)


@pytest.fixture(scope="module")
def roots(root_ca):
    return [root_ca.root_certificate]


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    from pki.ca import CertificateAuthority
    from tests.support import PASSPHRASE
    return CertificateAuthority.init_root(tmp_path_factory.mktemp("other") / "ca", "另一网络根CA", PASSPHRASE)


def code_of(data, roots, **kw) -> str:
    with pytest.raises(SealError) as err:
        verify_seal(data, trust_roots=roots, **kw)
    return err.value.code


def test_good_seal_verifies(made, roots, root_ca):
    r = verify_seal(made.der, trust_roots=roots, unit_code=UNIT,
                    crls=[build_crl(root_ca, NOW)])
    assert r.unit_code == UNIT and r.seal.name == UNIT_NAME and r.revocation_checked
    assert r.maker_path[-1] == root_ca.root_certificate
    assert r.to_dict()["ok"] is True


def test_openssl_verifies_signed_value_over_seal_info(made, tmp_path):
    """Offsets from openssl asn1parse, key from openssl x509, signature check by openssl dgst."""
    esl = tmp_path / "seal.esl"
    esl.write_bytes(made.der)
    lines = run_openssl("asn1parse", "-inform", "DER", "-in", esl).stdout.decode().splitlines()
    depth1 = [ln for ln in lines if "d=1" in ln]
    assert len(depth1) == 4 and "SEQUENCE" in depth1[0] and "OCTET STRING" in depth1[1]
    assert "BIT STRING" in depth1[3]

    def span(line: str) -> tuple[int, int, int]:
        offset = int(line.split(":")[0])
        hl = int(line.split("hl=")[1].split()[0])
        length = int(line.split("l=")[2].split()[0])
        return offset, hl, length

    off, hl, length = span(depth1[0])
    (tmp_path / "info.der").write_bytes(made.der[off:off + hl + length])
    off, hl, length = span(depth1[1])
    (tmp_path / "maker.der").write_bytes(made.der[off + hl:off + hl + length])
    off, hl, length = span(depth1[3])
    (tmp_path / "sig.der").write_bytes(made.der[off + hl + 1:off + hl + length])  # skip unused-bits byte
    pub = run_openssl("x509", "-inform", "DER", "-in", tmp_path / "maker.der", "-pubkey", "-noout").stdout
    (tmp_path / "pub.pem").write_bytes(pub)
    out = run_openssl("dgst", "-sha256", "-verify", tmp_path / "pub.pem", "-signature", tmp_path / "sig.der",
                      tmp_path / "info.der")
    assert b"Verified OK" in out.stdout
    (tmp_path / "info.der").write_bytes(made.der[off:off + 10])  # wrong data: openssl must say no
    assert run_openssl("dgst", "-sha256", "-verify", tmp_path / "pub.pem", "-signature", tmp_path / "sig.der",
                       tmp_path / "info.der", check=False).returncode != 0


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def test_tampered_picture_byte_is_bad_signature(made, roots):
    i = made.der.index(picture()) + len(picture()) // 2
    assert code_of(_flip(made.der, i), roots) == "SEAL_BAD_SIGNATURE"


def test_tampered_dates_are_bad_signature(made, roots):
    end = made.seal.valid_end.strftime("%Y%m%d%H%M%SZ").encode()
    later = str(int(end[:4]) + 10).encode() + end[4:]
    assert code_of(made.der.replace(end, later, 1), roots) == "SEAL_BAD_SIGNATURE"


def test_tampered_name_and_signature_are_bad_signature(made, roots):
    name = UNIT_NAME.encode()
    assert code_of(made.der.replace(name, "福州市鼓楼区人民政府办公厅".encode(), 1), roots) == "SEAL_BAD_SIGNATURE"
    assert code_of(_flip(made.der, len(made.der) - 5), roots) == "SEAL_BAD_SIGNATURE"


def test_swapped_maker_certificate_is_bad_signature(made, roots, other_ca):
    info, _cert, alg, sig = read_single(made.der).children()
    theirs = OctetString(der(other_ca.seal_maker_signer().certificate)).dump()
    body = info.raw + theirs + alg.raw + sig.raw
    swapped = b"\x30\x83" + len(body).to_bytes(3, "big") + body
    assert parse_seal(swapped).maker_certificate == other_ca.seal_maker_signer().certificate
    assert code_of(swapped, roots) == "SEAL_BAD_SIGNATURE"


def test_seal_from_another_networks_maker_is_untrusted(roots, other_ca):
    foreign = make_seal(other_ca)
    assert code_of(foreign.der, roots) == "SEAL_MAKER_UNTRUSTED"
    assert verify_seal(foreign.der, trust_roots=[other_ca.root_certificate]).unit_code == UNIT


def test_expired_and_not_yet_valid(root_ca, roots, made):
    short = make_seal(root_ca, valid_days=1)
    assert code_of(short.der, roots, at=NOW + dt.timedelta(days=2)) == "SEAL_EXPIRED"
    later = (SealBuilder().with_validity(NOW + dt.timedelta(days=10), NOW + dt.timedelta(days=20)))
    future = make_seal(root_ca, builder=later)
    assert code_of(future.der, roots) == "SEAL_NOT_YET_VALID"
    assert verify_seal(future.der, trust_roots=roots, at=NOW + dt.timedelta(days=11))


def _signed(root_ca, cert, **over) -> bytes:
    fields = dict(es_id="T1", seal_type=1, name=UNIT_NAME, cert_list_type=1, entries=[der(cert)],
                  create_date=NOW, valid_start=cert.not_valid_before_utc, valid_end=cert.not_valid_after_utc,
                  picture=SealPicture("PNG", picture(), 42, 42), maker=root_ca.seal_maker_signer())
    fields.update(over)
    return encode_seal(**fields)


def test_seal_certificate_not_from_our_ca_is_cert_invalid(root_ca, roots, other_ca):
    stranger = make_seal(other_ca).certificate  # our maker signs a seal listing a foreign cert
    assert code_of(_signed(root_ca, stranger), roots) == "SEAL_CERT_INVALID"


def test_seal_outliving_its_certificate_is_cert_invalid(root_ca, roots, made):
    c = made.certificate
    data = _signed(root_ca, c, valid_end=c.not_valid_after_utc + dt.timedelta(days=30))
    assert code_of(data, roots) == "SEAL_CERT_INVALID"


def test_signed_but_broken_picture_is_picture_invalid(root_ca, roots, made):
    broken = picture()[:200]
    data = _signed(root_ca, made.certificate, picture=SealPicture("PNG", broken, 42, 42))
    assert code_of(data, roots) == "SEAL_PICTURE_INVALID"
    svg = _signed(root_ca, made.certificate, picture=SealPicture("SVG", b"<svg/>", 42, 42))
    assert code_of(svg, roots) == "SEAL_PICTURE_INVALID"


def test_a_picture_that_is_itself_an_ofd_is_accepted_when_it_is_one(root_ca, roots, made):
    import io
    import zipfile

    def ofd_picture(members: dict[str, bytes]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return out.getvalue()

    good = ofd_picture({"OFD.xml": b"<ofd:OFD/>", "Doc_0/Document.xml": b"<ofd:Document/>"})
    seal = _signed(root_ca, made.certificate, picture=SealPicture("ofd", good, 40, 40))
    assert verify_seal(seal, trust_roots=roots).seal.picture.type == "ofd"  # GB/T 38540 allows it; ofdrw makes it
    at = good.find(b"PK\x01\x02") + 6  # the first directory entry's "version needed": 6.4 is more than
    needs_64 = good[:at] + bytes([64]) + good[at + 1:]  # zipfile reads (NotImplementedError, not BadZipFile)
    for bad in (b"not a zip", needs_64, ofd_picture({"Doc_0/Document.xml": b"<x/>"}),
                ofd_picture({"OFD.xml": b"<x/>", "big.bin": b"\0" * (17 * 1024 * 1024)})):
        data = _signed(root_ca, made.certificate, picture=SealPicture("OFD", bad, 40, 40))
        assert code_of(data, roots) == "SEAL_PICTURE_INVALID"


def test_wrong_unit(made, roots):
    assert code_of(made.der, roots, unit_code=OTHER_UNIT) == "SEAL_WRONG_UNIT"


def test_revoked_seal_certificate_and_revoked_maker(make_ca):
    ca = make_ca("撤销测试CA")
    roots = [ca.root_certificate]
    m = make_seal(ca)
    assert verify_seal(m.der, trust_roots=roots, crls=[build_crl(ca, NOW)]).revocation_checked
    ca.revoke(m.certificate, "key_compromise")
    assert code_of(m.der, roots, crls=[build_crl(ca, NOW)]) == "SEAL_REVOKED"
    assert verify_seal(m.der, trust_roots=roots).revocation_checked is False  # no CRL: not checked

    ca2 = make_ca("制章者撤销CA")
    m2 = make_seal(ca2)
    ca2.revoke(ca2.seal_maker_signer().certificate, "ca_compromise")
    assert code_of(m2.der, [ca2.root_certificate], crls=[build_crl(ca2, NOW)]) == "SEAL_REVOKED"


def test_unusable_crls_are_revocation_unknown(made, roots, root_ca, other_ca):
    stale = build_crl(root_ca, NOW - dt.timedelta(days=30), dt.timedelta(days=1))
    assert code_of(made.der, roots, crls=[stale]) == "SEAL_REVOCATION_UNKNOWN"
    assert code_of(made.der, roots, crls=[foreign_crl(root_ca, other_ca)]) == "SEAL_REVOCATION_UNKNOWN"
    assert code_of(made.der, roots, crls=[build_crl(other_ca, NOW)]) == "SEAL_REVOCATION_UNKNOWN"


def test_revocation_callable_is_consulted(made, roots):
    asked = []

    def checker(cert, issuer, at):
        asked.append(cert.serial_number)
        if cert == made.certificate:
            raise CertificateRevoked("revoked by the test's OCSP stand-in")

    assert code_of(made.der, roots, revocation=checker) == "SEAL_REVOKED"
    assert made.certificate.serial_number in asked and len(asked) == 2  # maker first, then the seal cert


def test_truncated_der_at_many_cut_points_is_malformed(made, roots):
    step = max(1, len(made.der) // 150)
    for cut in range(0, len(made.der), step):
        assert code_of(made.der[:cut], roots) == "SEAL_MALFORMED"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_garbage_is_only_ever_a_seal_error(roots, data):
    with pytest.raises(SealError):
        verify_seal(data, trust_roots=roots)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_single_byte_change_is_refused_with_a_seal_error(made, roots, data):
    i = data.draw(st.integers(0, len(made.der) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda v: v != made.der[i]))
    mutated = made.der[:i] + bytes([new]) + made.der[i + 1:]
    with pytest.raises(SealError):
        verify_seal(mutated, trust_roots=roots)


def test_a_seal_verdict_is_remembered_per_crl_and_never_outlives_what_it_rests_on(make_ca):
    from pki.revocation import CrlChecker

    class Counting(CrlChecker):
        asked = 0

        def __call__(self, cert, issuer, now):
            Counting.asked += 1
            super().__call__(cert, issuer, now)

    ca = make_ca("记忆测试CA")
    roots = [ca.root_certificate]
    m = make_seal(ca, valid_days=30)
    crl = build_crl(ca, NOW, dt.timedelta(days=1))
    checker = Counting([crl])
    first = verify_seal(m.der, trust_roots=roots, revocation=checker, at=NOW)
    asked = Counting.asked
    again = verify_seal(m.der, trust_roots=roots, revocation=checker, at=NOW + dt.timedelta(hours=1))
    assert Counting.asked == asked  # remembered: neither signature, picture, paths nor CRL judged again
    assert again.checked_at == NOW + dt.timedelta(hours=1) and again.maker_path == first.maker_path
    # Past the CRL's nextUpdate: not known, whatever was remembered; past the seal's validEnd: expired.
    late = crl.next_update_utc + dt.timedelta(minutes=1)
    assert code_of(m.der, roots, revocation=checker, at=late) == "SEAL_REVOCATION_UNKNOWN"
    assert code_of(m.der, roots, revocation=checker, at=NOW + dt.timedelta(days=31)) == "SEAL_EXPIRED"
    # Revoked: a new CRL is another key, refused at once, and again (failures are not remembered).
    ca.revoke(m.certificate, "key_compromise")
    revoked = CrlChecker([build_crl(ca, NOW)])
    assert code_of(m.der, roots, revocation=revoked, at=NOW + dt.timedelta(hours=1)) == "SEAL_REVOKED"
    assert code_of(m.der, roots, revocation=revoked, at=NOW + dt.timedelta(hours=1)) == "SEAL_REVOKED"
