"""Sealing an OFD body the way GB/T 38540 places a seal in GB/T 33190 (电子签章), sans-I/O.

:func:`seal_ofd` takes the OFD bytes, the unit's seal credential and the time, and returns the sealed
OFD with, beside the document's root (``Doc_0/`` for ``Doc_0/Document.xml``)::

    Signs/Signatures.xml           lists the signature: <Signature ID="s1" Type="Seal" BaseLoc=…>
    Signs/Sign_0/Seal.esl          the unit's SESeal, as its seal maker made it
    Signs/Sign_0/Signature.xml     SignedInfo: Provider, SignatureMethod (the seal key's OID),
                                   SignatureDateTime, References (CheckMethod: the digest's OID,
                                   one Reference per signed file, base64 CheckValue), a StampAnnot
                                   (the page and box where the 印章 shows), Seal/BaseLoc; SignedValue
    Signs/Sign_0/SignedValue.dat   DER SES_Signature (:func:`pki.seal_signature.make_sealed_signature`):
                                   TBS_Sign over Signature.xml (dataHash), the seal, the time,
                                   propertyInfo = "/Doc_0/Signs/Sign_0/Signature.xml"

and ``OFD.xml``'s ``DocBody`` pointing at ``Signatures.xml``. The References cover every file in
the sealed container but this signature's own Signature.xml and SignedValue.dat — OFD.xml and
Signatures.xml included (ofdrw's default mode), so nothing can be added, removed or re-pointed
afterwards without a reference failing. The digest is the seal key's own: SM3 for an SM2 seal on a
国密 network, SHA-256 for a P-256 seal on an international one (the format takes the algorithm as
data; GB/T 38540 names SM3, and we use the same layout with SHA-256 and an ECDSA SES_Signature
rather than invent another). An OFD whose existing signatures already protect Signatures.xml cannot
take another without breaking them, so it is refused (``OFD_INPUT_INVALID``): one seal per body,
the lead issuing organ's (联合行文 with several seals is not built). Every location in the OFD's XML
must be a path inside it (``OFD_UNSAFE_PATH``): a page or resource a reader fetches from ``http:`` or
``file:`` is content no Reference covers.

The optional RFC 3161 token of SES_Signature is not written: the package's time stamp
(``META-INF/timestamp.tsr``) covers the manifest, which lists the sealed body's digest.
"""

from __future__ import annotations

import base64
import datetime as dt
import posixpath
from dataclasses import dataclass
from xml.etree import ElementTree as ET
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from cryptography.hazmat.primitives import hashes

from pki.seal import Seal
from pki.seal_signature import make_sealed_signature
from pki.signer import Signer

from .ofd_container import (
    DEFAULT_OFD_LIMITS,
    OFD_NS,
    OFD_XML,
    OfdContainer,
    OfdLimits,
    check_locations_inside,
    q,
)
from .ofd_errors import OfdInputError, OfdMalformed

PROVIDER = "gwx"
PROVIDER_VERSION = "1"
SIGNATURE_FILE, SIGNED_VALUE_FILE, SEAL_FILE = "Signature.xml", "SignedValue.dat", "Seal.esl"
# CheckMethod values: the digest's OID (GM/T 0099 names SM3 by its OID); names are read too.
CHECK_METHOD_OIDS = {"sm3": "1.2.156.10197.1.401", "sha256": "2.16.840.1.101.3.4.2.1"}
_PAGE_MARGIN_MM = 25.0


@dataclass(frozen=True)
class StampBox:
    """Where the 印章 shows on the page, in millimetres from the page's top left (OFD's ST_Box)."""

    x: float
    y: float
    width: float
    height: float

    def to_st_box(self) -> str:
        return " ".join(_num(v) for v in (self.x, self.y, self.width, self.height))


def check_method_for(hash_algorithm: hashes.HashAlgorithm) -> str:
    oid = CHECK_METHOD_OIDS.get(hash_algorithm.name)
    if oid is None:
        raise OfdInputError(f"no OFD check method for the digest {hash_algorithm.name}")
    return oid


