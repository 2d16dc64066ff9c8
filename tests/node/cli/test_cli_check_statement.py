"""``gwx doc check-statement`` judges the seal certificate at now, not at the time the statement
claims for itself (nothing time-stamps that claim); ``--at`` asks about a past moment explicitly."""

from __future__ import annotations

import datetime as dt
import json

from exchange_protocol.envelope import MessageType
from exchange_protocol.statements import Statement, sign_statement
from pki.certificates import pem
from pki.crl import build_crl, crl_pem
from pki.signer import SoftwareSigner
from tests.node.cli.test_cli_doc import gwx
from tests.pki.seal_support import UNIT, UNIT_NAME, make_seal

DOC = "0193a5b2-0000-7000-8000-000000000002"
SENDER = "11100000000013127D"
DIGEST = "ab" * 32


def _write_statement(tmp_path, made, at: dt.datetime):
    statement = Statement(MessageType.RECEIPT, DOC, DIGEST, UNIT, UNIT_NAME, "张三", at, None, SENDER)
    path = tmp_path / "s.p7m"
    path.write_bytes(sign_statement(statement, SoftwareSigner(made.key, made.certificate)))
    return path


def _root(tmp_path, ca):
    path = tmp_path / "root.crt"
    path.write_bytes(pem(ca.certificate))
    return path


def test_an_expired_seal_cannot_vouch_for_a_statement_dated_inside_its_validity(make_ca, tmp_path):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca = make_ca(now=now - dt.timedelta(days=40))
    made = make_seal(ca, valid_days=10, now=now - dt.timedelta(days=11))  # expired yesterday
    statement = _write_statement(tmp_path, made, now - dt.timedelta(days=10))
    run = gwx("doc", "check-statement", str(statement), "--trust", str(_root(tmp_path, ca)), "--json")
    assert run.returncode == 1, run.stdout + run.stderr
    verdict = json.loads(run.stdout)
    assert verdict["code"] == "STATEMENT_UNTRUSTED" and verdict["details"]["cause"] == "PKI_CERT_EXPIRED"
    # Asked explicitly about that day, the certificate was good then.
    at = (now - dt.timedelta(days=10)).isoformat()
    run = gwx("doc", "check-statement", str(statement), "--trust", str(_root(tmp_path, ca)), "--at", at, "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["ok"], run.stdout + run.stderr


def test_a_statement_older_than_the_crl_checks_with_it_now_and_at_its_own_time(make_ca, tmp_path):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca = make_ca(now=now - dt.timedelta(days=2))
    made = make_seal(ca, now=now - dt.timedelta(days=1))
    signed_at = now - dt.timedelta(hours=2)
    statement = _write_statement(tmp_path, made, signed_at)
    crl = tmp_path / "ca.crl"
    crl.write_bytes(crl_pem(build_crl(ca, now)))  # issued after the statement
    root = str(_root(tmp_path, ca))
    run = gwx("doc", "check-statement", str(statement), "--trust", root, "--crl", str(crl), "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["ok"], run.stdout + run.stderr
    run = gwx("doc", "check-statement", str(statement), "--trust", root, "--crl", str(crl),
              "--at", signed_at.isoformat(), "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["ok"], run.stdout + run.stderr


def test_a_seal_revoked_after_the_statement_fails_now_and_passes_at_that_moment(make_ca, tmp_path):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca = make_ca(now=now - dt.timedelta(days=3))
    made = make_seal(ca, now=now - dt.timedelta(days=2))
    signed_at = now - dt.timedelta(days=1)
    statement = _write_statement(tmp_path, made, signed_at)
    ca.revoke(made.certificate, "key_compromise", now=now - dt.timedelta(hours=1))
    crl = tmp_path / "ca.crl"
    crl.write_bytes(crl_pem(build_crl(ca, now)))
    root = str(_root(tmp_path, ca))
    run = gwx("doc", "check-statement", str(statement), "--trust", root, "--crl", str(crl), "--json")
    assert run.returncode == 1 and json.loads(run.stdout)["details"]["cause"] == "PKI_CERT_REVOKED", run.stdout + run.stderr
    run = gwx("doc", "check-statement", str(statement), "--trust", root, "--crl", str(crl),
              "--at", signed_at.isoformat(), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    run = gwx("doc", "check-statement", str(statement), "--trust", root, "--crl", str(crl),
              "--at", (now - dt.timedelta(minutes=30)).isoformat(), "--json")
    assert run.returncode == 1 and json.loads(run.stdout)["details"]["cause"] == "PKI_CERT_REVOKED", run.stdout + run.stderr
