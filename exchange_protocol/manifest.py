"""The package manifest (``META-INF/manifest.json``) and the rules for member names.

The manifest is what the issuing unit signs: one entry per file in the package — path, digest
(lower-case hex; SHA-256 under the key ``sha256``, or SM3 under ``sm3`` in a package an SM2 seal
signs on a 国密 network: the signer's digest, the same for every entry), size in bytes and media
type — in canonical JSON (:mod:`.canonical`), so the
signed bytes are a pure function of the files. Entries keep the order the sender gave (附件 are
numbered: their order is part of the document); paths must be unique. The manifest lists
``metadata.json``, ``body.pdf`` (or ``body.ofd``), every ``attachments/…`` file and ``META-INF/seal.esl``; it cannot
list the signature over itself nor the time stamp over that signature.

Member names are checked by :func:`check_member_name`, used by both the builder (so we never
write a name a receiver would refuse) and the reader (so a hostile name never reaches a file
system). Each refusal has its own code: traversal (``..``), absolute paths and drive letters,
and everything else unusable (backslashes, control characters, ``:``, empty segments).
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from . import digests
from .canonical import canonical_json, load_json
from .errors import (
    MalformedJson,
    PackageAbsolutePath,
    PackageBadPath,
    PackageError,
    PackageManifestInvalid,
    PackagePathTraversal,
)

MANIFEST_FORMAT = "gwx-package/1"
METADATA_NAME = "metadata.json"
BODY_NAME = "body.pdf"
OFD_BODY_NAME = "body.ofd"  # an OFD body (GB/T 33190), sealed inside per GB/T 38540 (.ofd_seal)
BODY_NAMES = (BODY_NAME, OFD_BODY_NAME)  # a package has exactly one of them
ATTACHMENTS_DIR = "attachments/"
MANIFEST_NAME = "META-INF/manifest.json"
SIGNATURE_NAME = "META-INF/signature.p7s"
TIMESTAMP_NAME = "META-INF/timestamp.tsr"
SEAL_NAME = "META-INF/seal.esl"
# Members that are not in the manifest because they sign or stamp it.
UNLISTED_MEMBERS = frozenset({MANIFEST_NAME, SIGNATURE_NAME, TIMESTAMP_NAME})

MAX_NAME_BYTES = 255
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_ENTRIES = 1000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_EXTRA_TYPES = {".ofd": "application/ofd", ".wps": "application/vnd.ms-works",
                ".esl": "application/octet-stream", ".json": "application/json"}


def check_member_name(name: str) -> str:
    """Return ``name`` if it is a safe relative member path, else raise a typed error."""
    if not isinstance(name, str) or not name:
        raise PackageBadPath("empty member name", name=repr(name))
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise PackageBadPath(f"member name longer than {MAX_NAME_BYTES} bytes", name=name[:80])
    if "\\" in name:
        raise PackageBadPath(f"member name {name!r} contains a backslash", name=name)
    if name.startswith("/") or _DRIVE.match(name):
        raise PackageAbsolutePath(f"member name {name!r} is an absolute path", name=name)
    # Printable ASCII has none of those categories: only other names are looked at character by character.
    if not (name.isascii() and name.isprintable()) \
            and any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise PackageBadPath(f"member name {name!r} contains control or unassigned characters", name=name)
    if ":" in name:
        raise PackageBadPath(f"member name {name!r} contains ':'", name=name)
    segments = name.rstrip("/").split("/") if name.endswith("/") else name.split("/")
    if ".." in segments:
        raise PackagePathTraversal(f"member name {name!r} climbs out of the package", name=name)
    if any(seg in ("", ".") for seg in segments):
        raise PackageBadPath(f"member name {name!r} has an empty or '.' segment", name=name)
    return name


def name_key(name: str) -> str:
    """The form two names collide in on some file system (NFC, case-folded)."""
    return unicodedata.normalize("NFC", name).casefold()


def attachment_member(display_name: str) -> str:
    """The member path for an attachment called ``display_name`` (one segment, kept as given)."""
    if not isinstance(display_name, str) or "/" in display_name or display_name in ("", ".", ".."):
        raise PackageBadPath(f"attachment name {display_name!r} must be one file name without '/'",
                             name=repr(display_name))
    return check_member_name(ATTACHMENTS_DIR + display_name)


def guess_media_type(name: str) -> str:
    lower = name.lower()
    for ext, media_type in _EXTRA_TYPES.items():
        if lower.endswith(ext):
            return media_type
    guessed, _ = mimetypes.guess_type(lower, strict=False)
    return guessed if guessed and _MEDIA_TYPE.match(guessed) else "application/octet-stream"


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    digest: str  # lower-case hex, of ``algorithm``
    size: int
    media_type: str
    # The signer's digest (exchange_protocol.digests): SHA-256, or SM3 in a package an SM2 seal signs.
    # The JSON key names it ("sha256" or "sm3"); every entry of a manifest has the same.
    algorithm: str = digests.SHA256

    def to_json(self) -> dict:
        return {"path": self.path, self.algorithm: self.digest, "size": self.size, "media_type": self.media_type}


@dataclass(frozen=True)
class Manifest:
    entries: tuple[ManifestEntry, ...]

    @classmethod
    def of(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        manifest = cls(tuple(entries))
        manifest._validate()
        return manifest

    def _validate(self) -> None:
        if not self.entries or len(self.entries) > MAX_ENTRIES:
            raise PackageManifestInvalid(f"a manifest lists 1–{MAX_ENTRIES} files, not {len(self.entries)}")
        seen: set[str] = set()
        for e in self.entries:
            try:
                check_member_name(e.path)
            except PackageError as exc:  # report it as a bad manifest, keeping the cause's code
                raise PackageManifestInvalid(f"manifest path {e.path!r} is unsafe: {exc.message}",
                                             path=str(e.path)[:120], cause=exc.code) from None
            if e.path in UNLISTED_MEMBERS or e.path.endswith("/"):
                raise PackageManifestInvalid(f"manifest may not list {e.path!r}", path=e.path)
            key = name_key(e.path)
            if key in seen:
                raise PackageManifestInvalid(f"manifest lists {e.path!r} twice", path=e.path)
            seen.add(key)
            if e.algorithm != self.entries[0].algorithm or e.algorithm not in digests.NAMES:
                raise PackageManifestInvalid(f"manifest names {e.path!r} by {e.algorithm!r}: one of {digests.NAMES}, "
                                             "the same for every file", path=e.path)
            if not isinstance(e.digest, str) or not _HEX64.match(e.digest):
                raise PackageManifestInvalid(f"{e.algorithm} of {e.path!r} is not 64 lower-case hex digits",
                                             path=e.path)
            if type(e.size) is not int or e.size < 0:
                raise PackageManifestInvalid(f"size of {e.path!r} is not a non-negative integer", path=e.path)
            if not isinstance(e.media_type, str) or not _MEDIA_TYPE.match(e.media_type):
                raise PackageManifestInvalid(f"media type of {e.path!r} is not a type/subtype", path=e.path)

    @property
    def algorithm(self) -> str:
        """The digest every entry is listed by ("sha256" or "sm3")."""
        return self.entries[0].algorithm

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(e.path for e in self.entries)

    def get(self, path: str) -> ManifestEntry | None:
        return next((e for e in self.entries if e.path == path), None)

    @property
    def attachments(self) -> tuple[ManifestEntry, ...]:
        return tuple(e for e in self.entries if e.path.startswith(ATTACHMENTS_DIR))

    def to_bytes(self) -> bytes:
        """The canonical JSON the issuing unit signs."""
        return canonical_json({"format": MANIFEST_FORMAT, "files": [e.to_json() for e in self.entries]})


def parse_manifest(data: bytes) -> Manifest:
    """Parse untrusted manifest bytes; they must be exactly canonical (what was signed is what we read)."""
    try:
        value = load_json(data, max_bytes=MAX_MANIFEST_BYTES, what="manifest", error=MalformedJson)
    except MalformedJson as exc:
        raise PackageManifestInvalid(exc.message) from None
    if not isinstance(value, dict) or set(value) != {"format", "files"}:
        raise PackageManifestInvalid("manifest must be an object with exactly 'format' and 'files'")
    if value["format"] != MANIFEST_FORMAT:
        raise PackageManifestInvalid(f"manifest format {value['format']!r} is not {MANIFEST_FORMAT}",
                                     format=str(value["format"])[:40])
    files = value["files"]
    if not isinstance(files, list):
        raise PackageManifestInvalid("manifest 'files' must be a list")
    entries = []
    for i, item in enumerate(files):
        algorithm = digests.SM3 if isinstance(item, dict) and digests.SM3 in item else digests.SHA256
        if not isinstance(item, dict) or set(item) != {"path", algorithm, "size", "media_type"}:
            raise PackageManifestInvalid(f"manifest entry {i} must have exactly path, sha256 (or sm3), size, "
                                         "media_type", index=i)
        entries.append(ManifestEntry(item["path"], item[algorithm], item["size"], item["media_type"], algorithm))
    manifest = Manifest.of(entries)
    if manifest.to_bytes() != bytes(data):
        raise PackageManifestInvalid("manifest is not in canonical JSON form")
    return manifest
