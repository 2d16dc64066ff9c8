"""The archive package (一键归档, issue 10 §4): one finished 公文 and the evidence of its handling in
one ZIP (``*.gwxa``) that proves itself offline, years later, without the node's database.

Layout::

    index.json                              what the document is, in GB/T 33480 metadata names (below)
    package.zip                             the sealed package exactly as it travelled (byte-identical)
    evidence/envelopes/<id>.header.json     a signed envelope header about the document, its exact bytes
    evidence/envelopes/<id>.header.json.p7s the origin node's detached CMS over them
    evidence/receipts/<id>.json             a signed transport receipt's signed text
    evidence/receipts/<id>.json.p7s         the receiving node's detached CMS over it
    evidence/statements/<name>.p7s          unit-signed 签收/退回 statements (CMS, content attached)
    audit/excerpt.json                      the audit log's events about the document with their chain
                                            (:mod:`.audit_chain`)
    certs/chain.pem                         the CA certificates the node holds (paths to the root)
    META-INF/manifest.json                  canonical JSON: every file above, its digest and size
    META-INF/manifest.tsr                   an RFC 3161 time-stamp token over the digest of manifest.json

**The network's digest** (:mod:`.digests`): SHA-256 on an international network, SM3 (GB/T 32905) on a
国密 one — the manifest names it (``"hash": "sha256"`` or ``"sm3"``) and each entry carries its digest
under that name (``{"path", "sm3", "size"}``), the index names the package by it (``package_sm3``),
and the time-stamp's imprint is that digest of the manifest. The verifier reads either, so an
archive made before (SHA-256 on every network) stays verifiable.

Every signature is a detached (or attached) CMS next to the exact bytes it signs, so ``openssl cms
-verify -binary -content X -in X.p7s -inform DER`` checks each on its own.

**One time-stamp over the manifest**, not one per item: the manifest lists every file's digest, so
a token over it proves every listed byte existed at its genTime — the same proof with one request
to the TSA instead of dozens (a 3,600-unit 通知 has thousands of receipts), one token to re-stamp
when its algorithms age, and ``openssl ts -verify -data META-INF/manifest.json`` checks it (a 国密
network's token is GB/T 35275 CMS, which openssl's ``ts`` does not read: ``openssl dgst -sm3`` gives
the imprint and checks the SM2 signature over its signed attributes).

The writer streams: each file goes into the ZIP chunk by chunk while it is hashed (the sealed
package may be gigabytes); only the manifest is held. The output may be unseekable.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from pki import tsa

from . import digests
from .archive_errors import ArchiveInputError
from .canonical import canonical_json
from .model import DocumentMetadata

FORMAT = "gwx-archive"
VERSION = 1
MANIFEST_NAME = "META-INF/manifest.json"
TOKEN_NAME = "META-INF/manifest.tsr"
INDEX_NAME = "index.json"
PACKAGE_NAME = "package.zip"
AUDIT_NAME = "audit/excerpt.json"
CHAIN_NAME = "certs/chain.pem"
ENVELOPES_DIR = "evidence/envelopes/"
RECEIPTS_DIR = "evidence/receipts/"
STATEMENTS_DIR = "evidence/statements/"
SIGNATURE_SUFFIX = ".p7s"
STATEMENT_KIND = "gwx-notice-statement"  # the content of a unit-signed 签收/退回 statement (kind field)
# Member names: ASCII segments starting with a letter or digit — no "..", no absolute path, no
# backslash, nothing an unzip tool could turn into a path outside its directory.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,3}$")
CHUNK = 1024 * 1024
TimeStamper = Callable[[bytes], bytes]  # TimeStampReq DER in, TimeStampResp DER out


@dataclass(frozen=True)
class ArchiveEntry:
    path: str
    digest: str  # lower-case hex of ``hash_name``
    size: int
    hash_name: str = digests.SHA256

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, self.hash_name: self.digest, "size": self.size}


def package_key(hash_name: str) -> str:
    """The index's name for the sealed package's digest: ``package_sha256`` or ``package_sm3``."""
    return f"package_{hash_name}"


def gbt33480_index(meta: DocumentMetadata, *, package_digest: str, side: str, units: Iterable[str],
                   handling: Iterable[dict[str, Any]], archived_at: dt.datetime, node_id: str,
                   hash_name: str = digests.SHA256) -> dict[str, Any]:
    """The index: the GB/T 33480 elements the package's metadata gives, under their standard names.

    Only what gwx holds is written — 档号 and 保管期限 are the archive office's to assign and are named
    in ``未著录`` (not described) rather than invented. ``处理`` is the per-unit handling as this node
    recorded it (签收/退回/撤回, who, when, reason). ``package_digest`` is the archive's digest
    (``hash_name``) of the sealed package.
    """
    elements: dict[str, Any] = {
        "公文标识": meta.id, "文种": str(meta.kind), "标题": meta.title,
        "发文机关": list(meta.issuers), "主送机关": list(meta.to), "抄送机关": list(meta.cc),
        "成文日期": meta.written_on.isoformat(), "密级和保密期限": str(meta.classification),
    }
    optional = {"发文字号": meta.doc_number.format() if meta.doc_number else None,
                "签发人": list(meta.signers) or None, "紧急程度": str(meta.urgency) if meta.urgency else None,
                "份号": meta.copy_number, "印发机关": meta.printed_by,
                "印发日期": meta.printed_on.isoformat() if meta.printed_on else None,
                "附注": meta.note, "附件说明": meta.attachments_note}
    elements.update({k: v for k, v in optional.items() if v is not None})
    return {"format": FORMAT, "v": VERSION, "元数据": elements, "未著录": ["档号", "保管期限"],
            "归档": {"node": node_id, "side": side, "units": sorted(units), "at": _utc(archived_at),
                     package_key(hash_name): package_digest},
            "处理": list(handling)}


class ArchiveWriter:
    """Write an archive package into ``out`` (see the module doc); :meth:`finish` stamps and closes.
    ``hash_name``: the network's digest (:func:`exchange_protocol.digests.for_profile`)."""

    def __init__(self, out: BinaryIO, hash_name: str = digests.SHA256) -> None:
        if hash_name not in digests.NAMES:
            raise ArchiveInputError(f"{hash_name!r} is not one of the protocol's digests {digests.NAMES}")
        self.hash_name = hash_name
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._entries: list[ArchiveEntry] = []
        self._names: set[str] = set()

    def add(self, path: str, source: bytes | Iterable[bytes] | BinaryIO, *, stored: bool = False) -> ArchiveEntry:
        """Add one file, streamed from bytes, an iterable of chunks or a binary file object."""
        if not SAFE_NAME.match(path) or path.startswith("META-INF/"):
            raise ArchiveInputError(f"{path!r} is not a name an archive file may have", path=path)
        if path in self._names:
            raise ArchiveInputError(f"{path!r} is added twice", path=path)
        self._names.add(path)
        info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))  # the time-stamp dates it, not the ZIP
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        digest, size = digests.new(self.hash_name), 0
        with self._zip.open(info, "w", force_zip64=True) as member:
            for chunk in _chunks(source):
                digest.update(chunk)
                member.write(chunk)
                size += len(chunk)
        entry = ArchiveEntry(path, digest.hexdigest(), size, self.hash_name)
        self._entries.append(entry)
        return entry

    def finish(self, doc_id: str, created_at: dt.datetime, timestamper: TimeStamper) -> bytes:
        """Write the manifest and its time-stamp token; returns the manifest bytes."""
        manifest = self.write_manifest(doc_id, created_at)
        request = tsa.make_request(digest=tsa.make_imprint(self.hash_name, manifest), hash_name=self.hash_name,
                                   cert_req=True)
        self.close_with_token(tsa.token_from_response(timestamper(request)))
        return manifest

    def write_manifest(self, doc_id: str, created_at: dt.datetime) -> bytes:
        """The manifest of every file added, written; what the time-stamp token must cover. For a
        caller that asks its TSA asynchronously: then :meth:`close_with_token`."""
        manifest = canonical_json({"format": FORMAT, "v": VERSION, "doc_id": doc_id, "created_at": _utc(created_at),
                                   "hash": self.hash_name, "files": [e.to_dict() for e in self._entries]})
        self._write_small(MANIFEST_NAME, manifest)
        return manifest

    def close_with_token(self, token: bytes) -> None:
        self._write_small(TOKEN_NAME, token)
        self._zip.close()

    def _write_small(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self._zip.writestr(info, data)

    def close(self) -> None:
        self._zip.close()


def _chunks(source: bytes | Iterable[bytes] | BinaryIO) -> Iterable[bytes]:
    if isinstance(source, (bytes, bytearray)):
        yield bytes(source)
    elif hasattr(source, "read"):
        while chunk := source.read(CHUNK):  # type: ignore[union-attr]
            yield chunk
    else:
        yield from source  # type: ignore[misc]


def _utc(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_signed_header(writer: ArchiveWriter, header_bytes: bytes, signature: bytes, name: str) -> None:
    """An envelope header (exact bytes) and the origin's detached CMS beside it."""
    writer.add(f"{ENVELOPES_DIR}{name}.header.json", header_bytes)
    writer.add(f"{ENVELOPES_DIR}{name}.header.json{SIGNATURE_SUFFIX}", signature)


def add_receipt(writer: ArchiveWriter, wire: bytes, name: str) -> None:
    """A transport receipt as its signed text and the receiver's detached CMS beside it."""
    from .transport_receipt import parse_receipt  # the one parser of the wire form

    _, body, signature = parse_receipt(wire)
    writer.add(f"{RECEIPTS_DIR}{name}.json", body)
    writer.add(f"{RECEIPTS_DIR}{name}.json{SIGNATURE_SUFFIX}", signature)


def add_statement(writer: ArchiveWriter, der: bytes, name: str) -> None:
    """A unit-signed 签收/退回 statement (CMS SignedData, content attached, DER) as it was signed."""
    writer.add(f"{STATEMENTS_DIR}{name}{SIGNATURE_SUFFIX}", der)
