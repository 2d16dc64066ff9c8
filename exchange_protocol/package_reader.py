"""Reading a document package that may be hostile: every defence a typed error with a stable code.

Opening (:class:`PackageReader`) inspects the central directory before any member is inflated:

- member count (``PKG_TOO_MANY_MEMBERS``); names flagged UTF-8 or plain ASCII (``PKG_NAME_NOT_UTF8``);
  encryption (``PKG_ENCRYPTED_MEMBER``); stored/deflated only (``PKG_UNSUPPORTED_COMPRESSION``);
  symlinks by their Unix mode in the external attributes (``PKG_SYMLINK``); names
  (``PKG_PATH_TRAVERSAL``, ``PKG_ABSOLUTE_PATH``, ``PKG_BAD_PATH``); duplicates, also after NFC
  and case folding (``PKG_DUPLICATE_NAME``); overlapping member data, the trick of the
  overlapping-file zip bomb (``PKG_OVERLAPPING_MEMBERS``);
- declared sizes and ratios, as an early refusal only (``PKG_MEMBER_TOO_LARGE``, ``PKG_TOO_LARGE``,
  ``PKG_ZIP_BOMB``) — headers can lie, so the same limits are enforced again on the bytes that
  actually come out while streaming;
- the layout: metadata.json, the body (body.pdf or body.ofd, exactly one), META-INF/{manifest.json,
  signature.p7s, seal.esl} present (``PKG_MISSING_METADATA``, ``PKG_MISSING_BODY`` …), the manifest parsed strictly (``PKG_BAD_MANIFEST``), and the
  members exactly the files the manifest lists plus the signature and time stamp
  (``PKG_UNLISTED_FILE``, ``PKG_MISSING_FILE``).

Streaming a member (:meth:`PackageReader.iter_member`) counts and hashes what zipfile yields,
refuses past the member, total and ratio limits as soon as they are crossed, sniffs attachments
for nested archives (``PKG_NESTED_ARCHIVE``, :mod:`.sniff`) and at the end compares size and
SHA-256 with the manifest (``PKG_SIZE_MISMATCH``, ``PKG_DIGEST_MISMATCH``). A consumer writing the
chunks somewhere must discard them when the iterator raises. CRC and header/directory
disagreements surface as ``PKG_MALFORMED``.

The ratio limit is compared against the *declared* compressed size: zipfile never reads more
compressed bytes than that, so output/declared is a lower bound of the true ratio. Small members
(below ``ratio_floor_bytes``) are exempt: a short text compresses very well and harms nobody.
"""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from . import digests
from . import errors as E
from .manifest import (
    ATTACHMENTS_DIR,
    BODY_NAME,
    BODY_NAMES,
    MANIFEST_NAME,
    METADATA_NAME,
    SEAL_NAME,
    SIGNATURE_NAME,
    TIMESTAMP_NAME,
    UNLISTED_MEMBERS,
    Manifest,
    ManifestEntry,
    check_member_name,
    name_key,
    parse_manifest,
)
from .sniff import check_not_archive
from .zip_layout import ZIP_OPEN_ERRORS

CHUNK = 1024 * 1024
GiB = 1024 ** 3
MiB = 1024 ** 2
_REQUIRED = ((METADATA_NAME, "PKG_MISSING_METADATA"), (MANIFEST_NAME, "PKG_MISSING_MANIFEST"),
             (SIGNATURE_NAME, "PKG_MISSING_SIGNATURE"), (SEAL_NAME, "PKG_MISSING_SEAL"))
_LISTED_TOP = frozenset({METADATA_NAME, *BODY_NAMES, SEAL_NAME})


@dataclass(frozen=True)
class PackageLimits:
    max_members: int = 1000
    max_member_bytes: int = 8 * GiB
    max_total_bytes: int = 16 * GiB
    max_ratio: int = 200
    ratio_floor_bytes: int = 4 * MiB
    max_body_bytes: int = 64 * MiB
    max_small_bytes: int = 4 * MiB  # metadata, manifest, signature, seal, time stamp


DEFAULT_LIMITS = PackageLimits()


