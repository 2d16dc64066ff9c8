"""Building the sealed document package (one 公文) as a ZIP, streamed.

Layout (in this order in the archive)::

    metadata.json            canonical JSON of the DocumentMetadata (meta_json.meta_to_json)
    body.pdf                 the document, PAdES-sealed with the unit's seal key (exchange_protocol.pades)
      or body.ofd            an OFD document, sealed inside per GB/T 38540 (exchange_protocol.ofd_seal)
    attachments/<name>       the 附件, names as given (UTF-8, ZIP flag bit 11 set)
    META-INF/seal.esl        the SESeal the document was sealed under (listed in the manifest)
    META-INF/manifest.json   path, SHA-256, size, media type of each file above (canonical JSON)
    META-INF/signature.p7s   detached CMS over the manifest bytes: signingTime, ESS
                             signing-certificate-v2, the seal certificate (and chain) included
    META-INF/timestamp.tsr   optional RFC 3161 token over the SHA-256 of the CMS signature value

Streaming: attachments are copied in 1 MiB chunks from caller-supplied file objects straight
into ``ZipFile.open(info, "w")`` while being hashed, so a 2 GiB attachment never sits in memory;
members larger than 2 GiB (or of unknown size) get ZIP64 headers. The output may be any writable
binary file object, seekable or not. Only the body is held whole (PAdES needs a seekable PDF),
bounded by ``max_body_bytes``. The body is PDF or OFD by its first bytes (``%PDF-``, or a ZIP
whose directory names ``OFD.xml``), never by a name or a media type the sender claims.

Sans-I/O in spirit: this module opens no files and reads no clock — the caller hands in file
objects, the time, the seal credential (a :class:`pki.signer.Signer` behind it, so a PKCS#11 key
works the same) and, optionally, a time stamper (``request DER -> response DER``) that does the
transport. Synchronous, because pyHanko is (see :mod:`.pades`): call it from a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import secrets
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

from cryptography import x509

from pki import cms, tsa
from pki.seal import Seal
from pki.signer import Signer

from . import digests
from .errors import PackageBodyTooLarge, PackageDuplicateName, PackageInputError, PackageNotPdf
from .manifest import (
    BODY_NAME,
    MANIFEST_NAME,
    METADATA_NAME,
    OFD_BODY_NAME,
    SEAL_NAME,
    SIGNATURE_NAME,
    TIMESTAMP_NAME,
    Manifest,
    ManifestEntry,
    attachment_member,
    guess_media_type,
    name_key,
)
from .meta_json import meta_to_json
from .model import DocumentMetadata, check_metadata
from .ofd_container import looks_like_ofd
from .ofd_seal import seal_ofd
from .sniff import check_not_archive

CHUNK = 1024 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_ATTACHMENTS = 500
# Deflating these again costs CPU and saves nothing: they are stored as they are.
_ALREADY_COMPRESSED = (".pdf", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".docx", ".xlsx", ".pptx", ".ofd",
                       ".odt", ".ods", ".odp", ".mp3", ".mp4", ".m4a", ".mov", ".avi", ".mkv")
# A time stamper does the transport to a TSA: TimeStampReq DER in, TimeStampResp DER out.
TimeStamper = Callable[[bytes], bytes]

if TYPE_CHECKING:  # .pades loads pyhanko, ~15 % of a node's start-up: imported where a PDF is sealed
    from .pades import Box


class SealKey(Protocol):
    """What the builder needs of a seal credential (``pki.seal_store.SealCredential`` fits)."""

    @property
    def seal(self) -> Seal: ...

    @property
    def signer(self) -> Signer: ...


@dataclass(frozen=True)
class Attachment:
    """One 附件: ``name`` is the file name the recipient sees; ``source`` bytes or a binary file."""

    name: str
    source: bytes | BinaryIO
    media_type: str | None = None


@dataclass(frozen=True)
class BuiltPackage:
    """What was written: the signed manifest and the signature (the node stores and indexes these)."""

    document_id: str
    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes
    timestamp: bytes | None
    sealed_at: dt.datetime


@dataclass(frozen=True)
class PackageBuilder:
    """Immutable description of a package; :meth:`build` validates everything, then writes."""

    metadata: DocumentMetadata | None = None
    body: bytes | BinaryIO | None = None
    attachments: tuple[Attachment, ...] = ()
    seal_box: Box | None = None
    seal_page: int = -1
    max_body_bytes: int = MAX_BODY_BYTES
    chain: tuple[x509.Certificate, ...] = ()  # intermediates between the seal certificate and the root

    def with_metadata(self, metadata: DocumentMetadata) -> PackageBuilder:
        return dataclasses.replace(self, metadata=metadata)

    def with_body(self, pdf: bytes | BinaryIO) -> PackageBuilder:
        return dataclasses.replace(self, body=pdf)

    def with_attachment(self, name: str, source: bytes | BinaryIO, media_type: str | None = None
                        ) -> PackageBuilder:
        return dataclasses.replace(self, attachments=(*self.attachments, Attachment(name, source, media_type)))

    def with_seal_box(self, box: Box, page: int = -1) -> PackageBuilder:
        return dataclasses.replace(self, seal_box=box, seal_page=page)

    def with_chain(self, chain: Sequence[x509.Certificate]) -> PackageBuilder:
        return dataclasses.replace(self, chain=tuple(chain))

    def build(self, out: BinaryIO, seal_key: SealKey, *, at: dt.datetime,
              timestamper: TimeStamper | None = None) -> BuiltPackage:
        """Validate, seal the body, write the ZIP to ``out``; return what was signed."""
        if at.tzinfo is None:
            raise PackageInputError("the sealing time must be timezone-aware")
        meta = self._checked_metadata()
        members = self._checked_attachment_names()
        pdf = self._read_body()
        signer, seal = seal_key.signer, seal_key.seal
        if signer.certificate is None or not seal.matches_certificate(signer.certificate):
            raise PackageInputError("the seal key's certificate is not one the seal lists")
        if seal.unit_code != meta.issuers[0]:
            raise PackageInputError(f"the seal belongs to unit {seal.unit_code}, not to the lead issuing organ "
                                    f"(发文机关) {meta.issuers[0]}, who seals", code="PKG_SEAL_NOT_ISSUER",
                                    seal_unit=str(seal.unit_code))

        if looks_like_ofd(pdf):
            body_name, media_type = OFD_BODY_NAME, "application/ofd"
            sealed_body = seal_ofd(pdf, signer, seal, at=at, page=self.seal_page)
        else:
            from .pades import pades_sealer

            body_name, media_type = BODY_NAME, "application/pdf"
            sealed_body = pades_sealer(signer, seal, self.chain).seal_pdf(
                pdf, at=at, seal_box=self.seal_box, page=self.seal_page)
        entries: list[ManifestEntry] = []
        stamp = _zip_time(at)
        algorithm = signer.algorithm.hash_name  # the manifest lists the files by the signer's digest (SM3 for SM2)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            entries.append(_write_bytes(zf, METADATA_NAME, meta_to_json(meta), "application/json", stamp,
                                        algorithm=algorithm))
            entries.append(_write_bytes(zf, body_name, sealed_body, media_type, stamp, compress=False,
                                        algorithm=algorithm))
            for member, att in zip(members, self.attachments, strict=True):
                entries.append(_write_stream(zf, member, att, stamp, algorithm))
            entries.append(_write_bytes(zf, SEAL_NAME, seal.der, "application/octet-stream", stamp,
                                        algorithm=algorithm))
            manifest = Manifest.of(entries)
            manifest_bytes = manifest.to_bytes()
            signature = cms.sign_detached(manifest_bytes, signer, signing_time=at, extra_certs=self.chain)
            _write_raw(zf, MANIFEST_NAME, manifest_bytes, stamp)
            _write_raw(zf, SIGNATURE_NAME, signature, stamp)
            token = _time_stamp(signature, timestamper) if timestamper is not None else None
            if token is not None:
                _write_raw(zf, TIMESTAMP_NAME, token, stamp)
        return BuiltPackage(meta.id or "", manifest, manifest_bytes, signature, token, at)

    # ---- validation --------------------------------------------------------------------------
    def _checked_metadata(self) -> DocumentMetadata:
        if not isinstance(self.metadata, DocumentMetadata):
            raise PackageInputError("a package needs its metadata (a DocumentMetadata)")
        if self.metadata.id is None:
            raise PackageInputError("the metadata has no 公文标识 (id): assign one before packing")
        check_metadata(self.metadata)  # policy: refuses classified documents (DOC_CLASSIFIED_REFUSED)
        return self.metadata

    def _checked_attachment_names(self) -> list[str]:
        if len(self.attachments) > MAX_ATTACHMENTS:
            raise PackageInputError(f"at most {MAX_ATTACHMENTS} attachments, not {len(self.attachments)}")
        members, seen = [], set()
        for att in self.attachments:
            member = attachment_member(att.name)
            key = name_key(member)
            if key in seen:
                raise PackageDuplicateName(f"two attachments are called {att.name!r}", name=att.name)
            seen.add(key)
            members.append(member)
        return members

    def _read_body(self) -> bytes:
        if self.body is None:
            raise PackageInputError("a package needs its body (PDF or OFD)")
        if isinstance(self.body, (bytes, bytearray, memoryview)):
            pdf = bytes(self.body)
        else:
            pdf = self.body.read(self.max_body_bytes + 1)
        if len(pdf) > self.max_body_bytes:
            raise PackageBodyTooLarge(f"the body is larger than {self.max_body_bytes} bytes",
                                      limit=self.max_body_bytes)
        if not pdf.startswith(b"%PDF-") and not looks_like_ofd(pdf):
            raise PackageNotPdf("the body is neither a PDF (no %PDF- header) nor an OFD (a ZIP with OFD.xml)")
        return pdf


def build_package(out: BinaryIO, *, metadata: DocumentMetadata, body: bytes | BinaryIO, seal_key: SealKey,
                  at: dt.datetime, attachments: Sequence[Attachment] = (),
                  timestamper: TimeStamper | None = None, seal_box: Box | None = None,
                  chain: Sequence[x509.Certificate] = ()) -> BuiltPackage:
    """Write the sealed package for ``metadata`` + ``body`` + ``attachments`` to ``out``."""
    builder = PackageBuilder(metadata=metadata, body=body, attachments=tuple(attachments),
                             seal_box=seal_box, chain=tuple(chain))
    return builder.build(out, seal_key, at=at, timestamper=timestamper)


# ---- writing ------------------------------------------------------------------------------------


def _zip_time(at: dt.datetime) -> tuple[int, int, int, int, int, int]:
    t = at.astimezone(dt.UTC)
    return (max(t.year, 1980), t.month, t.day, t.hour, t.minute, t.second)


def _info(name: str, stamp: tuple, compress: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    # Names are UTF-8: zipfile sets APPNOTE bit 11 on every non-ASCII name it writes (an ASCII
    # name reads the same either way), so Chinese names arrive intact in any unzip.
    info.external_attr = 0o100644 << 16  # a regular file, never a link
    info.create_system = 3
    return info


def _write_raw(zf: zipfile.ZipFile, name: str, data: bytes, stamp: tuple) -> None:
    with zf.open(_info(name, stamp, compress=True), "w") as dst:
        dst.write(data)


def _write_bytes(zf: zipfile.ZipFile, name: str, data: bytes, media_type: str, stamp: tuple,
                 compress: bool = True, algorithm: str = digests.SHA256) -> ManifestEntry:
    with zf.open(_info(name, stamp, compress=compress), "w") as dst:
        dst.write(data)
    return ManifestEntry(name, digests.hexdigest(algorithm, data), len(data), media_type, algorithm)


def _write_stream(zf: zipfile.ZipFile, member: str, att: Attachment, stamp: tuple,
                  algorithm: str = digests.SHA256) -> ManifestEntry:
    source = io.BytesIO(att.source) if isinstance(att.source, (bytes, bytearray, memoryview)) else att.source
    info = _info(member, stamp, compress=not member.lower().endswith(_ALREADY_COMPRESSED))
    digest, size, first = digests.new(algorithm), 0, True
    # Size unknown in advance: ZIP64 headers so the member may exceed 4 GiB.
    with zf.open(info, "w", force_zip64=True) as dst:
        while chunk := source.read(CHUNK):
            if first:
                check_not_archive(member, chunk)  # refuse now what every receiver would refuse
                first = False
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    media_type = att.media_type or guess_media_type(att.name)
    return ManifestEntry(member, digest.hexdigest(), size, media_type, algorithm)


def _time_stamp(signature_der: bytes, timestamper: TimeStamper) -> bytes:
    """An RFC 3161 token over the digest of the CMS signature value (as CAdES-T stamps it), with the
    signature's own digest: SHA-256, or SM3 for an SM2 signature on a 国密 network."""
    hash_name = signature_hash(signature_der)
    digest = tsa.make_imprint(hash_name, signature_value(signature_der))
    nonce = secrets.randbits(63)
    token = tsa.token_from_response(timestamper(tsa.make_request(digest=digest, hash_name=hash_name, nonce=nonce,
                                                                 cert_req=True)))
    # Trust is the receiver's decision; here we only make sure the TSA answered *this* request
    # (imprint, nonce, its own signature), anchoring on the certificate it sent.
    tsa_certs = [c.chosen for c in cms.parse_signed_data(token)["certificates"] if c.name == "certificate"]
    if not tsa_certs:
        raise PackageInputError("the time-stamp token carries no TSA certificate (certReq was set)")
    anchors = [x509.load_der_x509_certificate(c.dump()) for c in tsa_certs]
    tsa.verify_token(token, digest=digest, trust_roots=anchors, nonce=nonce)
    return token


def signature_hash(signature_der: bytes) -> str:
    """The digest algorithm of the (first) SignerInfo ("sha256", "sm3"): the time stamp's imprint takes it."""
    return cms.first_signer(signature_der)[0]


def signature_value(signature_der: bytes) -> bytes:
    """The signature value of the (first) SignerInfo: what ``timestamp.tsr`` stamps."""
    return cms.first_signer(signature_der)[1]
