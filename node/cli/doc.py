"""``gwx doc pack`` and ``gwx doc verify``: make and check a sealed document package (one 公文).

``pack`` reads META.json (the adapters' contract, ``exchange_protocol.meta_json``; a missing 公文标识
is assigned), seals BODY.pdf with the seal in SEAL_DIR (key passphrase from ``GWX_PASSPHRASE``,
``--passphrase-file`` or a prompt), streams the attachments in and writes PKG.zip atomically
(temp file, fsync, rename). ``--tsa CA_DIR`` time-stamps the signature with that CA's TSA
credential (its passphrase from ``--tsa-passphrase-file``, else the same passphrase).

``verify`` prints one line per check and exits 0 only when every check passed; 1 when any failed
(``--json`` prints the whole report as one JSON object). A time-stamped package is judged at the
time-stamp's time when that is earlier than ``--at`` (``exchange_protocol.package_verify``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from exchange_protocol.errors import PackageExists, PackageInputError
from exchange_protocol.meta_json import parse_meta
from node.cli.exit_codes import VERIFY_FAILED
from node.cli.passphrase import add_passphrase_option, get_passphrase
from pki import tsa
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates
from pki.crl import load_crls
from pki.revocation import CrlChecker, CrlCheckerAt
from pki.seal_store import load_seal_credential

if TYPE_CHECKING:
    from exchange_protocol.package_verify import PackageReport

_CHATTY_LOGGERS = ("pyhanko", "pyhanko_certvalidator")
_JUDGES_CERTIFICATES = ("manifest_signature", "pdf_seal", "ofd_seal", "seal")
_MARK = {"pass": "ok  ", "fail": "FAIL", "skipped": "skip", "absent": "--  "}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="seal a document and pack it with its metadata and attachments")
    p.add_argument("--seal", required=True, type=Path, metavar="SEAL_DIR", help="seal directory (seal.esl/crt/key)")
    p.add_argument("--meta", required=True, type=Path, metavar="META.json", help="document metadata")
    p.add_argument("--body", required=True, type=Path, metavar="BODY.pdf",
                   help="the document: a PDF, or an OFD (sealed inside per GB/T 38540)")
    p.add_argument("--attach", action="extend", nargs="+", type=Path, default=[], metavar="FILE",
                   help="attachment(s) (附件), in order")
    p.add_argument("--out", required=True, type=Path, metavar="PKG.zip",
                   help="package to write (an existing file is refused unless --force)")
    p.add_argument("--force", action="store_true", help="replace PKG.zip if it exists")
    p.add_argument("--seal-box", metavar="X1,Y1,X2,Y2",
                   help="where the seal goes on the last page of a PDF, in PDF points (default: over the date "
                        "line); an OFD's seal goes at the right of its last page's lower third")
    p.add_argument("--chain", type=Path, action="append", default=[], metavar="FILE",
                   help="intermediate CA certificates (PEM) to carry in the package, for a seal made under an "
                        "intermediate CA whose seal.crt does not already list them (seals issued by gwx do)")
    p.add_argument("--tsa", type=Path, metavar="CA_DIR", help="time-stamp the signature with this CA's TSA")
    p.add_argument("--tsa-passphrase-file", metavar="FILE", help="passphrase of the TSA's CA directory")
    add_passphrase_option(p)
    p.set_defaults(func=_pack)

    p = sub.add_parser("verify", help="verify a document package: signature, seals, digests, metadata")
    p.add_argument("package", type=Path, metavar="PKG.zip", help="the document package to verify")
    p.add_argument("--trust", required=True, type=Path, action="append", metavar="ROOT.crt",
                   help="trusted root certificate(s), PEM")
    p.add_argument("--chain", type=Path, action="append", default=[], metavar="FILE",
                   help="intermediate CA certificates (PEM, e.g. a CA's chain.pem), for a package that does "
                        "not carry the chain of a seal made under an intermediate CA")
    p.add_argument("--crl", type=Path, action="append", default=[], metavar="FILE",
                   help="CRL(s), PEM or DER (a PEM file may hold several, e.g. a node's crl.pem): every "
                        "certificate judged must be covered by one")
    p.add_argument("--at", help="judge at this time (ISO 8601 with offset; default now)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_verify)


def _pack(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.UTC)
    if args.out.is_dir():
        raise PackageInputError(f"--out {args.out} is a directory, expected the package file to write",
                                path=str(args.out))
    if args.out.exists() and not args.force:
        raise PackageExists(f"{args.out} already exists; refusing to replace it (--force replaces it)",
                            path=str(args.out))
    passphrase = get_passphrase(args, what="seal key")
    credential = load_seal_credential(args.seal, passphrase)
    meta = parse_meta(read_input(args.meta), now=now)
    for w in meta.warnings:
        print(f"warning: {w.code}: {w.message}", file=sys.stderr)
    timestamper = _tsa(args, passphrase, now) if args.tsa else None
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        from exchange_protocol.package import PackageBuilder  # pyHanko: imported when a command needs it

        chain = [*credential.chain, *(c for path in args.chain for c in load_certificates(read_input(path)))]
        builder = PackageBuilder(metadata=meta.metadata, body=read_input(args.body)).with_chain(chain)
        for path in args.attach:
            builder = builder.with_attachment(path.name, stack.enter_context(path.open("rb")))
        if args.seal_box:
            builder = builder.with_seal_box(_parse_box(args.seal_box))
        fd, tmp = tempfile.mkstemp(prefix=".gwx-pack-", dir=out.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                built = builder.build(f, credential, at=now, timestamper=timestamper)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    digest = hashlib.sha256()
    with out.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    print(f"package {out}: 公文标识 {built.document_id}")
    print(f"  sealed with '{credential.seal.name}' ({credential.seal.unit_code}) at {now.isoformat()}")
    for entry in built.manifest.entries:
        print(f"  {entry.size:>12}  {entry.digest[:16]}…  {entry.path}")
    print(f"  time stamp: {'yes' if built.timestamp else 'no'}; package SHA-256 {digest.hexdigest()}")
    return 0


def _tsa(args: argparse.Namespace, passphrase: bytes, now: dt.datetime):
    ca_pass = Path(args.tsa_passphrase_file).read_bytes().rstrip(b"\r\n") if args.tsa_passphrase_file \
        else passphrase
    ca = CertificateAuthority.open(args.tsa, ca_pass)
    signer = ca.tsa_signer()
    chain = tuple(ca.chain[:-1])
    return lambda request: tsa.respond(request, signer, now, tsa.random_serial(), extra_certs=chain)


def _verify(args: argparse.Namespace) -> int:
    roots = [c for path in args.trust for c in load_certificates(read_input(path))]
    crls = [crl for path in args.crl for crl in load_crls(read_input(path))]
    intermediates = [c for path in args.chain for c in load_certificates(read_input(path))]
    at = parse_at(args.at) if args.at else dt.datetime.now(dt.UTC)
    with args.package.open("rb") as f, library_logs_silenced():
        from exchange_protocol.package_verify import verify_package  # pyHanko: imported when needed

        report = verify_package(f, roots, at, revocation=CrlChecker(crls) if args.crl else None,
                                intermediates=intermediates,
                                revocation_at_stamp=CrlCheckerAt(crls) if args.crl else None,
                                judge_at_stamp=True)
    # VALID without a CRL says nothing about revocation: both outputs say so explicitly.
    revocation = {"checked": bool(args.crl), "crls": [str(p) for p in args.crl]}
    if args.json:
        print(json.dumps({**report.to_dict(), "revocation": revocation}, ensure_ascii=False))
    else:
        _print_report(args.package, report, revocation)
    return 0 if report.ok else VERIFY_FAILED


def _print_report(path: Path, report: PackageReport, revocation: dict) -> None:
    print(f"{path}: {'VALID' if report.ok else 'INVALID'}")
    if report.document_id:
        print(f"  公文标识 {report.document_id}  {report.title}")
    if report.seal_name:
        signed = (f"signed {report.signing_time.isoformat()}" if report.signing_time
                  else "signing time unknown (the manifest signature did not verify)")
        print(f"  seal '{report.seal_name}' ({report.seal_unit}), {signed}")
    if report.timestamp_time is not None and report.judged_at == report.timestamp_time:
        print(f"  judged at the time-stamp's time {report.timestamp_time.isoformat()} (it proves the "
              "signature existed then)")
    if revocation["checked"]:
        print(f"  revocation: checked against {', '.join(revocation['crls'])}")
    else:
        print("  revocation: not checked (no --crl)")
    for check in report.checks:
        line = f"  [{_MARK[check.status]}] {check.name}"
        if check.code:
            line += f": {check.code}: {check.message}"
        elif check.status == "pass" and check.name in _JUDGES_CERTIFICATES and not revocation["checked"]:
            line += " (revocation: not checked)"  # each line that says ok of a certificate, the same
        print(line)


@contextmanager
def library_logs_silenced() -> Iterator[None]:
    """pyHanko logs each failure it finds (with a traceback) besides raising it; the report already
    says what failed, with our codes, so its log records would only be stray lines on the terminal."""
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PackageInputError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None


def parse_at(text: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise PackageInputError(f"--at {text!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise PackageInputError("--at needs a UTC offset (e.g. 2026-01-20T09:00:00+08:00)")
    return t


def _parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise PackageInputError(f"--seal-box {text!r} must be four numbers X1,Y1,X2,Y2") from None
    return (x1, y1, x2, y2)
