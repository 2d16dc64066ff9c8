"""Seal pictures: check a PNG someone hands us, or draw the standard red round unit seal.

A seal's picture is shown on every sealed page, so it is validated like any hostile input:
the PNG signature, the dimensions read from the header *before* decoding (a decompression
bomb never gets allocated), a byte limit, and a full decode so a truncated or corrupt file is
refused at seal-making time rather than on a recipient's screen.

The generated seal follows the usual layout of an official round seal (公章): a red ring, a
five-pointed star in the middle, the unit name along the upper arc with each character turned
to face the centre, transparent everywhere else. Its coverage is drawn as a one-channel mask at
four times the target size and scaled down (Pillow's cheapest way to antialias polygons and thick
circles), then given the ink as its alpha: a quarter of the pixel work of drawing, turning and
scaling an RGBA picture. A picture once drawn is remembered for its arguments in the process
(bounded, like the validated ones): a node hosting many units, or a process that provisions many
nodes, draws the same name once.
A CJK font is required; without one we refuse with ``SEAL_FONT_MISSING`` instead of drawing
tofu boxes into an official seal.

Pillow is imported when a picture is first checked or drawn, not with this module: most processes
that import it (``gwx`` commands, a node's start) never touch a picture, and Pillow's import costs
~15 ms of CPU.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import shutil
import subprocess
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SealFontMissing, SealPictureInvalid

if TYPE_CHECKING:
    from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PICTURE_BYTES = 1024 * 1024
MAX_PICTURE_PIXELS = 4096  # per side
MIN_PICTURE_PIXELS = 16
STANDARD_DIAMETER_MM = 42  # 党政机关公文 unit seal size in common use
DEFAULT_DPI = 300
SEAL_RED = (230, 0, 18)

# Fallback locations when fontconfig is unavailable; the Makefile installs fonts-wqy-zenhei.
_KNOWN_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
)


@dataclass(frozen=True)
class PngInfo:
    width_px: int
    height_px: int


def validate_png(data: bytes, *, max_bytes: int = MAX_PICTURE_BYTES,
                 max_pixels: int = MAX_PICTURE_PIXELS) -> PngInfo:
    """Return the PNG's pixel size, or raise :class:`SealPictureInvalid`.

    Decoding a seal picture costs milliseconds and every document a unit sends carries the same
    one: a picture that passed is remembered by its SHA-256 (with the limits it passed under).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise SealPictureInvalid("seal picture must be bytes")
    key = (hashlib.sha256(data).digest(), max_bytes, max_pixels)
    known = _VALID.get(key)
    if known is not None:
        return known
    info = _validate_png(bytes(data), max_bytes, max_pixels)
    if len(_VALID) >= _VALID_MAX:
        _VALID.pop(next(iter(_VALID)))
    _VALID[key] = info
    return info


_VALID: dict[tuple[bytes, int, int], PngInfo] = {}  # pictures that decoded cleanly (bounded, oldest out)
_VALID_MAX = 256


def _validate_png(data: bytes, max_bytes: int, max_pixels: int) -> PngInfo:
    if not isinstance(data, (bytes, bytearray)):
        raise SealPictureInvalid("seal picture must be bytes")
    if len(data) > max_bytes:
        raise SealPictureInvalid(f"seal picture is {len(data)} bytes, at most {max_bytes} allowed",
                                 size=len(data))
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 33:
        raise SealPictureInvalid("seal picture is not a PNG file")
    # Dimensions from IHDR before Pillow allocates anything.
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    for side in (width, height):
        if not MIN_PICTURE_PIXELS <= side <= max_pixels:
            raise SealPictureInvalid(f"seal picture is {width}×{height} px; each side must be "
                                     f"{MIN_PICTURE_PIXELS}–{max_pixels} px", width=width, height=height)
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(data)), formats=["PNG"]) as img:
                img.load()  # decodes every row and checks CRCs of what it reads
                if img.size != (width, height):
                    raise SealPictureInvalid("PNG header and image size disagree")
    except SealPictureInvalid:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, …)
        raise SealPictureInvalid(f"seal picture does not decode as PNG: {exc}") from None
    return PngInfo(width, height)


def find_cjk_font() -> Path:
    """A font file that can draw Chinese, or :class:`SealFontMissing`."""
    fc_list = shutil.which("fc-list")
    if fc_list:
        files = sorted(line.split(":")[0].strip() for line in _fc_list_zh(fc_list).splitlines() if line.strip())
        # Prefer regular-weight sans faces over whatever fontconfig lists first.
        files.sort(key=lambda f: (("bold" in f.lower()) or ("light" in f.lower()), "sharp" in f.lower()))
        for f in files:
            if Path(f).is_file():
                return Path(f)
    for f in _KNOWN_FONTS:
        if Path(f).is_file():
            return Path(f)
    raise SealFontMissing("no Chinese (CJK) font found to draw the seal picture; install the Debian "
                          "package fonts-wqy-zenhei (or fonts-noto-cjk), or give a PNG with --image")


