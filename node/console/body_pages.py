"""The body PDF shown in the page: each page rendered to PNG on the server by poppler's ``pdftoppm``.

Why server-side images and not pdf.js: the console's pages carry no script of their own beyond what
its CSP allows, a phone shows an image as well as a desk, and poppler-utils is already a system
package the node's tests use. The body is read from the sealed package through
:class:`exchange_protocol.package_reader.PackageReader` (its digest checked against the manifest)
into a temporary file, which ``pdfinfo`` counts and ``pdftoppm`` renders, one page per request, with
a time limit; nothing is cached, so a recalled document's pages go when its package does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from exchange_protocol.manifest import BODY_NAME
from exchange_protocol.package_reader import PackageReader
from node.console.errors import BodyUnreadable, NoSuchAttachment

RESOLUTION = 110  # dots per inch: an A4 page 910 px wide, readable on a desk, zoomable on a phone
MAX_PAGES = 200
TIMEOUT = 30.0
ATTACHMENTS = "attachments/"


@contextlib.asynccontextmanager
async def body_file(package: Path) -> AsyncIterator[Path]:
    """The package's body.pdf, checked against its manifest, in a temporary file for the block."""
    with tempfile.TemporaryDirectory(prefix="gwx-console-") as tmp:
        target = Path(tmp) / "body.pdf"
        await asyncio.to_thread(_copy_member, package, BODY_NAME, target)
        yield target


def _copy_member(package: Path, member: str, target: Path) -> None:
    with open(package, "rb") as f, PackageReader(f) as reader, open(target, "wb") as out:
        for chunk in reader.iter_member(member):
            out.write(chunk)


async def _run(*command: str) -> bytes:
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BodyUnreadable(f"{command[0]} took more than {TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        raise BodyUnreadable(f"{command[0]} failed: {err.decode(errors='replace')[:200]}")
    return out


async def page_count(pdf: Path) -> int:
    info = (await _run("pdfinfo", str(pdf))).decode(errors="replace")
    found = re.search(r"^Pages:\s+([0-9]+)", info, re.M)
    if not found:
        raise BodyUnreadable("pdfinfo did not say how many pages the body has")
    return min(int(found.group(1)), MAX_PAGES)


async def page_png(pdf: Path, number: int) -> bytes:
    return await _run("pdftoppm", "-png", "-r", str(RESOLUTION), "-f", str(number), "-l", str(number),
                      "-singlefile", str(pdf))


@contextlib.asynccontextmanager
async def attachment_file(package: Path, name: str, listed: list[str]) -> AsyncIterator[Path]:
    """An attachment, wholly checked against the manifest before anything of it is sent, in a
    temporary file for the block; only a name the document lists (never a path built from input)."""
    if name not in listed:
        raise NoSuchAttachment(f"the document lists no attachment {name[:80]!r}", name=name[:80])
    with tempfile.TemporaryDirectory(prefix="gwx-console-") as tmp:
        target = Path(tmp) / "attachment"
        await asyncio.to_thread(_copy_member, package, ATTACHMENTS + name, target)
        yield target