def digest(hash_algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(hash_algorithm)
    h.update(data)
    return h.finalize()


def seal_ofd(ofd: bytes, signer: Signer, seal: Seal, *, at: dt.datetime, page: int = -1,
             box: StampBox | None = None, limits: OfdLimits = DEFAULT_OFD_LIMITS) -> bytes:
    """The sealed OFD (see the module doc); ``page`` indexes the document's pages (-1: the last)."""
    if at.tzinfo is None:
        raise OfdInputError("the sealing time must be timezone-aware")
    container = OfdContainer.open(ofd, limits)
    check_locations_inside(container)
    doc_root, signatures_path = container.doc_body()
    pages = container.pages(doc_root)
    page_ids = list(pages)
    if not -len(page_ids) <= page < len(page_ids):
        raise OfdInputError(f"the OFD has {len(page_ids)} page(s); there is no page {page}", page=page)
    page_id = page_ids[page]
    size = page_size(container, doc_root, pages[page_id])  # once: it parses the page and Document.xml
    box = box or _default_box(size, seal)
    _check_box(size, box)

    signs_dir = posixpath.join(posixpath.dirname(doc_root), "Signs")
    signatures_path = signatures_path or posixpath.join(signs_dir, "Signatures.xml")
    existing = _existing_signatures(container, signatures_path)
    n = len(existing)
    sign_dir = posixpath.join(posixpath.dirname(signatures_path), f"Sign_{n}")
    sig_xml_path = posixpath.join(sign_dir, SIGNATURE_FILE)
    files = dict(container.files)
    if OFD_XML in files and not _points_at_signatures(container):
        files[OFD_XML] = _with_signatures_entry(container, "/" + signatures_path)
    entries = [*existing, (f"s{n + 1}", "/" + sig_xml_path)]
    files[signatures_path] = _signatures_xml(entries)
    files[posixpath.join(sign_dir, SEAL_FILE)] = seal.der

    hash_algorithm = signer.algorithm.hash()
    references = [(path, digest(hash_algorithm, data)) for path, data in files.items()]
    signature_xml = _signature_xml(
        signer=signer, at=at, check_method=check_method_for(hash_algorithm), references=references,
        stamp_id=f"sa{n + 1}", page_id=page_id, box=box, seal_loc="/" + posixpath.join(sign_dir, SEAL_FILE),
        signed_value_loc="/" + posixpath.join(sign_dir, SIGNED_VALUE_FILE))
    files[sig_xml_path] = signature_xml
    files[posixpath.join(sign_dir, SIGNED_VALUE_FILE)] = make_sealed_signature(
        signature_xml, signer, seal, property_info="/" + sig_xml_path, now=at)
    return OfdContainer(files).to_bytes()


def _existing_signatures(container: OfdContainer, signatures_path: str) -> list[tuple[str, str]]:
    if signatures_path not in container.files:
        return []
    root = container.xml(signatures_path)
    entries = [(s.get("ID", ""), s.get("BaseLoc", "")) for s in root.findall(q("Signature"))]
    if entries:
        raise OfdInputError("the OFD is already sealed, and its signatures protect the list a second seal "
                            "would change: one seal per body", signatures=len(entries))
    return entries


def _points_at_signatures(container: OfdContainer) -> bool:
    body = container.xml(OFD_XML).find(q("DocBody"))
    return body is not None and body.find(q("Signatures")) is not None


def _with_signatures_entry(container: OfdContainer, loc: str) -> bytes:
    """OFD.xml with ``DocBody/Signatures`` added last in the first DocBody (after DocRoot and Versions, the
    schema's order). The entry is inserted as text, so the producer's bytes — prefixes, comments — stay;
    only a UTF-16 file or an empty DocBody element is re-serialised."""
    data = container.files[OFD_XML]
    found = _doc_body_end(data)
    if found is not None and not data.startswith((b"\xfe\xff", b"\xff\xfe")):
        at, prefix = found  # ASCII bytes, character references for the rest: right in any ASCII-based encoding
        tag = f"{prefix}:Signatures" if prefix else "Signatures"  # DocBody's own prefix: readers match on it
        entry = f"<{tag}>{escape(loc)}</{tag}>".encode("ascii", "xmlcharrefreplace")
        return data[:at] + entry + data[at:]
    ET.register_namespace("ofd", OFD_NS)
    root = container.xml(OFD_XML)  # parsed within the caps: its depth cannot overflow the serialiser
    body = root.find(q("DocBody"))
    if body is None:
        raise OfdMalformed("OFD.xml has no DocBody")
    ET.SubElement(body, q("Signatures")).text = loc
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _doc_body_end(data: bytes) -> tuple[int, str] | None:
    """(the offset of the first DocBody's end tag ``</…DocBody>``, the prefix it is written with), or None.
    ``data`` has already passed :func:`.ofd_container.parse_xml` (no DTD or entity, within the caps), which
    read that DocBody in the OFD namespace."""
    parser = expat.ParserCreate()  # no namespace processing: the names as written, prefixes included
    found: list[tuple[int, str]] = []
    depth = [0]

    def start(name: str, attrs: dict) -> None:
        depth[0] += 1

    def end(name: str) -> None:
        depth[0] -= 1
        prefix, _, local = name.rpartition(":")
        if depth[0] == 1 and local == "DocBody" and not found:
            found.append((parser.CurrentByteIndex, prefix))

    parser.StartElementHandler, parser.EndElementHandler = start, end
    try:
        parser.Parse(data, True)
    except expat.ExpatError:
        return None
    if not found or data[found[0][0]:found[0][0] + 2] != b"</":  # <DocBody/>: no end tag to insert before
        return None
    return found[0]


def _signatures_xml(entries: list[tuple[str, str]]) -> bytes:
    rows = "".join(f'<ofd:Signature ID={quoteattr(i)} Type="Seal" BaseLoc={quoteattr(loc)}/>' for i, loc in entries)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Signatures xmlns:ofd="{OFD_NS}">{rows}'
            "</ofd:Signatures>").encode()


