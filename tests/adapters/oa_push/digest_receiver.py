"""The legacy OA's ReceiveGongwen read as a stream, for pushes too large for spyne (libxml2 refuses a
text node over 10 MB, and spyne would hold the whole request): expat is fed the request body in
slices, the small fields are kept, and the base64 of the body (zw) and of each attachment (fjnr) is
decoded as it arrives into a SHA-256 and a length, so the test knows the OA received exactly the
content that was sent without either side holding it. Test-side only, like the rest of the OA.
"""

from __future__ import annotations

import base64
import hashlib
import xml.parsers.expat

from tests.adapters.oa_push.legacy_oa import NAMESPACE

SLICE = 1024 * 1024
BINARY = {"zw", "fjnr"}
ANSWER = ('<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="'
          + NAMESPACE + '"><soap11env:Body><tns:ReceiveGongwenResponse><tns:ReceiveGongwenResult>{}'
          "</tns:ReceiveGongwenResult></tns:ReceiveGongwenResponse></soap11env:Body></soap11env:Envelope>")


class _Digest:
    """base64 text in pieces → SHA-256 and size of what it decodes to."""

    def __init__(self) -> None:
        self.sha256, self.size, self._carry = hashlib.sha256(), 0, ""

    def feed(self, text: str) -> None:
        text = self._carry + "".join(text.split())
        cut = len(text) - len(text) % 4
        self._carry = text[cut:]
        data = base64.b64decode(text[:cut], validate=True)
        self.sha256.update(data)
        self.size += len(data)

    def result(self) -> tuple[str, int]:
        if self._carry:
            raise ValueError("base64 text ends mid-quantum")
        return self.sha256.hexdigest(), self.size


def read_push(stream, length: int) -> dict:
    """The fields of a ReceiveGongwen request read from ``stream`` (``length`` bytes): text fields
    as text, ``zw`` as (sha256, size), ``fj`` as [(fjmc, sha256, size)]."""
    fields: dict = {"fj": []}
    path: list[str] = []
    text: list[str] = []
    digest: list[_Digest | None] = [None]
    attachment: dict = {}

    def start(name, _attrs):
        local = name.rsplit(" ", 1)[-1]
        path.append(local)
        text.clear()
        digest[0] = _Digest() if local in BINARY else None

    def data(chunk):
        if digest[0] is not None:
            digest[0].feed(chunk)
        else:
            text.append(chunk)

    def end(name):
        local = path.pop()
        if local == "zw":
            fields["zw"] = digest[0].result()
        elif local == "fjnr":
            attachment["fjnr"] = digest[0].result()
        elif local == "fjmc":
            attachment["fjmc"] = "".join(text)
        elif local == "Fujian":
            fields["fj"].append((attachment.pop("fjmc", None), *attachment.pop("fjnr", (None, 0))))
        elif len(path) == 3 and local != "fj":  # Envelope / Body / ReceiveGongwen / this field
            fields[local] = "".join(text)
        digest[0] = None
        text.clear()

    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = False
    parser.StartElementHandler, parser.CharacterDataHandler, parser.EndElementHandler = start, data, end
    left = length
    while left > 0:
        piece = stream.read(min(SLICE, left))
        if not piece:
            raise ValueError(f"the request ended {left} bytes early")
        left -= len(piece)
        parser.Parse(piece, False)
    parser.Parse(b"", True)
    return fields
