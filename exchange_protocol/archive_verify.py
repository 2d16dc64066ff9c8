"""Verifying an archive package offline (``gwx archive verify``), as a report of named checks.

Checks, in order; each failure its own stable code:

``structure``   the ZIP read defensively before anything is inflated: member count and sizes, declared
                and actual compression ratio (``ARCHIVE_ZIP_BOMB``), names (``ARCHIVE_UNSAFE_NAME``:
                traversal, absolute, backslash, duplicates), encryption, methods; the manifest parsed
                strictly (``ARCHIVE_MALFORMED``)
``manifest``    the members are exactly the files listed (``ARCHIVE_FILE_MISSING``,
                ``ARCHIVE_FILE_UNLISTED``) and each one's digest and size are as listed
                (``ARCHIVE_DIGEST_MISMATCH``), streamed — by the digest the manifest names: SHA-256,
                or SM3 on a 国密 network
``timestamp``   the RFC 3161 token's imprint is the digest of manifest.json (the one the token names:
                SHA-256 or SM3) and its TSA chains to the root
                at its genTime, not revoked then (``TSA_*``). Its genTime is the moment every signature
                is judged at
``package``     the sealed package (:func:`.package_verify.verify_package` at the genTime): manifest
                signature, PAdES, SESeal, its own time-stamp
``envelopes``   each signed envelope header: the origin's CMS over its exact bytes, the signer a node
                signing certificate under the root naming the header's origin
``receipts``    each signed transport receipt: the receiver's CMS, the signer naming the receiver
``statements``  each unit-signed 签收/退回 statement (CMS, content attached) under the root
``audit``       the audit excerpt's links recompute from its first event to the head (``ARCHIVE_AUDIT_CHAIN_BROKEN``)
``index``       index.json parses, names the package's 公文标识 and its digest

Everything signed is judged *at the time-stamp's genTime*, with revocation from
:class:`pki.revocation.CrlCheckerAt` when CRLs are given: a certificate that expired or was revoked
after it does not fail the archive, one revoked before it does. Synchronous (pyHanko): run it in a
worker thread.
"""

from __future__ import annotations

import datetime as dt
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography import x509

from pki import cms, tsa
from pki.certificates import node_id_of
from pki.errors import GwxError
from pki.trust import Purpose

from . import archive as A
from . import archive_errors as E
from . import digests
from .audit_chain import check_excerpt
from .canonical import load_json
from .envelope import decode_header
from .package_reader import overlapping_members
from .package_verify import ABSENT, FAIL, PASS, SKIPPED, Check, verify_package
from .statements import verify_statement
from .transport_receipt import KIND as RECEIPT_KIND
from .zip_layout import ZIP_OPEN_ERRORS

CHECKS = ("structure", "manifest", "timestamp", "package", "envelopes", "receipts", "statements", "audit", "index")
RevocationCheck = Callable[[x509.Certificate, x509.Certificate, dt.datetime], None]


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 50_000
    # Any file but the sealed package (the audit excerpt of a document handled over months on a busy
    # node holds a hash per event in between: 64 MiB is about a million).
    max_member_bytes: int = 64 * 1024 * 1024
    max_evidence_bytes: int = 512 * 1024 * 1024  # all files but the sealed package: they are held to be checked
    max_package_bytes: int = 8 * 1024 ** 3
    max_total_bytes: int = 10 * 1024 ** 3
    max_ratio: int = 100
    ratio_floor_bytes: int = 1024 * 1024
    max_manifest_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveReport:
    checks: tuple[Check, ...]
    checked_at: dt.datetime
    judged_at: dt.datetime | None = None  # the time-stamp's genTime
    doc_id: str | None = None
    title: str | None = None
    files: int = 0
    package: dict[str, Any] | None = None  # the sealed package's own report
    warnings: tuple[str, ...] = ()  # what passed checks do not show but a reader should know (an unusable chain)

    @property
    def ok(self) -> bool:
        return all(c.status in (PASS, ABSENT) for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == FAIL)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked_at": self.checked_at.isoformat(),
                "judged_at": self.judged_at.isoformat() if self.judged_at else None,
                "doc_id": self.doc_id, "title": self.title, "files": self.files,
                "checks": [c.to_dict() for c in self.checks], "package": self.package,
                "warnings": list(self.warnings)}


