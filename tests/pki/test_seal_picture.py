"""Seal pictures: the drawn round seal looks like one, and hostile PNGs are refused."""

from __future__ import annotations

import io
import math
import struct
import threading
import time
import zlib

import pytest
from PIL import Image

from pki import seal_picture
from pki.errors import SealFontMissing, SealPictureInvalid
from pki.seal_picture import find_cjk_font, mm_to_px, render_round_seal, validate_png

NAME = "临沂市兰山区人民政府办公室"


@pytest.fixture(scope="module")
def drawn() -> Image.Image:
    png = render_round_seal(NAME)
    # Kept for people: open /tmp/gwx-test-seal.png to see what the test looked at.
    with open("/tmp/gwx-test-seal.png", "wb") as f:
        f.write(png)
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def _is_red(px) -> bool:
    r, g, b, a = px
    return a > 200 and r > 180 and g < 80 and b < 80


def _polar(img, radius_frac: float, angle_deg: float):
    c = img.width / 2
    r = radius_frac * img.width / 2
    return img.getpixel((round(c + r * math.cos(math.radians(angle_deg))),
                         round(c + r * math.sin(math.radians(angle_deg)))))


def test_drawn_seal_is_a_42mm_rgba_png_at_300_dpi(drawn):
    assert drawn.format == "PNG" and drawn.mode == "RGBA"
    assert drawn.size == (mm_to_px(42, 300), mm_to_px(42, 300)) == (496, 496)
    assert round(drawn.info["dpi"][0]) == 300


def test_ring_is_red_all_the_way_round(drawn):
    # The ring's centre line lies at ~0.955 of the radius (1% margin, 3.5% stroke).
    assert all(_is_red(_polar(drawn, 0.955, a)) for a in range(0, 360, 5))


def test_star_centre_is_red_and_star_points_up(drawn):
    c = drawn.width // 2
    assert _is_red(drawn.getpixel((c, c)))
    assert _is_red(_polar(drawn, 0.3, -90))  # inside the upper point
    assert not _is_red(_polar(drawn, 0.3, 90))  # between the two lower points


def test_background_is_transparent(drawn):
    for x, y in ((0, 0), (drawn.width - 1, 0), (0, drawn.height - 1), (drawn.width - 1, drawn.height - 1)):
        assert drawn.getpixel((x, y))[3] == 0
    # between star and ring at the bottom, where no text goes
    assert drawn.getpixel((drawn.width // 2, round(drawn.height * 0.8)))[3] == 0


def test_name_runs_along_the_upper_arc_only(drawn):
    def red_in_band(lo: float, hi: float) -> int:
        return sum(_is_red(_polar(drawn, r / 100, a)) for r in range(66, 90, 2) for a in range(int(lo), int(hi), 2))
    upper = red_in_band(-200, 20)  # the upper arc (screen angles, -90 = top)
    lower = red_in_band(55, 125)
    assert upper > 100 and lower == 0


def test_no_cjk_font_is_a_typed_error(monkeypatch, tmp_path):
    with pytest.raises(SealFontMissing):
        render_round_seal(NAME, font_path=tmp_path / "missing.ttf")
    monkeypatch.setattr(seal_picture.shutil, "which", lambda _: None)
    monkeypatch.setattr(seal_picture, "_KNOWN_FONTS", (str(tmp_path / "none.ttc"),))
    with pytest.raises(SealFontMissing) as err:
        find_cjk_font()
    assert "fonts-wqy-zenhei" in err.value.message


def test_system_has_a_cjk_font():
    assert find_cjk_font().is_file()


def _png(w: int, h: int, *, mode: str = "RGBA") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), (255, 0, 0, 255) if mode == "RGBA" else 0).save(buf, format="PNG")
    return buf.getvalue()