def _signature_xml(*, signer: Signer, at: dt.datetime, check_method: str, references: list[tuple[str, bytes]],
                   stamp_id: str, page_id: int, box: StampBox, seal_loc: str, signed_value_loc: str) -> bytes:
    refs = "".join(f'<ofd:Reference FileRef={quoteattr("/" + path)}><ofd:CheckValue>'
                   f"{base64.b64encode(value).decode()}</ofd:CheckValue></ofd:Reference>"
                   for path, value in references)
    when = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ofd:Signature xmlns:ofd="{OFD_NS}"><ofd:SignedInfo>'
            f'<ofd:Provider ProviderName="{PROVIDER}" Version="{PROVIDER_VERSION}" Company="gwx"/>'
            f"<ofd:SignatureMethod>{signer.algorithm.oid}</ofd:SignatureMethod>"
            f"<ofd:SignatureDateTime>{when}</ofd:SignatureDateTime>"
            f'<ofd:References CheckMethod="{check_method}">{refs}</ofd:References>'
            f'<ofd:StampAnnot ID="{stamp_id}" PageRef="{page_id}" Boundary="{box.to_st_box()}"/>'
            f"<ofd:Seal><ofd:BaseLoc>{seal_loc}</ofd:BaseLoc></ofd:Seal>"
            f"</ofd:SignedInfo><ofd:SignedValue>{signed_value_loc}</ofd:SignedValue></ofd:Signature>").encode()


def page_size(container: OfdContainer, doc_root: str, page_path: str) -> tuple[float, float]:
    """The page's PhysicalBox width and height (mm): the page's own Area, else the document's."""
    for path, area_path in ((page_path, (q("Area"),)), (doc_root, (q("CommonData"), q("PageArea")))):
        node = container.xml(path)
        for tag in area_path:
            node = node.find(tag) if node is not None else None
        box = node.find(q("PhysicalBox")) if node is not None else None
        if box is not None and box.text:
            try:
                _, _, w, h = (float(v) for v in box.text.split())
                return w, h
            except ValueError:
                raise OfdMalformed(f"{path}: PhysicalBox {box.text!r} is not four numbers") from None
    raise OfdMalformed(f"{doc_root} gives no page size (CommonData/PageArea/PhysicalBox)")


def _default_box(size: tuple[float, float], seal: Seal) -> StampBox:
    """The seal's own size, at the right of the page's lower third (over 发文机关署名 and 成文日期)."""
    w, h = size
    sw, sh = float(seal.picture.width_mm), float(seal.picture.height_mm)
    return StampBox(max(w - _PAGE_MARGIN_MM - sw, 0.0), max(h * 2 / 3 - sh / 2, 0.0), sw, sh)


def _check_box(size: tuple[float, float], box: StampBox) -> None:
    w, h = size
    if min(box.x, box.y) < 0 or box.width <= 0 or box.height <= 0 or box.x + box.width > w \
            or box.y + box.height > h:
        raise OfdInputError(f"the seal's box {box.to_st_box()} is not on the {_num(w)}×{_num(h)} mm page")


def _num(v: float) -> str:
    return f"{v:.3f}".rstrip("0").rstrip(".")
