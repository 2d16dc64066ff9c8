"""``gwx doc pack`` and ``gwx doc verify`` as a clerk runs them: real files, real seal, real exit codes."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import zipfile
from dataclasses import dataclass

import pytest

from node.cli.main import main
from node.cli.passphrase import ENV_VAR
from node.localnet import notice_pdf
from pki.ca import CertificateAuthority
from pki.crl import build_crl, crl_pem
from pki.seal_store import issue_seal
from tests.exchange_protocol.package_fixtures import OTHER_UNIT, UNIT
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, run_gwx


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def gwx(*args: str, env_pass: str = PASSPHRASE_TEXT) -> Run:
    """Run the real entry point in-process (same argument parsing, error mapping and exit codes)."""
    out, err = io.StringIO(), io.StringIO()
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = env_pass
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-doc")
    ca = CertificateAuthority.init_root(d / "ca", "测试根CA", PASSPHRASE)
    issue_seal(ca, UNIT, "某某市人民政府", d / "seal", PASSPHRASE)
    (d / "META.json").write_text(json.dumps({
        "kind": "通知", "title": "关于开展安全检查的通知", "doc_number": "某政发〔2026〕7号",
        "issuers": [UNIT], "to": [OTHER_UNIT], "written_on": "2026-03-02"}, ensure_ascii=False), "utf-8")
    (d / "BODY.pdf").write_bytes(notice_pdf())
    (d / "附件1 检查表.csv").write_text("项目,结果\n消防,合格\n", "utf-8")
    (d / "附件2 名单.txt").write_text("张三\n李四\n", "utf-8")
    return d, ca


def test_pack_then_verify(setup):
    d, _ = setup
    r = gwx("doc", "pack", "--seal", str(d / "seal"), "--meta", str(d / "META.json"), "--body", str(d / "BODY.pdf"),
            "--attach", str(d / "附件1 检查表.csv"), str(d / "附件2 名单.txt"), "--out", str(d / "pkg.zip"),
            "--tsa", str(d / "ca"))
    assert r.returncode == 0, r.stderr
    assert "公文标识" in r.stdout and "attachments/附件1 检查表.csv" in r.stdout
    with zipfile.ZipFile(d / "pkg.zip") as zf:
        assert "META-INF/timestamp.tsr" in zf.namelist()
        assert json.loads(zf.read("metadata.json"))["id"]  # assigned at packing
    r = gwx("doc", "verify", str(d / "pkg.zip"), "--trust", str(d / "ca" / "root.crt"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VALID" in r.stdout and "[ok  ] timestamp" in r.stdout
    assert "revocation: not checked (no --crl)" in r.stdout  # VALID must not read as "not revoked"
    for name in ("manifest_signature", "pdf_seal", "seal"):  # each certificate's ok line says it too
        assert f"[ok  ] {name} (revocation: not checked)" in r.stdout
    r = gwx("doc", "verify", str(d / "pkg.zip"), "--trust", str(d / "ca" / "root.crt"), "--json")
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["seal_unit"] == UNIT
    assert report["revocation"] == {"checked": False, "crls": []}
    assert [c["status"] for c in report["checks"]] == ["pass"] * 7


def test_pack_and_verify_an_ofd_body_on_a_national_network(tmp_path):
    from tests.exchange_protocol.ofd_fixtures import make_ofd, unzip

    ca = CertificateAuthority.init_root(tmp_path / "ca", "国密根CA", PASSPHRASE, algorithm="sm2-sm3")
    issue_seal(ca, UNIT, "某某市人民政府", tmp_path / "seal", PASSPHRASE)
    (tmp_path / "META.json").write_text(json.dumps({
        "kind": "通知", "title": "关于开展安全检查的通知", "issuers": [UNIT], "to": [OTHER_UNIT],
        "written_on": "2026-03-02"}, ensure_ascii=False), "utf-8")
    (tmp_path / "正文.ofd").write_bytes(make_ofd())
    r = gwx("doc", "pack", "--seal", str(tmp_path / "seal"), "--meta", str(tmp_path / "META.json"),
            "--body", str(tmp_path / "正文.ofd"), "--out", str(tmp_path / "pkg.zip"))
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(tmp_path / "pkg.zip") as zf:
        signature_xml = unzip(zf.read("body.ofd"))["Doc_0/Signs/Sign_0/Signature.xml"]
    assert b'CheckMethod="1.2.156.10197.1.401"' in signature_xml  # SM3 on a 国密 network
    r = gwx("doc", "verify", str(tmp_path / "pkg.zip"), "--trust", str(tmp_path / "ca" / "root.crt"))
    assert r.returncode == 0 and "VALID" in r.stdout, r.stdout + r.stderr
    assert "[ok  ] ofd_seal (revocation: not checked)" in r.stdout and "pdf_seal" not in r.stdout


def test_verify_with_a_crl_says_revocation_was_checked(setup, tmp_path):
    d, ca = setup
    (tmp_path / "ca.crl").write_bytes(crl_pem(build_crl(ca, dt.datetime.now(dt.UTC))))
    r = gwx("doc", "pack", "--seal", str(d / "seal"), "--meta", str(d / "META.json"), "--body", str(d / "BODY.pdf"),
            "--out", str(tmp_path / "pkg.zip"))
    assert r.returncode == 0, r.stderr
    args = ("doc", "verify", str(tmp_path / "pkg.zip"), "--trust", str(d / "ca" / "root.crt"),
            "--crl", str(tmp_path / "ca.crl"))
    r = gwx(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"revocation: checked against {tmp_path / 'ca.crl'}" in r.stdout and "not checked" not in r.stdout
    report = json.loads(gwx(*args, "--json").stdout)
    assert report["ok"] is True and report["revocation"] == {"checked": True, "crls": [str(tmp_path / "ca.crl")]}


def test_verify_fails_with_exit_1_on_a_revoked_seal(setup, tmp_path):
    d, _ = setup
    ca = CertificateAuthority.init_root(tmp_path / "ca", "吊销测试CA", PASSPHRASE)
    cred = issue_seal(ca, UNIT, "某某市人民政府", tmp_path / "seal", PASSPHRASE)
    r = gwx("doc", "pack", "--seal", str(tmp_path / "seal"), "--meta", str(d / "META.json"),
            "--body", str(d / "BODY.pdf"), "--out", str(tmp_path / "pkg.zip"))
    assert r.returncode == 0, r.stderr
    ca.revoke(cred.certificate, "key_compromise")
    (tmp_path / "ca.crl").write_bytes(crl_pem(build_crl(ca, dt.datetime.now(dt.UTC))))
    r = gwx("doc", "verify", str(tmp_path / "pkg.zip"), "--trust", str(tmp_path / "ca" / "root.crt"),
            "--crl", str(tmp_path / "ca.crl"))
    assert r.returncode == 1
    assert "INVALID" in r.stdout and "PKI_CERT_REVOKED" in r.stdout and "SEAL_REVOKED" in r.stdout
    assert "[FAIL] pdf_seal: PKI_CERT_REVOKED" in r.stdout  # the PAdES seal: the same certificate, same verdict


def test_verify_a_tampered_package_and_a_non_package(setup, tmp_path):
    d, _ = setup
    src = tmp_path / "good.zip"
    r = gwx("doc", "pack", "--seal", str(d / "seal"), "--meta", str(d / "META.json"), "--body", str(d / "BODY.pdf"),
            "--attach", str(d / "附件2 名单.txt"), "--out", str(src))
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "bad.zip", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("附件2 名单.txt"):
                data = data.replace("李四".encode(), "王五".encode())
            zout.writestr(info, data)
    r = gwx("doc", "verify", str(tmp_path / "bad.zip"), "--trust", str(d / "ca" / "root.crt"))
    assert r.returncode == 1 and "PKG_DIGEST_MISMATCH" in r.stdout
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    r = gwx("doc", "verify", str(tmp_path / "junk.zip"), "--trust", str(d / "ca" / "root.crt"), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["checks"][0]["code"] == "PKG_MALFORMED"


def test_pack_input_errors(setup, tmp_path):
    d, _ = setup
    (tmp_path / "x.txt").write_text("not a pdf")
    r = gwx("doc", "pack", "--seal", str(d / "seal"), "--meta", str(d / "META.json"), "--body", str(tmp_path / "x.txt"),
            "--out", str(tmp_path / "p.zip"))
    assert r.returncode == 2 and "PKG_NOT_PDF" in r.stderr and not (tmp_path / "p.zip").exists()
    r = gwx("doc", "pack", "--seal", str(d / "seal"), "--meta", str(d / "META.json"), "--body", str(d / "BODY.pdf"),
            "--out", str(tmp_path / "p.zip"), env_pass="wrong passphrase")
    assert r.returncode == 3
    assert not list(tmp_path.glob(".gwx-pack-*"))


def test_verify_prints_only_its_report_no_library_log_lines_nor_signed_none(setup, tmp_path):
    # A package sealed under another CA: every check that judges a certificate fails, and pyHanko
    # logs each failure with a traceback. The clerk sees the report, nothing else.
    d, _ = setup
    other = CertificateAuthority.init_root(tmp_path / "ca", "另一个根CA", PASSPHRASE)
    issue_seal(other, UNIT, "某某市人民政府", tmp_path / "seal", PASSPHRASE)
    r = gwx("doc", "pack", "--seal", str(tmp_path / "seal"), "--meta", str(d / "META.json"),
            "--body", str(d / "BODY.pdf"), "--out", str(tmp_path / "pkg.zip"))
    assert r.returncode == 0, r.stderr
    shown = run_gwx("doc", "verify", tmp_path / "pkg.zip", "--trust", d / "ca" / "root.crt", text=True)
    assert shown.returncode == 1
    assert shown.stderr == ""
    assert "[FAIL] pdf_seal: PKG_PDF_SEAL_INVALID" in shown.stdout
    assert "signed None" not in shown.stdout
    assert "seal '某某市人民政府' (91350100M000100Y43), signing time unknown" in shown.stdout


def test_a_package_sealed_under_an_intermediate_ca_verifies_with_the_root_alone(setup, tmp_path):
    """gwx pki issue-seal --ca SUB_CA writes the intermediates into seal.crt; gwx doc pack carries
    them, so the receiver needs only root.crt (an SESeal carries its own certificate alone)."""
    d, ca = setup
    sub = ca.create_intermediate(tmp_path / "sub", "市级CA", PASSPHRASE)
    r = gwx("pki", "issue-seal", "--ca", str(tmp_path / "sub"), "--unit", UNIT, "--name", "某某市人民政府",
            "--out", str(tmp_path / "seal"))
    assert r.returncode == 0, r.stderr
    r = gwx("doc", "pack", "--seal", str(tmp_path / "seal"), "--meta", str(d / "META.json"),
            "--body", str(d / "BODY.pdf"), "--out", str(tmp_path / "pkg.zip"))
    assert r.returncode == 0, r.stderr
    (tmp_path / "crl.pem").write_bytes(b"".join(crl_pem(build_crl(c, dt.datetime.now(dt.UTC))) for c in (ca, sub)))
    r = gwx("doc", "verify", str(tmp_path / "pkg.zip"), "--trust", str(d / "ca" / "root.crt"),
            "--crl", str(tmp_path / "crl.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VALID" in r.stdout and "FAIL" not in r.stdout


def test_verify_chain_supplies_the_intermediates_a_package_does_not_carry(setup, tmp_path):
    d, ca = setup
    sub = ca.create_intermediate(tmp_path / "sub", "区级CA", PASSPHRASE)
    issue_seal(sub, UNIT, "某某市人民政府", tmp_path / "seal", PASSPHRASE)
    # A seal directory from before seal.crt carried the chain: the certificate alone.
    cert = (tmp_path / "seal" / "seal.crt").read_bytes()
    (tmp_path / "seal" / "seal.crt").write_bytes(cert[:cert.index(b"-----END CERTIFICATE-----") + 26])
    r = gwx("doc", "pack", "--seal", str(tmp_path / "seal"), "--meta", str(d / "META.json"),
            "--body", str(d / "BODY.pdf"), "--out", str(tmp_path / "pkg.zip"))
    assert r.returncode == 0, r.stderr
    args = ("doc", "verify", str(tmp_path / "pkg.zip"), "--trust", str(d / "ca" / "root.crt"))
    r = gwx(*args)
    assert r.returncode == 1 and "does not chain" in r.stdout
    r = gwx(*args, "--chain", str(tmp_path / "sub" / "chain.pem"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_pack_refuses_to_replace_a_package_unless_forced(setup, tmp_path):
    d, _ = setup
    (tmp_path / "pkg.zip").write_bytes(b"an earlier package")
    args = ("doc", "pack", "--seal", str(d / "seal"), "--meta", str(d / "META.json"), "--body", str(d / "BODY.pdf"),
            "--out", str(tmp_path / "pkg.zip"))
    r = gwx(*args)
    assert r.returncode == 2 and "PKG_EXISTS" in r.stderr and "--force" in r.stderr
    assert (tmp_path / "pkg.zip").read_bytes() == b"an earlier package"
    r = gwx(*args, "--force")
    assert r.returncode == 0, r.stderr
    assert zipfile.is_zipfile(tmp_path / "pkg.zip")


def _pack_stamped(d, seal, out, tsa_ca) -> None:
    r = gwx("doc", "pack", "--seal", str(seal), "--meta", str(d / "META.json"), "--body", str(d / "BODY.pdf"),
            "--out", str(out), "--tsa", str(tsa_ca))
    assert r.returncode == 0, r.stderr


def test_a_time_stamped_package_verifies_in_2040_at_the_time_stamps_time(setup, tmp_path):
    # Every certificate has long expired in 2040; the time-stamp proves the seal was made before.
    d, _ = setup
    _pack_stamped(d, d / "seal", tmp_path / "pkg.zip", d / "ca")
    r = gwx("doc", "verify", str(tmp_path / "pkg.zip"), "--trust", str(d / "ca" / "root.crt"),
            "--at", "2040-01-01T00:00:00+00:00")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VALID" in r.stdout and "judged at the time-stamp's time" in r.stdout
    report = json.loads(gwx("doc", "verify", str(tmp_path / "pkg.zip"), "--trust", str(d / "ca" / "root.crt"),
                            "--at", "2040-01-01T00:00:00+00:00", "--json").stdout)
    assert report["ok"] and report["judged_at"] == report["timestamp_time"]
    # Without a time-stamp the same document expired with its certificates.
    r = gwx("doc", "pack", "--seal", str(d / "seal"), "--meta", str(d / "META.json"), "--body", str(d / "BODY.pdf"),
            "--out", str(tmp_path / "plain.zip"))
    r = gwx("doc", "verify", str(tmp_path / "plain.zip"), "--trust", str(d / "ca" / "root.crt"),
            "--at", "2040-01-01T00:00:00+00:00")
    assert r.returncode == 1 and "PKI_CERT_EXPIRED" in r.stdout


def test_a_seal_revoked_after_the_time_stamp_still_verifies_one_revoked_before_does_not(setup, tmp_path):
    d, _ = setup
    now = dt.datetime.now(dt.UTC)
    for when, valid in ((now + dt.timedelta(days=2), True), (now - dt.timedelta(hours=1), False)):
        base = tmp_path / ("after" if valid else "before")
        ca = CertificateAuthority.init_root(base / "ca", "吊销时间CA", PASSPHRASE, now=now - dt.timedelta(days=1))
        cred = issue_seal(ca, UNIT, "某某市人民政府", base / "seal", PASSPHRASE, now=now - dt.timedelta(days=1))
        _pack_stamped(d, base / "seal", base / "pkg.zip", base / "ca")
        ca.revoke(cred.certificate, "superseded", now=when)
        crl_at = max(when, now) + dt.timedelta(days=1)
        (base / "ca.crl").write_bytes(crl_pem(build_crl(ca, crl_at)))
        r = gwx("doc", "verify", str(base / "pkg.zip"), "--trust", str(base / "ca" / "root.crt"),
                "--crl", str(base / "ca.crl"), "--at", "2040-01-01T00:00:00+00:00")
        if valid:
            assert r.returncode == 0, r.stdout
        else:
            assert r.returncode == 1 and "[FAIL] seal: SEAL_REVOKED" in r.stdout, r.stdout