def _fail(name: str, exc: GwxError, **extra: Any) -> Check:
    details = {k: str(v) for k, v in exc.details.items()}
    details.update({k: str(v) for k, v in extra.items()})
    return Check(name, FAIL, exc.code, exc.message, details)


def verify_archive(source: BinaryIO, roots: Sequence[x509.Certificate], at: dt.datetime, *,
                   crls_at: RevocationCheck | None = None, intermediates: Sequence[x509.Certificate] = (),
                   limits: ArchiveLimits = ArchiveLimits()) -> ArchiveReport:
    """Verify the archive in ``source`` (seekable binary). ``crls_at`` judges revocation at a past
    moment (:class:`pki.revocation.CrlCheckerAt`); without it revocation is not checked."""
    checks: dict[str, Check] = {}
    info: dict[str, Any] = {"checked_at": at}

    def finish() -> ArchiveReport:
        return ArchiveReport(tuple(checks.get(n) or Check(n, SKIPPED, message="a check it depends on failed")
                                   for n in CHECKS), **info)

    try:
        zf = zipfile.ZipFile(source)
    except ZIP_OPEN_ERRORS as exc:
        checks["structure"] = _fail("structure", E.ArchiveMalformed(f"not a ZIP archive: {exc}"))
        return finish()
    with zf:
        try:
            members = _check_directory(zf, limits)
            manifest_bytes = _read(zf, members, A.MANIFEST_NAME, limits.max_manifest_bytes, limits)
            token = _read(zf, members, A.TOKEN_NAME, 64 * 1024, limits)
            listed = _parse_manifest(manifest_bytes)
        except GwxError as exc:
            checks["structure"] = _fail("structure", exc)
            return finish()
        checks["structure"] = Check("structure", PASS, details={"members": len(members)})
        info["doc_id"], info["files"] = listed["doc_id"], len(listed["files"])

        files: dict[str, dict[str, Any]] = {f["path"]: f for f in listed["files"]}
        hash_name = listed["hash"]
        small: dict[str, bytes] = {}
        package_file = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 (closed below)
        try:
            try:
                present = set(members) - {A.MANIFEST_NAME, A.TOKEN_NAME}
                missing, unlisted = sorted(set(files) - present), sorted(present - set(files))
                if missing:
                    raise E.ArchiveFileMissing(f"the manifest lists {missing[0]}, which the archive does not hold",
                                               path=missing[0], count=len(missing))
                if unlisted:
                    raise E.ArchiveFileUnlisted(f"the archive holds {unlisted[0]}, which its manifest does not list",
                                                path=unlisted[0], count=len(unlisted))
                held = 0
                for path, entry in files.items():
                    is_package = path == A.PACKAGE_NAME
                    cap = limits.max_package_bytes if is_package else limits.max_member_bytes
                    digest, size, parts = digests.new(hash_name), 0, []
                    for chunk in _stream(zf, members[path], cap, limits):
                        digest.update(chunk)
                        size += len(chunk)
                        if is_package:
                            package_file.write(chunk)
                        else:
                            parts.append(chunk)
                            held += len(chunk)
                            if held > limits.max_evidence_bytes:
                                raise E.ArchiveTooLarge(f"the evidence files hold more than {limits.max_evidence_bytes}"
                                                        " bytes in all", path=path)
                    if not is_package:
                        small[path] = b"".join(parts)
                    if digest.hexdigest() != entry[hash_name] or size != entry["size"]:
                        raise E.ArchiveDigestMismatch(f"{path} is not the file the manifest lists ({hash_name} or "
                                                      "size differs): changed after archiving", path=path)
                checks["manifest"] = Check("manifest", PASS, details={"files": len(files), "hash": hash_name})
            except GwxError as exc:
                checks["manifest"] = _fail("manifest", exc)
                return finish()

            try:
                stamp = tsa.verify_token(token, manifest_bytes, trust_roots=roots, tsa_certificates=intermediates,
                                         revocation=crls_at)
            except GwxError as exc:
                checks["timestamp"] = _fail("timestamp", exc)
                return finish()
            when = stamp.gen_time
            info["judged_at"] = when
            checks["timestamp"] = Check("timestamp", PASS, details={
                "gen_time": when.isoformat(), "tsa": stamp.tsa_certificate.subject.rfc4514_string(),
                "imprint": stamp.hash_name})
            chain, unusable = _chain(small.get(A.CHAIN_NAME), intermediates)
            if unusable:
                info["warnings"] = (unusable,)

            if A.PACKAGE_NAME not in files:
                checks["package"] = _fail("package", E.ArchiveFileMissing("the archive holds no sealed package",
                                                                           path=A.PACKAGE_NAME))
            else:
                package_file.seek(0)
                report = verify_package(package_file, roots, when, revocation=crls_at, revocation_at_stamp=crls_at,
                                        intermediates=chain, judge_at_stamp=True)
                info["package"] = report.to_dict()
                info["title"] = report.title
                first = report.failures[0] if report.failures else None
                checks["package"] = (Check("package", PASS, details={"document_id": str(report.document_id)})
                                     if report.ok else
                                     Check("package", FAIL, first.code if first else E.ArchiveEvidenceInvalid.code,
                                           f"the sealed package: {first.name}: {first.message}" if first
                                           else "the sealed package was not fully checked"))
            # The file names are not signed: each header and receipt is tied to this document through the
            # message ids the index lists and the headers' own (signed) ids.
            archived_ids = _archived_message_ids(small.get(A.INDEX_NAME))
            header_ids: set[str] = set()

            def header_about_this(data: bytes) -> str:
                header = decode_header(data)
                if header.message_id not in archived_ids:
                    raise E.ArchiveEvidenceInvalid(f"envelope {header.message_id} is not one of this document's "
                                                   "messages the index lists", message_id=header.message_id)
                if header.in_reply_to is not None and header.in_reply_to not in archived_ids:
                    raise E.ArchiveEvidenceInvalid(f"envelope {header.message_id} answers {header.in_reply_to}, "
                                                   "not a message of this document", message_id=header.message_id)
                header_ids.add(header.message_id)
                return header.origin_node

            def receipt_about_this(data: bytes) -> str:
                receiver, mid = _receipt_fields(data)
                if mid not in header_ids:
                    raise E.ArchiveEvidenceInvalid(f"a receipt acknowledges {mid}, whose envelope is not in the "
                                                   "archive", message_id=mid)
                return receiver

            checks["envelopes"] = _check_signed(small, A.ENVELOPES_DIR, ".header.json", "envelopes", roots, when,
                                                chain, crls_at, header_about_this)
            checks["receipts"] = _check_signed(small, A.RECEIPTS_DIR, ".json", "receipts", roots, when, chain,
                                               crls_at, receipt_about_this)
            package_digests: dict[str, str] = {}

            def package_digest(algorithm: str) -> str | None:
                """The archived package's digest a statement names it by (SM3: an SM2 seal's statement)."""
                if A.PACKAGE_NAME not in files:
                    return None
                if algorithm == hash_name:
                    return files[A.PACKAGE_NAME][hash_name]
                if algorithm not in package_digests:
                    package_digests[algorithm] = _file_digest(package_file, algorithm)
                return package_digests[algorithm]

            checks["statements"] = _check_statements(small, roots, when, chain, crls_at, listed["doc_id"],
                                                     package_digest)
            checks["audit"] = _check_audit(small.get(A.AUDIT_NAME))
            checks["index"] = _check_index(small.get(A.INDEX_NAME), files, hash_name, info)
        finally:
            package_file.close()
    return finish()


