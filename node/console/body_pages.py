"""The body PDF shown in the page: each page rendered to PNG on the server by poppler's ``pdftoppm``.

Why server-side images and not pdf.js: the console's pages carry no script of their own beyond what
its CSP allows, a phone shows an image as well as a desk, and poppler-utils is already a system
package the node's tests use. The body is read from the sealed package through
:class:`exchange_protocol.package_reader.PackageReader` (its digest checked against the manifest)
into a temporary file under the node's own directory (``tmp``, cleared at start), which ``pdfinfo``
measures and ``pdftoppm`` renders, one page per request.

A body is anyone's PDF, so rendering is bounded: a page is drawn at :data:`RESOLUTION` but never
more than :data:`MAX_PIXELS` on its longer side (a 5000 pt page would otherwise be 7639 px square,
175 MB); poppler runs under ``prlimit`` (:data:`MAX_MEMORY` of address space, :data:`MAX_CPU_SECONDS`
of CPU) and a wall-clock :data:`TIMEOUT`; at most :data:`AT_ONCE` of them run at a time per node. What
``pdfinfo`` says of a body (its page count and sizes) is kept per package file, so a page image costs
one ``pdftoppm``; nothing rendered is kept, so a recalled document's pages go when its package does.

An OFD body (body.ofd) is not drawn: no OFD renderer is a Debian package, and the one tried (easyofd,
in the tests) draws without the document's fonts. The page offers it as a download for the clerk's
OFD reader, beside the verification report, whose ``ofd_seal`` line says whether its seal holds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from exchange_protocol.manifest import OFD_BODY_NAME
from exchange_protocol.package_reader import PackageReader
from node.console.errors import BodyUnreadable, NoSuchAttachment

RESOLUTION = 110  # dots per inch: an A4 page 910 px wide, readable on a desk, zoomable on a phone
MAX_PIXELS = 1800  # the longer side of a page image at most
MAX_PAGES = 200
TIMEOUT = 30.0
MAX_MEMORY = 768 * 1024 * 1024  # bytes of address space for one pdfinfo/pdftoppm
MAX_CPU_SECONDS = 20
AT_ONCE = 2  # poppler processes at a time per node (the machine's cores are shared with everything else)
KEPT = 256  # bodies whose pdfinfo is remembered
ATTACHMENTS = "attachments/"
TMP_PREFIX = "gwx-console-"


@dataclass(frozen=True)
class BodyInfo:
    pages: int  # shown: at most MAX_PAGES
    total: int  # in the PDF
    sizes: tuple[tuple[float, float], ...]  # points, of the pages shown
    ofd: bool = False  # an OFD body: not drawn, offered as a download (see the module doc)


_infos: collections.OrderedDict[tuple[str, int, int], BodyInfo] = collections.OrderedDict()
_running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def clear_leftovers(tmp: Path) -> None:
    """Make ``tmp`` (the node's, mode 0700) and remove what a run that crashed left in it."""
    tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    for left in tmp.glob(TMP_PREFIX + "*"):
        shutil.rmtree(left, ignore_errors=True)


@contextlib.asynccontextmanager
async def body_file(package: Path, tmp: Path) -> AsyncIterator[Path]:
    """The package's body (body.pdf or body.ofd), checked against its manifest, in a temporary file
    for the block."""
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=tmp) as where:
        name = await asyncio.to_thread(body_name, package)
        target = Path(where) / name
        await asyncio.to_thread(_copy_member, package, name, target)
        yield target


def body_name(package: Path) -> str:
    """body.pdf or body.ofd, as the package (checked by the reader) carries it."""
    with open(package, "rb") as f, PackageReader(f) as reader:
        return reader.body_name


def _copy_member(package: Path, member: str, target: Path) -> None:
    with open(package, "rb") as f, PackageReader(f) as reader, open(target, "wb") as out:
        for chunk in reader.iter_member(member):
            out.write(chunk)


async def _run(*command: str) -> bytes:
    limited = ("prlimit", f"--as={MAX_MEMORY}", f"--cpu={MAX_CPU_SECONDS}", "--", *command)
    loop = asyncio.get_running_loop()
    running = _running.setdefault(loop, asyncio.Semaphore(AT_ONCE))
    async with running:
        process = await asyncio.create_subprocess_exec(*limited, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise BodyUnreadable(f"{command[0]} took more than {TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        raise BodyUnreadable(f"{command[0]} failed (exit {process.returncode}): "
                             f"{err.decode(errors='replace')[:200]}")
    return out


async def body_info(package: Path, tmp: Path) -> BodyInfo:
    """How many pages the body has and their sizes, remembered per package file."""
    stat = package.stat()
    key = (str(package), stat.st_size, stat.st_mtime_ns)
    if key in _infos:
        _infos.move_to_end(key)
        return _infos[key]
    if await asyncio.to_thread(body_name, package) == OFD_BODY_NAME:
        info = BodyInfo(0, 0, (), ofd=True)
        _infos[key] = info
        return info
    async with body_file(package, tmp) as pdf:
        info = _parse_info((await _run("pdfinfo", "-f", "1", "-l", str(MAX_PAGES), str(pdf))).decode(errors="replace"))
    _infos[key] = info
    while len(_infos) > KEPT:
        _infos.popitem(last=False)
    return info


def _parse_info(text: str) -> BodyInfo:
    found = re.search(r"^Pages:\s+([0-9]+)", text, re.M)
    if not found:
        raise BodyUnreadable("pdfinfo did not say how many pages the body has")
    total = int(found.group(1))
    sizes = {int(n): (float(w), float(h)) for n, w, h in
             re.findall(r"^Page\s+([0-9]+) size:\s+([0-9.]+) x ([0-9.]+)", text, re.M)}
    shown = min(total, MAX_PAGES)
    return BodyInfo(shown, total, tuple(sizes.get(n, (612.0, 792.0)) for n in range(1, shown + 1)))


def resolution_for(size: tuple[float, float]) -> float:
    """:data:`RESOLUTION`, lowered so that the page's longer side is at most :data:`MAX_PIXELS`."""
    longest = max(size[0], size[1], 1.0)
    return min(RESOLUTION, (MAX_PIXELS - 1) * 72 / longest)  # - 1: pdftoppm rounds the pixel count up


async def page_png(package: Path, number: int, tmp: Path) -> bytes | None:
    """Page ``number`` (from 1) as PNG; ``None`` when the body has no such page shown."""
    info = await body_info(package, tmp)
    if not 1 <= number <= info.pages:
        return None
    dpi = resolution_for(info.sizes[number - 1])
    async with body_file(package, tmp) as pdf:
        return await _run("pdftoppm", "-png", "-r", f"{dpi:.3f}", "-f", str(number), "-l", str(number),
                          "-singlefile", str(pdf))


@contextlib.asynccontextmanager
async def attachment_file(package: Path, name: str, listed: list[str], tmp: Path) -> AsyncIterator[Path]:
    """An attachment, wholly checked against the manifest before anything of it is sent, in a
    temporary file for the block; only a name the document lists (never a path built from input)."""
    if name not in listed:
        raise NoSuchAttachment(f"the document lists no attachment {name[:80]!r}", name=name[:80])
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=tmp) as where:
        target = Path(where) / "attachment"
        await asyncio.to_thread(_copy_member, package, ATTACHMENTS + name, target)
        yield target
