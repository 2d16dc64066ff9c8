"""Opening an OFD (GB/T 33190) that may be hostile, and the few XML facts the seal needs from it.

An OFD is a ZIP: ``OFD.xml`` (namespace ``http://www.ofdspec.org/2016``) names the document's root
(``DocBody/DocRoot``, e.g. ``Doc_0/Document.xml``) and, once sealed, its signature list
(``DocBody/Signatures``, e.g. ``Doc_0/Signs/Signatures.xml``). :class:`OfdContainer` reads every
member into memory — a body is bounded (64 MiB by default, the package's body limit) — after the
central directory has passed the same defences as a package (:mod:`.package_reader`): member count,
declared sizes and ratio, names (no ``..``, absolute paths, backslashes, control characters),
duplicates after NFC and case folding, symbolic links, encryption, overlapping member data; and the
bytes that come out are counted again, since headers lie. Each refusal has its code
(:mod:`.ofd_errors`).

XML is parsed by :func:`parse_xml` with ``defusedxml``: a DTD, an entity declaration or an external
reference is ``OFD_XML_FORBIDDEN`` before anything is expanded (no billion laughs, no XXE).
Locations (``ST_Loc``) are resolved by :func:`resolve_loc`: absolute (``/Doc_0/…``) from the
container's root, relative from the referring file's folder, never out of the container.
"""

from __future__ import annotations

import io
import posixpath
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .errors import PackageError
from .manifest import check_member_name, name_key
from .ofd_errors import OfdMalformed, OfdUnsafePath, OfdXmlForbidden, OfdZipBomb
from .package_reader import overlapping_members

OFD_NS = "http://www.ofdspec.org/2016"
_OLD_NS_PREFIX = "{http://www.ofdspec.org}"  # written by some producers (e.g. 数科); read, never written
OFD_XML = "OFD.xml"
MiB = 1024 * 1024


def q(tag: str) -> str:
    """The qualified name of an OFD element (``q("DocRoot")``)."""
    return f"{{{OFD_NS}}}{tag}"


@dataclass(frozen=True)
class OfdLimits:
    max_bytes: int = 64 * MiB  # the OFD file itself (the package's body limit)
    max_members: int = 2000
    max_inflated_bytes: int = 256 * MiB
    max_ratio: int = 200
    ratio_floor_bytes: int = 1 * MiB


DEFAULT_OFD_LIMITS = OfdLimits()


def looks_like_ofd(data: bytes) -> bool:
    """A ZIP whose central directory names ``OFD.xml`` (cheap: nothing is inflated)."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return OFD_XML in zf.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
            UnicodeDecodeError):
        return False


def parse_xml(data: bytes, name: str) -> Element:
    """``data`` parsed with no DTD, entity or external reference allowed (see the module doc); elements in
    the namespace some producers write without its year (``http://www.ofdspec.org``) read as in OFD_NS."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise OfdXmlForbidden(f"{name}: {type(exc).__name__}: a DTD, entity or external reference is not "
                              "allowed in an OFD", name=name) from None
    except (ParseError, ValueError, LookupError) as exc:  # LookupError: an encoding Python does not know
        raise OfdMalformed(f"{name} is not well-formed XML: {exc}", name=name) from None
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith(_OLD_NS_PREFIX):
            element.tag = "{" + OFD_NS + "}" + element.tag[len(_OLD_NS_PREFIX):]
    return root


def resolve_loc(referrer: str, loc: str | None) -> str:
    """The container path ``loc`` (an ST_Loc written in ``referrer``) names, checked to stay inside."""
    if not loc or not loc.strip():
        raise OfdMalformed(f"{referrer} has an empty location", name=referrer)
    loc = loc.strip()
    if "\\" in loc or ":" in loc.split("/")[0]:
        raise OfdUnsafePath(f"{referrer} names {loc!r}, not a path inside the OFD", name=loc)
    base = "" if loc.startswith("/") else posixpath.dirname(referrer)
    joined = posixpath.join("/", base, loc.lstrip("/"))
    if ".." in joined.split("/"):
        raise OfdUnsafePath(f"{referrer} names {loc!r}, which climbs out of the OFD", name=loc)
    return posixpath.normpath(joined).lstrip("/")


