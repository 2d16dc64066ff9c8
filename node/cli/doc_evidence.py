"""``gwx doc evidence`` and ``gwx doc check-statement``: the unit-signed 签收/退回 statements a node holds
about a document, exported as files anyone can check, and the offline check of one such file.

``evidence DOC_ID --dir NODE_DIR [--out DIR] [--json]`` reads the node's store (running node or
not, like ``gwx webhook``): each statement the node keeps about the document — those its units
signed (side ``receiver``) and those that came back with notices about a document it sent
(``sender``) — one line each; with ``--out`` each is written as ``DOC_ID.UNIT.TYPE.SIDE.p7m``, the
CMS SignedData (DER) exactly as signed, which ``openssl cms -verify -inform DER -in F -CAfile
root.crt`` accepts and prints.

``check-statement FILE --trust ROOT.crt [--crl FILE …] [--at TIME] [--json]`` checks one file with
:func:`exchange_protocol.statements.verify_statement` — without the node, its database or its
network — and prints what it proves; exit 1 when it proves nothing. The seal certificate is judged
now: the time inside a statement is the signer's own claim, which nothing time-stamps, so an
expired or revoked seal cannot make it good by writing an earlier date. ``--at`` asks about a past
moment on purpose (with ``--crl``, :class:`pki.revocation.CrlCheckerAt`: a CRL current then or
issued since, and only revocations dated up to that moment).
Long-term validity comes from the archive's time-stamp, not from this check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from node.cli.exit_codes import VERIFY_FAILED
from node.cli.node_admin import NODE_DIR_HELP, in_node_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evidence", help="the unit-signed 签收/退回 statements this node holds about a document",
                       description="List, or with --out write as files, the 签收/退回 statements (CMS SignedData "
                                   "signed with the acting unit's seal) this node holds about DOC_ID: those its "
                                   "units signed and those that came back about a document it sent. Each file is "
                                   "checked by `openssl cms -verify -inform DER -in FILE -CAfile root.crt` or by "
                                   "`gwx doc check-statement`.")
    p.add_argument("doc_id", metavar="ID", help="the document's 公文标识")
    p.add_argument("--dir", required=True, type=Path, help=NODE_DIR_HELP)
    p.add_argument("--out", type=Path, metavar="DIR", help="write each statement to DIR/DOC_ID.UNIT.TYPE.SIDE.p7m")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=_evidence)

    p = sub.add_parser("check-statement", help="check a 签收/退回 statement file offline",
                       description="Verify a statement written by `gwx doc evidence`: the signature, the seal "
                                   "certificate's path to ROOT.crt, the certificate naming the unit that acted. "
                                   "The certificate is judged now: a statement carries no time-stamp, so the "
                                   "time written in it is the signer's claim, and the statement is only as good "
                                   "as its seal certificate is today (an expired or revoked seal fails).")
    p.add_argument("statement", type=Path, metavar="FILE", help="the statement (CMS SignedData, DER)")
    p.add_argument("--trust", required=True, type=Path, action="append", metavar="ROOT.crt",
                   help="trusted root certificate(s), PEM")
    p.add_argument("--crl", type=Path, action="append", default=[], metavar="FILE",
                   help="CRL(s), PEM or DER: the seal certificate must then be covered and not revoked")
    p.add_argument("--at", help="judge at this past moment instead of now (ISO 8601 with offset); with --crl, "
                                "a CRL current then or issued since decides what was revoked by then")
    p.add_argument("--json", action="store_true", help="print the statement as JSON")
    p.set_defaults(func=_check)


def _evidence(args: argparse.Namespace) -> int:
    from node.config import load_config

    config = load_config(args.dir)

    async def work(store):
        return await store.evidence.notice_evidence(args.doc_id)
    held = in_node_store(config, work)
    rows = []
    for e in held:
        row = {"doc_id": e.doc_id, "unit": e.unit, "type": e.type, "side": e.side, "at": e.at.isoformat(),
               "sha256": e.sha256, "bytes": len(e.statement)}
        if args.out is not None:
            row["file"] = str(_write(args.out, f"{e.doc_id}.{e.unit}.{e.type}.{e.side}.p7m", e.statement))
        rows.append(row)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{args.doc_id}: {len(rows)} statement(s)")
    for r in rows:
        where = f"  → {r['file']}" if "file" in r else ""
        print(f"  {r['type']:<7} {r['unit']}  {r['at']}  {r['side']:<8} sha256 {r['sha256'][:16]}…{where}")
    return 0


def _write(out: Path, name: str, data: bytes) -> Path:
    """``data`` to ``out/name``; an existing file must already hold the same bytes (nothing is overwritten)."""
    from node.cli.exit_codes import FileProblem

    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    if path.exists():
        if path.read_bytes() != data:
            raise FileProblem(f"{path} exists and holds other bytes; choose another --out", path=str(path))
        return path
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _check(args: argparse.Namespace) -> int:
    from exchange_protocol.statements import StatementError, verify_statement
    from node.cli.doc import parse_at, read_input
    from pki.certificates import load_certificates
    from pki.crl import load_crls
    from pki.revocation import CrlChecker, CrlCheckerAt
    from pki.trust import TrustStore

    der = read_input(args.statement)
    roots = [c for path in args.trust for c in load_certificates(read_input(path))]
    crls = [c for path in args.crl for c in load_crls(read_input(path))]
    if args.at:  # a past moment, asked for on purpose
        at = parse_at(args.at)
        revocation = CrlCheckerAt(crls) if crls else None
    else:  # now: the statement's own time is the signer's claim, not evidence (module header)
        at = dt.datetime.now(dt.UTC)
        revocation = CrlChecker(crls) if crls else None
    try:
        verified = verify_statement(der, TrustStore.of(roots), now=at, revocation=revocation)
    except StatementError as exc:
        print(json.dumps({"ok": False, **exc.to_dict()}, ensure_ascii=False) if args.json
              else f"FAIL {args.statement}: {exc.code}: {exc.message}")
        return VERIFY_FAILED
    s = verified.statement
    fields = {"type": s.type.value, "doc_id": s.doc_id, s.digest_field: s.package_digest, "unit": s.unit,
              "unit_name": s.unit_name, "by": s.by, "at": s.at.isoformat(), "reason": s.reason,
              "sender_unit": s.sender_unit, "signer": verified.signer_certificate.subject.rfc4514_string()}
    if args.json:
        print(json.dumps({"ok": True, **fields}, ensure_ascii=False))
    else:
        print(f"ok   {args.statement}: {'签收' if s.type.value == 'receipt' else '退回'} of {s.doc_id} by "
              f"{s.unit_name} ({s.unit}), {s.by}, {s.at.isoformat()}"
              + (f", reason: {s.reason}" if s.reason else "") + f"; package {s.digest_algorithm} {s.package_digest}")
    return 0
