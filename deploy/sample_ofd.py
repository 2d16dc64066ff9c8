"""A sample 通知 as an OFD (GB/T 33190) for the demo on a 国密 network: the same text
:func:`node.localnet.notice_pdf` lays out in a PDF, on one A4 page.

The demo's own maker, not the tests' (tests/exchange_protocol/ofd_fixtures.py stays theirs, so that the
independent verifier there imports no product code). The smallest OFD a reader accepts: OFD.xml →
Doc_0/Document.xml → one page, a public font resource (宋体). Text is drawn with TextCode and explicit
DeltaX (one advance per character), the issuing organ and the date at the foot where a seal goes, a
red rule under the title as in GB/T 9704. Units are millimetres, as OFD's are.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
import zipfile
from collections.abc import Sequence
from xml.sax.saxutils import escape

NS = "http://www.ofdspec.org/2016"
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
PAGE_WIDTH, PAGE_HEIGHT = 210, 297  # A4
RED = "230 0 18"


def _text(obj_id: int, x: float, y: float, size: float, text: str, color: str = "0 0 0") -> str:
    width = size * len(text)
    delta = " ".join([f"{size:g}"] * (len(text) - 1))
    delta_attr = f' DeltaX="{delta}"' if delta else ""
    return (f'<ofd:TextObject ID="{obj_id}" Boundary="{x:g} {y:g} {width:g} {size * 1.4:g}" Font="2" '
            f'Size="{size:g}"><ofd:FillColor Value="{color}"/>'
            f'<ofd:TextCode X="0" Y="{size:g}"{delta_attr}>{escape(text)}</ofd:TextCode></ofd:TextObject>')


def _page(title: str, issuer: str, greeting: str, body: Sequence[str], date_line: str | None) -> bytes:
    title_size, size = 7.5, 5.6  # 22 pt and 16 pt, as notice_pdf sets them
    lines = [(max(10.0, (PAGE_WIDTH - title_size * len(title)) / 2), 40.0, title_size, title, RED),
             (31.0, 65.0, size, greeting, "0 0 0")]
    lines += [(42.0, 76.0 + 9.2 * i, size, line, "0 0 0") for i, line in enumerate(body)]
    lines.append((134.0, 190.0, size, issuer, "0 0 0"))
    if date_line:
        lines.append((131.0, 200.0, size, date_line, "0 0 0"))
    objects = [_text(101 + i, x, y, s, text, color) for i, (x, y, s, text, color) in enumerate(lines)]
    objects.append(f'<ofd:PathObject ID="{101 + len(lines)}" Boundary="25 54 160 1" LineWidth="0.6" '
                   f'Stroke="true"><ofd:StrokeColor Value="{RED}"/>'
                   "<ofd:AbbreviatedData>M 0 0.5 L 160 0.5</ofd:AbbreviatedData></ofd:PathObject>")
    return (f'{DECL}<ofd:Page xmlns:ofd="{NS}"><ofd:Content><ofd:Layer ID="100">{"".join(objects)}'
            "</ofd:Layer></ofd:Content></ofd:Page>").encode()


def notice_ofd(title: str = "关于做好冬季安全生产工作的通知", *, issuer: str = "某某市人民政府",
               greeting: str = "各县（市、区）人民政府，市直各单位：",
               body: Sequence[str] = ("现将有关事项通知如下。",), date_line: str | None = "2026年11月20日") -> bytes:
    """The OFD's bytes: ``title``, ``greeting`` and the ``body`` lines, the issuing organ and the date
    line at the foot (``date_line=None`` leaves it out)."""
    files = {
        "OFD.xml": (
            f'{DECL}<ofd:OFD xmlns:ofd="{NS}" Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocInfo>'
            f"<ofd:DocID>{uuid.uuid4().hex}</ofd:DocID><ofd:Title>{escape(title)}</ofd:Title>"
            f"<ofd:Author>{escape(issuer)}</ofd:Author>"
            f"<ofd:CreationDate>{dt.date.today().isoformat()}</ofd:CreationDate></ofd:DocInfo>"
            "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>").encode(),
        "Doc_0/Document.xml": (
            f'{DECL}<ofd:Document xmlns:ofd="{NS}"><ofd:CommonData><ofd:MaxUnitID>200</ofd:MaxUnitID>'
            f"<ofd:PageArea><ofd:PhysicalBox>0 0 {PAGE_WIDTH} {PAGE_HEIGHT}</ofd:PhysicalBox></ofd:PageArea>"
            "<ofd:PublicRes>PublicRes.xml</ofd:PublicRes></ofd:CommonData>"
            '<ofd:Pages><ofd:Page ID="10" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages></ofd:Document>').encode(),
        "Doc_0/PublicRes.xml": (
            f'{DECL}<ofd:Res xmlns:ofd="{NS}" BaseLoc="Res"><ofd:Fonts>'
            '<ofd:Font ID="2" FontName="宋体" FamilyName="宋体"/></ofd:Fonts></ofd:Res>').encode(),
        "Doc_0/Pages/Page_0/Content.xml": _page(title, issuer, greeting, body, date_line),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()
