"""``gwx archive build`` and ``gwx archive verify``: 一键归档 and checking an archive package offline.

``build ID --out PKG.gwxa [--inbox] [--reason TEXT]`` asks the node (its local API, as a clerk) for the
archive package of a document the clerk's unit sent (default) or received (``--inbox``), streams it
to PKG.gwxa (through a ``.part`` file renamed once whole and synced; an existing file is refused)
and prints its SHA-256 and time-stamp.

``verify PKG.gwxa --trust ROOT.crt [--crl FILE …] [--chain FILE …] [--at TIME] [--json]`` checks it
without a node (:mod:`exchange_protocol.archive_verify`): one line per check, each failure with its
code; everything signed is judged at the archive's time-stamp time, revocation (with ``--crl``) at
that moment. Exit 0 only when every check passed, 1 when one failed. Without ``--crl`` nothing says the
seal was not revoked before the stamp — for long-term evidence the check that matters — so the verdict
is INCOMPLETE (``ok`` false, ``status`` "incomplete", exit 1) unless ``--no-revocation`` says the
caller accepts that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

from node.cli.api_client import BadInput
from node.cli.clerk import add_common_options, api_path, client_for
from node.cli.doc import library_logs_silenced, parse_at, read_input
from node.cli.exit_codes import VERIFY_FAILED
from pki.certificates import load_certificates
from pki.crl import load_crls
from pki.revocation import CrlCheckerAt

_MARK = {"pass": "ok  ", "fail": "FAIL", "skipped": "skip", "absent": "--  "}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="一键归档: the archive package of a finished document, from your node")
    add_common_options(p)
    p.add_argument("doc_id", metavar="ID", help="the document's 公文标识")
    p.add_argument("--out", required=True, type=Path, metavar="PKG.gwxa", help="archive file to write (not replaced)")
    p.add_argument("--inbox", action="store_true", help="a document your unit received (default: one it sent)")
    p.add_argument("--reason", help="why a document whose handling is not finished is archived now")
    p.set_defaults(func=_build)

    p = sub.add_parser("verify", help="check an archive package offline, at its time-stamp's time")
    p.add_argument("archive", type=Path, metavar="PKG.gwxa", help="the archive package to verify")
    p.add_argument("--trust", required=True, type=Path, action="append", metavar="ROOT.crt",
                   help="trusted root certificate(s), PEM")
    p.add_argument("--chain", type=Path, action="append", default=[], metavar="FILE",
                   help="intermediate CA certificates (PEM) the archive does not carry")
    p.add_argument("--crl", type=Path, action="append", default=[], metavar="FILE",
                   help="CRL(s), PEM or DER, judged at the time-stamp's time (a later CRL is good evidence)")
    p.add_argument("--no-revocation", action="store_true",
                   help="accept an archive without checking revocation (default: without --crl it is INCOMPLETE)")
    p.add_argument("--at", help="the time of checking (ISO 8601 with offset; default now): reported only, "
                                "since signatures are judged at the time-stamp's time")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_verify)


def _build(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists():
        raise BadInput(f"{out} exists; choose another name (an archive is never overwritten)", path=str(out))
    partial = out.with_name(out.name + ".part")
    headers: dict[str, str] = {}
    try:
        with partial.open("wb") as f:
            size = client_for(args).download(
                api_path("inbox" if args.inbox else "outbox", args.doc_id, "archive"), f,
                post_json={"reason": args.reason} if args.reason else {},
                progress=lambda _n, response: headers.update(response.getheaders()))
            f.flush()
            os.fsync(f.fileno())
        partial.rename(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    summary = {"archive": str(out), "size": size, "sha256": headers.get("X-Gwx-Archive-Sha256"),
               "timestamp_time": headers.get("X-Gwx-Archive-Timestamp"), "files": headers.get("X-Gwx-Archive-Files")}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"archive of {args.doc_id} written to {out}: {size} bytes, {summary['files']} files, "
              f"SHA-256 {summary['sha256']}, time-stamped {summary['timestamp_time']}")
        print(f"check it offline: gwx archive verify {out} --trust ROOT.crt")
    return 0


def _verify(args: argparse.Namespace) -> int:
    if args.crl and args.no_revocation:
        raise BadInput("give --crl or --no-revocation, not both")
    roots = [c for path in args.trust for c in load_certificates(read_input(path))]
    chain = [c for path in args.chain for c in load_certificates(read_input(path))]
    crls = [crl for path in args.crl for crl in load_crls(read_input(path))]
    at = parse_at(args.at) if args.at else dt.datetime.now(dt.UTC)
    with _read_archive(args.archive) as f, library_logs_silenced():
        from exchange_protocol.archive_verify import verify_archive  # pyHanko: imported when needed

        report = verify_archive(f, roots, at, crls_at=CrlCheckerAt(crls) if crls else None, intermediates=chain)
    revocation = {"checked": bool(crls), "waived": args.no_revocation, "crls": [str(p) for p in args.crl]}
    # A revocation before the stamp is the one thing that would undo the evidence: unchecked, not "valid".
    status = "invalid" if not report.ok else "valid" if crls or args.no_revocation else "incomplete"
    ok = status == "valid"
    if args.json:
        print(json.dumps({**report.to_dict(), "ok": ok, "status": status, "revocation": revocation},
                         ensure_ascii=False))
    else:
        print(f"{args.archive}: {status.upper()}" + (
            " (revocation not checked: give --crl, or --no-revocation to accept it unchecked)"
            if status == "incomplete" else ""))
        if report.doc_id:
            print(f"  公文标识 {report.doc_id}  {report.title or ''}".rstrip())
        if report.judged_at:
            print(f"  time-stamped {report.judged_at.isoformat()}: every signature judged at that time")
        print(f"  revocation: {'checked against ' + ', '.join(revocation['crls']) if crls else 'not checked (no --crl)'}")
        for warning in report.warnings:
            print(f"  warning: {warning}")
        for check in report.checks:
            line = f"  [{_MARK[check.status]}] {check.name}"
            if check.code:
                line += f": {check.code}: {check.message}"
            elif check.details.get("count") is not None:
                line += f" ({check.details['count']})"
            elif check.details.get("hash"):  # the manifest's digest: SHA-256, or SM3 on a 国密 network
                line += f" ({check.details['files']} files, {_DIGEST_NAMES[check.details['hash']]})"
            elif check.details.get("imprint"):
                line += f" (imprint {_DIGEST_NAMES.get(check.details['imprint'], check.details['imprint'])})"
            elif check.message:  # what a passing check proves and what it does not (the audit excerpt's links)
                line += f": {check.message}"
            print(line)
    return 0 if ok else VERIFY_FAILED


_DIGEST_NAMES = {"sha256": "SHA-256", "sm3": "SM3"}


def _read_archive(path: Path):
    try:
        return path.open("rb")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}", path=str(path)) from None
