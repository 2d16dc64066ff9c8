"""A small, valid OFD (GB/T 33190) made from scratch for the tests: an A4 通知 of one or more pages.

Built by hand from the standard's structure (OFD.xml → Doc_0/Document.xml → pages, a public font
resource), so it validates against the published XSDs (tests/exchange_protocol/ofd_xsd) and opens in
a reader we did not write (easyofd). Text is drawn with TextCode and explicit DeltaX, a red rule
under the 发文机关标志 with a PathObject.
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

NS = "http://www.ofdspec.org/2016"
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _text(obj_id: int, x: float, y: float, size: float, text: str, color: str = "0 0 0") -> str:
    width = size * len(text)
    delta = " ".join([f"{size:g}"] * (len(text) - 1))
    delta_attr = f' DeltaX="{delta}"' if delta else ""
    return (f'<ofd:TextObject ID="{obj_id}" Boundary="{x:g} {y:g} {width:g} {size * 1.4:g}" Font="2" Size="{size:g}">'
            f'<ofd:FillColor Value="{color}"/>'
            f'<ofd:TextCode X="0" Y="{size:g}"{delta_attr}>{escape(text)}</ofd:TextCode></ofd:TextObject>')


def page_xml(lines: list[str], first_id: int) -> bytes:
    objs = [_text(first_id, 40, 35, 11, "福州市鼓楼区人民政府办公室", "230 0 18"),
            f'<ofd:PathObject ID="{first_id + 1}" Boundary="25 52 160 1" LineWidth="0.6" Stroke="true">'
            '<ofd:StrokeColor Value="230 0 18"/><ofd:AbbreviatedData>M 0 0.5 L 160 0.5</ofd:AbbreviatedData>'
            "</ofd:PathObject>"]
    for i, line in enumerate(lines):
        objs.append(_text(first_id + 2 + i, 28, 70 + 9 * i, 5.3, line))
    return (f'{DECL}<ofd:Page xmlns:ofd="{NS}"><ofd:Content><ofd:Layer ID="{first_id - 1}">{"".join(objs)}'
            "</ofd:Layer></ofd:Content></ofd:Page>").encode()


def make_ofd(*, doc_id: str = "6d1c4c52a1d04f5b9d3c0f1e2a3b4c5d", title: str = "关于做好年终工作的通知",
             pages: int = 1) -> bytes:
    """The OFD's bytes: ``pages`` pages of a short 通知."""
    files: dict[str, bytes] = {}
    files["OFD.xml"] = (
        f'{DECL}<ofd:OFD xmlns:ofd="{NS}" Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocInfo>'
        f"<ofd:DocID>{doc_id}</ofd:DocID><ofd:Title>{escape(title)}</ofd:Title>"
        "<ofd:Author>gwx tests</ofd:Author><ofd:CreationDate>2026-11-30</ofd:CreationDate></ofd:DocInfo>"
        "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>").encode()
    page_entries = "".join(f'<ofd:Page ID="{10 + n}" BaseLoc="Pages/Page_{n}/Content.xml"/>' for n in range(pages))
    files["Doc_0/Document.xml"] = (
        f'{DECL}<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>{100 * (pages + 1)}</ofd:MaxUnitID>'
        "<ofd:PageArea><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea>"
        "<ofd:PublicRes>PublicRes.xml</ofd:PublicRes></ofd:CommonData>"
        f"<ofd:Pages>{page_entries}</ofd:Pages></ofd:Document>").encode()
    files["Doc_0/PublicRes.xml"] = (
        f'{DECL}<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:Fonts>'
        '<ofd:Font ID="2" FontName="宋体" FamilyName="宋体"/></ofd:Fonts></ofd:Res>').encode()
    for n in range(pages):
        lines = [f"{title}（第{n + 1}页）", "各乡镇人民政府、各街道办事处：", "请各单位于十二月十五日前报送年度总结。",
                 "特此通知。"]
        files[f"Doc_0/Pages/Page_{n}/Content.xml"] = page_xml(lines, 100 * (n + 1) + 1)
    return zip_files(files)


def zip_files(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def needing_zip_version(data: bytes, version: int = 64) -> bytes:
    """``data`` with every central-directory entry's "version needed to extract" set to ``version``
    (64 is 6.4, above the 6.3 ``zipfile`` reads: it raises NotImplementedError, not BadZipFile)."""
    out = bytearray(data)
    at = out.find(b"PK\x01\x02")
    assert at >= 0, "no central directory entry"
    while at >= 0:
        out[at + 6] = version
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)
