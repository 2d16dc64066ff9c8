"""A minimal strict DER reader and writer for the envelope's own hand-assembled structures.

The envelope hot path parses a few fixed shapes (CMS prefixes, recipient infos) thousands of times a
second; asn1crypto's generic machinery costs about a millisecond per structure there. This reader does
only what those shapes need: definite lengths in minimal form, one-byte tags, and a ``partial`` mode
in which running out of bytes means "feed me more" (:class:`NeedMore`) rather than "malformed".
"""

from __future__ import annotations


class NeedMore(Exception):
    """The buffer ends inside the element being read; retry with more bytes."""


def length_bytes(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    n = (length.bit_length() + 7) // 8
    return bytes([0x80 | n]) + length.to_bytes(n, "big")


def tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + length_bytes(len(body)) + body


class Reader:
    """Reads TLVs from ``data`` front to back. Structural errors raise ``ValueError``."""

    __slots__ = ("data", "partial", "pos")

    def __init__(self, data: bytes | bytearray, partial: bool = False) -> None:
        self.data = data
        self.partial = partial
        self.pos = 0

    def _short(self) -> Exception:
        return NeedMore() if self.partial else ValueError("element runs past the end of its container")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ValueError("unexpected bytes at the end of a structure")

    def peek_tag(self) -> int:
        if self.pos >= len(self.data):
            raise self._short()
        return self.data[self.pos]

    def header(self, tag: int) -> int:
        """Consume the tag and length of an element with ``tag``; return its content length."""
        data, pos = self.data, self.pos
        if pos + 2 > len(data):
            raise self._short()
        if data[pos] != tag:
            raise ValueError(f"expected tag {tag:#04x}, found {data[pos]:#04x} at offset {pos}")
        first = data[pos + 1]
        pos += 2
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            if n == 0 or n > 8:
                raise ValueError("indefinite or oversized length (DER requires definite lengths)")
            if pos + n > len(data):
                raise self._short()
            length = int.from_bytes(data[pos:pos + n], "big")
            if length < 0x80 or data[pos] == 0:
                raise ValueError("length not in minimal DER form")
            pos += n
        self.pos = pos
        return length

    def element(self, tag: int) -> bytes:
        """The content bytes of the next element, which must have ``tag``."""
        start = self.pos
        length = self.header(tag)
        if self.pos + length > len(self.data):
            self.pos = start
            raise self._short()
        value = bytes(self.data[self.pos:self.pos + length])
        self.pos += length
        return value

    def raw(self, tag: int) -> bytes:
        """The whole encoding (tag, length, content) of the next element with ``tag``."""
        start = self.pos
        self.element(tag)
        return bytes(self.data[start:self.pos])
