# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""The verification report: each way a well-formed package can still be wrong, and the round trip."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_protocol.manifest import METADATA_NAME, SEAL_NAME, name_key
from exchange_protocol.meta_json import meta_to_dict, meta_to_json, parse_meta
from exchange_protocol.package import Attachment, build_package
from exchange_protocol.package_reader import PackageReader
from exchange_protocol.package_verify import verify_package
from exchange_protocol.sniff import archive_kind
from node.localnet import notice_pdf
from pki.ca import CertificateAuthority
from pki.crl import build_crl
from pki.revocation import CrlChecker
from pki.seal_store import issue_seal
from tests.exchange_protocol import strategies
from tests.exchange_protocol.hostile.corpus import assemble, members_of
from tests.exchange_protocol.package_fixtures import (  # noqa: F401
    NOW,
    OTHER_UNIT,
    PASSPHRASE,
    UNIT,
    make_meta,
    make_pki,
    pki_env,
)


def package(pki, seal=None, **kw) -> bytes:
    out = io.BytesIO()
    kw.setdefault("metadata", make_meta())
    build_package(out, body=notice_pdf(), seal_key=seal or pki.seal, at=NOW, **kw)
    return out.getvalue()


def statuses(report) -> dict[str, tuple[str, str | None]]:
    return {c.name: (c.status, c.code) for c in report.checks}


def test_a_revoked_seal_certificate_fails_signature_and_seal(tmp_path):
    pki = make_pki(tmp_path)  # its own CA: revoking must not leak into other tests
    data = package(pki)
    fresh = CrlChecker([build_crl(pki.ca, NOW)])
    assert verify_package(io.BytesIO(data), [pki.root], NOW, revocation=fresh).ok
    pki.ca.revoke(pki.seal.certificate, "key_compromise", now=NOW - dt.timedelta(hours=1))
    report = verify_package(io.BytesIO(data), [pki.root], NOW, revocation=CrlChecker([build_crl(pki.ca, NOW)]))
    s = statuses(report)
    assert not report.ok
    assert s["manifest_signature"] == ("fail", "PKI_CERT_REVOKED")
    assert s["seal"] == ("fail", "SEAL_REVOKED")
    assert s["digests"] == ("pass", None)
    # The PDF's PAdES seal is made with the same certificate: the same verdict, not [ok].
    assert s["pdf_seal"] == ("fail", "PKI_CERT_REVOKED")


def test_the_pdf_seal_without_a_crl_for_its_issuer_is_not_judged_valid(tmp_path):
    pki = make_pki(tmp_path)
    # A CRL, but of another CA: no evidence about ours.
    other = CertificateAuthority.init_root(tmp_path / "other", "另一个根CA", PASSPHRASE, now=NOW - dt.timedelta(days=1))
    report = verify_package(io.BytesIO(package(pki)), [pki.root], NOW,
                            revocation=CrlChecker([build_crl(other, NOW)]))
    s = statuses(report)
    assert s["manifest_signature"][0] == "fail" and "REVOCATION" in s["manifest_signature"][1]
    assert s["pdf_seal"] == s["manifest_signature"]


def test_a_stale_crl_is_no_evidence(pki_env):
    stale = CrlChecker([build_crl(pki_env.ca, NOW - dt.timedelta(days=30), dt.timedelta(days=1))])
    report = verify_package(io.BytesIO(package(pki_env)), [pki_env.root], NOW, revocation=stale)
    assert statuses(report)["manifest_signature"] == ("fail", "PKI_REVOCATION_STALE")


def test_verification_after_the_certificates_expired(pki_env):
    report = verify_package(io.BytesIO(package(pki_env)), [pki_env.root], NOW + dt.timedelta(days=4 * 365))
    s = statuses(report)
    assert s["manifest_signature"] == ("fail", "PKI_CERT_EXPIRED")
    assert s["pdf_seal"][0] == "fail" and s["seal"][0] == "fail"


def test_builder_refuses_a_seal_of_a_unit_that_did_not_issue_the_document(pki_env):
    with pytest.raises(Exception) as info:
        package(pki_env, metadata=make_meta(issuers=[OTHER_UNIT], to=[UNIT]))
    assert info.value.code == "PKG_SEAL_NOT_ISSUER"


def test_signed_package_whose_issuer_is_not_the_seals_unit(pki_env):
    files = {k: v for k, v in members_of(package(pki_env)).items() if not k.startswith("META-INF/") or k == SEAL_NAME}
    files[METADATA_NAME] = meta_to_json(make_meta(issuers=[OTHER_UNIT], to=[UNIT]))
    report = verify_package(io.BytesIO(assemble(files, pki_env.seal.signer, NOW)), [pki_env.root], NOW)
    s = statuses(report)
    assert s["manifest_signature"] == ("pass", None) and s["pdf_seal"] == ("pass", None)
    assert s["seal"] == ("fail", "SEAL_WRONG_UNIT")


def test_manifest_signed_by_another_units_key(pki_env):
    files = {k: v for k, v in members_of(package(pki_env)).items() if not k.startswith("META-INF/") or k == SEAL_NAME}
    report = verify_package(io.BytesIO(assemble(files, pki_env.other_seal.signer, NOW)), [pki_env.root], NOW)
    s = statuses(report)
    assert s["manifest_signature"] == ("pass", None)  # a valid signature — by the wrong key
    assert s["pdf_seal"] == ("fail", "PKG_PDF_SEAL_WRONG_SIGNER")
    assert s["seal"] == ("fail", "SEAL_CERT_NOT_LISTED")
    assert not report.ok