# ---- the ZIP, read as hostile --------------------------------------------------------------------

def _check_directory(zf: zipfile.ZipFile, limits: ArchiveLimits) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise E.ArchiveTooLarge(f"{len(infos)} members, at most {limits.max_members}", count=len(infos))
    members: dict[str, zipfile.ZipInfo] = {}
    folded: set[str] = set()  # names as a case-insensitive file system sees them
    total = 0
    for info in infos:
        name = info.orig_filename
        if name not in (A.MANIFEST_NAME, A.TOKEN_NAME) and not A.SAFE_NAME.match(name):
            raise E.ArchiveUnsafeName(f"member name {name!r} is not allowed in an archive (a path that could "
                                      "leave the directory it is unpacked into, or an unexpected name)", name=name)
        if name.lower() in folded:
            raise E.ArchiveUnsafeName(f"member name {name!r} occurs twice", name=name)
        folded.add(name.lower())
        if info.flag_bits & 0x1:
            raise E.ArchiveMalformed(f"member {name!r} is encrypted", name=name)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise E.ArchiveMalformed(f"member {name!r} uses compression method {info.compress_type}", name=name)
        if info.create_system == 3 and stat.S_IFMT(info.external_attr >> 16) == stat.S_IFLNK:
            raise E.ArchiveUnsafeName(f"member {name!r} is a symbolic link", name=name)
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise E.ArchiveZipBomb(f"member {name!r} declares a compression ratio above {limits.max_ratio}", name=name)
        cap = limits.max_package_bytes if name == A.PACKAGE_NAME else limits.max_member_bytes
        if info.file_size > cap:
            raise E.ArchiveTooLarge(f"member {name!r} declares {info.file_size} bytes, at most {cap}", name=name)
        total += info.file_size
        if total > limits.max_total_bytes:
            raise E.ArchiveTooLarge(f"members declare more than {limits.max_total_bytes} bytes in total")
        members[name] = info
    overlap = overlapping_members(infos)
    if overlap:
        raise E.ArchiveZipBomb(f"members {overlap[0]!r} and {overlap[1]!r} overlap (an overlapping-file zip bomb)",
                               name=overlap[0])
    for name in (A.MANIFEST_NAME, A.TOKEN_NAME):
        if name not in members:
            raise E.ArchiveMalformed(f"the archive has no {name}", name=name)
    return members


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, limits: ArchiveLimits) -> Iterator[bytes]:
    """The member's bytes, counted as they come out: headers can lie about sizes and ratios."""
    out = 0
    try:
        with zf.open(info) as member:
            while chunk := member.read(A.CHUNK):
                out += len(chunk)
                if out > cap:
                    raise E.ArchiveTooLarge(f"member {info.orig_filename!r} inflates past {cap} bytes",
                                            name=info.orig_filename)
                if out > limits.ratio_floor_bytes and out > limits.max_ratio * max(info.compress_size, 1):
                    raise E.ArchiveZipBomb(f"member {info.orig_filename!r} inflates beyond a ratio of "
                                           f"{limits.max_ratio}", name=info.orig_filename)
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise E.ArchiveMalformed(f"member {info.orig_filename!r} does not read: {exc}",
                                 name=info.orig_filename) from None