@functools.cache
def _fc_list_zh(fc_list: str) -> str:
    """fontconfig's Chinese fonts, asked once per process (a child process each time otherwise)."""
    try:
        return subprocess.run([fc_list, ":lang=zh", "file"], capture_output=True, text=True,
                              timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def mm_to_px(mm: float, dpi: int = DEFAULT_DPI) -> int:
    return round(mm / 25.4 * dpi)


def render_round_seal(name: str, *, diameter_mm: int = STANDARD_DIAMETER_MM, dpi: int = DEFAULT_DPI,
                      font_path: str | Path | None = None, color: tuple[int, int, int] = SEAL_RED) -> bytes:
    """Draw a red round seal for ``name`` and return it as PNG bytes (RGBA, transparent)."""
    name = (name or "").strip()
    if not name:
        raise SealPictureInvalid("a seal picture needs the unit name")
    if len(name) > 40:
        raise SealPictureInvalid(f"unit name of {len(name)} characters does not fit on a round seal")
    font_file = Path(font_path) if font_path else find_cjk_font()
    key = (name, diameter_mm, dpi, str(font_file), tuple(color))
    with _DRAWN_LOCK:
        drawn = _DRAWN.get(key)
    if drawn is None:
        drawn = _draw(name, diameter_mm, dpi, font_file, color)
        with _DRAWN_LOCK:  # threads drawing at once (a node's start) must not evict the same one twice
            if len(_DRAWN) >= _DRAWN_MAX:
                _DRAWN.pop(next(iter(_DRAWN)))
            _DRAWN[key] = drawn
    return drawn


_DRAWN: dict[tuple, bytes] = {}  # pictures drawn in this process (bounded, oldest out)
_DRAWN_MAX = 64
_DRAWN_LOCK = threading.Lock()


def _draw(name: str, diameter_mm: int, dpi: int, font_file: Path, color: tuple[int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    size = mm_to_px(diameter_mm, dpi)
    scale = 4
    big = size * scale
    mask = Image.new("L", (big, big), 0)  # how much ink each pixel holds
    draw = ImageDraw.Draw(mask)
    centre = big / 2
    ring = big * 0.035  # ~1.5 mm of a 42 mm seal
    outer = big / 2 - big * 0.01
    draw.ellipse((centre - outer, centre - outer, centre + outer, centre + outer), outline=255,
                 width=round(ring))
    draw.polygon(_star_points(centre, centre, big * 0.19), fill=255)
    _draw_arc_text(mask, name, font_file, centre, outer - ring - big * 0.02)
    out = Image.new("RGBA", (size, size), (*color, 0))
    out.putalpha(mask.resize((size, size), Image.Resampling.LANCZOS))
    buf = io.BytesIO()
    out.save(buf, format="PNG", dpi=(dpi, dpi))  # zlib's default level: optimize=True took 5× as long for 3 % less
    return buf.getvalue()


def _star_points(cx: float, cy: float, r_outer: float) -> list[tuple[float, float]]:
    r_inner = r_outer * math.sin(math.radians(18)) / math.sin(math.radians(126))
    points = []
    for i in range(10):
        r = r_outer if i % 2 == 0 else r_inner
        a = math.radians(-90 + i * 36)  # first point straight up
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def _draw_arc_text(mask: Image.Image, text: str, font_file: Path, centre: float, radius: float) -> None:
    from PIL import Image, ImageDraw, ImageFont

    n = len(text)
    # Long names spread over more of the circle; short ones stay on the upper arc.
    span = min(250.0, max(120.0, 22.0 * n))
    # Arc length per character at the text's own radius (radius - c/2), with 15 % spacing:
    # c = k (radius - c/2)  =>  c = k radius / (1 + k/2).
    k = 2 * math.pi * (span / 360) / max(n, 1) * 0.85
    char_px = min(mask.width * 0.13, k * radius / (1 + k / 2))
    try:
        font = ImageFont.truetype(str(font_file), round(char_px))
    except OSError as exc:
        raise SealFontMissing(f"cannot load font {font_file}: {exc}") from None
    text_radius = radius - char_px / 2
    step = span / n if n > 1 else 0.0
    start = -90 - span / 2 + step / 2  # degrees, 0 = east, -90 = top (screen coordinates)
    for i, ch in enumerate(text):
        angle = start + i * step
        tile = Image.new("L", (round(char_px * 1.4),) * 2, 0)
        ImageDraw.Draw(tile).text((tile.width / 2, tile.height / 2), ch, font=font, fill=255, anchor="mm")
        # Upright at the top; rotate so the character's top points away from the centre.
        tile = tile.rotate(-(angle + 90), resample=Image.Resampling.BICUBIC, expand=True)
        x = centre + text_radius * math.cos(math.radians(angle)) - tile.width / 2
        y = centre + text_radius * math.sin(math.radians(angle)) - tile.height / 2
        mask.paste(255, (round(x), round(y)), tile)  # ink over what is there, as much as the tile holds
