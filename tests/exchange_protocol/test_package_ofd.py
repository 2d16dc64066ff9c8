# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""A package whose body is an OFD: sealed inside per GB/T 38540 as it is packed, carried as body.ofd
(application/ofd), verified as the report's ``ofd_seal`` check in place of ``pdf_seal``."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from exchange_protocol.errors import PackageNotPdf
from exchange_protocol.manifest import SEAL_NAME
from exchange_protocol.ofd_errors import OfdInputError
from exchange_protocol.ofd_seal import seal_ofd
from exchange_protocol.ofd_verify import NO_REVOCATION_CHECK, verify_sealed_ofd
from exchange_protocol.package import build_package
from exchange_protocol.package_reader import PackageReader
from exchange_protocol.package_verify import OFD_CHECKS, verify_package
from node.localnet import notice_pdf
from pki.ca import CertificateAuthority
from pki.seal import SealBuilder
from pki.seal_store import issue_seal
from tests.exchange_protocol.hostile.corpus import assemble, members_of
from tests.exchange_protocol.package_fixtures import (  # noqa: F401
    NOW,
    OTHER_UNIT,
    PASSPHRASE,
    UNIT,
    make_meta,
    pki_env,
)

from .ofd_fixtures import make_ofd, zip_files


def _package(seal_key, body: bytes, **kw) -> bytes:
    out = io.BytesIO()
    kw.setdefault("metadata", make_meta())
    build_package(out, body=body, seal_key=seal_key, at=NOW, **kw)
    return out.getvalue()


def _statuses(report) -> dict[str, tuple[str, str | None]]:
    return {c.name: (c.status, c.code) for c in report.checks}


@pytest.fixture(scope="module")
def sm_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("pkg-ofd-sm")
    now = NOW - dt.timedelta(days=1)
    ca = CertificateAuthority.init_root(base / "ca", "国密网络根CA", PASSPHRASE, algorithm="sm2-sm3", now=now)
    return ca, issue_seal(ca, UNIT, "某某市人民政府", base / "seal", PASSPHRASE, now=now)


def test_an_ofd_body_is_sealed_carried_and_verified_on_both_profiles(pki_env, sm_env):
    for root, seal_key in ((pki_env.root, pki_env.seal), (sm_env[0].root_certificate, sm_env[1])):
        package = _package(seal_key, make_ofd())
        with PackageReader(io.BytesIO(package)) as reader:
            assert reader.body_name == "body.ofd"
            assert reader.manifest.get("body.ofd").media_type == "application/ofd"
            body = reader.read_member("body.ofd")
        assert "body.pdf" not in members_of(package)
        alone = verify_sealed_ofd(body, revocation=NO_REVOCATION_CHECK, trust_roots=[root], at=NOW)  # the body is sealed in its own right
        assert alone.first.verification.signature.seal.der == seal_key.seal.der
        for validate_pdf in (True, False):  # the OFD seal is checked at acceptance too
            report = verify_package(io.BytesIO(package), [root], NOW, validate_pdf=validate_pdf)
            assert report.ok, report.to_dict()
            assert tuple(c.name for c in report.checks) == OFD_CHECKS
            ofd = report.check("ofd_seal")
            assert ofd.status == "pass" and ofd.details["unit_code"] == UNIT


def test_an_ofd_sealed_by_another_unit_inside_a_signed_package_fails_its_check(pki_env):
    theirs = seal_ofd(make_ofd(), pki_env.other_seal.signer, pki_env.other_seal.seal, at=NOW)
    files = {k: v for k, v in members_of(_package(pki_env.seal, make_ofd())).items()
             if not k.startswith("META-INF/") or k == SEAL_NAME}
    files["body.ofd"] = theirs
    report = verify_package(io.BytesIO(assemble(files, pki_env.seal.signer, NOW)), [pki_env.root], NOW)
    assert _statuses(report)["ofd_seal"] == ("fail", "OFD_SIGNER_MISMATCH") and not report.ok


def test_an_ofd_sealed_under_another_seal_of_the_same_key_fails_its_check(pki_env):
    cred = pki_env.seal
    second = (SealBuilder().with_unit(UNIT, "某某市人民政府").with_certificate(cred.certificate)
              .with_picture(cred.seal.picture.data).build(pki_env.ca.seal_maker_signer(), now=NOW))
    files = {k: v for k, v in members_of(_package(cred, make_ofd())).items()
             if not k.startswith("META-INF/") or k == SEAL_NAME}
    files["body.ofd"] = seal_ofd(make_ofd(), cred.signer, second, at=NOW)
    report = verify_package(io.BytesIO(assemble(files, cred.signer, NOW)), [pki_env.root], NOW)
    assert _statuses(report)["ofd_seal"] == ("fail", "OFD_SEAL_MISMATCH")


def test_a_package_with_two_bodies_or_a_tampered_ofd_is_refused(pki_env):
    files = members_of(_package(pki_env.seal, make_ofd()))
    both = {k: v for k, v in files.items() if not k.startswith("META-INF/") or k == SEAL_NAME}
    both["body.pdf"] = notice_pdf()
    report = verify_package(io.BytesIO(assemble(both, pki_env.seal.signer, NOW)), [pki_env.root], NOW)
    assert _statuses(report)["structure"] == ("fail", "PKG_MISSING_BODY")
    files["body.ofd"] = files["body.ofd"][:-1] + bytes([files["body.ofd"][-1] ^ 1])
    report = verify_package(io.BytesIO(zip_files(files)), [pki_env.root], NOW)
    assert _statuses(report)["digests"] == ("fail", "PKG_DIGEST_MISMATCH")


def test_the_builder_refuses_what_is_not_a_pdf_or_a_sealable_ofd(pki_env):
    with pytest.raises(PackageNotPdf):
        _package(pki_env.seal, zip_files({"word/document.xml": b"<w/>"}))
    sealed = seal_ofd(make_ofd(), pki_env.seal.signer, pki_env.seal.seal, at=NOW)
    with pytest.raises(OfdInputError):
        _package(pki_env.seal, sealed)