def test_a_body_resealed_by_another_unit_is_caught(pki_env):
    other = package(pki_env, seal=pki_env.other_seal, metadata=make_meta(issuers=[OTHER_UNIT], to=[UNIT]))
    files = {k: v for k, v in members_of(package(pki_env)).items() if not k.startswith("META-INF/") or k == SEAL_NAME}
    files["body.pdf"] = members_of(other)["body.pdf"]
    report = verify_package(io.BytesIO(assemble(files, pki_env.seal.signer, NOW)), [pki_env.root], NOW)
    assert statuses(report)["pdf_seal"] == ("fail", "PKG_PDF_SEAL_WRONG_SIGNER")


def test_a_classified_package_read_from_a_path_keeps_the_classified_network_policy(pki_env, tmp_path):
    files = {k: v for k, v in members_of(package(pki_env)).items() if not k.startswith("META-INF/") or k == SEAL_NAME}
    classified = {**meta_to_dict(make_meta()), "classification": "秘密★1年", "copy_number": "000001"}
    files[METADATA_NAME] = meta_to_json(parse_meta(classified, allow_classified=True).metadata)
    (tmp_path / "pkg.zip").write_bytes(assemble(files, pki_env.seal.signer, NOW))
    # On a classified network the document is acceptable, whether handed over as a file or a path.
    with open(tmp_path / "pkg.zip", "rb") as f:
        assert statuses(verify_package(f, [pki_env.root], NOW, allow_classified=True))["metadata"] == ("pass", None)
    from_path = verify_package(tmp_path / "pkg.zip", [pki_env.root], NOW, allow_classified=True)
    assert statuses(from_path)["metadata"] == ("pass", None) and from_path.ok, from_path.to_dict()
    # Elsewhere it is refused, by either route.
    refused = verify_package(tmp_path / "pkg.zip", [pki_env.root], NOW)
    assert statuses(refused)["metadata"] == ("fail", "DOC_CLASSIFIED_REFUSED")


def test_a_package_sealed_under_intermediate_cas_verifies_with_the_root_alone(tmp_path):
    """City CA under the root, county CA under the city CA: the unit's seal, its maker and the
    manifest signer all hang two intermediates below the one root the receiver trusts."""
    root = make_pki(tmp_path).ca
    city = root.create_intermediate(tmp_path / "city", "市级CA", PASSPHRASE, now=NOW - dt.timedelta(days=1),
                                    levels_below=1)
    county = city.create_intermediate(tmp_path / "county", "县级CA", PASSPHRASE, now=NOW - dt.timedelta(days=1))
    seal = issue_seal(county, UNIT, "某某县人民政府", tmp_path / "county-seal", PASSPHRASE,
                      now=NOW - dt.timedelta(days=1))
    data = package(None, seal=seal, chain=county.chain[:-1])
    crls = CrlChecker([build_crl(ca, NOW) for ca in (root, city, county)])
    report = verify_package(io.BytesIO(data), [root.root_certificate], NOW, revocation=crls)
    assert report.ok, report.to_dict()
    # A revocation by the county CA reaches the seal.
    county.revoke(seal.certificate, "key_compromise", now=NOW - dt.timedelta(hours=1))
    crls = CrlChecker([build_crl(ca, NOW) for ca in (root, city, county)])
    s = statuses(verify_package(io.BytesIO(data), [root.root_certificate], NOW, revocation=crls))
    assert s["manifest_signature"] == ("fail", "PKI_CERT_REVOKED") and s["seal"] == ("fail", "SEAL_REVOKED")
    assert s["pdf_seal"] == ("fail", "PKI_CERT_REVOKED")


def test_untrusted_root(pki_env, tmp_path):
    stranger = make_pki(tmp_path)
    report = verify_package(io.BytesIO(package(pki_env)), [stranger.root], NOW)
    s = statuses(report)
    assert s["manifest_signature"] == ("fail", "PKI_CERT_UNTRUSTED")
    assert s["pdf_seal"][0] == "fail" and s["seal"] == ("fail", "SEAL_MAKER_UNTRUSTED")


def test_report_is_frozen_and_serialisable(pki_env, tmp_path):
    (tmp_path / "pkg.zip").write_bytes(package(pki_env))
    report = verify_package(tmp_path / "pkg.zip", [pki_env.root], NOW)  # a path works as well as a file
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.title = "x"
    d = report.to_dict()
    assert d["ok"] is True and d["issuers"] == [UNIT] and len(d["checks"]) == 7


names = st.text(st.characters(codec="utf-8", categories=("L", "N"), include_characters="-_ （）"),
                min_size=1, max_size=20).map(lambda s: s.strip() or "x")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(meta=strategies.metadata(),
       attachments=st.lists(st.tuples(names, st.binary(max_size=5000).filter(lambda b: archive_kind(b) is None)),
                            max_size=4, unique_by=lambda a: name_key(a[0])))
def test_round_trip(pki_env, meta, attachments):
    meta = dataclasses.replace(meta, issuers=(UNIT,), id="round-trip-0001")
    atts = [Attachment(f"{name}.bin", data) for name, data in attachments]
    data = package(pki_env, metadata=meta, attachments=atts)
    report = verify_package(io.BytesIO(data), [pki_env.root], NOW)
    assert report.ok, report.to_dict()
    with PackageReader(io.BytesIO(data)) as reader:
        assert meta_to_dict(parse_meta(reader.read_member(METADATA_NAME)).metadata) == meta_to_dict(meta)
        got = [(e.path.removeprefix("attachments/"), b"".join(reader.iter_member(e.path)))
               for e in reader.attachments]
    assert got == [(a.name, a.source) for a in atts]