def _read(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, cap: int,
          limits: ArchiveLimits) -> bytes:
    return b"".join(_stream(zf, members[name], cap, limits))


def _parse_manifest(data: bytes) -> dict[str, Any]:
    raw = load_json(data, max_bytes=len(data) + 1, what="archive manifest", error=E.ArchiveMalformed)
    if not isinstance(raw, dict) or raw.get("format") != A.FORMAT or raw.get("v") != A.VERSION \
            or raw.get("hash") not in digests.NAMES or not isinstance(raw.get("files"), list) \
            or not isinstance(raw.get("doc_id"), str):
        raise E.ArchiveMalformed("META-INF/manifest.json is not a version 1 gwx archive manifest")
    seen: set[str] = set()
    hash_name = raw["hash"]  # the network's digest: sha256 (and every archive made before SM3 was), or sm3
    for f in raw["files"]:
        if not isinstance(f, dict) or set(f) != {"path", hash_name, "size"} or not isinstance(f["path"], str) \
                or not isinstance(f[hash_name], str) or len(f[hash_name]) != 64 or not isinstance(f["size"], int):
            raise E.ArchiveMalformed(f"a manifest entry is not {{path, {hash_name}, size}}")
        if not A.SAFE_NAME.match(f["path"]) or f["path"] in seen or f["path"].startswith("META-INF/"):
            raise E.ArchiveUnsafeName(f"the manifest lists {f['path']!r}, a name not allowed or given twice",
                                      name=f["path"])
        seen.add(f["path"])
    return raw