def overlapping_members(infos: list[zipfile.ZipInfo]) -> tuple[str, str] | None:
    """Two members whose data overlap (the overlapping-file zip bomb), or None. Also the archive
    reader's (:mod:`.archive_verify`)."""
    spans = sorted((i.header_offset, i.header_offset + 30 + len(i.orig_filename.encode("utf-8"))
                    + i.compress_size, i.orig_filename) for i in infos)
    for (_, end, name), (start, _, other) in zip(spans, spans[1:], strict=False):
        if end > start:
            return name, other
    return None


class PackageReader:
    """An opened package whose structure and layout passed the checks (see module docstring).

    ``file`` must be a seekable binary file (the central directory is at the end). The reader does
    not own it; use it as a context manager to close the ZipFile.
    """

    def __init__(self, file: BinaryIO, limits: PackageLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._inflated = 0
        try:
            self._zip = zipfile.ZipFile(file, "r")
        except UnicodeDecodeError:
            raise E.PackageNameNotUtf8("a member name is flagged UTF-8 but does not decode as UTF-8") from None
        except ZIP_OPEN_ERRORS as exc:
            raise E.PackageMalformed(f"not a readable ZIP archive: {exc}") from None
        try:
            self._infos = self._check_directory()
            self._check_layout()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> PackageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    # ---- central directory -------------------------------------------------------------------
    def _check_directory(self) -> dict[str, zipfile.ZipInfo]:
        lim = self.limits
        infos = self._zip.infolist()
        if len(infos) > lim.max_members:
            raise E.PackageTooManyMembers(f"{len(infos)} members, at most {lim.max_members} allowed",
                                          count=len(infos), limit=lim.max_members)
        by_name: dict[str, zipfile.ZipInfo] = {}
        keys: set[str] = set()
        declared_total = 0
        for info in infos:
            name = info.orig_filename
            if not info.flag_bits & 0x800 and not name.encode("cp437").isascii():
                raise E.PackageNameNotUtf8(f"member name {name!r} is neither flagged UTF-8 nor ASCII",
                                           name=name)
            if info.flag_bits & 0x1:
                raise E.PackageEncryptedMember(f"member {name!r} is encrypted", name=name)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise E.PackageUnsupportedCompression(
                    f"member {name!r} uses compression method {info.compress_type}; only stored and "
                    "deflated are accepted", name=name, method=info.compress_type)
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_IFMT(mode) == stat.S_IFLNK:
                raise E.PackageSymlink(f"member {name!r} is a symbolic link", name=name)
            check_member_name(name)
            key = name_key(name)
            if key in keys:
                raise E.PackageDuplicateName(f"member name {name!r} occurs twice", name=name)
            keys.add(key)
            if info.file_size > lim.max_member_bytes:
                raise E.PackageMemberTooLarge(f"member {name!r} declares {info.file_size} bytes, at most "
                                              f"{lim.max_member_bytes} allowed", name=name)
            declared_total += info.file_size
            if declared_total > lim.max_total_bytes:
                raise E.PackageTooLarge(f"members declare more than {lim.max_total_bytes} bytes in total",
                                        limit=lim.max_total_bytes)
            if info.file_size > lim.ratio_floor_bytes and \
                    info.file_size > lim.max_ratio * max(info.compress_size, 1):
                raise E.PackageZipBomb(f"member {name!r} declares a compression ratio above {lim.max_ratio}",
                                       name=name)
            by_name[name] = info
        self._check_overlap(infos)
        return by_name

    def _check_overlap(self, infos: list[zipfile.ZipInfo]) -> None:
        overlap = overlapping_members(infos)
        if overlap:
            raise E.PackageOverlappingMembers(f"members {overlap[0]!r} and {overlap[1]!r} overlap", name=overlap[0])

    # ---- layout and the small parts -----------------------------------------------------------
    def _check_layout(self) -> None:
        files = {n for n in self._infos if not n.endswith("/")}
        for name, code in _REQUIRED:
            if name not in files:
                raise E.PackageMissingPart(f"the package has no {name}", code=code, name=name)
        bodies = [name for name in BODY_NAMES if name in files]
        if len(bodies) != 1:  # none, or a PDF and an OFD that could each be shown as the document
            raise E.PackageMissingPart(f"the package has {' and '.join(bodies) or 'no body'}: one body, "
                                       f"{' or '.join(BODY_NAMES)}", code="PKG_MISSING_BODY", name=BODY_NAME)
        self.body_name: str = bodies[0]
        self.manifest_bytes = self._read_small(MANIFEST_NAME)
        self.manifest: Manifest = parse_manifest(self.manifest_bytes)
        for entry in self.manifest.entries:
            if entry.path not in _LISTED_TOP and not entry.path.startswith(ATTACHMENTS_DIR):
                raise E.PackageManifestInvalid(f"manifest lists {entry.path!r}, which has no place in a package",
                                               path=entry.path)
        listed = set(self.manifest.paths)
        extra = sorted(files - listed - UNLISTED_MEMBERS)
        if extra:
            raise E.PackageUnlistedFile(f"member {extra[0]!r} is not in the signed manifest", name=extra[0])
        missing = [name for name in self.manifest.paths if name not in files]
        if missing:
            raise E.PackageMissingFile(f"the manifest lists {missing[0]!r} but the package lacks it",
                                       name=missing[0])
        self.signature = self._read_small(SIGNATURE_NAME)
        self.timestamp = self._read_small(TIMESTAMP_NAME) if TIMESTAMP_NAME in files else None

    def _read_small(self, name: str) -> bytes:
        return b"".join(self._stream(name, self.limits.max_small_bytes, None))

    # ---- streaming ------------------------------------------------------------------------------
    @property
    def attachments(self) -> tuple[ManifestEntry, ...]:
        return self.manifest.attachments

    def iter_member(self, path: str) -> Iterator[bytes]:
        """The verified chunks of a listed file; raises at the first defence or digest failure."""
        entry = self.manifest.get(path)
        if entry is None:
            raise E.PackageMissingFile(f"{path!r} is not a file of this package", name=path)
        cap = self.limits.max_body_bytes if path in BODY_NAMES else (
            self.limits.max_small_bytes if path in (METADATA_NAME, SEAL_NAME) else self.limits.max_member_bytes)
        return self._stream(path, cap, entry)

    def read_member(self, path: str) -> bytes:
        """A small listed file whole (metadata.json, the body, seal.esl), verified against the manifest."""
        if path not in (METADATA_NAME, *BODY_NAMES, SEAL_NAME):
            raise E.PackageError(f"read {path!r} with iter_member: attachments are streamed", name=path)
        return b"".join(self.iter_member(path))

    def verify_contents(self) -> None:
        """Stream every listed file through the checks (nothing is kept)."""
        for entry in self.manifest.entries:
            for _ in self.iter_member(entry.path):
                pass

    def _stream(self, name: str, cap: int, entry: ManifestEntry | None) -> Iterator[bytes]:
        info = self._infos[name]
        lim = self.limits
        digest = digests.new(entry.algorithm if entry is not None else digests.SHA256)
        size = 0
        sniff = entry is not None and name.startswith(ATTACHMENTS_DIR)
        try:
            with self._zip.open(info, "r") as src:
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if size > cap:
                        raise E.PackageMemberTooLarge(f"member {name!r} is larger than {cap} bytes",
                                                      name=name, limit=cap)
                    self._inflated += len(chunk)
                    if self._inflated > lim.max_total_bytes:
                        raise E.PackageTooLarge(f"the package inflates to more than {lim.max_total_bytes} bytes",
                                                limit=lim.max_total_bytes)
                    if size > lim.ratio_floor_bytes and size > lim.max_ratio * max(info.compress_size, 1):
                        raise E.PackageZipBomb(f"member {name!r} inflates more than {lim.max_ratio} times",
                                               name=name)
                    if sniff:
                        check_not_archive(name, chunk)
                        sniff = False
                    digest.update(chunk)
                    yield chunk
        except E.PackageError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error) as exc:
            raise E.PackageMalformed(f"member {name!r} cannot be read: {exc}", name=name) from None
        except NotImplementedError as exc:  # compression zipfile cannot do (checked earlier; belt and braces)
            raise E.PackageUnsupportedCompression(f"member {name!r}: {exc}", name=name) from None
        if entry is not None:
            if size != entry.size:
                raise E.PackageSizeMismatch(f"{name} is {size} bytes; the manifest says {entry.size}",
                                            name=name, actual=size, expected=entry.size)
            if digest.hexdigest() != entry.digest:
                raise E.PackageDigestMismatch(f"{name} does not have the {entry.algorithm} the manifest lists",
                                              name=name)
