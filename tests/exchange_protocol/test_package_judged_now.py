"""A live node judges an arriving time-stamped package *now*; only an archive check opts into the stamp's time."""

from __future__ import annotations

import datetime as dt

from exchange_protocol.package_verify import verify_package
from pki.ca import CertificateAuthority
from pki.crl import build_crl
from pki.revocation import CrlChecker, CrlCheckerAt
from pki.seal_store import issue_seal
from tests.node.cli.test_cli_doc import PASSPHRASE, UNIT, _pack_stamped, setup  # noqa: F401


def _stamped(d, tmp_path, now):
    ca = CertificateAuthority.init_root(tmp_path / "ca", "CA", PASSPHRASE, now=now - dt.timedelta(days=1))
    cred = issue_seal(ca, UNIT, "某某市人民政府", tmp_path / "seal", PASSPHRASE, now=now - dt.timedelta(days=1))
    _pack_stamped(d, tmp_path / "seal", tmp_path / "pkg.zip", tmp_path / "ca")
    return ca, cred


def test_a_stamped_package_is_accepted_after_the_node_refreshed_its_crl(setup, tmp_path):  # noqa: F811
    d, _ = setup
    now = dt.datetime.now(dt.UTC)
    ca, _ = _stamped(d, tmp_path, now)
    crl = build_crl(ca, now + dt.timedelta(minutes=30))  # issued after the stamp, nothing revoked
    # What the acceptor and processor do: judge at the present with the present's checker.
    report = verify_package(tmp_path / "pkg.zip", [ca.certificate], now + dt.timedelta(hours=1),
                            revocation=CrlChecker([crl]), validate_pdf=False)
    assert report.failures == () and report.judged_at == now + dt.timedelta(hours=1)


def test_seal_revoked_after_an_early_stamp_refused_live_kept_by_an_archive_check(setup, tmp_path):  # noqa: F811
    d, _ = setup
    now = dt.datetime.now(dt.UTC)
    ca, cred = _stamped(d, tmp_path, now)
    ca.revoke(cred.certificate, "superseded", now=now + dt.timedelta(minutes=10))
    crls = [build_crl(ca, now + dt.timedelta(minutes=30))]
    later = now + dt.timedelta(hours=1)
    live = verify_package(tmp_path / "pkg.zip", [ca.certificate], later, revocation=CrlChecker(crls),
                          validate_pdf=False)
    assert "SEAL_REVOKED" in {c.code for c in live.failures} or "PKI_CERT_REVOKED" in {c.code for c in live.failures}
    kept = verify_package(tmp_path / "pkg.zip", [ca.certificate], later, revocation=CrlChecker(crls),
                          revocation_at_stamp=CrlCheckerAt(crls), validate_pdf=False, judge_at_stamp=True)
    assert kept.failures == () and kept.judged_at < now + dt.timedelta(minutes=10)