# ---- the evidence ----------------------------------------------------------------------------------

def _chain(pem: bytes | None, given: Sequence[x509.Certificate]) -> tuple[tuple[x509.Certificate, ...], str | None]:
    """The intermediates to build paths with, and a warning when the archive's chain is unusable: a later
    "does not chain" failure would otherwise point at the signature rather than at this file."""
    if not pem:
        return tuple(given), None
    try:
        return (*given, *x509.load_pem_x509_certificates(pem)), None
    except ValueError as exc:
        return tuple(given), (f"{A.CHAIN_NAME} does not parse ({exc}); it was not used: a path that needs "
                              "an intermediate CA then needs --chain")


def _archived_message_ids(data: bytes | None) -> frozenset[str]:
    """The message ids index.json lists as this document's (none when it is unreadable: the index
    check says why, and no header then counts as this document's)."""
    try:
        index = load_json(data or b"", max_bytes=len(data or b"") + 1, what="index.json", error=E.ArchiveMalformed)
    except GwxError:
        return frozenset()
    ids = index.get("归档", {}).get("message_ids") if isinstance(index, dict) and isinstance(
        index.get("归档"), dict) else None
    return frozenset(i for i in ids if isinstance(i, str)) if isinstance(ids, list) else frozenset()


def _receipt_fields(data: bytes) -> tuple[str, str]:
    raw = load_json(data, max_bytes=64 * 1024, what="transport receipt", error=E.ArchiveMalformed)
    if not isinstance(raw, dict) or raw.get("type") != RECEIPT_KIND or not isinstance(raw.get("receiver"), str) \
            or not isinstance(raw.get("message_id"), str):
        raise E.ArchiveMalformed("not a gwx transport receipt")
    return raw["receiver"], raw["message_id"]


def _check_signed(small: dict[str, bytes], prefix: str, suffix: str, name: str, roots, when: dt.datetime,
                  chain, revocation, signer_node: Callable[[bytes], str]) -> Check:
    items = sorted(p for p in small if p.startswith(prefix) and p.endswith(suffix))
    signatures = {p for p in small if p.startswith(prefix) and p.endswith(A.SIGNATURE_SUFFIX)}
    if not items and not signatures:
        return Check(name, ABSENT, message=f"no {name} in the archive")
    for path in items:
        try:
            if path + A.SIGNATURE_SUFFIX not in small:
                raise E.ArchiveFileMissing(f"{path} has no signature beside it", path=path + A.SIGNATURE_SUFFIX)
            claimed = signer_node(small[path])
            result = cms.verify_detached(small[path + A.SIGNATURE_SUFFIX], small[path], trust_roots=roots, now=when,
                                         intermediates=chain, purpose=Purpose.SIGNING, revocation=revocation)
            signer = node_id_of(result.signer_certificate)
            if signer != claimed:
                raise E.ArchiveEvidenceInvalid(f"{path} names node {claimed!r} but is signed by {signer!r}",
                                               path=path)
        except E.ArchiveError as exc:
            return _fail(name, exc, path=path)
        except GwxError as exc:
            return _fail(name, E.ArchiveEvidenceInvalid(f"{path}: {exc.message}", path=path, cause=exc.code))
    orphans = signatures - {p + A.SIGNATURE_SUFFIX for p in items}
    if orphans:
        first = sorted(orphans)[0]
        return _fail(name, E.ArchiveEvidenceInvalid(f"{first} signs nothing in the archive", path=first))
    return Check(name, PASS, details={"count": len(items)})