class OfdContainer:
    """The members of an OFD (``files``: path → bytes, in archive order), checked as the module says."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    @classmethod
    def open(cls, data: bytes, limits: OfdLimits = DEFAULT_OFD_LIMITS) -> OfdContainer:
        if not isinstance(data, (bytes, bytearray)) or len(data) > limits.max_bytes:
            raise OfdZipBomb(f"an OFD body is bytes of at most {limits.max_bytes}", limit=limits.max_bytes)
        try:
            zf = zipfile.ZipFile(io.BytesIO(bytes(data)))
        except UnicodeDecodeError:
            raise OfdUnsafePath("a member name is flagged UTF-8 but does not decode as UTF-8") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            raise OfdMalformed(f"not an OFD (not a readable ZIP): {exc}") from None
        with zf:
            infos = _checked_directory(zf, limits)
            files = _inflate(zf, infos, limits)
        if OFD_XML not in files:
            raise OfdMalformed("not an OFD: there is no OFD.xml at the container's root")
        return cls(files)

    def xml(self, path: str) -> Element:
        if path not in self.files:
            raise OfdMalformed(f"the OFD has no {path}", name=path)
        return parse_xml(self.files[path], path)

    def doc_body(self) -> tuple[str, str | None]:
        """(the DocRoot path, the Signatures.xml path or None) of the first document in OFD.xml."""
        root = self.xml(OFD_XML)
        if root.tag != q("OFD"):
            raise OfdMalformed(f"OFD.xml's root element is {root.tag}, not ofd:OFD")
        body = root.find(q("DocBody"))
        doc_root = body.find(q("DocRoot")) if body is not None else None
        if doc_root is None or not (doc_root.text or "").strip():
            raise OfdMalformed("OFD.xml names no DocRoot")
        signatures = body.find(q("Signatures"))  # type: ignore[union-attr]
        sig_path = resolve_loc(OFD_XML, signatures.text) if signatures is not None else None
        return resolve_loc(OFD_XML, doc_root.text), sig_path

    def pages(self, doc_root: str) -> dict[int, str]:
        """The document's pages: page ID → its content file (in page order)."""
        document = self.xml(doc_root)
        pages = document.find(q("Pages"))
        out: dict[int, str] = {}
        for page in (pages if pages is not None else ()):
            try:
                page_id = int(page.get("ID", ""))
            except ValueError:
                raise OfdMalformed(f"{doc_root}: a page has ID {page.get('ID')!r}, not a number") from None
            out[page_id] = resolve_loc(doc_root, page.get("BaseLoc"))
        if not out:
            raise OfdMalformed(f"{doc_root} lists no page")
        return out

    def to_bytes(self) -> bytes:
        """The container as a ZIP again (members deflated, in order; names UTF-8)."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in self.files.items():
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o100644 << 16
                info.create_system = 3
                zf.writestr(info, data)
        return out.getvalue()


def _checked_directory(zf: zipfile.ZipFile, limits: OfdLimits) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise OfdZipBomb(f"{len(infos)} members, at most {limits.max_members}", count=len(infos))
    keys: set[str] = set()
    declared = 0
    for info in infos:
        name = info.orig_filename
        if info.flag_bits & 0x1:
            raise OfdUnsafePath(f"member {name!r} is encrypted", name=name)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise OfdMalformed(f"member {name!r} uses compression method {info.compress_type}", name=name)
        if info.create_system == 3 and stat.S_IFMT(info.external_attr >> 16) == stat.S_IFLNK:
            raise OfdUnsafePath(f"member {name!r} is a symbolic link", name=name)
        try:
            check_member_name(name)
        except PackageError as exc:  # the package's typed refusal, re-said as the OFD's
            raise OfdUnsafePath(f"member name {name!r}: {exc.message}", name=name) from None
        key = name_key(name)
        if key in keys:
            raise OfdUnsafePath(f"member name {name!r} occurs twice", name=name)
        keys.add(key)
        declared += info.file_size
        if declared > limits.max_inflated_bytes:
            raise OfdZipBomb(f"members declare more than {limits.max_inflated_bytes} bytes", name=name)
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise OfdZipBomb(f"member {name!r} declares a compression ratio above {limits.max_ratio}", name=name)
    overlap = overlapping_members(infos)
    if overlap:
        raise OfdZipBomb(f"members {overlap[0]!r} and {overlap[1]!r} overlap", name=overlap[0])
    return infos


def _inflate(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], limits: OfdLimits) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        chunks, size = [], 0
        try:
            with zf.open(info) as src:
                while chunk := src.read(MiB):
                    size += len(chunk)
                    total += len(chunk)
                    if total > limits.max_inflated_bytes:
                        raise OfdZipBomb(f"the OFD inflates past {limits.max_inflated_bytes} bytes",
                                         name=info.filename)
                    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(info.compress_size, 1):
                        raise OfdZipBomb(f"member {info.filename!r} inflates more than {limits.max_ratio} times",
                                         name=info.filename)
                    chunks.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error,
                NotImplementedError) as exc:
            raise OfdMalformed(f"member {info.filename!r} cannot be read: {exc}", name=info.filename) from None
        files[info.filename] = b"".join(chunks)
    return files
