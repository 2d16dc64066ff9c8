"""deploy/sample_ofd.py, the 通知 the demo sends on a 国密 network: its XML validates against the
published OFD XSDs, it carries the text it was given, and once a unit's SM2 seal is put in it our
verifier and the tests' independent one (written from the standard's text) both accept the seal."""

from __future__ import annotations

import datetime as dt

import xmlschema

from deploy.sample_ofd import notice_ofd
from exchange_protocol.ofd_seal import seal_ofd
from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
from pki.ca import CertificateAuthority
from pki.seal_store import issue_seal
from pki.unit_code import make_unit_code
from tests.exchange_protocol.ofd_fixtures import unzip
from tests.exchange_protocol.ofd_independent import check_sealed_ofd
from tests.exchange_protocol.test_ofd_independent import XSD
from tests.support import PASSPHRASE

UNIT, UNIT_NAME = make_unit_code("11371300MB0000001"), "临沂市人民政府办公室"
SCHEMAS = {"OFD.xml": "OFD.xsd", "Doc_0/Document.xml": "Document.xsd", "Doc_0/PublicRes.xml": "Res.xsd",
           "Doc_0/Pages/Page_0/Content.xml": "Page.xsd"}


def test_the_sample_validates_against_the_ofd_schemas_and_says_what_it_was_given():
    files = unzip(notice_ofd("关于做好冬季森林防火工作的通知", issuer=UNIT_NAME, greeting="各区人民政府办公室：",
                             body=["一、压实责任。", "二、加强巡查。"], date_line=None))
    assert set(SCHEMAS) == set(files)
    for name, schema in SCHEMAS.items():
        errors = [e.reason for e in xmlschema.XMLSchema(str(XSD / schema)).iter_errors(files[name].decode())]
        assert errors == [], (name, errors)
    page = files["Doc_0/Pages/Page_0/Content.xml"].decode()
    for text in ("关于做好冬季森林防火工作的通知", UNIT_NAME, "各区人民政府办公室：", "一、压实责任。", "二、加强巡查。"):
        assert f">{text}</ofd:TextCode>" in page, text
    assert "2026年" not in page  # date_line=None leaves the date out
    assert "<ofd:Title>关于做好冬季森林防火工作的通知</ofd:Title>" in files["OFD.xml"].decode()


def test_an_sm2_seal_put_in_the_sample_is_accepted_by_both_verifiers(tmp_path):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "演示国密根CA", PASSPHRASE, algorithm="sm2-sm3")
    cred = issue_seal(ca, UNIT, UNIT_NAME, tmp_path / "seal", PASSPHRASE)
    now = dt.datetime.now(dt.UTC)
    sealed = seal_ofd(notice_ofd(issuer=UNIT_NAME), cred.signer, cred.seal, at=now)
    verified = verify_sealed_ofd(sealed, trust_roots=[ca.root_certificate], at=now, revocation=NO_REVOCATION_CHECK)
    assert len(verified.signatures) == 1 and verified.pages == 1
    seen = check_sealed_ofd(sealed)
    assert seen["seal_name"] == UNIT_NAME and seen["page"] == 10