def _file_digest(handle: BinaryIO, algorithm: str) -> str:
    handle.seek(0)
    h = digests.new(algorithm)
    while chunk := handle.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def _check_statements(small: dict[str, bytes], roots, when: dt.datetime, chain, revocation,
                      doc_id: str, package_digest: Callable[[str], str | None]) -> Check:
    """Each unit-signed 签收/退回 statement, by the ``evidence`` work's own verifier
    (:func:`exchange_protocol.statements.verify_statement`: id-data content attached, ESS
    signingCertificateV2, a seal certificate under the root at the genTime naming the statement's unit,
    strict canonical shape), and about this document and these package bytes (by the statement's
    digest: SHA-256, SM3 for an SM2 seal's)."""
    items = sorted(p for p in small if p.startswith(A.STATEMENTS_DIR))
    if not items:
        return Check("statements", ABSENT, message="no unit-signed statements in the archive")
    units = set()
    for path in items:
        try:
            statement = verify_statement(small[path], roots, now=when, intermediates=tuple(chain),
                                         revocation=revocation).statement
            for key, got, want in (("doc_id", statement.doc_id, doc_id),
                                   (statement.digest_field, statement.package_digest,
                                    package_digest(statement.digest_algorithm))):
                if got != want:
                    raise E.ArchiveEvidenceInvalid(f"{path}: its {key} is {got!r}, not {want!r}", path=path, field=key)
            units.add(statement.unit)
        except E.ArchiveError as exc:
            return _fail("statements", exc, path=path)
        except GwxError as exc:
            return _fail("statements", E.ArchiveEvidenceInvalid(f"{path}: {exc.message}", path=path, cause=exc.code))
    return Check("statements", PASS, details={"count": len(items), "units": sorted(units)})


def _check_audit(data: bytes | None) -> Check:
    if data is None:
        return _fail("audit", E.ArchiveFileMissing("the archive holds no audit excerpt", path=A.AUDIT_NAME))
    try:  # strict and bounded: a list, a string or a deeply nested array is a typed failure, not a traceback
        excerpt = load_json(data, max_bytes=len(data) + 1, what="audit/excerpt.json", error=E.ArchiveMalformed)
    except GwxError as exc:
        return _fail("audit", E.ArchiveAuditBroken(exc.message, reason="format"))
    try:
        checked = check_excerpt(excerpt)
    except GwxError as exc:
        return _fail("audit", exc)
    details = {"events": checked.events, "links_recomputed": checked.recomputed,
               "links_not_recomputed": checked.not_recomputed, "head_seq": checked.head_seq}
    if checked.not_recomputed == 0:
        message = (f"{checked.events} events intact; every link from the first to the head (seq {checked.head_seq}) "
                   "recomputed: no event between them removed, reordered or replaced")
    else:  # v1 links (before the log's v2 seq) of events not given in full are taken as recorded
        message = (f"{checked.events} events intact; {checked.recomputed} links recomputed, {checked.not_recomputed} "
                   "written before the log's hash version 2 recorded, not recomputed: an event removed among "
                   "those would not be detected")
    return Check("audit", PASS, details=details, message=message)


def _check_index(data: bytes | None, files: dict[str, dict[str, Any]], hash_name: str, info: dict[str, Any]) -> Check:
    try:
        if data is None:
            raise E.ArchiveFileMissing("the archive holds no index.json", path=A.INDEX_NAME)
        index = load_json(data, max_bytes=len(data) + 1, what="index.json", error=E.ArchiveMalformed)
        if not isinstance(index, dict):
            raise E.ArchiveMalformed("index.json is not a JSON object")
        meta, archived = index.get("元数据"), index.get("归档")
        if not isinstance(meta, dict) or not isinstance(archived, dict):
            raise E.ArchiveMalformed("index.json lacks 元数据 or 归档")
        package = files.get(A.PACKAGE_NAME)
        if package is None or archived.get(A.package_key(hash_name)) != package[hash_name]:
            raise E.ArchiveDigestMismatch("index.json names another sealed package than the one archived",
                                          path=A.INDEX_NAME)
        if meta.get("公文标识") != info.get("doc_id") or (
                info.get("package") and info["package"].get("document_id") not in (None, meta.get("公文标识"))):
            raise E.ArchiveMalformed("index.json, the manifest and the sealed package name different 公文标识")
        info.setdefault("title", meta.get("标题"))
        return Check("index", PASS)
    except GwxError as exc:
        return _fail("index", exc)


__all__ = ["CHECKS", "ArchiveLimits", "ArchiveReport", "verify_archive"]