def _with_ihdr_size(png: bytes, w: int, h: int) -> bytes:
    ihdr = struct.pack(">II", w, h) + png[24:29]
    return png[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + png[33:]


def test_valid_png_passes():
    assert validate_png(_png(100, 80)).width_px == 100


@pytest.mark.parametrize("bad", [
    pytest.param(b"", id="empty"),
    pytest.param(b"GIF89a" + b"\0" * 100, id="gif"),
    pytest.param(_png(100, 100)[:60], id="truncated"),
    pytest.param(_png(100, 100)[:-20] + b"\0" * 20, id="corrupt-tail"),
    pytest.param(_png(8, 8), id="too-small"),
    pytest.param(_with_ihdr_size(_png(100, 100), 100_000, 100_000), id="bomb-header"),
    pytest.param(_with_ihdr_size(_png(100, 100), 120, 100), id="header-lies"),
])
def test_bad_pictures_are_refused(bad):
    with pytest.raises(SealPictureInvalid):
        validate_png(bad)


def test_flipped_byte_in_image_data_is_refused():
    png = bytearray(_png(200, 200))
    idat = png.index(b"IDAT")
    png[idat + 10] ^= 0xFF
    with pytest.raises(SealPictureInvalid):
        validate_png(bytes(png))


def test_picture_byte_limit():
    with pytest.raises(SealPictureInvalid):
        validate_png(_png(100, 100), max_bytes=100)


def test_a_remembered_good_picture_does_not_vouch_for_a_damaged_one():
    good = render_round_seal("临沂市人民政府办公室")
    assert validate_png(good) == validate_png(good)  # the second answer comes from memory
    damaged = good[:-40] + bytes(40)  # same header and size, broken data and CRCs
    with pytest.raises(SealPictureInvalid):
        validate_png(damaged)
    with pytest.raises(SealPictureInvalid):  # the limits are part of what was remembered
        validate_png(good, max_pixels=10)


class _SlowToCount(dict):
    """The picture cache, handing the GIL over right after its size is read — as a busy machine may,
    between a thread's check of the bound and its eviction — and keeping the largest size it held."""

    peak = 0

    def __len__(self) -> int:
        size = dict.__len__(self)
        time.sleep(0.01)
        return size

    def __setitem__(self, key, value) -> None:
        dict.__setitem__(self, key, value)
        self.peak = max(self.peak, dict.__len__(self))


def test_threads_drawing_at_once_get_their_own_pictures_and_the_cache_keeps_its_bound(monkeypatch):
    """A node's start draws its units' seals in several threads at once: each gets the picture of its
    own name, and the pictures remembered stay within their bound (checked and evicted under one lock)."""
    threads, each = 7, 14  # 98 new pictures; 7 drawn together at a time, so the cache reaches 63 and 64 + 6
    cache = _SlowToCount()
    together = threading.Barrier(threads, timeout=30)

    def draw(name, diameter_mm, dpi, font_file, color) -> bytes:
        together.wait()  # the threads finish drawing together and remember their pictures at once
        return f"picture of {name} at {diameter_mm} mm".encode()

    monkeypatch.setattr(seal_picture, "_DRAWN", cache)
    monkeypatch.setattr(seal_picture, "_draw", draw)
    got: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def unit(t: int) -> None:
        try:
            for i in range(each):
                name = f"第{t}组第{i}号单位"
                got[name] = render_round_seal(name, font_path="/fonts/any.ttf")
        except BaseException as exc:  # reported below, with the others released
            errors.append(exc)
            together.abort()

    workers = [threading.Thread(target=unit, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    assert len(got) == threads * each
    assert all(png == f"picture of {name} at 42 mm".encode() for name, png in got.items())
    peak = cache.peak
    assert peak <= seal_picture._DRAWN_MAX
    assert dict.__len__(cache) == seal_picture._DRAWN_MAX
    assert all(png == f"picture of {key[0]} at 42 mm".encode() for key, png in cache.items())


def test_pillow_is_loaded_by_the_first_picture_not_by_a_nodes_start():
    """A node's start and a ``gwx`` command import this module but draw and check no picture: Pillow
    (~15 ms of CPU) comes with the first picture checked, which is still checked in full."""
    import subprocess
    import sys

    from tests.support import REPO

    probe = ("import sys\n"
             "import node.runner, pki.seal_store\n"
             "print('PIL' in sys.modules)\n"
             "from pki.seal_picture import validate_png\n"
             f"print(validate_png({_png(32, 32)!r}).width_px, 'PIL' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "32", "True"]
