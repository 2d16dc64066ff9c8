"""Opening an OFD (GB/T 33190) that may be hostile, and the few XML facts the seal needs from it.

An OFD is a ZIP: ``OFD.xml`` (namespace ``http://www.ofdspec.org/2016``) names the document's root
(``DocBody/DocRoot``, e.g. ``Doc_0/Document.xml``) and, once sealed, its signature list
(``DocBody/Signatures``, e.g. ``Doc_0/Signs/Signatures.xml``). :class:`OfdContainer` reads every
member into memory — a body is bounded (64 MiB by default, the package's body limit) — after the
central directory has passed the same defences as a package (:mod:`.package_reader`): member count,
declared sizes and ratio, names (no ``..``, absolute paths, backslashes, control characters),
duplicates after NFC and case folding, symbolic links, encryption, overlapping member data; bytes
no member, directory or end record claims — before, between or after them — are ``OFD_MALFORMED``
(:mod:`.zip_layout`: a streaming reader would read them, the verifier never hashed them); and the
bytes that come out are counted again, since headers lie. Each refusal has its code
(:mod:`.ofd_errors`).

XML is parsed by :func:`parse_xml` with ``defusedxml``: a DTD, an entity declaration or an external
reference is ``OFD_XML_FORBIDDEN`` before anything is expanded (no billion laughs, no XXE). Each XML
file is capped (``OFD_XML_TOO_LARGE``, :class:`OfdLimits`): 8 MiB, checked on the directory's declared
size of every ``*.xml`` member before inflating and on the bytes before parsing; 200,000 attributes,
counted before parsing by the ``=`` each needs (expat builds an element's attributes at once); 100,000
elements and 64 levels, counted as expat reports each start tag, so the tree stops growing at the cap.
Without them a 1 MiB upload held 8 M elements and cost a node GBs and minutes before any signature
was checked; with them one file's tree stays within some tens of MiB.
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
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .errors import PackageError
from .manifest import check_member_name, name_key
from .ofd_errors import OfdMalformed, OfdUnsafePath, OfdXmlForbidden, OfdXmlTooLarge, OfdZipBomb
from .package_reader import overlapping_members
from .zip_layout import ZIP_OPEN_ERRORS, unclaimed_bytes

OFD_NS = "http://www.ofdspec.org/2016"
OLD_OFD_NS = "http://www.ofdspec.org"  # written by some producers (e.g. 数科); read, never written anew
_OLD_NS_PREFIX = "{" + OLD_OFD_NS + "}"
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
    # Each XML file (see the module doc): a dense page has some thousands of elements, a Document.xml
    # of 1,000 pages a few thousand, a Signature.xml two per member, the deepest sample 5 levels.
    max_xml_bytes: int = 8 * MiB
    max_xml_elements: int = 100_000
    max_xml_attributes: int = 200_000
    max_xml_depth: int = 64


DEFAULT_OFD_LIMITS = OfdLimits()


def looks_like_ofd(data: bytes) -> bool:
    """A ZIP whose central directory names ``OFD.xml`` (cheap: nothing is inflated)."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return OFD_XML in zf.namelist()
    except ZIP_OPEN_ERRORS:  # UnicodeDecodeError is a ValueError
        return False


