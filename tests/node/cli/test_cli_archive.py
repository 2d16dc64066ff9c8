# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""``gwx archive verify`` as a user runs it: a line per check, the failure's code on its line, exit 1 for
an archive that does not verify and 2 for a file that cannot be read; ``--json`` the whole report."""

from __future__ import annotations

import json

from tests.exchange_protocol.package_fixtures import pki_env  # noqa: F401
from tests.exchange_protocol.test_archive import build, rezip
from tests.support import run_gwx


def test_verify_prints_each_check_and_exits_by_the_verdict(pki_env, tmp_path):
    good = tmp_path / "good.gwxa"
    good.write_bytes(build(pki_env))
    root = pki_env.root_pem
    done = run_gwx("archive", "verify", good, "--trust", root, "--no-revocation", text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID" in done.stdout and "every signature judged at that time" in done.stdout
    assert "[ok  ] receipts (1)" in done.stdout and "[--  ] statements" in done.stdout
    assert "revocation: not checked (no --crl)" in done.stdout

    changed = tmp_path / "changed.gwxa"
    changed.write_bytes(rezip(good.read_bytes(), lambda m: m.update({"index.json": b"{}"})))
    done = run_gwx("archive", "verify", changed, "--trust", root, text=True)
    assert done.returncode == 1 and "INVALID" in done.stdout
    assert "[FAIL] manifest: ARCHIVE_DIGEST_MISMATCH: index.json" in done.stdout
    report = json.loads(run_gwx("archive", "verify", changed, "--trust", root, "--json", text=True).stdout)
    assert report["ok"] is False and report["checks"][1]["code"] == "ARCHIVE_DIGEST_MISMATCH"

    done = run_gwx("archive", "verify", tmp_path / "missing.gwxa", "--trust", root, text=True)
    assert done.returncode == 2 and "cannot read" in done.stderr and "Traceback" not in done.stderr


def test_without_a_crl_an_archive_is_incomplete_not_valid_unless_revocation_is_waived(pki_env, tmp_path):
    archive = tmp_path / "a.gwxa"
    archive.write_bytes(build(pki_env))
    root = pki_env.root_pem
    done = run_gwx("archive", "verify", archive, "--trust", root, text=True)
    assert done.returncode == 1 and "INCOMPLETE" in done.stdout and "--no-revocation" in done.stdout
    report = json.loads(run_gwx("archive", "verify", archive, "--trust", root, "--json", text=True).stdout)
    assert report["ok"] is False and report["status"] == "incomplete" and report["revocation"]["checked"] is False
    done = run_gwx("archive", "verify", archive, "--trust", root, "--no-revocation", "--json", text=True)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "valid"
    done = run_gwx("archive", "verify", archive, "--trust", root, "--no-revocation", "--crl", root, text=True)
    assert done.returncode == 2 and "--no-revocation" in done.stderr  # one or the other
