"""签收/退回 statements: signed with the unit's seal key, checked offline by our verifier and by
``openssl cms -verify`` with the root alone; forgeries (another unit's seal, a changed digest or
reason, a seal from another network, changed bytes) are typed refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from exchange_protocol.envelope import MessageType
from exchange_protocol.statements import (
    Statement,
    StatementError,
    check_statement,
    decode_statement,
    sign_statement,
    verify_statement,
)
from pki.certificates import pem
from pki.signer import SoftwareSigner
from pki.trust import TrustStore
from tests.pki.seal_support import OTHER_UNIT, UNIT, UNIT_NAME, make_seal
from tests.support import run_openssl

DOC = "0193a5b2-0000-7000-8000-000000000001"
SENDER = "11100000000013127D"
DIGEST = hashlib.sha256(b"the sealed package").hexdigest()
AT = dt.datetime.now(dt.UTC).replace(microsecond=0)  # set again when the module starts (below)


@pytest.fixture(scope="module", autouse=True)
def _now_when_the_module_starts():
    """The seals are issued when the module runs (backdated five minutes): in the whole suite that may
    be many minutes after collection, when ``AT`` was first taken."""
    global AT
    AT = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _statement(**changes) -> Statement:
    base = Statement(MessageType.RETURN, DOC, DIGEST, UNIT, UNIT_NAME, "张三", AT, "附件缺页", SENDER)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def seal(root_ca):
    made = make_seal(root_ca)
    return SoftwareSigner(made.key, made.certificate)


@pytest.fixture(scope="module")
def trust(root_ca):
    return TrustStore.of([root_ca.certificate])


def test_a_statement_verifies_offline_and_says_what_was_signed(seal, trust):
    der = sign_statement(_statement(), seal)
    verified = verify_statement(der, trust, now=AT)
    assert verified.statement == _statement()
    assert verified.signer_certificate == seal.certificate
    check_statement(verified.statement, type=MessageType.RETURN, doc_id=DOC, unit=UNIT, by="张三", at=AT,
                    reason="附件缺页", package_digest=DIGEST, sender_unit=SENDER)


def test_openssl_cms_verify_accepts_it_with_the_root_alone(seal, root_ca, tmp_path):
    (tmp_path / "s.cms").write_bytes(sign_statement(_statement(type=MessageType.RECEIPT, reason=None), seal))
    (tmp_path / "root.crt").write_bytes(pem(root_ca.certificate))
    out = run_openssl("cms", "-verify", "-inform", "DER", "-in", tmp_path / "s.cms", "-CAfile", tmp_path / "root.crt")
    assert decode_statement(out.stdout) == _statement(type=MessageType.RECEIPT, reason=None)
    assert b"Verification successful" in out.stderr


@pytest.mark.parametrize(("field", "value"), [("package_sha256", hashlib.sha256(b"other").hexdigest()),
                                              ("reason", "另一个理由"), ("by", "李四"), ("sender_unit", UNIT),
                                              ("doc_id", "0193a5b2-0000-7000-8000-000000000002"),
                                              ("at", dt.timedelta(seconds=1))])
def test_a_statement_about_something_else_is_a_mismatch(seal, trust, field, value):
    if field == "at":  # a second after the statement's time, which is taken when the module starts
        value = AT + value
    verified = verify_statement(sign_statement(_statement(), seal), trust, now=AT)
    expected = dict(type=MessageType.RETURN, doc_id=DOC, unit=UNIT, by="张三", at=AT, reason="附件缺页",
                    package_digest=DIGEST, sender_unit=SENDER)
    expected["package_digest" if field == "package_sha256" else field] = value
    with pytest.raises(StatementError) as info:
        check_statement(verified.statement, **expected)
    assert info.value.code == "STATEMENT_MISMATCH" and info.value.details["field"] == field


def test_a_p256_seals_statement_names_the_package_by_sha256_not_sm3(seal, trust):
    """One network, one profile: an international seal's statement naming its package by SM3 is
    refused by our signer and, forged by hand, by the verifier — with the codes of any bad statement."""
    sm3 = _statement(digest_algorithm="sm3")
    assert b'"package_sm3"' in sm3.encode() and b"package_sha256" not in sm3.encode()
    with pytest.raises(StatementError) as info:
        sign_statement(sm3, seal)
    assert info.value.code == "STATEMENT_INVALID"
    from pki import cms
    forged = cms.sign_detached(sm3.encode(), seal, encapsulate=True, signing_time=AT)
    with pytest.raises(StatementError) as info:
        verify_statement(forged, trust, now=AT)
    assert info.value.code == "STATEMENT_INVALID" and info.value.details["field"] == "package_sm3"
    verified = verify_statement(sign_statement(_statement(), seal), trust, now=AT)
    with pytest.raises(StatementError) as info:  # expected by SM3, told SHA-256: a mismatch
        check_statement(verified.statement, type=MessageType.RETURN, doc_id=DOC, unit=UNIT, by="张三", at=AT,
                        reason="附件缺页", package_digest=DIGEST, sender_unit=SENDER, digest_algorithm="sm3")
    assert info.value.code == "STATEMENT_MISMATCH" and info.value.details["field"] == "package_sha256"


def test_a_statement_names_exactly_one_package_digest():
    content = _statement().encode()
    both = content.replace(b'"package_sha256"', b'"package_sm3":"' + DIGEST.encode() + b'","package_sha256"')
    for bad in (both, content.replace(b'"package_sha256"', b'"package_sha512"')):
        with pytest.raises(StatementError) as info:
            decode_statement(bad)
        assert info.value.code == "STATEMENT_INVALID"
    assert decode_statement(content) == _statement()


def test_another_units_seal_cannot_speak_for_this_unit(root_ca, trust):
    other = make_seal(root_ca, OTHER_UNIT, "另一个单位")
    signer = SoftwareSigner(other.key, other.certificate)
    with pytest.raises(StatementError) as info:  # our signer refuses to make it
        sign_statement(_statement(), signer)
    assert info.value.code == "STATEMENT_WRONG_SIGNER"
    # A forger assembling the CMS by hand gets the same verdict from the verifier.
    from pki import cms
    forged = cms.sign_detached(_statement().encode(), signer, encapsulate=True)
    with pytest.raises(StatementError) as info:
        verify_statement(forged, trust, now=AT)
    assert info.value.code == "STATEMENT_WRONG_SIGNER"


def test_a_changed_byte_in_the_content_breaks_the_signature(seal, trust):
    der = sign_statement(_statement(), seal)
    forged = der.replace("附件缺页".encode(), "附件缺失".encode())
    assert forged != der
    with pytest.raises(StatementError) as info:
        verify_statement(forged, trust, now=AT)
    assert info.value.code == "STATEMENT_BAD_SIGNATURE"


def test_a_seal_from_another_network_is_untrusted(make_ca, trust):
    foreign = make_ca("另一个网络")
    made = make_seal(foreign)
    with pytest.raises(StatementError) as info:
        verify_statement(sign_statement(_statement(), SoftwareSigner(made.key, made.certificate)), trust, now=AT)
    assert info.value.code == "STATEMENT_UNTRUSTED"


def test_garbage_and_oversized_input_are_typed(trust):
    for data, code in ((b"\x30\x03\x02\x01\x01", "STATEMENT_BAD_SIGNATURE"), (b"x" * 40_000, "STATEMENT_TOO_LARGE")):
        with pytest.raises(StatementError) as info:
            verify_statement(data, trust, now=AT)
        assert info.value.code == code


def test_a_statement_is_a_receipt_or_a_return_and_a_return_has_a_reason():
    with pytest.raises(StatementError):
        _statement(type=MessageType.URGE)
    with pytest.raises(StatementError):
        _statement(reason=None)
    with pytest.raises(StatementError):
        _statement(type=MessageType.RECEIPT)  # a 签收 with a reason


def test_a_statement_cannot_name_the_unit_otherwise_than_its_seal_certificate(seal, trust):
    from pki import cms
    renamed = _statement(unit_name="某某市人民政府")
    with pytest.raises(StatementError) as info:  # our signer refuses to make it
        sign_statement(renamed, seal)
    assert info.value.code == "STATEMENT_WRONG_SIGNER"
    forged = cms.sign_detached(renamed.encode(), seal, encapsulate=True)  # a forger writes the CMS
    with pytest.raises(StatementError) as info:
        verify_statement(forged, trust, now=AT)
    assert info.value.code == "STATEMENT_WRONG_SIGNER" and info.value.details["unit_name"] == "某某市人民政府"


def test_a_statement_time_is_taken_only_in_its_one_written_form():
    content = _statement().encode()
    at = AT.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    assert at in content
    for bad in (AT.strftime("%Y-%m-%dT%H:%M:%S+00:00"), AT.strftime("%Y-%m-%d %H:%M:%SZ"),
                AT.strftime("%Y-%m-%dT%H:%M:%S.000Z"), AT.strftime("%Y-%m-%dT%H:%MZ"), "2026-02-30T10:00:00Z",
                AT.strftime("%Y-%m-%dT%H:%M:%SZ").replace("0", "\u0660"), "2026-2-3T10:00:00Z"):
        with pytest.raises(StatementError) as info:
            decode_statement(content.replace(at, bad.encode()))
        assert info.value.code == "STATEMENT_INVALID"
    assert decode_statement(content).at == AT