def parse_xml(data: bytes, name: str, limits: OfdLimits = DEFAULT_OFD_LIMITS) -> Element:
    """``data`` parsed with no DTD, entity or external reference allowed and within the XML caps (see the
    module doc); elements in the namespace some producers write without its year
    (``http://www.ofdspec.org``) read as in OFD_NS."""
    if len(data) > limits.max_xml_bytes:
        raise OfdXmlTooLarge(f"{name} has {len(data)} bytes; an XML file of an OFD has at most "
                             f"{limits.max_xml_bytes}", name=name, limit=limits.max_xml_bytes)
    if data.count(b"=") > limits.max_xml_attributes:  # each attribute needs one; text rarely has many
        raise OfdXmlTooLarge(f"{name} has more than {limits.max_xml_attributes} attributes", name=name,
                             limit=limits.max_xml_attributes)
    parser = SafeET.DefusedXMLParser(target=_BoundedTreeBuilder(name, limits), forbid_dtd=True,
                                     forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        return parser.close()
    except DefusedXmlException as exc:
        raise OfdXmlForbidden(f"{name}: {type(exc).__name__}: a DTD, entity or external reference is not "
                              "allowed in an OFD", name=name) from None
    except (ParseError, ValueError, LookupError) as exc:  # LookupError: an encoding Python does not know
        raise OfdMalformed(f"{name} is not well-formed XML: {exc}", name=name) from None


class _BoundedTreeBuilder(TreeBuilder):
    """ElementTree's builder, refusing at the element or depth cap as expat reports each start tag (expat
    stops at once), and reading the year-less namespace as OFD_NS."""

    def __init__(self, name: str, limits: OfdLimits) -> None:
        super().__init__()
        self._name, self._limits = name, limits
        self._elements = self._depth = 0

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._elements += 1
        self._depth += 1
        if self._elements > self._limits.max_xml_elements:
            raise OfdXmlTooLarge(f"{self._name} has more than {self._limits.max_xml_elements} elements",
                                 name=self._name, limit=self._limits.max_xml_elements)
        if self._depth > self._limits.max_xml_depth:
            raise OfdXmlTooLarge(f"{self._name} nests elements more than {self._limits.max_xml_depth} deep",
                                 name=self._name, limit=self._limits.max_xml_depth)
        return super().start(_current_ns(tag), attrs)

    def end(self, tag: str) -> Element:
        self._depth -= 1
        return super().end(_current_ns(tag))


def _current_ns(tag: str) -> str:
    return "{" + OFD_NS + "}" + tag[len(_OLD_NS_PREFIX):] if tag.startswith(_OLD_NS_PREFIX) else tag


def resolve_loc(referrer: str, loc: str | None) -> str:
    """The container path ``loc`` (an ST_Loc written in ``referrer``) names, checked to stay inside."""
    if not loc or not loc.strip():
        raise OfdMalformed(f"{referrer} has an empty location", name=referrer)
    loc = loc.strip()
    if not _container_path(loc):
        raise OfdUnsafePath(f"{referrer} names {loc!r}, not a path inside the OFD", name=loc)
    base = "" if loc.startswith("/") else posixpath.dirname(referrer)
    joined = posixpath.join("/", base, loc.lstrip("/"))
    if ".." in joined.split("/"):
        raise OfdUnsafePath(f"{referrer} names {loc!r}, which climbs out of the OFD", name=loc)
    return posixpath.normpath(joined).lstrip("/")


def _container_path(loc: str) -> bool:
    """Not a URL (``http:``, ``file:``), a drive (``C:``) or a Windows path: a path the container holds."""
    return "\\" not in loc and ":" not in loc.split("/")[0]


# Where GB/T 33190's schemas put an ST_Loc: these elements' text and these attributes.
_LOC_ELEMENTS = frozenset({"Annotations", "Attachments", "BaseLoc", "Cover", "CustomTags", "DocRoot", "DocumentRes",
                           "ExtendData", "Extensions", "FileLoc", "FontFile", "MediaFile", "PageRes", "PublicRes",
                           "SchemaLoc", "Signatures", "SignedValue"})
_LOC_ATTRIBUTES = ("BaseLoc", "FileRef", "Profile")


def check_locations_inside(container: OfdContainer) -> None:
    """Every ST_Loc in every XML file of ``container`` is a container path (``OFD_UNSAFE_PATH`` if not): a
    reader that follows ``http:`` or ``file:`` would show content no Reference covers."""
    for name in container.files:
        if not name.lower().endswith(".xml"):
            continue
        for element in container.xml(name).iter():
            tag = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else ""
            locs = [element.text or ""] if tag in _LOC_ELEMENTS else []
            locs += [element.get(a) or "" for a in _LOC_ATTRIBUTES]
            outside = next((loc.strip() for loc in locs if not _container_path(loc.strip())), None)
            if outside is not None:
                raise OfdUnsafePath(f"{name} names {outside!r}, not a path inside the OFD: a reader following "
                                    "it would show what no seal covers", name=name)


class OfdContainer:
    """The members of an OFD (``files``: path → bytes, in archive order), checked as the module says."""

    def __init__(self, files: dict[str, bytes], limits: OfdLimits = DEFAULT_OFD_LIMITS) -> None:
        self.files = files
        self.limits = limits

    @classmethod
    def open(cls, data: bytes, limits: OfdLimits = DEFAULT_OFD_LIMITS) -> OfdContainer:
        if not isinstance(data, (bytes, bytearray)) or len(data) > limits.max_bytes:
            raise OfdZipBomb(f"an OFD body is bytes of at most {limits.max_bytes}", limit=limits.max_bytes)
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except UnicodeDecodeError:
            raise OfdUnsafePath("a member name is flagged UTF-8 but does not decode as UTF-8") from None
        except ZIP_OPEN_ERRORS as exc:
            raise OfdMalformed(f"not an OFD (not a readable ZIP): {exc}") from None
        with zf:
            infos = _checked_directory(zf, limits)
            unclaimed = unclaimed_bytes(data, zf)
            if unclaimed:  # what a streaming reader would read and the verifier never hashed
                raise OfdMalformed(f"not an OFD as written: {unclaimed}")
            files = _inflate(zf, infos, limits)
        if OFD_XML not in files:
            raise OfdMalformed("not an OFD: there is no OFD.xml at the container's root")
        return cls(files, limits)

    def xml(self, path: str) -> Element:
        if path not in self.files:
            raise OfdMalformed(f"the OFD has no {path}", name=path)
        return parse_xml(self.files[path], path, self.limits)

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
            if page_id in out:  # one would silently replace the other, and a PageRef name either
                raise OfdMalformed(f"{doc_root} lists page ID {page_id} twice", name=doc_root, page=page_id)
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
        if name.lower().endswith(".xml") and info.file_size > limits.max_xml_bytes:  # early; parse_xml decides
            raise OfdXmlTooLarge(f"{name} declares {info.file_size} bytes; an XML file of an OFD has at most "
                                 f"{limits.max_xml_bytes}", name=name, limit=limits.max_xml_bytes)
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
